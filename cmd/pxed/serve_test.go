package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pxed/internal/config"
)

// syncBuffer is a bytes.Buffer safe for concurrent writers (log handlers,
// exec's stderr copier).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

func loadArgs(t *testing.T, args ...string) (*config.Config, error) {
	t.Helper()
	return newServeFlags(io.Discard).load(args)
}

func TestFlagsOverrideConfigFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pxed.yaml")
	writeFile(t, file, []byte(`state-dir: /var/lib/pxed-file
log:
  level: warn
  format: json
tftp:
  root: /srv/tftp-file
  addr: 127.0.0.1:6969
  max-blksize: 1468
  retries: 7
  timeout: 3s
  mtu-clamp: false
http:
  addr: 127.0.0.1:8081
dhcp:
  interfaces: [eth9]
`))

	// No flags but --config: the file's values.
	c, err := loadArgs(t, "--config", file)
	if err != nil {
		t.Fatal(err)
	}
	if c.TFTP.Addr != "127.0.0.1:6969" || c.HTTP.Addr != "127.0.0.1:8081" || c.TFTP.MaxBlksize != 1468 ||
		c.Log.Level != "warn" || c.TFTP.MTUClamp || c.TFTP.Timeout != 3*time.Second {
		t.Errorf("--config alone: %+v", c)
	}

	c, err = loadArgs(t, "--config", file,
		"--tftp-addr", "127.0.0.1:1069",
		"--log-level", "debug",
		"--tftp-retries", "5", // the default value, set explicitly: it still overrides
		"--tftp-mtu-clamp",
		"--shutdown-grace", "9s",
		"--interface", "eth0", "--interface", "eth1",
	)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		// Set by flags.
		{"tftp.addr", c.TFTP.Addr, "127.0.0.1:1069"},
		{"log.level", c.Log.Level, "debug"},
		{"tftp.retries", c.TFTP.Retries, 5},
		{"tftp.mtu-clamp", c.TFTP.MTUClamp, true},
		{"shutdown-grace", c.ShutdownGrace, 9 * time.Second},
		{"dhcp.interfaces", strings.Join(c.DHCP.Interfaces, ","), "eth0,eth1"},
		// Left alone: the file's values, not the flags' defaults.
		{"state-dir", c.StateDir, "/var/lib/pxed-file"},
		{"log.format", c.Log.Format, "json"},
		{"tftp.root", c.TFTP.Root, "/srv/tftp-file"},
		{"tftp.max-blksize", c.TFTP.MaxBlksize, 1468},
		{"tftp.timeout", c.TFTP.Timeout, 3 * time.Second},
		{"http.addr", c.HTTP.Addr, "127.0.0.1:8081"},
		// In neither: the defaults.
		{"tftp.max-windowsize", c.TFTP.MaxWindowsize, config.Default().TFTP.MaxWindowsize},
		{"tftp.single-port", c.TFTP.SinglePort, false},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}

	// An empty string flag overrides too: it turns the server off.
	c, err = loadArgs(t, "--config", file, "--http-addr", "")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != "" || c.TFTP.Addr != "127.0.0.1:6969" {
		t.Errorf("--http-addr \"\": http %q tftp %q", c.HTTP.Addr, c.TFTP.Addr)
	}
}

func TestFlagsWithoutConfigFile(t *testing.T) {
	c, err := loadArgs(t, "--tftp-root", "/boot-tree", "--tftp-single-port", "--tftp-max-blksize=512")
	if err != nil {
		t.Fatal(err)
	}
	d := config.Default()
	if c.TFTP.Root != "/boot-tree" || !c.TFTP.SinglePort || c.TFTP.MaxBlksize != 512 {
		t.Errorf("flags not applied: %+v", c.TFTP)
	}
	if c.TFTP.Addr != d.TFTP.Addr || c.HTTP.Addr != d.HTTP.Addr || c.StateDir != d.StateDir {
		t.Errorf("defaults not kept: %+v", c)
	}
}

func TestBadFlagValueNamesKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pxed.yaml")
	writeFile(t, file, []byte("tftp:\n  max-blksize: 1468\n"))
	for _, args := range [][]string{
		{"--tftp-max-blksize", "5"},
		{"--config", file, "--tftp-max-blksize", "5"},
	} {
		_, err := loadArgs(t, args...)
		if err == nil {
			t.Errorf("%q accepted", args)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "tftp.max-blksize") {
			t.Errorf("%q: error %q does not name tftp.max-blksize", args, msg)
		}
		// The flag, not the file, is to blame.
		if strings.Contains(msg, file) {
			t.Errorf("%q: error %q points into the config file", args, msg)
		}
	}
}

func TestBadArgs(t *testing.T) {
	for _, args := range [][]string{
		{"--no-such-flag"},
		{"--tftp-max-blksize", "big"},
		{"--tftp-timeout", "5"}, // a duration needs a unit
		{"extra"},
		{"--config", filepath.Join(t.TempDir(), "missing.yaml")},
	} {
		if _, err := loadArgs(t, args...); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

// holdTCP binds a TCP port on 127.0.0.1 and keeps it until the test ends.
func holdTCP(t *testing.T) (addr string) {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// holdUDP binds a UDP port on 127.0.0.1 and keeps it until the test ends.
func holdUDP(t *testing.T) (addr string) {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().String()
}

// freeUDP finds a UDP port on 127.0.0.1 that was free a moment ago.
func freeUDP(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// freeTCP finds a TCP port on 127.0.0.1 that was free a moment ago.
func freeTCP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

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
		var stderr syncBuffer
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

func testConfig(t *testing.T, root string) *config.Config {
	t.Helper()
	c := config.Default()
	c.TFTP.Root = root
	c.StateDir = filepath.Join(t.TempDir(), "state")
	c.TFTP.Addr = "127.0.0.1:0"
	c.HTTP.Addr = "127.0.0.1:0"
	c.ShutdownGrace = 2 * time.Second
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
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

// TFTP opcodes (RFC 1350, 2347).
const (
	opRRQ   = 1
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// tftpGet fetches name from server with a plain RFC 1350 octet read (512-byte
// blocks, no options), following the server to its transfer port. It returns
// the data, or the server's ERROR packet as an error.
func tftpGet(t *testing.T, server net.Addr, name string) ([]byte, error) {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	srv := server.(*net.UDPAddr)
	rrq := binary.BigEndian.AppendUint16(nil, opRRQ)
	rrq = append(rrq, name...)
	rrq = append(rrq, 0)
	rrq = append(rrq, "octet"...)
	rrq = append(rrq, 0)
	if _, err := conn.WriteToUDP(rrq, srv); err != nil {
		t.Fatal(err)
	}

	var data []byte
	var peer *net.UDPAddr // the transfer's address, learned from block 1
	buf := make([]byte, 1500)
	for block := uint16(1); ; block++ {
		var n int
		var from *net.UDPAddr
		for {
			// A hang guard, not a timing assertion: on loopback nothing
			// is lost, so the server answers at once.
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			n, from, err = conn.ReadFromUDP(buf)
			if err != nil {
				t.Fatalf("TFTP %s: waiting for block %d: %v", name, block, err)
			}
			if peer == nil || (from.IP.Equal(peer.IP) && from.Port == peer.Port) {
				break
			}
			// A packet from another port: RFC 1350 says answer with an
			// ERROR and carry on; the test just ignores it.
		}
		if !from.IP.Equal(srv.IP) {
			t.Fatalf("TFTP %s: packet from %v, want the server's address %v", name, from, srv)
		}
		pkt := buf[:n]
		if len(pkt) < 4 {
			t.Fatalf("TFTP %s: short packet %x", name, pkt)
		}
		switch op := binary.BigEndian.Uint16(pkt); op {
		case opERROR:
			return nil, fmt.Errorf("tftp error %d: %s", binary.BigEndian.Uint16(pkt[2:]), bytes.TrimRight(pkt[4:], "\x00"))
		case opDATA:
		default:
			t.Fatalf("TFTP %s: opcode %d, want DATA", name, op)
		}
		if got := binary.BigEndian.Uint16(pkt[2:]); got != block {
			t.Fatalf("TFTP %s: block %d, want %d", name, got, block)
		}
		if peer == nil {
			peer = from
		}
		payload := pkt[4:]
		if len(payload) > 512 {
			t.Fatalf("TFTP %s: block %d has %d bytes, more than the default 512", name, block, len(payload))
		}
		data = append(data, payload...)
		ack := binary.BigEndian.AppendUint16(nil, opACK)
		ack = binary.BigEndian.AppendUint16(ack, block)
		if _, err := conn.WriteToUDP(ack, peer); err != nil {
			t.Fatal(err)
		}
		if len(payload) < 512 {
			return data, nil
		}
	}
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
	var logBuf syncBuffer
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

func TestRunCommands(t *testing.T) {
	tests := []struct {
		args         []string
		code         int
		stdout       string // substring
		stderr       string // substring
		stdoutIsNone bool
	}{
		{args: []string{"version"}, code: 0, stdout: "pxed " + version},
		{args: []string{"--version"}, code: 0, stdout: "pxed"},
		{args: []string{"help"}, code: 0, stdout: "Usage:"},
		{args: nil, code: 2, stderr: "Usage:", stdoutIsNone: true},
		{args: []string{"nonsense"}, code: 2, stderr: `unknown command "nonsense"`, stdoutIsNone: true},
		{args: []string{"serve", "--tftp-max-blksize", "5"}, code: 2, stderr: "tftp.max-blksize", stdoutIsNone: true},
		{args: []string{"serve", "--bogus"}, code: 2, stderr: "bogus", stdoutIsNone: true},
		{args: []string{"serve", "stray"}, code: 2, stderr: `unexpected argument "stray"`, stdoutIsNone: true},
		{args: []string{"serve", "-h"}, code: 0, stderr: "-tftp-root"},
		{args: []string{"hexip", "192.168.200.177"}, code: 0, stdout: "C0A8C8B1\n"},
		{args: []string{"hexip", "192.0.2.177", "nonsense"}, code: 1, stdout: "C00002B1\n", stderr: `"nonsense" is not an IPv4 address`},
		{args: []string{"hexip"}, code: 2, stderr: "usage: pxed hexip", stdoutIsNone: true},
	}
	for _, tt := range tests {
		var stdout, stderr syncBuffer
		code := run(tt.args, &stdout, &stderr)
		if code != tt.code {
			t.Errorf("pxed %q: exit %d, want %d; stderr:\n%s", tt.args, code, tt.code, stderr.String())
		}
		if !strings.Contains(stdout.String(), tt.stdout) {
			t.Errorf("pxed %q: stdout %q does not contain %q", tt.args, stdout.String(), tt.stdout)
		}
		if !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("pxed %q: stderr %q does not contain %q", tt.args, stderr.String(), tt.stderr)
		}
		if tt.stdoutIsNone && stdout.String() != "" {
			t.Errorf("pxed %q: wrote %q to stdout, want nothing", tt.args, stdout.String())
		}
	}
}

// buildPxed builds the pxed binary into a temporary directory.
func buildPxed(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	bin := filepath.Join(t.TempDir(), "pxed")
	cmd := exec.Command(gobin, "build", "-o", bin, "-ldflags", "-X main.version=test-1.2.3", ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("running pxed: %v", err)
	}
	return ee.ExitCode()
}

func TestBinary(t *testing.T) {
	bin := buildPxed(t)

	t.Run("version", func(t *testing.T) {
		out, err := exec.Command(bin, "version").Output()
		if code := exitCode(t, err); code != 0 {
			t.Fatalf("exit %d", code)
		}
		if got := strings.TrimSpace(string(out)); got != "pxed test-1.2.3" {
			t.Errorf("pxed version printed %q, want %q", got, "pxed test-1.2.3")
		}
	})

	t.Run("nonsense", func(t *testing.T) {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "nonsense")
		cmd.Stderr = &stderr
		err := cmd.Run()
		if code := exitCode(t, err); code != 2 {
			t.Errorf("exit %d, want 2", code)
		}
		if !strings.Contains(stderr.String(), "nonsense") {
			t.Errorf("stderr %q does not name the command", stderr.String())
		}
	})

	t.Run("bad-blksize", func(t *testing.T) {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "serve", "--tftp-max-blksize", "5")
		cmd.Stderr = &stderr
		err := cmd.Run()
		if code := exitCode(t, err); code != 2 {
			t.Errorf("exit %d, want 2", code)
		}
		if !strings.Contains(stderr.String(), "tftp.max-blksize") {
			t.Errorf("stderr %q does not name tftp.max-blksize", stderr.String())
		}
	})

	t.Run("serve-sigterm", func(t *testing.T) {
		root := t.TempDir()
		writeFile(t, filepath.Join(root, "pxelinux.0"), []byte("pxelinux binary"))
		httpAddr, tftpAddr := freeTCP(t), freeUDP(t)
		var stderr syncBuffer
		cmd := exec.Command(bin, "serve",
			"--tftp-root", root,
			"--state-dir", filepath.Join(t.TempDir(), "state"),
			"--tftp-addr", tftpAddr,
			"--http-addr", httpAddr,
			"--shutdown-grace", "2s",
		)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// exited is closed when the process has been waited for; waitErr is
		// valid after that.
		exited := make(chan struct{})
		var waitErr error
		go func() { waitErr = cmd.Wait(); close(exited) }()
		defer func() {
			select {
			case <-exited:
			default:
				cmd.Process.Kill()
				<-exited
			}
		}()

		// Wait until HTTP answers (or the process dies). The bound is a
		// hang guard for a broken build, not a timing assertion.
		url := "http://" + httpAddr + "/pxelinux.0"
		var body []byte
		for i := 0; ; i++ {
			select {
			case <-exited:
				t.Fatalf("pxed exited early (%v); stderr:\n%s", waitErr, stderr.String())
			default:
			}
			resp, err := http.Get(url)
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("GET %s: status %d, err %v", url, resp.StatusCode, err)
				}
				break
			}
			if i == 600 {
				t.Fatalf("HTTP never answered: %v; stderr:\n%s", err, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		if string(body) != "pxelinux binary" {
			t.Errorf("GET: body %q", body)
		}
		// TFTP works in the real binary too.
		ua, _ := net.ResolveUDPAddr("udp4", tftpAddr)
		if got, err := tftpGet(t, ua, "pxelinux.0"); err != nil || string(got) != "pxelinux binary" {
			t.Errorf("TFTP: %q, %v", got, err)
		}

		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-exited:
			if code := exitCode(t, waitErr); code != 0 {
				t.Errorf("exit %d after SIGTERM, want 0; stderr:\n%s", code, stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("pxed did not exit after SIGTERM; stderr:\n%s", stderr.String())
		}
		if !strings.Contains(stderr.String(), "shutting down") {
			t.Errorf("stderr does not say it is shutting down:\n%s", stderr.String())
		}
	})
}

// The inventory over loopback, without root: generated configs over TFTP
// and HTTP name the HTTP server the client reached; the install callback
// from the kickstart switches the host to local boot; the API needs its
// token.
func TestServeInventory(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "pxelinux.0"), []byte("x"))
	c := testConfig(t, root)
	c.Inventory = "../../examples/inventory.yaml"
	ln, stop := startServe(t, c)
	base := "http://" + ln.HTTP.String()
	cfg, err := tftpGet(t, ln.TFTP, "pxelinux.cfg/01-00-16-3e-72-79-e4")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "ks="+base+"/ks/test_hvm") {
		t.Fatalf("config over TFTP:\n%s\nwant ks=%s/ks/test_hvm", cfg, base)
	}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	post := func(url, token string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code, body := get("/pxelinux.cfg/01-00-16-3e-72-79-e4"); code != 200 || body != string(cfg) {
		t.Fatalf("same config over HTTP: %d\n%s", code, body)
	}
	_, ks := get("/ks/test_hvm")
	m := regexp.MustCompile(`curl -fsS -X POST '([^']+)'`).FindStringSubmatch(ks)
	if m == nil {
		t.Fatalf("kickstart has no callback:\n%s", ks)
	}
	if code := post(base+"/api/v1/hosts/test_hvm/installed", ""); code != 401 {
		t.Fatalf("callback without token: %d", code)
	}
	if code := post(m[1], ""); code != 200 {
		t.Fatalf("callback %s: %d", m[1], code)
	}
	if _, s := get("/ipxe/00-16-3e-72-79-e4"); !strings.Contains(s, "\nexit\n") {
		t.Fatalf("iPXE script after install:\n%s", s)
	}
	tok, err := os.ReadFile(filepath.Join(c.StateDir, "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(c.StateDir, "api-token")); fi.Mode().Perm() != 0o600 {
		t.Errorf("api-token mode %v, want 0600", fi.Mode().Perm())
	}
	if code := post(base+"/api/v1/hosts/test_hvm/install", strings.TrimSpace(string(tok))); code != 200 {
		t.Fatalf("install with the API token: %d", code)
	}
	if cfg, _ := tftpGet(t, ln.TFTP, "pxelinux.cfg/01-00-16-3e-72-79-e4"); !strings.Contains(string(cfg), "KERNEL el5u4_x86_pxeboot_install/vmlinuz") {
		t.Fatalf("after install again:\n%s", cfg)
	}
	if err := stop(); err != nil {
		t.Errorf("serve = %v", err)
	}
}

// startServe runs serve on c until stop is called (or the test ends) and
// returns the addresses it bound; stop returns serve's error.
func startServe(t *testing.T, c *config.Config) (listening, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	readyc := make(chan listening, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, c, slog.New(slog.DiscardHandler), func(l listening) { readyc <- l }) }()
	select {
	case ln := <-readyc:
		return ln, func() error { cancel(); return <-done }
	case err := <-done:
		t.Fatalf("serve: %v", err)
		return listening{}, nil
	}
}
