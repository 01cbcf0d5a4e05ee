package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"pxed/internal/testutil"
)

func TestBadConfigFailsBeforeBinding(t *testing.T) {
	root := t.TempDir()
	state := filepath.Join(t.TempDir(), "state")
	// Both ports are taken: had pxed tried to bind them, it would report
	// "address already in use" instead of the configuration problem.
	httpAddr, tftpAddr := holdTCP(t), holdUDP(t)
	base := []string{"serve", "--tftp-root", root, "--state-dir", state, "--http-addr", httpAddr, "--tftp-addr", tftpAddr}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	writeFile(t, bad, []byte("log:\n  level: loud\n"))
	unknown := filepath.Join(t.TempDir(), "unknown.yaml")
	writeFile(t, unknown, []byte("tftp:\n  blocksize: 1468\n"))

	tests := []struct {
		args []string
		want []string // in stderr
	}{
		{append(base, "--config", bad), []string{bad + ":2:10:", "log.level", "loud"}},
		{append(base, "--config", unknown), []string{unknown + ":2:", "blocksize"}},
		{append(base, "--tftp-max-blksize", "5"), []string{"tftp.max-blksize"}},
		{append(base, "--log-format", "xml"), []string{"log.format"}},
	}
	for _, tt := range tests {
		var stderr testutil.SyncBuffer
		code := run(tt.args, io.Discard, &stderr)
		if code != 2 {
			t.Errorf("%q: exit code %d, want 2; stderr:\n%s", tt.args[len(base):], code, stderr.String())
		}
		out := stderr.String()
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q: stderr does not contain %q:\n%s", tt.args[len(base):], w, out)
			}
		}
		if strings.Contains(out, "address already in use") || strings.Contains(out, "listening") {
			t.Errorf("%q: pxed got as far as the sockets:\n%s", tt.args[len(base):], out)
		}
		if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%q: state directory created before the config was checked (%v)", tt.args[len(base):], err)
		}
	}
}

func TestServeFailsBeforeBinding(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	readyCalled := func(listening) { t.Error("ready called although serve failed") }

	// A missing boot tree is reported, not a busy port: the tree is
	// opened before any socket is bound.
	c := testConfig(t, filepath.Join(t.TempDir(), "no-such-tree"))
	c.HTTP.Addr, c.TFTP.Addr = holdTCP(t), holdUDP(t)
	err := serve(context.Background(), c, log, readyCalled)
	if err == nil || !strings.Contains(err.Error(), "--tftp-root") {
		t.Errorf("missing tree: err = %v, want it to mention --tftp-root", err)
	}

	// Nothing to serve.
	c = testConfig(t, t.TempDir())
	c.HTTP.Addr, c.TFTP.Addr = "", ""
	if err := serve(context.Background(), c, log, readyCalled); err == nil || !strings.Contains(err.Error(), "nothing to serve") {
		t.Errorf("both off: err = %v", err)
	}

	// A state directory that cannot be created.
	c = testConfig(t, t.TempDir())
	blocker := filepath.Join(t.TempDir(), "file")
	writeFile(t, blocker, nil)
	c.StateDir = filepath.Join(blocker, "state")
	if err := serve(context.Background(), c, log, readyCalled); err == nil || !strings.Contains(err.Error(), "state") {
		t.Errorf("bad state dir: err = %v", err)
	}
}

func TestServeReleasesTFTPWhenHTTPBindFails(t *testing.T) {
	c := testConfig(t, t.TempDir())
	c.TFTP.Addr = freeUDP(t)
	c.HTTP.Addr = holdTCP(t)
	err := serve(context.Background(), c, slog.New(slog.DiscardHandler), func(listening) {
		t.Error("ready called although HTTP could not bind")
	})
	if err == nil || !strings.Contains(err.Error(), "http") {
		t.Fatalf("err = %v, want an http bind error", err)
	}
	// The TFTP socket bound first must have been closed.
	pc, err := net.ListenPacket("udp4", c.TFTP.Addr)
	if err != nil {
		t.Fatalf("TFTP port %s still bound after serve failed: %v", c.TFTP.Addr, err)
	}
	pc.Close()
}

func TestServe(t *testing.T) {
	for _, singlePort := range []bool{false, true} {
		t.Run(fmt.Sprintf("single-port=%v", singlePort), func(t *testing.T) {
			testServe(t, singlePort)
		})
	}
}

func testServe(t *testing.T, singlePort bool) {
	root := t.TempDir()
	small := []byte("DEFAULT linux\nLABEL linux\n  KERNEL vmlinuz\n")
	big := make([]byte, 512*5+123) // several blocks, last one short
	for i := range big {
		big[i] = byte(i * 7)
	}
	exact := bytes.Repeat([]byte("x"), 1024) // a multiple of 512: ends with an empty block
	writeFile(t, filepath.Join(root, "pxelinux.cfg", "default"), small)
	writeFile(t, filepath.Join(root, "vmlinuz"), big)
	writeFile(t, filepath.Join(root, "exact"), exact)
	if err := os.WriteFile(filepath.Join(root, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(root, "secret"), 0o600)

	c := testConfig(t, root)
	c.TFTP.SinglePort = singlePort
	var logBuf testutil.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	readyc := make(chan listening, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, c, log, func(l listening) { readyc <- l }) }()
	var ln listening
	select {
	case ln = <-readyc:
	case err := <-done:
		t.Fatalf("serve returned before it was ready: %v\n%s", err, logBuf.String())
	}
	if ln.TFTP == nil || ln.HTTP == nil {
		t.Fatalf("ready reported %+v, want both addresses", ln)
	}
	for _, a := range []net.Addr{ln.TFTP, ln.HTTP} {
		host, port, _ := net.SplitHostPort(a.String())
		if host != "127.0.0.1" || port == "0" {
			t.Errorf("listening on %s, want 127.0.0.1 and a real port", a)
		}
	}
	if _, err := os.Stat(c.StateDir); err != nil {
		t.Errorf("state directory: %v", err)
	}

	// HTTP.
	base := "http://" + ln.HTTP.String()
	for path, want := range map[string][]byte{"/pxelinux.cfg/default": small, "/vmlinuz": big, "/exact": exact} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
			t.Errorf("GET %s: status %d, %d bytes, err %v; want 200 and %d bytes", path, resp.StatusCode, len(body), err, len(want))
		}
	}
	for path, status := range map[string]int{"/missing": 404, "/secret": 403, "/../etc/passwd": 403} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != status {
			t.Errorf("GET %s: status %d, want %d", path, resp.StatusCode, status)
		}
	}

	// TFTP, the way PXE ROMs ask: with and without a leading slash, and
	// with the tree's own absolute path.
	for name, want := range map[string][]byte{
		"pxelinux.cfg/default":  small,
		"/vmlinuz":              big,
		"exact":                 exact,
		root + "/vmlinuz":       big,
		`\pxelinux.cfg\default`: small,
	} {
		got, err := tftpGet(t, ln.TFTP, name)
		if err != nil {
			t.Errorf("TFTP %s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("TFTP %s: got %d bytes, want %d (equal: false)", name, len(got), len(want))
		}
	}
	for name, code := range map[string]uint16{"missing": 1, "secret": 2, "../etc/passwd": 2} {
		_, err := tftpGet(t, ln.TFTP, name)
		if err == nil || !strings.HasPrefix(err.Error(), "tftp error "+strconv.Itoa(int(code))+":") {
			t.Errorf("TFTP %s: err = %v, want tftp error %d", name, err, code)
		}
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve returned %v after the context ended, want nil", err)
	}
	out := logBuf.String()
	for _, want := range []string{"tftp listening", "http listening", "http request", "shutting down"} {
		if !strings.Contains(out, want) {
			t.Errorf("log does not contain %q:\n%s", want, out)
		}
	}
	// The sockets are released.
	if l, err := net.Listen("tcp4", ln.HTTP.String()); err != nil {
		t.Errorf("HTTP port still bound after serve returned: %v", err)
	} else {
		l.Close()
	}
	if pc, err := net.ListenPacket("udp4", ln.TFTP.String()); err != nil {
		t.Errorf("TFTP port still bound after serve returned: %v", err)
	} else {
		pc.Close()
	}
}

func TestServeHTTPOnly(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "boot.ipxe"), []byte("#!ipxe\n"))
	c := testConfig(t, root)
	c.TFTP.Addr = ""
	ln, stop := startServe(t, c)
	if ln.TFTP != nil {
		t.Errorf("TFTP is off but ready reported %v", ln.TFTP)
	}
	resp, err := http.Get("http://" + ln.HTTP.String() + "/boot.ipxe")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "#!ipxe\n" {
		t.Errorf("body %q", body)
	}
	if err := stop(); err != nil {
		t.Errorf("serve = %v, want nil", err)
	}
}
