package benchio

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postmaster is the pid of the server's main process: the parent of a
// backend.
func Postmaster(ctx context.Context, dsn string) (int, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer c.Close(ctx)
	var backend int
	if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		return 0, err
	}
	f, err := statFields(backend)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(f[1])
}

// ServerCPU is the CPU time of the server: its main process and the
// backends it has reaped (cutime, cstime), so that a backend that served
// a child counts once the child has disconnected.
func ServerCPU(pid int) time.Duration {
	f, err := statFields(pid)
	if err != nil {
		return 0
	}
	var ticks int64
	for _, i := range []int{11, 12, 13, 14} {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

// statFields are the fields of /proc/pid/stat after the command name:
// [0] is the state, [1] the parent's pid, [11] utime.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:]), nil
}
