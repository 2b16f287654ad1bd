package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/userimport/user-import-operator/hack/bench/benchio"
)

// manager is the operator's manager, running as a process of its own.
type manager struct {
	cmd     *exec.Cmd
	metrics string
	// pprof is the base URL of the manager's profiles, with -profile.
	pprof string
}

func startManager(ctx context.Context, work, kubeconfig string, flags []string) (*manager, error) {
	bin := filepath.Join(work, "user-import-operator")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/user-import-operator")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("building the manager: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	m := &manager{metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", port)}
	args := []string{"manager", "--executor=inprocess", "--single-tenant", "--inprocess-max-runs=4",
		"--metrics-bind-address=127.0.0.1:" + strconv.Itoa(port), "--metrics-secure=false", "--health-probe-bind-address=0",
		"--allowed-hosts=*,127.0.0.0/8", "--zap-log-level=error"}
	if *profile != "" {
		pp, err := freePort()
		if err != nil {
			return nil, err
		}
		m.pprof = fmt.Sprintf("http://127.0.0.1:%d", pp)
		args = append(args, fmt.Sprintf("--pprof-bind-address=127.0.0.1:%d", pp))
	}
	m.cmd = exec.Command(bin, append(args, flags...)...)
	m.cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	logf, err := os.Create(filepath.Join(work, "manager.log"))
	if err != nil {
		return nil, err
	}
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	if err := m.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := m.metric("rest_client_requests_total"); err == nil {
			return m, nil
		}
		if time.Now().After(deadline) {
			m.stop()
			return nil, fmt.Errorf("the manager serves no metrics after a minute (log: %s)", logf.Name())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitIdle waits until the manager's work queues hold nothing ready to
// reconcile (workqueue_depth) at two looks in a row. The follow-up queue
// is left out: the black-holed tenants' report mails wake it whenever a
// try ends, on their relays' timeouts, which is their own time.
func (m *manager) waitIdle(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	last, idle := time.Now(), 0
	for idle < 2 {
		depths := m.byLabel("workqueue_depth", "name")
		if len(depths) == 0 {
			return fmt.Errorf("the manager serves no workqueue_depth")
		}
		depth := 0.0
		for name, d := range depths {
			if name != "userimport-followup" {
				depth += d
			}
		}
		if depth == 0 {
			idle++
		} else {
			idle = 0
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the manager's queues still hold %.0f objects after %s", depth, limit)
		}
		if time.Since(last) > 30*time.Second {
			say("the manager's queues hold %.0f objects", depth)
			last = time.Now()
		}
		time.Sleep(5 * time.Second)
	}
	return nil
}

func (m *manager) stop() {
	_ = m.cmd.Process.Kill()
	_, _ = m.cmd.Process.Wait()
}

// peakRSS is the manager's peak resident memory in bytes.
func (m *manager) peakRSS() int64 { return benchio.PeakRSS(m.cmd.Process.Pid) }

// metric sums the samples of a metric the manager serves.
func (m *manager) metric(name string) (float64, error) {
	resp, err := http.Get(m.metrics)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("no metric %s", name)
	}
	return sum, sc.Err()
}

// byLabel sums the samples of a metric by the value of one label.
func (m *manager) byLabel(name, label string) map[string]float64 {
	resp, err := http.Get(m.metrics)
	if err != nil {
		return map[string]float64{}
	}
	defer resp.Body.Close()
	return byLabels(resp.Body, name, label)
}

// byLabels sums the samples of a metric in a Prometheus text exposition
// by the values of labels, joined with spaces.
func byLabels(r io.Reader, name string, labels ...string) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, name+"{") {
			continue
		}
		var vals []string
		for _, label := range labels {
			_, rest, _ := strings.Cut(l, label+`="`)
			val, _, _ := strings.Cut(rest, `"`)
			vals = append(vals, val)
		}
		v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		if err == nil {
			out[strings.Join(vals, " ")] += v
		}
	}
	return out
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
