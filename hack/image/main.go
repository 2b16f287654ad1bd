// Command image writes an OCI image tarball, loadable with
// `ctr images import` or `docker load`, that holds one static binary:
// the operator image without a Docker engine, and the pod sandbox
// ("pause") image of the local e2e cluster.
//
// With -static-base the image also gets what gcr.io/distroless/static
// gives the binary in the Dockerfile: /etc/passwd and /etc/group with
// root and nonroot (65532), a world-writable /tmp and the machine's CA
// bundle. Time zone data is compiled into the operator (time/tzdata).
//
// Usage:
//
//	go run ./hack/image -binary bin/user-import-operator -ref user-import-operator:e2e \
//	    -static-base -user 65532:65532 -cmd manager -out bin/image.tar
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// caBundle is where Debian keeps the CA bundle, and where distroless puts it.
const caBundle = "/etc/ssl/certs/ca-certificates.crt"

func main() {
	binary := flag.String("binary", "", "static binary to put in the image (required)")
	inImage := flag.String("path", "", "path of the binary in the image (default /<basename of -binary>)")
	ref := flag.String("ref", "", "image reference, e.g. user-import-operator:e2e (required)")
	out := flag.String("out", "", "tarball to write (required)")
	user := flag.String("user", "", "user[:group] the image runs as")
	cmd := flag.String("cmd", "", "default arguments, comma-separated (the image's CMD)")
	staticBase := flag.Bool("static-base", false, "add passwd, group, /tmp and the CA bundle, like distroless/static")
	flag.Parse()
	if *binary == "" || *ref == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if *inImage == "" {
		*inImage = "/" + path.Base(*binary)
	}
	if err := run(*binary, *inImage, *ref, *out, *user, *cmd, *staticBase); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(binary, inImage, ref, out, user, cmd string, staticBase bool) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", ref, err)
	}
	layerTar, err := rootfs(binary, inImage, staticBase)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return fmt.Errorf("making the layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return fmt.Errorf("adding the layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	// Runtimes import and run only images of their own platform.
	cfg.OS = "linux"
	cfg.Architecture = runtime.GOARCH
	cfg.Config.Entrypoint = []string{inImage}
	if cmd != "" {
		cfg.Config.Cmd = strings.Split(cmd, ",")
	}
	cfg.Config.User = user
	cfg.Config.WorkingDir = "/"
	cfg.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	if staticBase {
		cfg.Config.Env = append(cfg.Config.Env, "SSL_CERT_FILE="+caBundle)
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return err
	}
	if err := tarball.WriteToFile(out, tag, img); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return nil
}

// rootfs returns the image's single layer as an uncompressed tar. Entries
// carry a fixed time so that the same binary gives the same image digest.
func rootfs(binary, inImage string, staticBase bool) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	dirs := map[string]bool{}
	dir := func(p string, mode int64) error {
		if p == "/" || p == "." || dirs[p] {
			return nil
		}
		dirs[p] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(p, "/") + "/", Mode: mode, ModTime: epoch})
	}
	file := func(p string, mode int64, data []byte) error {
		for _, d := range parents(p) {
			if err := dir(d, 0o755); err != nil {
				return err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(p, "/"), Mode: mode, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}

	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	if err := file(inImage, 0o755, bin); err != nil {
		return nil, err
	}
	if staticBase {
		if err := dir("/tmp", 0o1777); err != nil {
			return nil, err
		}
		if err := file("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")); err != nil {
			return nil, err
		}
		if err := file("/etc/group", 0o644, []byte("root:x:0:\nnonroot:x:65532:\n")); err != nil {
			return nil, err
		}
		if err := dir("/home", 0o755); err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "home/nonroot/", Mode: 0o700, Uid: 65532, Gid: 65532, ModTime: epoch}); err != nil {
			return nil, err
		}
		// Without a bundle on this machine the image still works for
		// everything but TLS to public CAs; say so rather than fail.
		if ca, err := os.ReadFile(caBundle); err == nil {
			if err := file(caBundle, 0o644, ca); err != nil {
				return nil, err
			}
		} else {
			fmt.Fprintf(os.Stderr, "image: no CA bundle at %s; the image has none\n", caBundle)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// parents lists the directories above p, outermost first.
func parents(p string) []string {
	var out []string
	for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
		out = append([]string{d}, out...)
	}
	return out
}
