// Package peer holds what the test servers share: a free port to listen
// on, and the cache of the tools the project's scripts build.
package peer

import (
	"net"
	"os"
	"path/filepath"
)

// FreePort returns a port on host that nothing listens on now.
func FreePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Tool is the path of a tool that hack/peers cached: file (name-version)
// under $UIO_CACHE/tools, by default ~/.cache/user-import-operator/tools.
func Tool(file string) string {
	cache := os.Getenv("UIO_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "user-import-operator")
	}
	return filepath.Join(cache, "tools", file)
}
