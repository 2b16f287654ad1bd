package postgres

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStartConnectsWithPasswordAndCleansUp(t *testing.T) {
	s, err := StartProcess()
	if err != nil {
		t.Fatal(err)
	}
	dir := s.dir
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		t.Fatalf("connect with the DSN: %v", err)
	}
	var user, db string
	if err := conn.QueryRow(ctx, "SELECT current_user, current_database()").Scan(&user, &db); err != nil {
		t.Fatal(err)
	}
	if user != s.Role || db != s.Database {
		t.Fatalf("connected as %s to %s, want %s to %s", user, db, s.Role, s.Database)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
		t.Fatalf("role cannot create a table in its database: %v", err)
	}
	conn.Close(ctx)

	cfg, _ := pgx.ParseConfig(s.DSN)
	cfg.Password = "wrong"
	if c, err := pgx.ConnectConfig(ctx, cfg); err == nil {
		c.Close(ctx)
		t.Fatal("a wrong password was accepted")
	}

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Fatalf("data directory still there after Stop: %v", err)
	}
	if c, err := pgx.Connect(ctx, s.DSN); err == nil {
		c.Close(ctx)
		t.Fatal("server still answers after Stop")
	}
}

func TestStartOnAnotherAddress(t *testing.T) {
	s, err := StartProcessWith(Options{Host: "127.0.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if s.Host != "127.0.0.2" {
		t.Fatalf("Host = %s, want 127.0.0.2", s.Host)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(s.DSN)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "127.0.0.2" {
		t.Fatalf("DSN host = %s, want 127.0.0.2", cfg.Host)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect with the DSN: %v", err)
	}
	var addr string
	if err := conn.QueryRow(ctx, "SELECT host(inet_server_addr())").Scan(&addr); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if addr != "127.0.0.2" {
		t.Fatalf("server address %s, want 127.0.0.2", addr)
	}
	cfg.Password = "wrong"
	if c, err := pgx.ConnectConfig(ctx, cfg); err == nil {
		c.Close(ctx)
		t.Fatal("a wrong password was accepted")
	}
}
