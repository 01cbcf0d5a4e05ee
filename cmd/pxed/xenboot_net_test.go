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
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pxed/internal/dhcp"
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
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + n.ns)
		if err != nil {
			n.t.Error(err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			n.t.Errorf("setns %s: %v", n.ns, err)
			return
		}
		fn()
	}()
	<-done
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

// procInfo is what /proc/PID/status says of a process holding a socket.
type procInfo struct {
	Pid                                   int
	Name                                  string
	Uid, Gid, Groups                      []string
	CapInh, CapPrm, CapEff, CapAmb, NoNew string
}

func (p procInfo) String() string {
	return fmt.Sprintf("pid %d (%s) uid %v gid %v groups %v cap inh %s prm %s eff %s amb %s no_new_privs %s",
		p.Pid, p.Name, p.Uid, p.Gid, p.Groups, p.CapInh, p.CapPrm, p.CapEff, p.CapAmb, p.NoNew)
}

// holders are the processes with a descriptor on socket inode.
func holders(inode string) []procInfo {
	var out []procInfo
	link := "socket:[" + inode + "]"
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	seen := map[int]bool{}
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err != nil || l != link {
			continue
		}
		pid, _ := strconv.Atoi(strings.Split(fd, "/")[2])
		if seen[pid] {
			continue
		}
		seen[pid] = true
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		p := procInfo{Pid: pid}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			f := strings.Fields(v)
			switch k {
			case "Name":
				p.Name = strings.TrimSpace(v)
			case "Uid":
				p.Uid = f
			case "Gid":
				p.Gid = f
			case "Groups":
				p.Groups = f
			case "CapInh":
				p.CapInh = strings.TrimSpace(v)
			case "CapPrm":
				p.CapPrm = strings.TrimSpace(v)
			case "CapEff":
				p.CapEff = strings.TrimSpace(v)
			case "CapAmb":
				p.CapAmb = strings.TrimSpace(v)
			case "NoNewPrivs":
				p.NoNew = strings.TrimSpace(v)
			}
		}
		out = append(out, p)
	}
	return out
}

// socketInodes reads /proc/thread-self/net/FILE in the namespace and
// returns the inodes (last column) of the sockets whose fields match.
func (n *xenNet) socketInodes(file string, match func(fields []string) bool) []string {
	var inodes []string
	n.do(func() {
		b, err := os.ReadFile("/proc/thread-self/net/" + file)
		if err != nil {
			n.t.Error(err)
			return
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 0 && match(f) {
				inodes = append(inodes, f[len(f)-1])
			}
		}
	})
	return inodes
}

// record notes who holds the socket a request came from: proto "tcp" or
// "udp" and the client's address (its port), or "packet" (the packet
// sockets bound to xb0).
func (n *xenNet) record(key, proto, from string) {
	var inodes []string
	switch proto {
	case "packet":
		var idx int
		n.do(func() {
			if ifc, err := net.InterfaceByName("xb0"); err == nil {
				idx = ifc.Index
			}
		})
		inodes = n.socketInodes("packet", func(f []string) bool { return len(f) >= 9 && f[4] == strconv.Itoa(idx) })
	default:
		ap, err := netip.ParseAddrPort(from)
		if err != nil {
			n.t.Errorf("record %s: %v", key, err)
			return
		}
		inodes = n.inodeColumn(proto, fmt.Sprintf(":%04X", ap.Port()))
	}
	var ps []procInfo
	for _, ino := range inodes {
		ps = append(ps, holders(ino)...)
	}
	n.mu.Lock()
	n.senders[key] = append(n.senders[key], ps...)
	n.mu.Unlock()
}

// inodeColumn returns the inodes of the tcp or udp sockets with local port
// port (":XXXX" in hex), from column 9 of /proc/net/{tcp,udp}.
func (n *xenNet) inodeColumn(proto, port string) []string {
	var inodes []string
	n.do(func() {
		b, err := os.ReadFile("/proc/thread-self/net/" + proto)
		if err != nil {
			n.t.Error(err)
			return
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 9 && strings.HasSuffix(f[1], port) && f[9] != "0" {
				inodes = append(inodes, f[9])
			}
		}
	})
	return inodes
}

// tftpSent is how many DATA bytes of name the TFTP stand-in sent.
func (n *xenNet) tftpSent(name string) int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.tftpOut[name]
}

// sendersOf returns what record noted for key.
func (n *xenNet) sendersOf(key string) []procInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]procInfo(nil), n.senders[key]...)
}

// startDHCP answers every DISCOVER with an OFFER of 192.0.2.50 from
// 192.0.2.1 (next-server 192.0.2.1, file pxelinux.0) and every REQUEST
// with an ACK, broadcast on xs0.
func (n *xenNet) startDHCP() {
	var conn net.PacketConn
	n.do(func() {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			c.Control(func(fd uintptr) {
				serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, "xs0")
				if serr == nil {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
				}
			})
			return serr
		}}
		var err error
		if conn, err = lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:67"); err != nil {
			n.t.Error(err)
		}
	})
	if conn == nil {
		n.t.FailNow()
	}
	n.t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			m, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			p, err := dhcp.Parse(buf[:m])
			if err != nil {
				continue
			}
			var typ byte
			switch p.Type() {
			case 1:
				n.record("dhcp", "packet", "")
				typ = 2
			case 3:
				typ = 5
			default:
				continue
			}
			conn.WriteTo(dhcpReply(p, typ), &net.UDPAddr{IP: net.IPv4bcast, Port: 68})
		}
	}()
}

func dhcpReply(req *dhcp.Packet, typ byte) []byte {
	b := make([]byte, 240, 300)
	b[0], b[1], b[2] = 2, 1, 6
	binary.BigEndian.PutUint32(b[4:], req.XID)
	binary.BigEndian.PutUint16(b[10:], 0x8000)
	copy(b[16:20], []byte{192, 0, 2, 50}) // yiaddr
	copy(b[20:24], []byte{192, 0, 2, 1})  // siaddr: next-server
	copy(b[28:34], req.MAC())
	copy(b[108:], "pxelinux.0")
	copy(b[236:240], []byte{99, 130, 83, 99})
	b = append(b, 53, 1, typ, 54, 4, 192, 0, 2, 1, 1, 4, 255, 255, 255, 0, 51, 4, 0, 0, 14, 16, 255)
	return b
}

// tftpTransfer is the stand-in's state for one client: lock-step, blocks
// of 512 bytes.
type tftpTransfer struct {
	name string
	f    tftpFile
	sent int64 // bytes sent up to and including block
	blk  uint16
	last bool
}

// startTFTP serves n.tftp on 192.0.2.1:69 from that one port (the client
// locks onto it), lock-step with 512-byte blocks, an OACK with tsize only
// when the file says so and the client asks.
func (n *xenNet) startTFTP() {
	var conn *net.UDPConn
	n.do(func() {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 69})
		if err != nil {
			n.t.Error(err)
		}
		conn = c
	})
	if conn == nil {
		n.t.FailNow()
	}
	n.t.Cleanup(func() { conn.Close() })
	transfers := map[netip.AddrPort]*tftpTransfer{}
	send := func(to netip.AddrPort, tr *tftpTransfer) {
		tr.blk++
		var data []byte
		if tr.f.stall > 0 {
			if tr.sent >= tr.f.stall {
				return // stalled: answer no more
			}
			data = bytes.Repeat([]byte{'X'}, int(min(512, tr.f.stall-tr.sent)))
			if len(data) < 512 {
				data = append(data, 'X') // never a short block: the file goes on
			}
		} else {
			data = tr.f.data[min(tr.sent, int64(len(tr.f.data))):]
			data = data[:min(512, len(data))]
			tr.last = len(data) < 512
		}
		tr.sent += int64(len(data))
		n.mu.Lock()
		n.tftpOut[tr.name] += int64(len(data))
		n.mu.Unlock()
		pkt := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 3), tr.blk)
		conn.WriteToUDPAddrPort(append(pkt, data...), to)
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			m, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if m < 4 {
				continue
			}
			switch op := binary.BigEndian.Uint16(buf); op {
			case 1: // RRQ
				fields := strings.Split(string(buf[2:m]), "\x00")
				name := fields[0]
				n.record("tftp "+name, "udp", from.String())
				n.mu.Lock()
				f, ok := n.tftp[name]
				n.mu.Unlock()
				if !ok {
					conn.WriteToUDPAddrPort(append([]byte{0, 5, 0, 1}, "file not found\x00"...), from)
					continue
				}
				tr := &tftpTransfer{name: name, f: f}
				transfers[from] = tr
				asked := false
				for i := 2; i+1 < len(fields); i += 2 {
					asked = asked || strings.EqualFold(fields[i], "tsize")
				}
				if f.tsize > 0 && asked {
					conn.WriteToUDPAddrPort(append([]byte{0, 6}, "tsize\x00"+strconv.FormatInt(f.tsize, 10)+"\x00"...), from)
					continue
				}
				send(from, tr)
			case 4: // ACK
				tr := transfers[from]
				if tr == nil || binary.BigEndian.Uint16(buf[2:]) != tr.blk {
					continue
				}
				if tr.last {
					delete(transfers, from)
					continue
				}
				send(from, tr)
			case 5: // ERROR: the client gave up
				delete(transfers, from)
			}
		}
	}()
}

// bootloader runs `pxed xen-bootloader ARGS` in the namespace with env
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
