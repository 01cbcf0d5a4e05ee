// Package e2e runs the built pxed binary against real clients inside network
// namespaces the tests create (veth pairs, documentation address ranges
// only). Tests need root and the client tools; without them they skip,
// unless PXED_E2E=1 (CI), where they fail.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"pxed/internal/testutil"
)

func e2eRequired() bool { return os.Getenv("PXED_E2E") == "1" }

// need skips (or, under PXED_E2E=1, fails) unless running as root with every
// tool on PATH.
func need(t testing.TB, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if e2eRequired() {
			t.Fatal("PXED_E2E=1 but not running as root: network namespaces need root")
		}
		t.Skip("needs root for network namespaces")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			if e2eRequired() {
				t.Fatalf("%s is not installed, and PXED_E2E=1 requires it", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
}

var (
	buildOnce sync.Once
	pxedBin   string
	buildErr  error
)

// pxed builds cmd/pxed once per test run.
func pxed(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pxed-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		pxedBin = filepath.Join(dir, "pxed")
		out, err := exec.Command("go", "build", "-o", pxedBin, "../../cmd/pxed").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return pxedBin
}

var labSeq atomic.Int32

// lab is two namespaces joined by a veth pair: srv (pxed) and cli (clients).
type lab struct {
	t        testing.TB
	srv, cli string // namespace names
	sif, cif string // interface names inside them
	dir      string
	// dhclientConf is added to the dhclient.conf that dhclient runs with.
	dhclientConf string
	// serveAs, when set, runs pxed serve through this command (setpriv
	// and its options) and this binary.
	serveAs  []string
	serveBin string
}

// newLab creates the namespaces; the server side gets serverAddr (CIDR),
// the client side no address. Everything is deleted in Cleanup.
func newLab(t testing.TB, serverAddr string) *lab {
	t.Helper()
	n := labSeq.Add(1)
	id := fmt.Sprintf("%d-%d", os.Getpid()%100000, n)
	l := &lab{t: t, srv: "pxs-" + id, cli: "pxc-" + id, sif: "vs" + id, cif: "vc" + id, dir: t.TempDir()}
	if len(l.sif) > 15 {
		t.Fatalf("interface name %q too long", l.sif)
	}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", l.srv).Run()
		exec.Command("ip", "netns", "del", l.cli).Run()
	})
	l.ip("netns", "add", l.srv)
	l.ip("netns", "add", l.cli)
	l.ip("link", "add", l.sif, "netns", l.srv, "type", "veth", "peer", "name", l.cif, "netns", l.cli)
	l.in(l.srv, "ip", "link", "set", "lo", "up")
	l.in(l.cli, "ip", "link", "set", "lo", "up")
	l.in(l.srv, "ip", "addr", "add", serverAddr, "dev", l.sif)
	l.in(l.srv, "ip", "link", "set", l.sif, "up")
	l.in(l.cli, "ip", "link", "set", l.cif, "up")
	return l
}

func (l *lab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// in runs a command in namespace ns and fails the test if it fails.
func (l *lab) in(ns string, args ...string) string {
	l.t.Helper()
	out, err := l.try(ns, 60*time.Second, args...)
	if err != nil {
		l.t.Fatalf("in %s: %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
	return out
}

// try runs a command in ns with a deadline and returns its output and error.
func (l *lab) try(ns string, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Dir = l.dir
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("timed out after %s", timeout)
	}
	return string(out), err
}

// setClientMAC gives the client interface a MAC (a host in the config).
func (l *lab) setClientMAC(mac string) {
	l.t.Helper()
	l.in(l.cli, "ip", "link", "set", l.cif, "address", mac)
}

// server is a running `pxed serve`.
type server struct {
	cmd      *exec.Cmd
	log      *testutil.SyncBuffer
	stateDir string
	done     chan struct{}
}

// startPxed runs pxed serve in the server namespace on conf (an ISC
// dhcpd.conf) and waits until DHCP is serving.
func (l *lab) startPxed(conf, stateDir string, extra ...string) *server {
	l.t.Helper()
	confPath := filepath.Join(l.dir, "dhcpd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		l.t.Fatal(err)
	}
	bin := pxed(l.t)
	if l.serveBin != "" {
		bin = l.serveBin
	}
	args := append(append([]string{"netns", "exec", l.srv}, l.serveAs...), bin, "serve", "--dhcpd-conf", confPath, "--interface", l.sif,
		"--state-dir", stateDir, "--tftp-addr", "", "--http-addr", "", "--log-level", "debug")
	args = append(args, extra...)
	s := &server{cmd: exec.Command("ip", args...), log: &testutil.SyncBuffer{}, stateDir: stateDir, done: make(chan struct{})}
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	l.t.Cleanup(func() {
		s.kill(syscall.SIGKILL)
		if l.t.Failed() {
			l.t.Logf("pxed log:\n%s", s.log.String())
		}
	})
	// Ready when the control socket answers: it opens after every DHCP
	// socket is bound and the lease database is loaded.
	deadline := time.After(20 * time.Second)
	sock := filepath.Join(stateDir, "control.sock")
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		select {
		case <-s.done:
			l.t.Fatalf("pxed exited early:\n%s", s.log.String())
		case <-deadline:
			l.t.Fatalf("pxed did not start serving DHCP in 20s:\n%s", s.log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return s
}

// kill signals the whole process group (ip netns exec and pxed) and waits.
func (s *server) kill(sig syscall.Signal) {
	select {
	case <-s.done:
		return
	default:
	}
	syscall.Kill(-s.cmd.Process.Pid, sig)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// leaseView mirrors `pxed leases --json`.
type leaseView struct {
	IP       string    `json:"ip"`
	MAC      string    `json:"mac"`
	State    string    `json:"state"`
	Expiry   time.Time `json:"expiry"`
	Hostname string    `json:"hostname"`
}

// leases runs `pxed leases --json` (against the running server's control
// socket, or the database when none runs).
func (l *lab) leases(stateDir string) map[string]leaseView {
	l.t.Helper()
	out, err := exec.Command(pxed(l.t), "leases", "--json", "--state-dir", stateDir).Output()
	if err != nil {
		l.t.Fatalf("pxed leases: %v\n%s", err, out)
	}
	var ls []leaseView
	if err := json.Unmarshal(out, &ls); err != nil {
		l.t.Fatalf("pxed leases output: %v\n%s", err, out)
	}
	m := map[string]leaseView{}
	for _, x := range ls {
		m[x.IP] = x
	}
	return m
}

// envOf parses KEY=VALUE lines (a client script's dump).
func envOf(s string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = strings.Trim(v, "'\"")
		}
	}
	return m
}
