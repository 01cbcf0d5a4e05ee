package dhcpnet

// The harness of the socket tests: network namespaces joined by veth pairs,
// and the test binary re-executed inside them with `ip netns exec`.
//
// A test (in the machine's own namespace) builds its namespaces and runs a
// scenario: the test binary again, inside namespace A, with -test.run
// '^TestHelperProcess$' and the environment variable helperRole naming the
// role. A scenario holds the Conns under test and starts helpers the same
// way in namespace B (capture frames, receive or send UDP), reading their
// "@@" lines from stdout. Every process has a deadline and is killed in
// cleanup; every namespace is deleted in cleanup. Traffic stays inside the
// namespaces, with addresses from 192.0.2.0/24 and 198.18.0.0/15.
//
// Without root or `ip` these tests skip, unless PXED_E2E=1 (set in CI),
// where they fail.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	helperRole = "PXED_DHCPNET_HELPER"      // the role of a re-executed test binary
	helperArgs = "PXED_DHCPNET_HELPER_ARGS" // its arguments, JSON
	lineMark   = "@@"                       // prefix of the lines a helper reports
)

// Fixed names and locally administered MACs of the test topologies: each
// test has namespaces of its own, so these never clash.
const (
	ifA1, ifA2 = "a1", "a2"
	ifB1, ifB2 = "b1", "b2"
	macA1      = "02:00:00:0a:00:01"
	macA2      = "02:00:00:0a:00:02"
	macB1      = "02:00:00:0b:00:01"
	macB2      = "02:00:00:0b:00:02"
)

// args are a helper's arguments.
type args struct {
	Scenario string `json:",omitempty"` // role "scenario": which one
	NSA      string `json:",omitempty"` // the namespaces of the test
	NSB      string `json:",omitempty"`

	Iface     string `json:",omitempty"` // capture, udprecv, udpsend: device
	Port      int    `json:",omitempty"` // capture: UDP destination port; udprecv: port to bind
	LocalPort int    `json:",omitempty"` // udpsend: source port
	Dst       string `json:",omitempty"` // udpsend: destination address:port
	Payload   []byte `json:",omitempty"` // udpsend
	Max       int    `json:",omitempty"` // capture, udprecv: stop after this many
	WaitMS    int    `json:",omitempty"` // capture, udprecv: stop after this long
}

// nsPrefix starts the name of every namespace these tests create; the pid
// of the creating test process follows.
const nsPrefix = "pxed-dhcpnet-"

func TestMain(m *testing.M) {
	if os.Getenv(helperRole) == "" && os.Geteuid() == 0 {
		removeStaleNetns()
	}
	os.Exit(m.Run())
}

// removeStaleNetns deletes the namespaces left by test processes that were
// killed before their cleanup ran: those whose creating process is gone.
func removeStaleNetns() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), nsPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || unix.Kill(pid, 0) != unix.ESRCH {
			continue
		}
		_ = exec.Command("ip", "netns", "del", e.Name()).Run()
	}
}

// TestHelperProcess is not a test: it is the entry point of the test binary
// re-executed inside a namespace, and returns at once otherwise.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(helperRole)
	if role == "" {
		return
	}
	var a args
	if err := json.Unmarshal([]byte(os.Getenv(helperArgs)), &a); err != nil {
		t.Fatalf("helper arguments: %v", err)
	}
	switch role {
	case "scenario":
		f := scenario(a.Scenario)
		if f == nil {
			t.Fatalf("no scenario %q", a.Scenario)
		}
		f(t, a)
		if !t.Failed() {
			fmt.Printf("%sSCENARIO-OK %s\n", lineMark, a.Scenario)
		}
	case "capture":
		helperCapture(t, a)
	case "udprecv":
		helperUDPRecv(t, a)
	case "udpsend":
		helperUDPSend(t, a)
	default:
		t.Fatalf("no helper role %q", role)
	}
}

// requireNetns skips the test unless it can build network namespaces:
// root and the ip command. Under PXED_E2E=1 it fails instead.
func requireNetns(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root to create network namespaces"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "needs the ip command (iproute2)"
	}
	if why == "" {
		return
	}
	if os.Getenv("PXED_E2E") == "1" {
		t.Fatalf("%s, and PXED_E2E=1 requires it", why)
	}
	t.Skip(why)
}

// run runs a command with a deadline and fails the test if it fails.
func run(t *testing.T, name string, arg ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, arg...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(arg, " "), err, out)
	}
	return string(out)
}

var nonAlnum = regexp.MustCompile(`[^A-Za-z0-9]+`)

// newNetns creates a network namespace with its loopback up, named after
// the test, the process and tag, and deletes it in cleanup.
func newNetns(t *testing.T, tag string) string {
	t.Helper()
	base := nonAlnum.ReplaceAllString(strings.TrimPrefix(t.Name(), "Test"), "")
	if len(base) > 32 {
		base = base[:32]
	}
	name := fmt.Sprintf("%s%d-%s-%s", nsPrefix, os.Getpid(), base, tag)
	// A namespace of this name can only be left over from an earlier
	// process with this pid that was killed: it is ours to remove.
	_ = exec.Command("ip", "netns", "del", name).Run()
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// veth joins namespace nsA and nsB with a veth pair: ifA with macA in nsA,
// ifB with macB in nsB, both up. The pair is made inside the namespaces and
// never exists in the machine's own.
func veth(t *testing.T, nsA, ifA, macA, nsB, ifB, macB string) {
	t.Helper()
	run(t, "ip", "-n", nsA, "link", "add", ifA, "address", macA, "type", "veth",
		"peer", "name", ifB, "address", macB, "netns", nsB)
	run(t, "ip", "-n", nsA, "link", "set", ifA, "up")
	run(t, "ip", "-n", nsB, "link", "set", ifB, "up")
}

// helperCmd returns the command that runs the test binary in namespace ns
// in role, with a deadline; wrap, if given, goes between `ip netns exec NS`
// and the binary.
func helperCmd(t *testing.T, ctx context.Context, ns, role string, a args, wrap ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"netns", "exec", ns}, wrap...)
	argv = append(argv, exe, "-test.run=^TestHelperProcess$", "-test.v", "-test.timeout=100s")
	cmd := exec.CommandContext(ctx, "ip", argv...)
	cmd.Env = append(os.Environ(), helperRole+"="+role, helperArgs+"="+string(js))
	cmd.WaitDelay = 5 * time.Second
	// `ip netns exec` execs the binary: if this process dies, so does it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// runScenario runs scenario name inside namespace a.NSA and fails the test
// with the scenario's output if the scenario fails. wrap is as for
// helperCmd.
func runScenario(t *testing.T, name string, a args, wrap ...string) {
	t.Helper()
	a.Scenario = name
	ctx, cancel := context.WithTimeout(context.Background(), 110*time.Second)
	defer cancel()
	out, err := helperCmd(t, ctx, a.NSA, "scenario", a, wrap...).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte(lineMark+"SCENARIO-OK "+name+"\n")) {
		t.Fatalf("scenario %s in namespace %s failed (%v):\n%s", name, a.NSA, err, out)
	}
	if testing.Verbose() {
		t.Logf("scenario %s:\n%s", name, out)
	}
}

// helper is a helper process started by startHelper.
type helper struct {
	t     *testing.T
	role  string
	cmd   *exec.Cmd
	lines chan string // its lineMark lines, mark removed; closed at its end
	done  chan struct{}

	mu  sync.Mutex
	out bytes.Buffer // all its output, for diagnostics
}

// startHelper starts the test binary in namespace ns in role, and waits
// until it reports READY. The helper is killed in cleanup.
func startHelper(t *testing.T, ns, role string, a args) *helper {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	h := &helper{t: t, role: role, lines: make(chan string, 4096), done: make(chan struct{})}
	h.cmd = helperCmd(t, ctx, ns, role, a)
	h.cmd.Stderr = &lockedWriter{mu: &h.mu, w: &h.out}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start helper %s: %v", role, err)
	}
	go func() {
		defer close(h.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			h.mu.Lock()
			h.out.WriteString(line + "\n")
			h.mu.Unlock()
			if rest, ok := strings.CutPrefix(line, lineMark); ok {
				h.lines <- rest
			}
		}
	}()
	go func() {
		_ = h.cmd.Wait()
		close(h.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-h.done
	})
	if got := h.next(30 * time.Second); got != "READY" {
		t.Fatalf("helper %s: got %q, not READY\n%s", role, got, h.output())
	}
	return h
}

func (h *helper) output() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.out.String()
}

// next returns the helper's next report, or fails the test.
func (h *helper) next(timeout time.Duration) string {
	h.t.Helper()
	select {
	case l, ok := <-h.lines:
		if !ok {
			<-h.done
			h.t.Fatalf("helper %s ended (%v) without reporting:\n%s", h.role, h.cmd.ProcessState, h.output())
		}
		return l
	case <-time.After(timeout):
		h.t.Fatalf("helper %s reported nothing within %v:\n%s", h.role, timeout, h.output())
	}
	return ""
}

// rest returns the helper's reports up to DONE, and checks it succeeded.
func (h *helper) rest() []string {
	h.t.Helper()
	var got []string
	for {
		l := h.next(60 * time.Second)
		if l == "DONE" {
			break
		}
		got = append(got, l)
	}
	<-h.done
	if !h.cmd.ProcessState.Success() {
		h.t.Fatalf("helper %s failed (%v):\n%s", h.role, h.cmd.ProcessState, h.output())
	}
	return got
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// sendUDP runs the udpsend helper in namespace ns: one datagram from
// 0.0.0.0:localPort on device ifname to dst.
func sendUDP(t *testing.T, ns, ifname string, localPort int, dst string, payload []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := args{Iface: ifname, LocalPort: localPort, Dst: dst, Payload: payload}
	out, err := helperCmd(t, ctx, ns, "udpsend", a).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte(lineMark+"SENT")) {
		t.Fatalf("udpsend in %s to %s: %v\n%s", ns, dst, err, out)
	}
}

// helperCapture reports the IPv4/UDP frames to port a.Port that arrive on
// device a.Iface ("FRAME pkttype hex"), through an AF_PACKET socket: what
// is on the wire, whether or not the interface has an address.
func helperCapture(t *testing.T, a args) {
	ifi, err := net.InterfaceByName(a.Iface)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// Room for a burst of frames; SO_RCVBUFFORCE as root.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 50000}); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%sREADY\n", lineMark)
	deadline := time.Now().Add(time.Duration(a.WaitMS) * time.Millisecond)
	buf := make([]byte, 65536)
	for n := 0; n < a.Max && time.Now().Before(deadline); {
		m, from, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		sll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || sll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		f := buf[:m]
		if len(f) < 14+20+8 || binary.BigEndian.Uint16(f[12:]) != unix.ETH_P_IP || f[14+9] != protocolUDP {
			continue
		}
		ihl := int(f[14]&0xf) * 4
		if len(f) < 14+ihl+8 || int(binary.BigEndian.Uint16(f[14+ihl+2:])) != a.Port {
			continue
		}
		fmt.Printf("%sFRAME %d %s\n", lineMark, sll.Pkttype, hex.EncodeToString(f))
		n++
	}
	fmt.Printf("%sDONE\n", lineMark)
}

// helperUDPRecv reports the datagrams that arrive at a UDP socket on
// 0.0.0.0:a.Port ("DGRAM src hex").
func helperUDPRecv(t *testing.T, a args) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: a.Port})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Printf("%sREADY\n", lineMark)
	if err := c.SetReadDeadline(time.Now().Add(time.Duration(a.WaitMS) * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	for range a.Max {
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("%sDGRAM %s %s\n", lineMark, src, hex.EncodeToString(buf[:n]))
	}
	fmt.Printf("%sDONE\n", lineMark)
}

// helperUDPSend sends one datagram the way a DHCP client without an
// address does: from 0.0.0.0:a.LocalPort, bound to device a.Iface, with
// SO_BROADCAST.
func helperUDPSend(t *testing.T, a args) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, a.Iface)
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
			}
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", a.LocalPort))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.(*net.UDPConn).WriteToUDPAddrPort(a.Payload, netip.MustParseAddrPort(a.Dst)); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%sSENT\n", lineMark)
}

// frame is a captured Ethernet frame carrying IPv4 and UDP.
type frame struct {
	pkttype                       int
	ethDst, ethSrc                net.HardwareAddr
	ip                            []byte // the IPv4 header
	udp                           []byte // the UDP header
	payload                       []byte
	srcIP, dstIP                  netip.Addr
	srcPort, dstPort, udpChecksum uint16
}

// parseFrame parses a capture helper's "FRAME pkttype hex" report.
func parseFrame(t *testing.T, report string) frame {
	t.Helper()
	var pt int
	var hx string
	if _, err := fmt.Sscanf(report, "FRAME %d %s", &pt, &hx); err != nil {
		t.Fatalf("report %q: %v", report, err)
	}
	b, err := hex.DecodeString(hx)
	if err != nil {
		t.Fatal(err)
	}
	ip := b[14:]
	ihl := int(ip[0]&0xf) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if total > len(ip) || total < ihl+8 {
		t.Fatalf("IPv4 total length %d, frame has %d bytes after the Ethernet header", total, len(ip))
	}
	ip = ip[:total] // Ethernet pads short frames
	udp := ip[ihl:]
	return frame{
		pkttype: pt,
		ethDst:  net.HardwareAddr(b[0:6]), ethSrc: net.HardwareAddr(b[6:12]),
		ip: ip[:ihl], udp: udp[:8], payload: udp[8:],
		srcIP:   netip.AddrFrom4([4]byte(ip[12:16])),
		dstIP:   netip.AddrFrom4([4]byte(ip[16:20])),
		srcPort: binary.BigEndian.Uint16(udp[0:]), dstPort: binary.BigEndian.Uint16(udp[2:]),
		udpChecksum: binary.BigEndian.Uint16(udp[6:]),
	}
}

// checkFrame checks what a receiver checks of an IPv4/UDP datagram: version,
// lengths, both checksums. Leave udpSum false for a datagram the kernel
// sent through a UDP socket: veth offloads its UDP checksum, so the frame on
// the wire holds only the pseudo-header sum (CHECKSUM_PARTIAL), as tcpdump
// on a veth shows.
func checkFrame(t *testing.T, f frame, udpSum bool) {
	t.Helper()
	if f.ip[0]>>4 != 4 {
		t.Errorf("IP version %d", f.ip[0]>>4)
	}
	if c := checksum(f.ip, 0); c != 0 {
		t.Errorf("IPv4 header checksum does not verify (sum complement %#04x): % x", c, f.ip)
	}
	if f.ip[9] != protocolUDP {
		t.Errorf("IP protocol %d, not UDP", f.ip[9])
	}
	if got, want := int(binary.BigEndian.Uint16(f.udp[4:])), 8+len(f.payload); got != want {
		t.Errorf("UDP length %d, want %d", got, want)
	}
	if !udpSum {
		return
	}
	if f.udpChecksum == 0 {
		t.Errorf("UDP checksum left zero")
	}
	// The receiver's check: pseudo-header, UDP header and payload, checksum
	// included, sum to all ones.
	src, dst := f.srcIP.As4(), f.dstIP.As4()
	sum := sum16(src[:], 0)
	sum = sum16(dst[:], sum)
	sum += protocolUDP + uint32(8+len(f.payload))
	sum = sum16(f.udp, sum)
	if c := checksum(f.payload, sum); c != 0 {
		t.Errorf("UDP checksum %#04x does not verify (sum complement %#04x)", f.udpChecksum, c)
	}
}
