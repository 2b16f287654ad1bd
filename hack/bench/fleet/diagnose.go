package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"github.com/userimport/user-import-operator/hack/bench/benchio"
)

// diagnosis follows the manager through the burst: how deep its queues
// grew, how long a reconcile took, and (with -profile) where its CPU
// went. It says where admission time goes; the BENCH line does not
// depend on it.
type diagnosis struct {
	m      *manager
	cfg    *rest.Config
	served map[string]float64
	cpu    map[string]time.Duration
	stop   chan struct{}
	done   chan struct{}
	peak   map[string]float64
	drain  map[string]time.Duration
	start  time.Time
	// reconciles and queued: the reconcile times and the times queued,
	// by controller, when the burst began.
	reconciles, queued histogram
}

// histogram is the sum and the count of a histogram the manager serves,
// by the value of one label.
type histogram struct{ sum, count map[string]float64 }

func (m *manager) histogram(metric, label string) histogram {
	return histogram{m.byLabel(metric+"_sum", label), m.byLabel(metric+"_count", label)}
}

// since is the number of observations of key after earlier, and their mean.
func (h histogram) since(earlier histogram, key string) (n, mean float64) {
	n = h.count[key] - earlier.count[key]
	if n > 0 {
		mean = (h.sum[key] - earlier.sum[key]) / n
	}
	return n, mean
}

func diagnose(ctx context.Context, m *manager, cfg *rest.Config) *diagnosis {
	d := &diagnosis{m: m, cfg: cfg, served: served(ctx, cfg), cpu: processCPU(), stop: make(chan struct{}), done: make(chan struct{}), peak: map[string]float64{}, drain: map[string]time.Duration{}, start: time.Now(),
		reconciles: m.histogram("controller_runtime_reconcile_time_seconds", "controller"), queued: m.histogram("workqueue_queue_duration_seconds", "name")}
	if *profile != "" && m.pprof != "" {
		go saveProfile("the manager", http.DefaultClient, m.pprof, *profile)
		if hc, err := rest.HTTPClientFor(cfg); err == nil {
			go saveProfile("the API server", hc, strings.TrimSuffix(cfg.Host, "/"), *profile+".apiserver")
		} else {
			say("profile: %v", err)
		}
	}
	go func() {
		defer close(d.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-d.stop:
				return
			case <-t.C:
			}
			for name, depth := range m.byLabel("workqueue_depth", "name") {
				if depth > d.peak[name] {
					d.peak[name] = depth
				}
				if depth > 0 {
					d.drain[name] = time.Since(d.start)
				}
			}
		}
	}()
	return d
}

// admitted says what the API server served, and who was busy, from the
// burst's start until every new import was admitted: the admissions'
// share of the burst.
func (d *diagnosis) admitted(ctx context.Context) {
	elapsed := time.Since(d.start)
	say("admission window of %s, as the API server served it: %s", elapsed.Round(100*time.Millisecond), topRates(d.served, served(ctx, d.cfg), elapsed, 14))
	say("admission window, CPUs busy by process: %s", d.cpuShares(elapsed))
}

// cpuShares is the share of a CPU each process used since the burst
// began.
func (d *diagnosis) cpuShares(elapsed time.Duration) string {
	var cpus []string
	for name, t := range processCPU() {
		cpus = append(cpus, fmt.Sprintf("%s %.2f", name, (t-d.cpu[name]).Seconds()/elapsed.Seconds()))
	}
	slices.Sort(cpus)
	return strings.Join(cpus, ", ")
}

// end stops following and says what was seen.
func (d *diagnosis) end(ctx context.Context) {
	close(d.stop)
	<-d.done
	elapsed := time.Since(d.start)
	say("burst, as the API server served it: %s", topRates(d.served, served(ctx, d.cfg), elapsed, 14))
	say("burst, CPUs busy by process over %s: %s", elapsed.Round(time.Second), d.cpuShares(elapsed))
	reconciles, queued := d.m.histogram("controller_runtime_reconcile_time_seconds", "controller"), d.m.histogram("workqueue_queue_duration_seconds", "name")
	var parts []string
	for name, p := range d.peak {
		n, mean := reconciles.since(d.reconciles, name)
		_, wait := queued.since(d.queued, name)
		parts = append(parts, fmt.Sprintf("%s: peak depth %.0f, busy until %s, %.0f reconciles of %.0f ms, %.2f s queued on average", name, p, d.drain[name].Round(time.Second), n, mean*1000, wait))
	}
	slices.Sort(parts)
	say("burst, by queue: %s", strings.Join(parts, "; "))
}

// processCPU is the CPU time of this process and of the processes it
// started (the API server, etcd, the manager), by name.
func processCPU() map[string]time.Duration {
	out := map[string]time.Duration{"fleet": benchio.ProcessCPU(os.Getpid())}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		st := string(b)
		name := st[strings.IndexByte(st, '(')+1 : strings.LastIndexByte(st, ')')]
		fields := strings.Fields(st[strings.LastIndexByte(st, ')')+1:])
		if ppid, _ := strconv.Atoi(fields[1]); ppid == os.Getpid() {
			out[name] += benchio.ProcessCPU(pid)
		}
	}
	return out
}

// saveProfile writes who's CPU profile of the next 30 s, served under
// base, to path, and says where.
func saveProfile(who string, hc *http.Client, base, path string) {
	if err := fetchProfile(hc, base+"/debug/pprof/profile?seconds=30", path); err != nil {
		say("%s's profile: %v", who, err)
		return
	}
	say("%s's CPU profile of the burst's first 30 s: %s", who, path)
}

func fetchProfile(hc *http.Client, url, path string) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
