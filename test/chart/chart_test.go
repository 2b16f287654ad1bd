// Package chart_test lints and renders the Helm chart with a real helm
// binary and checks that, with its default values, it installs what
// config/default installs: the same CRDs, RBAC rules, Deployment and
// Service. It also checks that each value reaches the manifests.
package chart_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/userimport/user-import-operator/internal/testpeer/repo"
)

const (
	release   = "user-import-operator"
	namespace = "user-import-operator-system"
)

func tool(t *testing.T, env string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		t.Fatalf("$%s is not set: run make test, which builds helm and kustomize", env)
	}
	return p
}

func run(t *testing.T, dir, bin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, out, stderr.String())
	}
	return out
}

// objects decodes a YAML stream by kind/name.
func objects(t *testing.T, data []byte) map[string]*unstructured.Unstructured {
	t.Helper()
	out := map[string]*unstructured.Unstructured{}
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if err.Error() == "EOF" {
				return out
			}
			t.Fatal(err)
		}
		if m == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		out[u.GetKind()+"/"+u.GetName()] = u
	}
}

func render(t *testing.T, root string, set ...string) map[string]*unstructured.Unstructured {
	args := []string{"template", release, "charts/user-import-operator", "--namespace", namespace, "--include-crds"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return objects(t, run(t, root, tool(t, "HELM"), args...))
}

func field(t *testing.T, u *unstructured.Unstructured, path ...string) any {
	t.Helper()
	v, ok, err := unstructured.NestedFieldNoCopy(u.Object, path...)
	if err != nil || !ok {
		t.Fatalf("%s/%s has no %s", u.GetKind(), u.GetName(), strings.Join(path, "."))
	}
	return v
}

func container(t *testing.T, d *unstructured.Unstructured) map[string]any {
	cs := field(t, d, "spec", "template", "spec", "containers").([]any)
	return cs[0].(map[string]any)
}

// With its default values the chart installs what config/default does.
func TestChartMatchesConfigDefault(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	run(t, root, tool(t, "HELM"), "lint", "--strict", "charts/user-import-operator")
	chart := render(t, root)
	config := objects(t, run(t, root, tool(t, "KUSTOMIZE"), "build", "config/default"))

	for key, want := range config {
		if want.GetKind() == "Namespace" {
			continue // helm install --create-namespace
		}
		got, ok := chart[key]
		if !ok {
			t.Errorf("the chart has no %s", key)
			continue
		}
		switch want.GetKind() {
		case "CustomResourceDefinition":
			same(t, key, field(t, got, "spec"), field(t, want, "spec"))
		case "ClusterRole", "Role":
			same(t, key, field(t, got, "rules"), field(t, want, "rules"))
			same(t, key+" labels", got.GetLabels()["rbac.authorization.k8s.io/aggregate-to-edit"], want.GetLabels()["rbac.authorization.k8s.io/aggregate-to-edit"])
		case "ClusterRoleBinding", "RoleBinding":
			same(t, key, field(t, got, "roleRef"), field(t, want, "roleRef"))
			same(t, key, field(t, got, "subjects"), field(t, want, "subjects"))
		case "Service":
			same(t, key, field(t, got, "spec", "ports"), field(t, want, "spec", "ports"))
			same(t, key, field(t, got, "spec", "selector"), field(t, want, "spec", "selector"))
		case "Deployment":
			same(t, key+" selector", field(t, got, "spec", "selector"), field(t, want, "spec", "selector"))
			same(t, key+" pod securityContext", field(t, got, "spec", "template", "spec", "securityContext"), field(t, want, "spec", "template", "spec", "securityContext"))
			same(t, key+" volumes", field(t, got, "spec", "template", "spec", "volumes"), field(t, want, "spec", "template", "spec", "volumes"))
			same(t, key+" serviceAccountName", field(t, got, "spec", "template", "spec", "serviceAccountName"), field(t, want, "spec", "template", "spec", "serviceAccountName"))
			g, w := container(t, got), container(t, want)
			for _, f := range []string{"args", "ports", "livenessProbe", "readinessProbe", "securityContext", "resources", "volumeMounts"} {
				same(t, key+" container "+f, g[f], w[f])
			}
			var gotEnv, wantEnv []string
			for _, e := range g["env"].([]any) {
				gotEnv = append(gotEnv, e.(map[string]any)["name"].(string))
			}
			for _, e := range w["env"].([]any) {
				wantEnv = append(wantEnv, e.(map[string]any)["name"].(string))
			}
			same(t, key+" env", gotEnv, wantEnv)
		}
	}
	for key := range chart {
		if _, ok := config[key]; !ok {
			t.Errorf("the chart has %s, which config/default does not", key)
		}
	}
}

func same(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Errorf("%s differs from config/default:\nchart:  %s\nconfig: %s", what, g, w)
	}
}

// Each value reaches the manifests.
func TestChartValues(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	objs := render(t, root,
		"image.repository=registry.example/uio", "image.tag=1.2.3", "image.pullPolicy=Always",
		"replicas=2", "executor=inprocess", "logLevel=debug",
		"metrics.port=9090", "metrics.serviceMonitor.enabled=true",
		"worker.resources.requests.cpu=250m", "worker.resources.limits.memory=1Gi",
		"watchNamespaces={hr,it}", "singleTenant=true", "inProcessMaxRuns=3", "allowedHosts={*.corp.example,10.1.0.0/16}", "s3AmbientBuckets={hr-exports}", "secretLabel=userimport.dev/usable=true", "nodeSelector.pool=ops", "tolerations[0].key=dedicated", "tolerations[0].operator=Exists",
		"resources.limits.memory=1Gi")
	d := objs["Deployment/user-import-operator-controller-manager"]
	if d == nil {
		t.Fatal("no Deployment")
	}
	c := container(t, d)
	if c["image"] != "registry.example/uio:1.2.3" || c["imagePullPolicy"] != "Always" {
		t.Errorf("image %v %v", c["image"], c["imagePullPolicy"])
	}
	args := fmt.Sprint(c["args"])
	for _, want := range []string{"--executor=inprocess", "--zap-log-level=debug", "--metrics-bind-address=:9090",
		`--worker-resources={"limits":{"memory":"1Gi"},"requests":{"cpu":"250m"}}`, "--watch-namespaces=hr,it", "--worker-image-pull-policy=Always", "--leader-elect",
		"--single-tenant", "--inprocess-max-runs=3", "--allowed-hosts=*.corp.example,10.1.0.0/16", "--s3-ambient-buckets=hr-exports", "--secret-label=userimport.dev/usable=true"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %s lack %s", args, want)
		}
	}
	if fmt.Sprint(field(t, d, "spec", "replicas")) != "2" || fmt.Sprint(field(t, d, "spec", "template", "spec", "nodeSelector")) != "map[pool:ops]" ||
		!strings.Contains(fmt.Sprint(field(t, d, "spec", "template", "spec", "tolerations")), "dedicated") {
		t.Errorf("replicas, nodeSelector or tolerations not set: %v", d.Object["spec"])
	}
	if fmt.Sprint(c["resources"]) != "map[limits:map[cpu:1 memory:1Gi] requests:map[cpu:100m memory:192Mi]]" {
		t.Errorf("resources %v", c["resources"])
	}
	if objs["ServiceMonitor/user-import-operator-controller-manager"] == nil {
		t.Error("no ServiceMonitor")
	}

	off := render(t, root, "leaderElection.enabled=false", "metrics.enabled=false")
	if args := fmt.Sprint(container(t, off["Deployment/user-import-operator-controller-manager"])["args"]); strings.Contains(args, "--leader-elect") || !strings.Contains(args, "--metrics-bind-address=0") {
		t.Errorf("args %s", args)
	}
	if off["Role/user-import-operator-leader-election-role"] != nil || off["Service/user-import-operator-controller-manager-metrics-service"] != nil {
		t.Error("the leader election Role or the metrics Service is rendered while disabled")
	}
}

// With watchNamespaces the manager's rules are granted in those
// namespaces only: a Role and a RoleBinding in each, no ClusterRole.
func TestChartWatchNamespacesGrantsRolesPerNamespace(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	out := run(t, root, tool(t, "HELM"), "template", release, "charts/user-import-operator", "--namespace", namespace, "--set", "watchNamespaces={hr,it}")
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	roles, bindings := map[string]bool{}, map[string]bool{}
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			break
		}
		u := &unstructured.Unstructured{Object: m}
		switch {
		case u.GetKind() == "ClusterRole" && strings.HasSuffix(u.GetName(), "-manager-role"),
			u.GetKind() == "ClusterRoleBinding" && strings.HasSuffix(u.GetName(), "-manager-rolebinding"):
			t.Errorf("%s %s is cluster-wide although the manager watches two namespaces", u.GetKind(), u.GetName())
		case u.GetKind() == "Role" && strings.HasSuffix(u.GetName(), "-manager-role"):
			roles[u.GetNamespace()] = len(field(t, u, "rules").([]any)) > 0
		case u.GetKind() == "RoleBinding" && strings.HasSuffix(u.GetName(), "-manager-rolebinding"):
			bindings[u.GetNamespace()] = true
		}
	}
	for _, ns := range []string{"hr", "it"} {
		if !roles[ns] || !bindings[ns] {
			t.Errorf("namespace %s: Role with rules %v, RoleBinding %v", ns, roles[ns], bindings[ns])
		}
	}
}

// The in-process executor makes no Jobs: the manager then holds no
// permission on Jobs, pods, ServiceAccounts, Roles or RoleBindings. The
// Job executor holds them, pods list only for termination messages.
func TestChartInProcessExecutorDropsTheJobRules(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	jobOnly := []string{"jobs", "pods", "serviceaccounts", "roles", "rolebindings"}
	resources := func(set ...string) map[string]bool {
		out := map[string]bool{}
		for _, u := range render(t, root, set...) {
			if u.GetKind() != "ClusterRole" || !strings.HasSuffix(u.GetName(), "-manager-role") {
				continue
			}
			for _, r := range field(t, u, "rules").([]any) {
				for _, res := range r.(map[string]any)["resources"].([]any) {
					out[res.(string)] = true
				}
			}
		}
		return out
	}
	job, inProcess := resources(), resources("executor=inprocess", "singleTenant=true")
	for _, r := range jobOnly {
		if !job[r] {
			t.Errorf("the Job executor's manager role lacks %s", r)
		}
		if inProcess[r] {
			t.Errorf("the in-process executor's manager role grants %s", r)
		}
	}
	if !inProcess["userimports"] || !inProcess["secrets"] {
		t.Errorf("the in-process executor's manager role lacks what it needs: %v", inProcess)
	}
}

// networkPolicy.enabled ships the manager's policy and, in each watched
// namespace, one for the worker pods: no ingress to workers, and egress
// that never reaches the cloud metadata service.
func TestChartNetworkPolicies(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	run(t, root, tool(t, "HELM"), "lint", "--strict", "charts/user-import-operator", "--set", "networkPolicy.enabled=true", "--set", "watchNamespaces={hr}")
	out := run(t, root, tool(t, "HELM"), "template", release, "charts/user-import-operator", "--namespace", namespace,
		"--set", "networkPolicy.enabled=true", "--set", "watchNamespaces={hr,it}", "--set", "networkPolicy.directoryCIDRs={10.20.0.0/16}")
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	policies := map[string]*unstructured.Unstructured{}
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			break
		}
		if u := (&unstructured.Unstructured{Object: m}); u.GetKind() == "NetworkPolicy" {
			policies[u.GetNamespace()+"/"+u.GetName()] = u
		}
	}
	if len(policies) != 3 {
		t.Fatalf("%d NetworkPolicies, want the manager's and one per watched namespace: %v", len(policies), policies)
	}
	for key, p := range policies {
		spec := fmt.Sprint(p.Object["spec"])
		if !strings.Contains(spec, "except:[169.254.0.0/16 127.0.0.0/8]") || !strings.Contains(spec, "10.20.0.0/16") {
			t.Errorf("%s does not keep the metadata service out or lacks the directories: %s", key, spec)
		}
		if strings.HasPrefix(key, "hr/") || strings.HasPrefix(key, "it/") {
			if !strings.Contains(spec, "ingress:[]") || !strings.Contains(spec, "values:[preview import]") {
				t.Errorf("%s: worker pods get ingress or are not selected: %s", key, spec)
			}
		}
	}
}
