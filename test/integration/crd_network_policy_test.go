package integration_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// The shipped NetworkPolicy selects the manager's pods and keeps the
// manager's checks away from the cloud metadata service and the
// loopback of the node.
func TestManagerNetworkPolicy(t *testing.T) {
	// A plain test: the suite's BeforeSuite has not run.
	root := filepath.Join("..", "..")
	var np networkingv1.NetworkPolicy
	readYAML(t, filepath.Join(root, "config", "network-policy", "manager-network-policy.yaml"), &np)
	var dep appsv1.Deployment
	readDocument(t, filepath.Join(root, "config", "manager", "manager.yaml"), "Deployment", &dep)
	sel, err := metaSelector(np)
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Fatalf("the policy's podSelector %v does not select the manager's pods %v", np.Spec.PodSelector, dep.Spec.Template.Labels)
	}
	hasEgress := false
	for _, pt := range np.Spec.PolicyTypes {
		hasEgress = hasEgress || pt == networkingv1.PolicyTypeEgress
	}
	if !hasEgress {
		t.Fatal("the policy does not restrict egress")
	}
	for _, rule := range np.Spec.Egress {
		for _, peer := range rule.To {
			if peer.IPBlock == nil {
				continue
			}
			_, n, err := net.ParseCIDR(peer.IPBlock.CIDR)
			if err != nil {
				t.Fatal(err)
			}
			excepted := func(ip net.IP) bool {
				for _, e := range peer.IPBlock.Except {
					if _, x, err := net.ParseCIDR(e); err == nil && x.Contains(ip) {
						return true
					}
				}
				return false
			}
			for _, forbidden := range []string{"169.254.169.254", "127.0.0.1"} {
				if ip := net.ParseIP(forbidden); n.Contains(ip) && !excepted(ip) {
					t.Errorf("egress to %s is allowed by %s", forbidden, peer.IPBlock.CIDR)
				}
			}
		}
	}
}

func readYAML(t *testing.T, path string, out any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// readDocument reads the document of kind from a multi-document file.
func readDocument(t *testing.T, path, kind string, out any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(b), "\n---") {
		var meta struct {
			Kind string `json:"kind"`
		}
		if yaml.Unmarshal([]byte(doc), &meta) == nil && meta.Kind == kind {
			if err := yaml.Unmarshal([]byte(doc), out); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			return
		}
	}
	t.Fatalf("%s has no %s", path, kind)
}

func metaSelector(np networkingv1.NetworkPolicy) (labels.Selector, error) {
	return labels.SelectorFromSet(np.Spec.PodSelector.MatchLabels), nil
}
