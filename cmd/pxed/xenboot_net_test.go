package main

// The harness of the Xen bootloader's network tests: a network namespace
// the test makes, with a veth pair, xb0 (dom0's bridge, where the
// bootloader does DHCP as the guest) and xs0 (the boot server 192.0.2.1 and
// another host 198.51.100.1), and stand-in servers the test process runs
// inside it: DHCP, TFTP, HTTP and a proxy. The stand-ins record, at each
// request, which processes hold the socket it came from and what /proc
// says of their credentials. The bootloader runs there with
// `ip netns exec`. Without root or `ip` the tests skip, unless PXED_E2E=1.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pxed/internal/testutil"
)

// needNetns skips without root and ip, or fails under PXED_E2E=1.
func needNetns(t *testing.T) {
	t.Helper()
	fail := t.Skipf
	if os.Getenv("PXED_E2E") == "1" {
		fail = t.Fatalf
	}
	if os.Geteuid() != 0 {
		fail("needs root for a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		fail("ip is not installed")
	}
}

var netnsSeq atomic.Int32

// xenNet is one test's namespace and its stand-in servers.
type xenNet struct {
	t  *testing.T
	ns string

	mu      sync.Mutex
	senders map[string][]procInfo // "dhcp", "tftp NAME", "http PATH": holders at each request
	other   atomic.Int32          // requests the other host (198.51.100.1) got
	proxy   atomic.Int32          // connections the proxy got
	tftpOut map[string]int64      // DATA bytes the TFTP stand-in sent, by file

	tftp map[string]tftpFile
	http map[string]http.HandlerFunc
}

// tftpFile is what the TFTP stand-in serves for a name: data, or (stall >
// 0) stall bytes of filler after which it stops answering, and tsize, when
// not 0, announced in an OACK to a client that asks for it.
type tftpFile struct {
	data  []byte
	stall int64
	tsize int64
}

// newXenNet makes the namespace and starts the stand-ins; the caller fills
// n.tftp and n.http (read at each request).
func newXenNet(t *testing.T) *xenNet {
	needNetns(t)
	n := &xenNet{t: t, ns: fmt.Sprintf("pxedxen%d-%d", os.Getpid(), netnsSeq.Add(1)),
		senders: map[string][]procInfo{}, tftp: map[string]tftpFile{}, http: map[string]http.HandlerFunc{},
		tftpOut: map[string]int64{}}
	ip := func(args ...string) {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", n.ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", n.ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", n.ns, err, out)
		}
	})
	for _, a := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "xb0", "type", "veth", "peer", "name", "xs0"},
		{"addr", "add", "192.0.2.1/24", "dev", "xs0"},
		{"addr", "add", "198.51.100.1/24", "dev", "xs0"},
		{"link", "set", "xb0", "up"},
		{"link", "set", "xs0", "up"},
	} {
		ip(append([]string{"-n", n.ns}, a...)...)
	}
	n.startDHCP()
	n.startTFTP()
	n.startHTTP("192.0.2.1:8080", func(w http.ResponseWriter, r *http.Request) {
		n.record("http "+r.URL.Path, "tcp", r.RemoteAddr)
		n.mu.Lock()
		h := n.http[r.URL.Path]
		n.mu.Unlock()
		if h == nil {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	})
	n.startHTTP("198.51.100.1:8080", func(w http.ResponseWriter, r *http.Request) {
		n.other.Add(1)
		w.Write([]byte("from another host"))
	})
	var ln net.Listener
	n.do(func() { ln = n.listen("192.0.2.1:3128") })
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.proxy.Add(1)
			c.Close()
		}
	}()
	return n
}

// do runs fn on an OS thread inside the namespace: sockets opened there
// stay there. The thread is never unlocked, so it ends with fn.
func (n *xenNet) do(fn func()) {
	if err := testutil.InNetns(n.ns, fn); err != nil {
		n.t.Error(err)
	}
}

func (n *xenNet) listen(addr string) net.Listener {
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		n.t.Fatal(err)
	}
	return ln
}

func (n *xenNet) startHTTP(addr string, h http.HandlerFunc) {
	var ln net.Listener
	n.do(func() { ln = n.listen(addr) })
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	n.t.Cleanup(func() { srv.Close() })
}

// added to a minimal environment, killed after timeout. It returns stderr
// and the exit code, and the largest file it saw in watchDir while the
// bootloader ran (polled; "" to skip).
func (n *xenNet) bootloader(bin string, env []string, timeout time.Duration, watchDir string, args ...string) (stderr string, code int, largest int64) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.ns, bin, "xen-bootloader"}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var out bytes.Buffer
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	for waiting := true; waiting; {
		select {
		case err = <-done:
			waiting = false
		case <-time.After(5 * time.Millisecond):
		}
		if watchDir != "" {
			ents, _ := os.ReadDir(watchDir)
			for _, e := range ents {
				if fi, ierr := e.Info(); ierr == nil && fi.Mode().IsRegular() {
					largest = max(largest, fi.Size())
				}
			}
		}
	}
	code = 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			n.t.Fatalf("bootloader: %v\n%s", err, out.String())
		}
		code = ee.ExitCode()
	}
	return out.String(), code, largest
}

// slowBody writes n bytes of filler, then holds the response open until
// the client goes away: a body that does not end within a limit of less
// than n.
func slowBody(n int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, io.LimitReader(fillerReader{}, n))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
}

type fillerReader struct{}

func (fillerReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'X'
	}
	return len(p), nil
}
