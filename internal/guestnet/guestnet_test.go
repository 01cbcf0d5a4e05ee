package guestnet

// The guest identity against the Linux kernel as its peer: two network
// namespaces the test makes, "dom0" with a bridge that has no address
// (its port is one end of a veth pair) and "server" with the other end as
// 192.0.2.1/24, where the kernel's own TCP, UDP and ARP answer. The stack
// runs on a packet socket on dom0's bridge, as the Xen bootloader's does.
// Without root or ip the tests skip, unless PXED_E2E=1.

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pxed/internal/pxeclient"
	"pxed/internal/testutil"
)

var (
	guestMAC  = net.HardwareAddr{0x00, 0x16, 0x3e, 0x72, 0x79, 0xe3}
	guestAddr = netip.MustParsePrefix("192.0.2.50/24")
	server    = netip.MustParseAddr("192.0.2.1")
)

var nsSeq atomic.Int32

// lab is the two namespaces.
type lab struct {
	t            *testing.T
	dom0, server string
}

func newLab(t *testing.T) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("PXED_E2E") == "1" {
			t.Fatal("PXED_E2E=1 but not root: network namespaces need root")
		}
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		if os.Getenv("PXED_E2E") == "1" {
			t.Fatal("PXED_E2E=1 but ip is not installed")
		}
		t.Skip("needs ip (iproute2)")
	}
	id := fmt.Sprintf("%d-%d", os.Getpid(), nsSeq.Add(1))
	l := &lab{t: t, dom0: "pxgd-" + id, server: "pxgs-" + id}
	for _, ns := range []string{l.dom0, l.server} {
		l.ip("netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		l.ip("-n", ns, "link", "set", "lo", "up")
	}
	l.ip("-n", l.dom0, "link", "add", "gp0", "type", "veth", "peer", "name", "gs0", "netns", l.server)
	l.ip("-n", l.dom0, "link", "add", "br0", "type", "bridge")
	l.sysctl(l.dom0, "net.ipv6.conf.br0.disable_ipv6=1")
	l.sysctl(l.dom0, "net.ipv6.conf.gp0.disable_ipv6=1")
	l.sysctl(l.server, "net.ipv6.conf.gs0.disable_ipv6=1")
	// With br_netfilter loaded the bridge itself drops some malformed
	// IPv4 (bad header checksum or length) and holds fragments for
	// reassembly; off here, so that such frames reach the guest's link,
	// whose own checks are under test. Without the module there is no
	// such setting.
	if _, err := os.Stat("/proc/sys/net/bridge"); err == nil {
		exec.Command("ip", "netns", "exec", l.dom0, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0").Run()
	}
	l.ip("-n", l.dom0, "link", "set", "gp0", "master", "br0")
	l.ip("-n", l.dom0, "link", "set", "gp0", "up")
	l.ip("-n", l.dom0, "link", "set", "br0", "up")
	l.ip("-n", l.server, "addr", "add", "192.0.2.1/24", "dev", "gs0")
	l.ip("-n", l.server, "link", "set", "gs0", "up")
	return l
}

func (l *lab) ip(args ...string) string {
	l.t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (l *lab) sysctl(ns, kv string) {
	l.t.Helper()
	if out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-qw", kv).CombinedOutput(); err != nil {
		l.t.Fatalf("sysctl %s in %s: %v\n%s", kv, ns, err, out)
	}
}

// in runs fn in namespace ns (testutil.InNetns).
func (l *lab) in(ns string, fn func()) {
	l.t.Helper()
	if err := testutil.InNetns(ns, fn); err != nil {
		l.t.Fatal(err)
	}
}

// start brings the guest identity up on dom0's bridge.
func (l *lab) start() (*Stack, *pxeclient.PacketConn) {
	l.t.Helper()
	var pc *pxeclient.PacketConn
	var err error
	l.in(l.dom0, func() { pc, err = pxeclient.ListenPacket("br0", guestMAC) })
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { pc.Close() })
	st, err := Start(Config{Conn: pc, MAC: guestMAC, Addr: guestAddr})
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { st.Close() })
	return st, pc
}

// promiscuous reports whether dom0's bridge is in promiscuous mode.
func (l *lab) promiscuous() bool {
	l.t.Helper()
	return strings.Contains(l.ip("-n", l.dom0, "-d", "link", "show", "br0"), "promiscuity 1")
}

// TestGuestTalksToKernel: the server's kernel serves an HTTP body (large
// enough for its TCP to send offloaded segments and its checksums to be
// left to the hardware) and echoes UDP; the guest gets both byte for byte,
// the server sees the guest's address and MAC, and dom0's bridge is
// promiscuous exactly while the stack runs.
func TestGuestTalksToKernel(t *testing.T) {
	l := newLab(t)
	body := make([]byte, 8<<20)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range body {
		body[i] = byte(rnd.Uint32())
	}
	var ln net.Listener
	var uc *net.UDPConn
	l.in(l.server, func() {
		var err error
		if ln, err = net.Listen("tcp4", "192.0.2.1:8080"); err != nil {
			t.Error(err)
			return
		}
		if uc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 7}); err != nil {
			t.Error(err)
		}
	})
	if t.Failed() {
		return
	}
	seen := make(chan string, 4)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.RemoteAddr
		w.Write(body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := uc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			seen <- from.String()
			uc.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	t.Cleanup(func() { uc.Close() })

	if l.promiscuous() {
		t.Fatal("the bridge is promiscuous before the stack starts")
	}
	st, pc := l.start()
	if !l.promiscuous() {
		t.Error("the bridge is not promiscuous while the stack runs: unicast frames for the guest would not reach it")
	}

	tr := &http.Transport{DialContext: st.DialContext}
	resp, err := (&http.Client{Transport: tr, Timeout: 60 * time.Second}).Get("http://192.0.2.1:8080/big")
	if err != nil {
		t.Fatalf("HTTP as the guest: %v", err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	tr.CloseIdleConnections()
	if err != nil || sha256.Sum256(got) != sha256.Sum256(body) {
		t.Fatalf("HTTP as the guest: %d of %d bytes, %v", len(got), len(body), err)
	}
	if from := <-seen; !strings.HasPrefix(from, "192.0.2.50:") {
		t.Errorf("the server saw the HTTP client as %s, want the guest's 192.0.2.50", from)
	}

	c, err := st.ListenUDP("udp4")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.WriteTo([]byte("ping"), &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 7}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, from, err := c.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" || from.String() != "192.0.2.1:7" {
		t.Fatalf("UDP echo as the guest: %q from %v, %v", buf[:n], from, err)
	}
	if from := <-seen; !strings.HasPrefix(from, "192.0.2.50:") {
		t.Errorf("the server saw the UDP client as %s", from)
	}
	if neigh := l.ip("-n", l.server, "neigh", "show", "192.0.2.50"); !strings.Contains(neigh, guestMAC.String()) {
		t.Errorf("the server's neighbour entry for the guest is %q, want the guest's MAC %s", neigh, guestMAC)
	}

	st.Close()
	pc.Close()
	if l.promiscuous() {
		t.Error("the bridge stays promiscuous after the stack and its socket are closed")
	}
	t.Logf("link: %+v", st.Stats())
}

// TestGuestAnswersARPOnlyWhileRunning: while the stack runs, the server's
// connection to a closed port of the guest is refused at once (ARP answered,
// then a reset); once it is closed, nothing answers for the address.
func TestGuestAnswersARPOnlyWhileRunning(t *testing.T) {
	l := newLab(t)
	st, _ := l.start()
	dial := func() error {
		var err error
		l.in(l.server, func() {
			var c net.Conn
			c, err = net.DialTimeout("tcp4", "192.0.2.50:9", 3*time.Second)
			if err == nil {
				c.Close()
			}
		})
		return err
	}
	if err := dial(); !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("connecting to a closed port of the running guest: %v, want connection refused", err)
	}
	st.Close()
	l.ip("-n", l.server, "neigh", "flush", "dev", "gs0")
	err := dial()
	var ne net.Error
	if err == nil || errors.Is(err, unix.ECONNREFUSED) || !(errors.As(err, &ne) && ne.Timeout() || errors.Is(err, unix.EHOSTUNREACH)) {
		t.Fatalf("after Close the guest's address still answers: %v", err)
	}
}

// TestGuestDropsHostileFrames replays frames a hostile segment could send
// to the guest, from a packet socket in the server's namespace: a UDP
// datagram with a wrong checksum, one with a wrong IP header checksum, a
// truncated IP header, a fragment, and a valid datagram to another MAC.
// None reaches the guest's UDP socket; the valid one sent afterwards does.
func TestGuestDropsHostileFrames(t *testing.T) {
	l := newLab(t)
	st, _ := l.start()
	c, err := st.ListenUDP("udp4")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	port := uint16(c.LocalAddr().(*net.UDPAddr).Port)
	var smac net.HardwareAddr
	var fd int
	l.in(l.server, func() {
		ifc, err := net.InterfaceByName("gs0")
		if err != nil {
			t.Error(err)
			return
		}
		smac = ifc.HardwareAddr
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err == nil {
			err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index})
		}
		if err != nil {
			t.Error(err)
		}
	})
	if t.Failed() {
		return
	}
	defer unix.Close(fd)
	send := func(frame []byte) {
		if err := unix.Send(fd, frame, 0); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(dst net.HardwareAddr, payload string, mangle func(ip []byte)) []byte {
		return udpFrame(dst, smac, server, guestAddr.Addr(), 7, port, []byte(payload), mangle)
	}
	other := net.HardwareAddr{0x02, 0, 0, 0, 0, 9}
	before := st.Stats()
	send(mk(guestMAC, "bad udp checksum", func(ip []byte) { ip[20+6] ^= 0x55 }))
	send(mk(guestMAC, "bad ip checksum", func(ip []byte) { ip[10] ^= 0x55 }))
	send(mk(guestMAC, "truncated", func(ip []byte) { binary.BigEndian.PutUint16(ip[2:], 4000) }))
	send(mk(guestMAC, "fragment", func(ip []byte) {
		binary.BigEndian.PutUint16(ip[6:], 0x2000) // MF
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip[:20]))
	}))
	send(mk(other, "another MAC", nil))
	send(mk(guestMAC, "good", nil))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 256)
	n, _, err := c.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "good" {
		t.Fatalf("first datagram the guest received: %q, %v; want only the valid one", buf[:n], err)
	}
	after := st.Stats()
	if d := after.Dropped - before.Dropped; d != 4 {
		t.Errorf("%d frames dropped by the link, want 4 (the frame to another MAC never leaves the kernel's filter)", d)
	}
}

// udpFrame builds an Ethernet/IPv4/UDP frame with valid checksums, then
// lets mangle change the IP packet.
func udpFrame(dst, src net.HardwareAddr, from, to netip.Addr, sport, dport uint16, payload []byte, mangle func(ip []byte)) []byte {
	ip := make([]byte, 20+8+len(payload))
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	ip[8], ip[9] = 64, 17
	f4, t4 := from.As4(), to.As4()
	copy(ip[12:], f4[:])
	copy(ip[16:], t4[:])
	binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip[:20]))
	u := ip[20:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], payload)
	pseudo := append(append(append([]byte{}, f4[:]...), t4[:]...), 0, 17, byte(len(u)>>8), byte(len(u)))
	sum := ^fold(sum16(pseudo) + sum16(u))
	if sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], sum)
	if mangle != nil {
		mangle(ip)
	}
	return append(append(append(append([]byte{}, dst...), src...), 0x08, 0x00), ip...)
}

func sum16(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

func ipChecksum(h []byte) uint16 { return ^fold(sum16(h)) }
