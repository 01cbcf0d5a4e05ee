// Package etcdtest runs a real etcd cluster for tests: each member is a
// separate etcd process, on loopback or inside a network namespace the test
// created.
//
// The etcd server is built from the module (`go.etcd.io/etcd/server/v3`, a
// tool in go.mod) rather than taken from Debian's etcd-server package:
// bookworm ships etcd 3.4, while pxed's client is go.etcd.io/etcd/client/v3
// at the version go.mod pins. Building the server from the same module
// version puts the same etcd release on both sides of every test, and there
// is nothing to install: the Go toolchain and the module cache that build
// pxed build the server too.
package etcdtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"

	"pxed/internal/testutil"
)

const serverModule = "go.etcd.io/etcd/server/v3"

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary returns the path of an etcd server binary built from the version
// of go.etcd.io/etcd/server/v3 that go.mod requires. It is built once per
// machine into the user's cache directory
// (<UserCacheDir>/pxed-test/etcd-<version>/etcd), under an flock on that
// directory so that test binaries running in parallel build it once, and
// reused afterwards. A failed build fails t with the build's output.
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() { binPath, binErr = build() })
	if binErr != nil {
		t.Fatalf("etcd server binary: %v", binErr)
	}
	return binPath
}

// versionRe bounds what the cache directory's name may contain.
var versionRe = regexp.MustCompile(`^v[0-9A-Za-z.+-]{1,100}$`)

func build() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module (go env GOMOD is empty)")
	}
	root := filepath.Dir(gomod)
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", serverModule)
	cmd.Dir = root
	if out, err = cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go list -m %s: %w\n%s", serverModule, err, out)
	}
	version := strings.TrimSpace(string(out))
	if !versionRe.MatchString(version) {
		return "", fmt.Errorf("go list -m %s: unexpected version %q", serverModule, version)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "pxed-test", "etcd-"+version)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close() // closing releases the flock
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", fmt.Errorf("flock %s: %w", lock.Name(), err)
	}
	bin := filepath.Join(dir, "etcd")
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return bin, nil
	}
	// Build beside the final name and rename, so that a build killed
	// half-way never leaves a truncated binary to be reused.
	tmp := bin + ".tmp"
	cmd = exec.Command("nice", "-n", "19", "go", "build", "-o", tmp, serverModule)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build %s (in %s): %w\n%s", serverModule, root, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	return bin, nil
}

// Options describe the cluster Start runs. The zero value is a 3-member
// cluster on loopback.
type Options struct {
	// Members is the number of etcd members (default 3).
	Members int
	// Netns, when set, runs every member inside this existing network
	// namespace (a name under /run/netns) through `ip netns exec`; IPs
	// then gives each member's address, which the caller has configured
	// in that namespace, and the members listen on ports 2379 (clients)
	// and 2380 (peers) of their address. The test process reaches them
	// from inside the namespace too (Client dials there). Needs root.
	Netns string
	IPs   []string
	// MaxTxnOps is etcd's --max-txn-ops; 0 leaves etcd's default (128).
	MaxTxnOps int
	// HeartbeatMs and ElectionMs are etcd's --heartbeat-interval and
	// --election-timeout (defaults 50 and 500). etcd's guidance is a
	// heartbeat near the members' round-trip time and an election timeout
	// about ten heartbeats. Between processes on one machine the round trip
	// is well under a millisecond, so 50 ms heartbeats leave a wide margin
	// on a loaded CI machine, and a 500 ms election timeout makes a killed
	// leader's successor take over in about a second instead of etcd's
	// default 1–2 s, which keeps failover tests short.
	HeartbeatMs, ElectionMs int
	// TLS: clients reach the members over TLS with a client certificate
	// (--client-cert-auth), from a CA made for the cluster (Cluster.TLS).
	// The members speak plain HTTP to each other.
	TLS bool
}

// startTimeout bounds the wait for a started or restarted member to serve.
const startTimeout = 30 * time.Second

// Cluster is a running etcd cluster. Its methods must be called from the
// test's goroutine (they fail the test on error).
type Cluster struct {
	t       testing.TB
	bin     string
	o       Options
	dir     string
	token   string
	initial string // --initial-cluster
	members []*member
	tls     TLSFiles // with Options.TLS
}

type member struct {
	name      string
	dataDir   string
	logPath   string
	clientURL string // http://host:port
	peerURL   string
	cmd       *exec.Cmd
	done      chan struct{} // closed when cmd has exited
}

var clusterSeq atomic.Int32

// Start runs a cluster as o describes and returns when every member serves
// linearizable reads (the cluster has a leader and a quorum), or fails t
// with the members' logs. Data directories and logs live in t.TempDir().
// Cleanup kills every member and, if t failed, logs the tail of each
// member's log.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.Members == 0 {
		o.Members = 3
	}
	if o.HeartbeatMs == 0 {
		o.HeartbeatMs = 50
	}
	if o.ElectionMs == 0 {
		o.ElectionMs = 500
	}
	if o.Members < 1 {
		t.Fatalf("etcdtest: %d members", o.Members)
	}
	if o.Netns != "" && len(o.IPs) != o.Members {
		t.Fatalf("etcdtest: netns %s needs %d IPs, got %v", o.Netns, o.Members, o.IPs)
	}
	if o.Netns == "" && len(o.IPs) != 0 {
		t.Fatal("etcdtest: IPs without Netns")
	}
	c := &Cluster{
		t:     t,
		bin:   Binary(t),
		o:     o,
		dir:   t.TempDir(),
		token: fmt.Sprintf("pxed-test-%d-%d", os.Getpid(), clusterSeq.Add(1)),
	}
	// Registered after TempDir, so it runs before the directory is removed.
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			c.dumpLogs()
		}
	})
	// On loopback the ports are found free and then handed to etcd, so
	// another process may take one in between: then start again on new
	// ports, a bounded number of times.
	for attempt := 1; ; attempt++ {
		err := c.start(attempt)
		if err == nil {
			return c
		}
		c.Stop()
		if o.Netns != "" || attempt == 3 || !c.portTaken() {
			t.Fatalf("etcdtest: cluster did not start: %v", err)
		}
	}
}

func (c *Cluster) start(attempt int) error {
	n := c.o.Members
	var hosts []string
	var clientPorts, peerPorts []int
	if c.o.Netns != "" {
		for _, ip := range c.o.IPs {
			if net.ParseIP(ip) == nil {
				return fmt.Errorf("bad member IP %q", ip)
			}
			hosts = append(hosts, ip)
			clientPorts = append(clientPorts, 2379)
			peerPorts = append(peerPorts, 2380)
		}
	} else {
		ports, err := freePorts(2 * n)
		if err != nil {
			return err
		}
		for i := range n {
			hosts = append(hosts, "127.0.0.1")
			clientPorts = append(clientPorts, ports[2*i])
			peerPorts = append(peerPorts, ports[2*i+1])
		}
	}
	c.members = nil
	scheme := "http://"
	if c.o.TLS {
		var err error
		if c.tls, err = makeTLS(c.dir, hosts); err != nil {
			return err
		}
		scheme = "https://"
	}
	var initial []string
	for i := range n {
		m := &member{
			name:      fmt.Sprintf("m%d", i),
			clientURL: scheme + net.JoinHostPort(hosts[i], strconv.Itoa(clientPorts[i])),
			peerURL:   "http://" + net.JoinHostPort(hosts[i], strconv.Itoa(peerPorts[i])),
		}
		m.dataDir = filepath.Join(c.dir, fmt.Sprintf("%s.try%d.etcd", m.name, attempt))
		m.logPath = filepath.Join(c.dir, m.name+".log")
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peerURL)
	}
	c.initial = strings.Join(initial, ",")
	for _, m := range c.members {
		if err := c.run(m); err != nil {
			return err
		}
	}
	return c.waitServing(c.indexes())
}

func (c *Cluster) indexes() []int {
	var is []int
	for i := range c.members {
		is = append(is, i)
	}
	return is
}

// freePorts returns n distinct TCP ports that were free on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// run starts member m's process. The flags naming the initial cluster only
// matter for a new data directory: etcd restarting on an existing one reads
// its membership from the write-ahead log.
func (c *Cluster) run(m *member) error {
	args := []string{
		"--name", m.name,
		"--data-dir", m.dataDir,
		"--listen-client-urls", m.clientURL,
		"--advertise-client-urls", m.clientURL,
		"--listen-peer-urls", m.peerURL,
		"--initial-advertise-peer-urls", m.peerURL,
		"--initial-cluster", c.initial,
		"--initial-cluster-state", "new",
		"--initial-cluster-token", c.token,
		"--heartbeat-interval", strconv.Itoa(c.o.HeartbeatMs),
		"--election-timeout", strconv.Itoa(c.o.ElectionMs),
		"--log-outputs", "stderr",
	}
	if c.o.MaxTxnOps != 0 {
		args = append(args, "--max-txn-ops", strconv.Itoa(c.o.MaxTxnOps))
	}
	if c.o.TLS {
		args = append(args, "--cert-file", c.tls.serverCert, "--key-file", c.tls.serverKey,
			"--client-cert-auth", "--trusted-ca-file", c.tls.CA)
	}
	var cmd *exec.Cmd
	if c.o.Netns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", c.o.Netns, c.bin}, args...)...)
	} else {
		cmd = exec.Command(c.bin, args...)
	}
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	fmt.Fprintf(logf, "=== etcdtest: %s\n", strings.Join(cmd.Args, " "))
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that killing it reaches etcd even through
	// `ip netns exec`; and killed with the test binary if that dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := spawn(cmd); err != nil {
		return fmt.Errorf("start %s: %w", m.name, err)
	}
	m.cmd, m.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(m.done)
	return nil
}

// spawner is a goroutine locked to its OS thread for the life of the test
// binary, which starts every member. A child's Pdeathsig fires when the
// thread that forked it ends, not the process, and Go does end threads: a
// goroutine that exits while locked to its thread (as testutil.InNetns's
// do, which Client's dialer uses) takes the thread with it. Forking from a
// thread that never ends makes Pdeathsig mean "when the test binary dies".
var spawner = sync.OnceValue(func() chan func() {
	c := make(chan func())
	go func() {
		runtime.LockOSThread()
		for f := range c {
			f()
		}
	}()
	return c
})

func spawn(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	spawner() <- func() { errc <- cmd.Start() }
	return <-errc
}

// waitServing waits until each member in is serves a linearizable read
// through its own endpoint, which needs a leader and a quorum.
func (c *Cluster) waitServing(is []int) error {
	deadline := time.Now().Add(startTimeout)
	for _, i := range is {
		m := c.members[i]
		cli, err := c.newClient([]string{c.Endpoints()[i]})
		if err != nil {
			return err
		}
		var last error
		for {
			select {
			case <-m.done:
				cli.Close()
				return fmt.Errorf("%s exited while starting (%v)", m.name, m.cmd.ProcessState)
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, last = cli.Get(ctx, "/etcdtest/health")
			cancel()
			if last == nil {
				break
			}
			if time.Now().After(deadline) {
				cli.Close()
				return fmt.Errorf("%s did not serve a linearizable read within %s: %v", m.name, startTimeout, last)
			}
			time.Sleep(50 * time.Millisecond)
		}
		cli.Close()
	}
	return nil
}

// portTaken reports whether a member's log says a port was already in use.
func (c *Cluster) portTaken() bool {
	for _, m := range c.members {
		if b, err := os.ReadFile(m.logPath); err == nil && strings.Contains(string(b), "address already in use") {
			return true
		}
	}
	return false
}

// newClient dials endpoints, from inside the cluster's namespace if it has
// one: the dialer opens each connection on a thread in that namespace, and
// the socket stays there.
func (c *Cluster) newClient(endpoints []string) (*clientv3.Client, error) {
	cfg := clientv3.Config{Endpoints: endpoints, Logger: zap.NewNop()}
	if c.o.TLS {
		tc, err := c.tls.clientTLS()
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	if ns := c.o.Netns; ns != "" {
		cfg.DialOptions = []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var conn net.Conn
			var derr error
			if err := testutil.InNetns(ns, func() {
				conn, derr = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			}); err != nil {
				return nil, err
			}
			return conn, derr
		})}
	}
	return clientv3.New(cfg)
}

// Endpoints returns each member's client address, host:port, in member
// order.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, strings.TrimPrefix(strings.TrimPrefix(m.clientURL, "http://"), "https://"))
	}
	return eps
}

// ClientURL returns member i's client URL (http://host:port).
func (c *Cluster) ClientURL(i int) string { return c.member(i).clientURL }

// PID returns the pid of member i's process group leader (etcd itself, or
// `ip netns exec` which execs etcd), or 0 if it is not running.
func (c *Cluster) PID(i int) int {
	m := c.member(i)
	if m.cmd == nil {
		return 0
	}
	select {
	case <-m.done:
		return 0
	default:
		return m.cmd.Process.Pid
	}
}

// Client returns a client of every member, closed when the test ends.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := c.newClient(c.Endpoints())
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func (c *Cluster) member(i int) *member {
	c.t.Helper()
	if i < 0 || i >= len(c.members) {
		c.t.Fatalf("etcdtest: no member %d in a cluster of %d", i, len(c.members))
	}
	return c.members[i]
}

// Kill sends SIGKILL to member i's process group and waits for it to exit.
// Killing a member that is not running does nothing.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	if err := c.kill(c.member(i)); err != nil {
		c.t.Fatalf("etcdtest: %v", err)
	}
}

func (c *Cluster) kill(m *member) error {
	if m.cmd == nil {
		return nil
	}
	select {
	case <-m.done:
		return nil
	default:
	}
	syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-m.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit 10s after SIGKILL", m.name, m.cmd.Process.Pid)
	}
}

// Restart starts the given stopped members again on their data directories
// and addresses, then waits until each serves a linearizable read (so
// together with the running members they must make a quorum: restart every
// member of a dead cluster in one call).
func (c *Cluster) Restart(is ...int) {
	c.t.Helper()
	for _, i := range is {
		m := c.member(i)
		if c.PID(i) != 0 {
			c.t.Fatalf("etcdtest: Restart(%d): %s is running", i, m.name)
		}
		if err := c.run(m); err != nil {
			c.t.Fatalf("etcdtest: %v", err)
		}
	}
	if err := c.waitServing(is); err != nil {
		c.t.Fatalf("etcdtest: restart: %v", err)
	}
}

// Stop kills every member and waits for them; the cluster can be started
// again with Restart of every member.
func (c *Cluster) Stop() {
	c.t.Helper()
	var errs []error
	for _, m := range c.members {
		errs = append(errs, c.kill(m))
	}
	if err := errors.Join(errs...); err != nil {
		c.t.Errorf("etcdtest: %v", err)
	}
}

// logTail is how many lines of each member's log a failed test shows.
const logTail = 40

func (c *Cluster) dumpLogs() {
	for _, m := range c.members {
		f, err := os.Open(m.logPath)
		if err != nil {
			c.t.Logf("etcdtest: %s log: %v", m.name, err)
			continue
		}
		var lines []string
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if len(lines) > logTail {
				lines = lines[1:]
			}
		}
		f.Close()
		c.t.Logf("etcdtest: last %d lines of %s (%s):\n%s", len(lines), m.name, m.logPath, strings.Join(lines, "\n"))
	}
}
