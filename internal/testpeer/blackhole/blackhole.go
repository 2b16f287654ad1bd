// Package blackhole is a server on 127.0.0.1 that accepts TCP connections
// and never answers: a directory, relay or SFTP server that hangs, for the
// tests and benchmarks that show nobody else waits for it.
package blackhole

import (
	"net"
	"sync"
)

// Hole accepts connections and holds them open, silent, until Close.
type Hole struct {
	// Host and Port are where it listens.
	Host string
	Port int32

	ln   net.Listener
	mu   sync.Mutex
	held []net.Conn
}

// Start listens on a free port of 127.0.0.1.
func Start() (*Hole, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().(*net.TCPAddr)
	h := &Hole{Host: addr.IP.String(), Port: int32(addr.Port), ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.held = append(h.held, c)
			h.mu.Unlock()
		}
	}()
	return h, nil
}

// Close stops listening and closes the connections held.
func (h *Hole) Close() {
	h.ln.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.held {
		c.Close()
	}
	h.held = nil
}
