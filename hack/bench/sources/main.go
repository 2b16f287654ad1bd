// Command sources benchmarks reading a file in place: the same
// 1,000,000-row HR export parsed and planned (a dry run of a full import
// into an empty directory, one pass over the file each) from a local
// file, from S3 (versitygw) and from SFTP (OpenSSH), all on this machine. The servers add their own
// CPU to the machine's two cores, which the ratios include. The three
// take turns over -rounds rounds and each keeps its fastest. The last
// line printed is
//
//	BENCH sources rows=… local_s=… s3_s=… sftp_s=… s3_ratio=… sftp_ratio=…
//
// where a ratio is local_s / source_s (1 = as fast as the local file).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/hack/bench/benchio"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/memdir"
	"github.com/userimport/user-import-operator/internal/source"
	"github.com/userimport/user-import-operator/internal/testpeer/s3server"
	"github.com/userimport/user-import-operator/internal/testpeer/sshd"
)

func main() {
	rows := flag.Int("rows", 1_000_000, "rows of the file")
	rounds := flag.Int("rounds", 2, "rounds; each source keeps its fastest")
	flag.Parse()
	if err := run(*rows, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench sources:", err)
		os.Exit(1)
	}
}

func run(rows, rounds int) error {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "uio-bench-sources-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	// sshd's account must reach its folder.
	if err := os.Chmod(work, 0o755); err != nil {
		return err
	}
	path, sum, err := benchio.WriteCSV(work, "employees.csv", rows)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	fmt.Printf("file: %d rows, %d bytes\n", rows, len(data))

	if err := os.Mkdir(work+"/s3", 0o700); err != nil {
		return err
	}
	s3srv, err := s3server.StartIn(work+"/s3", "127.0.0.1")
	if err != nil {
		return err
	}
	defer s3srv.Stop()
	if err := s3srv.Bucket(ctx, "hr-exports", false); err != nil {
		return err
	}
	if _, err := s3srv.Put(ctx, "hr-exports", "employees.csv", data); err != nil {
		return err
	}
	if err := os.Mkdir(work+"/sftp", 0o755); err != nil {
		return err
	}
	sftpSrv, err := sshd.StartIn(work+"/sftp", "127.0.0.1")
	if err != nil {
		return err
	}
	defer sftpSrv.Stop()
	if err := sftpSrv.WriteFile("employees.csv", data, time.Now()); err != nil {
		return err
	}
	data = nil

	secrets := keyread.KeyReader(func(_ context.Context, name, key string) ([]byte, error) {
		v, ok := map[string]string{
			"s3/accessKeyID": s3server.AccessKey, "s3/secretAccessKey": s3server.SecretKey,
			"sftp/username": sshd.User, "sftp/password": sshd.Password, "sftp-host/known_hosts": sftpSrv.KnownHosts,
		}[name+"/"+key]
		if !ok {
			return nil, fmt.Errorf("%s/%s: %w", name, key, keyread.ErrNotFound)
		}
		return []byte(v), nil
	})
	sources := map[string]v1alpha1.ImportSource{
		"s3": {S3: &v1alpha1.S3Source{FileSelector: v1alpha1.FileSelector{Path: "employees.csv"}, Bucket: "hr-exports",
			Endpoint: s3srv.Endpoint, PathStyle: true, Credentials: &v1alpha1.LocalObjectReference{Name: "s3"}}},
		"sftp": {SFTP: &v1alpha1.SFTPSource{FileSelector: v1alpha1.FileSelector{Path: "employees.csv"}, Host: sftpSrv.Host, Port: int32(sftpSrv.Port),
			Credentials: v1alpha1.LocalObjectReference{Name: "sftp"}, KnownHosts: &v1alpha1.SecretKeyRef{Name: "sftp-host", Key: "known_hosts"}}},
	}

	best := map[string]time.Duration{}
	for round := range rounds {
		for _, kind := range []string{"local", "s3", "sftp"} {
			var in engine.Input
			var closeFn func()
			if kind == "local" {
				f, err := os.Open(path)
				if err != nil {
					return err
				}
				in, closeFn = engine.Input{File: f, SHA256: sum}, func() { f.Close() }
			} else {
				file, err := source.Fetch(ctx, sources[kind], source.Options{Secrets: secrets})
				if err != nil {
					return fmt.Errorf("%s: %w", kind, err)
				}
				r, err := file.Open(ctx)
				if err != nil {
					return err
				}
				in, closeFn = engine.Input{File: r, SHA256: file.SHA256}, func() { r.Close(); file.Remove() }
			}
			d, res, err := plan(ctx, in)
			closeFn()
			if err != nil {
				return fmt.Errorf("%s: %w", kind, err)
			}
			if res.Counts.Rows != int64(rows) || res.Counts.Created != int64(rows) {
				return fmt.Errorf("%s: planned %+v for %d rows", kind, res.Counts, rows)
			}
			fmt.Printf("round %d %-5s %.2f s  (%.0f rows/s)  load1=%s\n", round+1, kind, d.Seconds(), float64(rows)/d.Seconds(), benchio.Load1())
			if b, ok := best[kind]; !ok || d < b {
				best[kind] = d
			}
		}
	}
	l, s3s, sf := best["local"].Seconds(), best["s3"].Seconds(), best["sftp"].Seconds()
	fmt.Printf("BENCH sources rows=%d local_s=%.2f s3_s=%.2f sftp_s=%.2f s3_ratio=%.2f sftp_ratio=%.2f rounds=%d load1=%s\n",
		rows, l, s3s, sf, l/s3s, l/sf, rounds, benchio.Load1())
	return nil
}

// plan is a dry run of a full import into an empty directory: every row
// is parsed, mapped and planned as a create.
func plan(ctx context.Context, in engine.Input) (time.Duration, engine.Result, error) {
	opts := directory.Options{IdentityAttribute: "userName", ManagedOnly: true, MarkerAttribute: "userImportManagedBy", MarkerValue: "user-import-operator"}
	cfg := engine.Config{
		Mapping: []v1alpha1.AttributeMapping{
			{Attribute: "userName", Column: "employee_id", Identity: true, Required: true},
			{Attribute: "emails", Column: "email", Transforms: []v1alpha1.Transform{{Type: "Lower"}}, Check: "Email"},
			{Attribute: "name.givenName", Column: "first_name"},
			{Attribute: "name.familyName", Column: "last_name"},
			{Attribute: "department", Column: "department"},
			{Attribute: "title", Column: "title"},
		},
		Mode:        v1alpha1.ModeFull,
		Directory:   opts,
		BatchSize:   100,
		Concurrency: 4,
	}
	start := time.Now()
	res, err := engine.Run(ctx, in, memdir.New(opts), cfg, true, nil)
	return time.Since(start), res, err
}
