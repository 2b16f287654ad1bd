package ldap

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/testpeer/slapd"
)

// benchUsers is the number of users each benchmark adds to a fresh
// server; benchBatch is the engine's default batch size.
const (
	benchUsers = 10000
	benchBatch = 100
)

func benchAttributes(i int) directory.Attributes {
	uid := fmt.Sprintf("user%06d", i)
	return directory.Attributes{
		"uid":              {uid},
		"cn":               {"Given" + uid + " Family"},
		"sn":               {"Family"},
		"givenName":        {"Given" + uid},
		"displayName":      {"Given Family " + uid},
		"mail":             {uid + "@example.com"},
		"title":            {"Engineer"},
		"employeeNumber":   {fmt.Sprint(100000 + i)},
		"departmentNumber": {fmt.Sprint(i % 50)},
		"telephoneNumber":  {fmt.Sprintf("+49 30 %07d", i)},
		marker:             {markerValue},
	}
}

// ldif renders users [from, to) as the provider would add them.
func benchLDIF(s *slapd.Server, from, to int) []byte {
	var b bytes.Buffer
	for i := from; i < to; i++ {
		attrs := benchAttributes(i)
		fmt.Fprintf(&b, "dn: uid=%s,%s\n", attrs["uid"][0], s.PeopleDN)
		for _, oc := range defaultObjectClasses {
			fmt.Fprintf(&b, "objectClass: %s\n", oc)
		}
		names := make([]string, 0, len(attrs))
		for n := range attrs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			for _, v := range attrs[n] {
				fmt.Fprintf(&b, "%s: %s\n", n, v)
			}
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

// BenchmarkAdd adds benchUsers users to a fresh server per iteration, with
// the provider at concurrency 1 and 8 (the engine's batches of 100, that
// many batches at once) and, for comparison, with `ldapadd -c` of the
// same entries, once sequentially and as 8 parallel processes. Run with
// -benchtime=1x; the users/s metric is the figure to compare.
func BenchmarkAdd(b *testing.B) {
	for _, conc := range []int{1, 8} {
		b.Run(fmt.Sprintf("provider-c%d", conc), func(b *testing.B) {
			benchFresh(b, func(s *slapd.Server) {
				opts := baseOpts()
				opts.Concurrency = conc
				d, err := New(context.Background(), baseSpec(s), opts, secrets(s))
				if err != nil {
					b.Fatal(err)
				}
				defer d.Close()
				batches := make(chan []directory.Change)
				var wg sync.WaitGroup
				for range conc {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for batch := range batches {
							res, err := d.Apply(context.Background(), batch)
							if err != nil {
								b.Error(err)
								return
							}
							for _, r := range res {
								if r.Err != nil {
									b.Error(r.Err)
									return
								}
							}
						}
					}()
				}
				for start := 0; start < benchUsers; start += benchBatch {
					batch := make([]directory.Change, 0, benchBatch)
					for i := start; i < min(start+benchBatch, benchUsers); i++ {
						attrs := benchAttributes(i)
						batch = append(batch, create(attrs["uid"][0], attrs))
					}
					batches <- batch
				}
				close(batches)
				wg.Wait()
			})
		})
	}
	for _, procs := range []int{1, 8} {
		b.Run(fmt.Sprintf("ldapadd-p%d", procs), func(b *testing.B) {
			var parts [][]byte
			benchFresh(b, func(s *slapd.Server) {
				var wg sync.WaitGroup
				for p := range procs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := s.LDAPAdd(context.Background(), parts[p]); err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
			}, func(s *slapd.Server) {
				parts = parts[:0]
				per := benchUsers / procs
				for p := range procs {
					parts = append(parts, benchLDIF(s, p*per, min((p+1)*per, benchUsers)))
				}
			})
		})
	}
}

// benchFresh runs add once per iteration against a new server, timing add
// only, verifies that every user arrived, and reports users/s.
func benchFresh(b *testing.B, add func(*slapd.Server), prepare ...func(*slapd.Server)) {
	var total, serverCPU, client time.Duration
	for b.Loop() {
		b.StopTimer()
		s, err := slapd.StartProcess(slapd.Options{})
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range prepare {
			p(s)
		}
		serverCPU0, clientCPU0 := processCPU(s.PID()), clientCPU()
		b.StartTimer()
		start := time.Now()
		add(s)
		total += time.Since(start)
		b.StopTimer()
		serverCPU += processCPU(s.PID()) - serverCPU0
		client += clientCPU() - clientCPU0
		n := countUsers(b, s)
		_ = s.Stop()
		if n != benchUsers {
			b.Fatalf("%d users in the directory, want %d", n, benchUsers)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(benchUsers*b.N)/total.Seconds(), "users/s")
	// CPU per user tells the cost apart from the load of a shared machine.
	b.ReportMetric(float64(serverCPU.Microseconds())/float64(benchUsers*b.N), "slapd-cpu-µs/user")
	b.ReportMetric(float64(client.Microseconds())/float64(benchUsers*b.N), "client-cpu-µs/user")
}

// processCPU is the user and system time of a running process.
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) in ")".
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// clientCPU is the CPU time of this process and of its reaped children
// (ldapadd).
func clientCPU() time.Duration {
	var self, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(children.Utime) + tv(children.Stime)
}

func countUsers(b *testing.B, s *slapd.Server) int {
	opts := baseOpts()
	opts.ManagedOnly = false
	d, err := New(context.Background(), baseSpec(s), opts, secrets(s))
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	n := 0
	if err := d.List(context.Background(), nil, func(directory.User) error { n++; return nil }); err != nil {
		b.Fatal(err)
	}
	return n
}
