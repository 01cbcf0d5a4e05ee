package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveSocket serves the trusted API on a Unix socket in a temporary
// directory, as pxed serve does in its state directory.
func serveSocket(t *testing.T, svc Service) (path string, stop func()) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: Handler(svc, Options{Trusted: true}), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	stop = func() { srv.Close(); <-done }
	t.Cleanup(stop)
	return path, stop
}

func TestSocketRoundTrip(t *testing.T) {
	ctx := context.Background()
	svc := newFake()
	path, stop := serveSocket(t, svc)
	c := NewSocketClient(path)

	hosts, err := c.Hosts(ctx)
	if err != nil || len(hosts) != 2 || hosts[0].Name != "test_hvm" || hosts[0].MACs[0] != "00:16:3e:72:79:e4" {
		t.Fatalf("Hosts: %v %+v", err, hosts)
	}
	h, err := c.Host(ctx, "00:16:3e:72:79:e4")
	if err != nil || h.Name != "test_hvm" || h.Profile != "alma9" {
		t.Errorf("Host by MAC: %v %+v", err, h)
	}
	h, err = c.SetHostState(ctx, "test_hvm", "local")
	if err != nil || h.State != "local" || h.By != "pxed host" || h.Changed == nil {
		t.Errorf("SetHostState local: %v %+v", err, h)
	}
	c.By = ""
	if h, err = c.SetHostState(ctx, "test_hvm", "install"); err != nil || h.State != "install" || h.By != "control socket" {
		t.Errorf("SetHostState install: %v %+v", err, h)
	}
	leases, err := c.Leases(ctx)
	if err != nil || len(leases) != 1 || leases[0].IP != "192.0.2.10" || !leases[0].Expiry.Equal(svc.leases[0].Expiry) {
		t.Errorf("Leases: %v %+v", err, leases)
	}

	// Server errors: *Error with status, code and sentence, matching the sentinels.
	for _, tc := range []struct {
		name   string
		call   func() error
		status int
		is     error
	}{
		{"unknown host", func() error { _, err := c.Host(ctx, "nobody"); return err }, 404, ErrNotFound},
		{"unknown host set", func() error { _, err := c.SetHostState(ctx, "nobody", "install"); return err }, 404, ErrNotFound},
		{"slash in name", func() error { _, err := c.Host(ctx, "a/b"); return err }, 404, ErrNotFound},
		{"unicode name", func() error { _, err := c.Host(ctx, "hôte ホスト"); return err }, 404, ErrNotFound},
		{"dots", func() error { _, err := c.Host(ctx, ".."); return err }, 404, ErrNotFound},
		{"cannot install", func() error { _, err := c.SetHostState(ctx, "test_pvm", "install"); return err }, 400, ErrBadRequest},
		{"long name", func() error { _, err := c.Host(ctx, strings.Repeat("a", 300)); return err }, 400, ErrBadRequest},
	} {
		err := tc.call()
		var e *Error
		if !errors.As(err, &e) || e.Status != tc.status || !errors.Is(err, tc.is) || e.Message == "" {
			t.Errorf("%s: %v (%#v), want status %d and %v", tc.name, err, e, tc.status, tc.is)
		}
		if errors.Is(err, ErrNoServer) {
			t.Errorf("%s: a server error is ErrNoServer", tc.name)
		}
	}
	if _, err := c.Host(ctx, "a/b"); err == nil || !strings.Contains(err.Error(), `"a/b"`) {
		t.Errorf("the escaped name did not arrive whole: %v", err)
	}
	// Refused by the client, never sent.
	n := svc.calls()
	if _, err := c.SetHostState(ctx, "test_hvm", "reboot"); !errors.Is(err, ErrBadRequest) {
		t.Errorf("bad state: %v", err)
	}
	if _, err := c.Host(ctx, ""); !errors.Is(err, ErrBadRequest) {
		t.Errorf("empty name: %v", err)
	}
	if svc.calls() != n {
		t.Errorf("the client sent a request it should have refused")
	}

	// DHCP off, no inventory.
	svc.mu.Lock()
	svc.dhcp, svc.hosts = false, nil
	svc.mu.Unlock()
	if _, err := c.Leases(ctx); !errors.Is(err, ErrNoDHCP) || errors.Is(err, ErrNotFound) {
		t.Errorf("Leases with DHCP off: %v", err)
	}
	if _, err := c.Hosts(ctx); !errors.Is(err, ErrNoInventory) {
		t.Errorf("Hosts without inventory: %v", err)
	}

	// The server goes away: the socket file goes with it.
	stop()
	if _, err := c.Hosts(ctx); !errors.Is(err, ErrNoServer) {
		t.Errorf("after the server stopped: %v, want ErrNoServer", err)
	}
}

// TestNoServer: a missing or stale socket is ErrNoServer (fall back to the
// state files); a server that does not answer in time is not.
func TestNoServer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := NewSocketClient(filepath.Join(dir, "none.sock")).Leases(ctx); !errors.Is(err, ErrNoServer) {
		t.Errorf("missing socket: %v", err)
	}

	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := NewSocketClient(stale).Hosts(ctx); !errors.Is(err, ErrNoServer) {
		t.Errorf("stale socket: %v", err)
	}

	// Listening but hung.
	hung := filepath.Join(dir, "hung.sock")
	ln, err = net.Listen("unix", hung)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := NewSocketClient(hung).Hosts(tctx); err == nil || errors.Is(err, ErrNoServer) {
		t.Errorf("hung server: %v, want a timeout that is not ErrNoServer", err)
	}
}

func TestTCPClient(t *testing.T) {
	ctx := context.Background()
	svc := newFake()
	srv := httptest.NewServer(Handler(svc, Options{Token: "api-secret"}))
	c := NewClient(srv.URL+"/", "api-secret")
	c.By = "pxed host" // ignored on TCP
	if h, err := c.SetHostState(ctx, "00:16:3e:72:79:e4", "local"); err != nil || h.State != "local" || !strings.HasPrefix(h.By, "api 127.0.0.1:") {
		t.Errorf("SetHostState: %v %+v", err, h)
	}
	if ls, err := c.Leases(ctx); err != nil || len(ls) != 1 {
		t.Errorf("Leases: %v %v", err, ls)
	}
	_, err := NewClient(srv.URL, "wrong").Hosts(ctx)
	var e *Error
	if !errors.As(err, &e) || e.Status != 401 || e.Code != "unauthorized" || errors.Is(err, ErrNotFound) {
		t.Errorf("wrong token: %v %#v", err, e)
	}
	srv.Close()
	if _, err := c.Hosts(ctx); !errors.Is(err, ErrNoServer) {
		t.Errorf("closed server: %v, want ErrNoServer", err)
	}
}

// TestClientOddAnswers: errors that are not the API's (a proxy's page, a
// redirect) still come back as *Error, and redirects are not followed.
func TestClientOddAnswers(t *testing.T) {
	ctx := context.Background()
	followed := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/hosts":
			http.Error(w, "bad gateway", http.StatusBadGateway)
		case "/api/v1/leases":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "/api/v1/hosts/garbage":
			w.Write([]byte("not json"))
		default:
			followed = true
		}
	}))
	defer srv.Close()
	c := NewClient(srv.URL, "tok")
	var e *Error
	if _, err := c.Hosts(ctx); !errors.As(err, &e) || e.Status != 502 || e.Message != "bad gateway" {
		t.Errorf("502: %v", err)
	}
	if _, err := c.Leases(ctx); !errors.As(err, &e) || e.Status != 302 || followed {
		t.Errorf("redirect: %v (followed %v)", err, followed)
	}
	if _, err := c.Host(ctx, "garbage"); err == nil || errors.As(err, &e) {
		t.Errorf("garbage answer: %v", err)
	}
	if got := (&Error{Status: 503}).Error(); got != "pxed api: 503 Service Unavailable" {
		t.Errorf("Error() without a message: %q", got)
	}
}
