// Package demo_test runs the local demo as a newcomer would — the
// user-import-demo command with --exit-after-import — and checks
// that the import completed, the SQLite directory holds the users, and no
// process it started outlives it.
package demo_test

import (
	"bufio"
	"bytes"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	_ "modernc.org/sqlite"
	"sigs.k8s.io/yaml"

	"github.com/userimport/user-import-operator/internal/testpeer/repo"
)

func TestDemoImportsAndCleansUp(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
	}
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "user-import-demo")
	build := exec.Command("go", "build", "-o", bin, "./cmd/user-import-demo")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the binary: %v\n%s", err, out)
	}

	work := t.TempDir()
	cmd := exec.Command(bin, "--exit-after-import", "--work-dir", work)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	// Record the processes the demo starts (etcd, kube-apiserver) while
	// it runs.
	children := map[int]string{}
	var mu sync.Mutex
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(5 * time.Minute)
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("the demo did not end in 5 minutes:\n%s", out.String())
		case <-time.After(200 * time.Millisecond):
			mu.Lock()
			for pid, name := range childrenOf(cmd.Process.Pid) {
				children[pid] = name
			}
			mu.Unlock()
		}
	}
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("the demo failed: %v", err)
	}
	text := out.String()
	if !strings.Contains(text, "Completed") || !strings.Contains(text, "holds 1000 users, 1000 active") {
		t.Fatalf("the demo did not show a completed import of 1000 users")
	}
	if !strings.Contains(text, "recovery codes: 1000, in Secret [hr-initial-import-codes-0]") || !strings.Contains(text, "verifies against its hash; a wrong one does not: true") {
		t.Fatalf("the demo did not show the import's recovery codes verifying:\n%s", text)
	}
	// The demo shows the import as `kubectl get userimports` does.
	if header := "NAME " + strings.Join(printerColumns(t, root), " "); !containsLineOfFields(text, header) {
		t.Fatalf("the demo's table does not have the columns of kubectl get userimports (%s)", header)
	}
	for _, want := range []string{"kubectl --kubeconfig " + filepath.Join(work, "kubeconfig"), "delta-import.yaml"} {
		if !strings.Contains(text, want) {
			t.Fatalf("the demo does not tell how to go on: %q missing", want)
		}
	}

	db, err := sql.Open("sqlite", filepath.Join(work, "users.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM users WHERE userImportManagedBy = 'user-import-operator'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1000 {
		t.Fatalf("the SQLite directory holds %d managed users, want 1000", n)
	}
	// Each user is in the group of its department and of its site, and
	// every user but the first refers to a manager.
	var memberships, managers int
	if err := db.QueryRow(`SELECT count(*) FROM memberships WHERE managed_by = 'user-import-operator'`).Scan(&memberships); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM users WHERE manager IS NOT NULL`).Scan(&managers); err != nil {
		t.Fatal(err)
	}
	if memberships != 2000 || managers != 999 || !strings.Contains(text, "with 2000 memberships") || !strings.Contains(text, " reports to ") {
		t.Fatalf("%d memberships and %d managers in the directory, want 2000 and 999; the demo said:\n%s", memberships, managers, text)
	}
	for _, f := range []string{"kubeconfig", "delta-import.yaml"} {
		if _, err := os.Stat(filepath.Join(work, f)); err != nil {
			t.Fatalf("the demo did not write %s: %v", f, err)
		}
	}

	names := map[string]bool{}
	for _, name := range children {
		names[name] = true
	}
	if !names["etcd"] || !names["kube-apiserver"] {
		t.Fatalf("did not see the control plane's processes as children of the demo: %v", children)
	}
	for pid, name := range children {
		if alive(pid) {
			t.Errorf("%s (pid %d) outlived the demo", name, pid)
		}
	}
}

// childrenOf lists the processes whose parent is pid, by name.
func childrenOf(pid int) map[int]string {
	found := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := os.Open(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		var name string
		ppid := -1
		s := bufio.NewScanner(f)
		for s.Scan() {
			line := s.Text()
			if v, ok := strings.CutPrefix(line, "Name:"); ok {
				name = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(line, "PPid:"); ok {
				ppid, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		f.Close()
		if ppid == pid {
			found[child] = name
		}
	}
	return found
}

// alive tells whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b))
	return len(fields) > 2 && fields[2] != "Z"
}

// printerColumns are the names of the UserImport CRD's printer columns
// that kubectl shows without -o wide, upper-cased as kubectl prints them.
func printerColumns(t *testing.T, root string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "config", "crd", "bases", "userimport.dev_userimports.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range crd.Spec.Versions[0].AdditionalPrinterColumns {
		if c.Priority == 0 {
			names = append(names, strings.ToUpper(c.Name))
		}
	}
	if len(names) < 5 {
		t.Fatalf("the CRD has %d printer columns", len(names))
	}
	return names
}

// containsLineOfFields tells whether a line of text has exactly the
// space-separated fields of want.
func containsLineOfFields(text, want string) bool {
	for _, l := range strings.Split(text, "\n") {
		if strings.Join(strings.Fields(l), " ") == want {
			return true
		}
	}
	return false
}
