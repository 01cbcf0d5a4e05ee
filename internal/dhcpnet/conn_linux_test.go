package dhcpnet

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// scenario returns the scenario of that name, the part of a test that runs
// inside namespace A.
func scenario(name string) func(*testing.T, args) {
	return map[string]func(*testing.T, args){
		"sendl2-no-address":  scenarioSendL2NoAddress,
		"sendl2-kernel":      scenarioSendL2Kernel,
		"readfrom":           scenarioReadFrom,
		"broadcast-iface":    scenarioBroadcastIface,
		"two-conns":          scenarioTwoConns,
		"interface-refresh":  scenarioInterfaceRefresh,
		"loopback":           scenarioLoopback,
		"needs-privilege":    scenarioNeedsPrivilege,
		"sendl2-concurrency": scenarioSendL2Concurrency,
	}[name]
}

var (
	ipA1 = netip.MustParseAddr("192.0.2.1")
	ipB1 = netip.MustParseAddr("192.0.2.2")
)

// pattern returns n bytes that are not all alike, tagged with tag.
func pattern(tag string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*13 + 5)
	}
	copy(b, tag)
	return b
}

func listen(t *testing.T, ifname string, port int) *Conn {
	t.Helper()
	c, err := Listen(ifname, port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// pairTopology is A:a1 (192.0.2.1/24 if addrA) — B:b1 (no address).
func pairTopology(t *testing.T, addrA bool) args {
	requireNetns(t)
	a := args{NSA: newNetns(t, "a"), NSB: newNetns(t, "b")}
	veth(t, a.NSA, ifA1, macA1, a.NSB, ifB1, macB1)
	if addrA {
		run(t, "ip", "-n", a.NSA, "addr", "add", "192.0.2.1/24", "dev", ifA1)
	}
	return a
}

// twoLinkTopology is A:a1 (192.0.2.1/25) — B:b1 and A:a2 (192.0.2.129/25)
// — B:b2, B without addresses, A's default route out of a2.
func twoLinkTopology(t *testing.T) args {
	requireNetns(t)
	a := args{NSA: newNetns(t, "a"), NSB: newNetns(t, "b")}
	veth(t, a.NSA, ifA1, macA1, a.NSB, ifB1, macB1)
	veth(t, a.NSA, ifA2, macA2, a.NSB, ifB2, macB2)
	run(t, "ip", "-n", a.NSA, "addr", "add", "192.0.2.1/25", "dev", ifA1)
	run(t, "ip", "-n", a.NSA, "addr", "add", "192.0.2.129/25", "dev", ifA2)
	run(t, "ip", "-n", a.NSA, "route", "add", "default", "dev", ifA2)
	return a
}

// (1) A reply unicast at L2 to a client whose interface has no IPv4
// address reaches it intact.
func TestSendL2ReachesClientWithoutAddress(t *testing.T) {
	t.Parallel()
	runScenario(t, "sendl2-no-address", pairTopology(t, true))
}

func scenarioSendL2NoAddress(t *testing.T, a args) {
	if out := run(t, "ip", "-n", a.NSB, "-4", "-o", "addr", "show", "dev", ifB1); strings.TrimSpace(out) != "" {
		t.Fatalf("the client's interface has an IPv4 address: %s", out)
	}
	c := listen(t, ifA1, 67)
	yiaddr := netip.MustParseAddr("192.0.2.50")
	for _, tc := range []struct {
		name    string
		mac     string
		dst     netip.Addr
		payload []byte
		pkttype int
	}{
		{"unicast to chaddr", macB1, yiaddr, pattern("offer", 300), unix.PACKET_HOST},
		{"odd length", macB1, yiaddr, pattern("ack", 301), unix.PACKET_HOST},
		{"broadcast MAC", "ff:ff:ff:ff:ff:ff", netip.MustParseAddr("255.255.255.255"), pattern("bcast", 548), unix.PACKET_BROADCAST},
	} {
		capt := startHelper(t, a.NSB, "capture", args{Iface: ifB1, Port: 68, Max: 1, WaitMS: 10000})
		if err := c.SendL2(tc.payload, mustMAC(tc.mac), ipA1, tc.dst, 67, 68); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := capt.rest()
		if len(got) != 1 {
			t.Fatalf("%s: captured %d frames, want 1", tc.name, len(got))
		}
		f := parseFrame(t, got[0])
		checkFrame(t, f, true)
		if f.pkttype != tc.pkttype {
			t.Errorf("%s: packet type %d, want %d", tc.name, f.pkttype, tc.pkttype)
		}
		if f.ethDst.String() != tc.mac || f.ethSrc.String() != macA1 {
			t.Errorf("%s: Ethernet %s -> %s, want %s -> %s", tc.name, f.ethSrc, f.ethDst, macA1, tc.mac)
		}
		if f.srcIP != ipA1 || f.dstIP != tc.dst || f.srcPort != 67 || f.dstPort != 68 {
			t.Errorf("%s: %s:%d -> %s:%d, want %s:67 -> %s:68", tc.name, f.srcIP, f.srcPort, f.dstIP, f.dstPort, ipA1, tc.dst)
		}
		if f.ip[8] != replyTTL {
			t.Errorf("%s: TTL %d", tc.name, f.ip[8])
		}
		if !bytes.Equal(f.payload, tc.payload) {
			t.Errorf("%s: payload differs:\n got % x\nwant % x", tc.name, f.payload, tc.payload)
		}
	}
}

// (2) The kernel of a client that has the destination address takes the
// datagram to a UDP socket — and drops one whose checksums are wrong, so it
// does check them.
func TestSendL2AcceptedByKernel(t *testing.T) {
	t.Parallel()
	a := pairTopology(t, true)
	run(t, "ip", "-n", a.NSB, "addr", "add", "192.0.2.2/24", "dev", ifB1)
	runScenario(t, "sendl2-kernel", a)
}

func scenarioSendL2Kernel(t *testing.T, a args) {
	c := listen(t, ifA1, 67)
	recv := startHelper(t, a.NSB, "udprecv", args{Port: 68, Max: 3, WaitMS: 1500})

	build := func(payload []byte) []byte {
		d, err := appendIPv4UDP(nil, ipA1.As4(), ipB1.As4(), 67, 68, 7, payload)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	badUDP := build([]byte("bad UDP checksum"))
	badUDP[ipv4HeaderLen+6] ^= 0x40
	badIP := build([]byte("bad IP checksum"))
	badIP[10] ^= 0x40
	for _, d := range [][]byte{badUDP, badIP} {
		if err := c.sendFrame(newL2frame(d), mustMAC(macB1)); err != nil {
			t.Fatal(err)
		}
	}
	good := pattern("good", 300)
	if err := c.SendL2(good, mustMAC(macB1), ipA1, ipB1, 67, 68); err != nil {
		t.Fatal(err)
	}
	got := recv.rest()
	want := fmt.Sprintf("DGRAM %s:67 %x", ipA1, good)
	if len(got) != 1 || got[0] != want {
		t.Fatalf("received %q\nwant only %q", got, want)
	}
}

// (3) ReadFrom tells a broadcast from a client without an address, a
// unicast and a subnet broadcast apart.
func TestReadFromSourceAndDestination(t *testing.T) {
	t.Parallel()
	runScenario(t, "readfrom", pairTopology(t, true))
}

func scenarioReadFrom(t *testing.T, a args) {
	c := listen(t, ifA1, 67)
	buf := make([]byte, 1500)
	expect := func(payload []byte, src, dst string) {
		t.Helper()
		if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, gotSrc, gotDst, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[:n], payload) || gotSrc.String() != src || gotDst.String() != dst {
			t.Fatalf("ReadFrom: %q from %s to %s; want %q from %s to %s", buf[:n], gotSrc, gotDst, payload, src, dst)
		}
	}

	sendUDP(t, a.NSB, ifB1, 68, "255.255.255.255:67", []byte("DHCPDISCOVER"))
	expect([]byte("DHCPDISCOVER"), "0.0.0.0:68", "255.255.255.255")

	run(t, "ip", "-n", a.NSB, "addr", "add", "192.0.2.2/24", "dev", ifB1)
	sendUDP(t, a.NSB, ifB1, 68, "192.0.2.1:67", []byte("DHCPREQUEST renew"))
	expect([]byte("DHCPREQUEST renew"), "192.0.2.2:68", "192.0.2.1")
	sendUDP(t, a.NSB, ifB1, 68, "192.0.2.255:67", []byte("subnet broadcast"))
	expect([]byte("subnet broadcast"), "192.0.2.2:68", "192.0.2.255")

	// A datagram larger than the buffer is reported, not passed off as
	// whole.
	sendUDP(t, a.NSB, ifB1, 68, "192.0.2.1:67", pattern("big", 600))
	n, _, dst, err := c.ReadFrom(buf[:100])
	if !errors.Is(err, ErrTruncated) || n != 100 || dst != ipA1 {
		t.Fatalf("ReadFrom into a short buffer: n %d, dst %s, err %v; want 100, %s, ErrTruncated", n, dst, err, ipA1)
	}

	// The AF_PACKET socket saw all of that traffic go by and kept none.
	checkPacketSocketIdle(t, c)

	// Deadlines and Close end a read.
	if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := c.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadFrom past its deadline: %v", err)
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, _, err := c.ReadFrom(buf)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadFrom during Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a blocked ReadFrom")
	}
}

// checkPacketSocketIdle checks in /proc/net/packet that the Conn's AF_PACKET
// socket is bound to its interface, has no receive hook (R is 0: it
// receives nothing) and holds no queued frames (Rmem is 0).
func checkPacketSocketIdle(t *testing.T, c *Conn) {
	t.Helper()
	fi, err := c.pkt.Stat()
	if err != nil {
		t.Fatal(err)
	}
	inode := fmt.Sprint(fi.Sys().(*syscall.Stat_t).Ino)
	table, err := os.ReadFile("/proc/net/packet")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(table), "\n")[1:] {
		// sk RefCnt Type Proto Iface R Rmem User Inode
		f := strings.Fields(line)
		if len(f) < 9 || f[8] != inode {
			continue
		}
		if f[4] != fmt.Sprint(c.Interface().Index) || f[5] != "0" || f[6] != "0" {
			t.Fatalf("AF_PACKET socket: Iface %s R %s Rmem %s; want %d, 0, 0 (%s)", f[4], f[5], f[6], c.Interface().Index, line)
		}
		return
	}
	t.Fatalf("AF_PACKET socket (inode %s) not in /proc/net/packet:\n%s", inode, table)
}

// (4) A broadcast leaves by the Conn's interface, though the routing table
// would send it out of the other; unicast SendTo is routed.
func TestSendToBroadcastLeavesByBoundInterface(t *testing.T) {
	t.Parallel()
	runScenario(t, "broadcast-iface", twoLinkTopology(t))
}

func scenarioBroadcastIface(t *testing.T, a args) {
	c1, c2 := listen(t, ifA1, 67), listen(t, ifA2, 67)
	cap1 := startHelper(t, a.NSB, "capture", args{Iface: ifB1, Port: 68, Max: 10, WaitMS: 3000})
	cap2 := startHelper(t, a.NSB, "capture", args{Iface: ifB2, Port: 68, Max: 10, WaitMS: 3000})
	bcast := netip.MustParseAddrPort("255.255.255.255:68")
	if err := c1.SendTo([]byte("via a1"), bcast); err != nil {
		t.Fatal(err)
	}
	if err := c2.SendTo([]byte("via a2"), bcast); err != nil {
		t.Fatal(err)
	}
	// The control: a socket bound to no device follows the default
	// route, out of a2.
	plain, err := net.ListenUDP("udp4", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.WriteToUDPAddrPort([]byte("unbound"), bcast); err != nil {
		t.Fatal(err)
	}

	payloads := func(h *helper, mac, src string) []string {
		var got []string
		for _, r := range h.rest() {
			f := parseFrame(t, r)
			checkFrame(t, f, false) // sent by the kernel
			if f.ethDst.String() != "ff:ff:ff:ff:ff:ff" || f.ethSrc.String() != mac {
				t.Errorf("%q: Ethernet %s -> %s", f.payload, f.ethSrc, f.ethDst)
			}
			if string(f.payload) != "unbound" && (f.srcIP.String() != src || f.srcPort != 67) {
				t.Errorf("%q: from %s:%d, want %s:67", f.payload, f.srcIP, f.srcPort, src)
			}
			got = append(got, string(f.payload))
		}
		slices.Sort(got)
		return got
	}
	if got := payloads(cap1, macA1, "192.0.2.1"); !slices.Equal(got, []string{"via a1"}) {
		t.Errorf("b1, the peer of a1, received %q; want only \"via a1\"", got)
	}
	if got := payloads(cap2, macA2, "192.0.2.129"); !slices.Equal(got, []string{"unbound", "via a2"}) {
		t.Errorf("b2, the peer of a2, received %q; want \"unbound\" and \"via a2\"", got)
	}

	// Unicast, routed: to a relay agent's giaddr:67 and a client's
	// ciaddr:68.
	run(t, "ip", "-n", a.NSB, "addr", "add", "192.0.2.2/25", "dev", ifB1)
	for _, port := range []uint16{67, 68} {
		recv := startHelper(t, a.NSB, "udprecv", args{Port: int(port), Max: 1, WaitMS: 10000})
		if err := c1.SendTo([]byte("unicast"), netip.AddrPortFrom(ipB1, port)); err != nil {
			t.Fatal(err)
		}
		if got, want := recv.rest(), []string{fmt.Sprintf("DGRAM 192.0.2.1:67 %x", "unicast")}; !slices.Equal(got, want) {
			t.Errorf("to %s:%d: received %q, want %q", ipB1, port, got, want)
		}
	}
}

// (5) Listen on an interface that does not exist says so.
func TestListenMissingInterface(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"pxednosuch0", "pxed-name-longer-than-ifnamsiz"} {
		c, err := Listen(name, 67)
		if err == nil {
			c.Close()
			t.Fatalf("Listen(%q) succeeded", name)
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
			t.Errorf("Listen(%q): error does not name the interface: %v", name, err)
		}
		t.Logf("Listen(%q): %v", name, err)
		if _, err := InterfaceAddr(name); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("InterfaceAddr(%q): %v", name, err)
		}
	}
	_, err := Listen("pxednosuch0", 67)
	if !errors.Is(err, ErrNoInterface) || !strings.Contains(err.Error(), "no such network interface") {
		t.Errorf("Listen on a missing interface: %v, want ErrNoInterface", err)
	}
	if _, err := Listen("lo", 70000); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("Listen on port 70000: %v", err)
	}
}

// (6) Two Conns on two interfaces share port 67, each receiving only its
// own interface's traffic.
func TestTwoConnsSamePort(t *testing.T) {
	t.Parallel()
	runScenario(t, "two-conns", twoLinkTopology(t))
}

func scenarioTwoConns(t *testing.T, a args) {
	c1, c2 := listen(t, ifA1, 67), listen(t, ifA2, 67)
	buf := make([]byte, 1500)
	for _, tc := range []struct {
		from       string
		conn, idle *Conn
	}{{ifB1, c1, c2}, {ifB2, c2, c1}} {
		payload := []byte("DHCPDISCOVER from " + tc.from)
		sendUDP(t, a.NSB, tc.from, 68, "255.255.255.255:67", payload)
		if err := tc.conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, src, dst, err := tc.conn.ReadFrom(buf)
		if err != nil || !bytes.Equal(buf[:n], payload) || src.String() != "0.0.0.0:68" || dst.String() != "255.255.255.255" {
			t.Fatalf("Conn on %s: %q from %s to %s, %v; want %q", tc.conn.Interface().Name, buf[:n], src, dst, err, payload)
		}
		if err := tc.idle.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if n, _, _, err := tc.idle.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Conn on %s received %q (%v), sent on the other link", tc.idle.Interface().Name, buf[:n], err)
		}
	}
}

// Interface reports the interface, with or without IPv4 addresses, and
// Refresh follows changes.
func TestInterfaceAndRefresh(t *testing.T) {
	t.Parallel()
	runScenario(t, "interface-refresh", pairTopology(t, false))
}

func scenarioInterfaceRefresh(t *testing.T, a args) {
	// An interface that is down is no error either.
	run(t, "ip", "link", "set", ifA1, "down")
	down, err := Listen(ifA1, 0)
	if err != nil {
		t.Fatalf("Listen on an interface that is down: %v", err)
	}
	if down.Interface().Flags&net.FlagUp != 0 {
		t.Errorf("interface down, but Flags = %v", down.Interface().Flags)
	}
	down.Close()
	run(t, "ip", "link", "set", ifA1, "up")

	c := listen(t, ifA1, 0)
	info := c.Interface()
	if info.Name != ifA1 || info.Index == 0 || info.HardwareType != ARPHRDEther ||
		info.HardwareAddr.String() != macA1 || info.MTU != 1500 || len(info.Addrs) != 0 || info.Flags&net.FlagUp == 0 {
		t.Fatalf("Interface() = %+v", info)
	}
	if _, ok := info.Addr(); ok {
		t.Fatal("Addr() reports an address on an interface without one")
	}
	if _, err := InterfaceAddr(ifA1); !errors.Is(err, ErrNoIPv4Address) || !strings.Contains(err.Error(), ifA1) {
		t.Fatalf("InterfaceAddr without an address: %v", err)
	}
	if p := c.LocalAddr().Port(); p == 0 {
		t.Fatal("LocalAddr has port 0")
	}

	run(t, "ip", "addr", "add", "192.0.2.1/24", "dev", ifA1)
	run(t, "ip", "addr", "add", "198.18.0.1/15", "dev", ifA1)
	run(t, "ip", "link", "set", ifA1, "mtu", "1400")
	if got := c.Interface(); len(got.Addrs) != 0 {
		t.Fatalf("Interface changed before Refresh: %+v", got)
	}
	if err := c.Refresh(); err != nil {
		t.Fatal(err)
	}
	info = c.Interface()
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("198.18.0.1/15")}
	if !slices.Equal(info.Addrs, want) || info.MTU != 1400 {
		t.Fatalf("after Refresh: %+v, want addresses %v and MTU 1400", info, want)
	}
	if addr, err := InterfaceAddr(ifA1); err != nil || addr != ipA1 {
		t.Fatalf("InterfaceAddr = %s, %v; want %s", addr, err, ipA1)
	}
	// The MTU bounds SendL2.
	if err := c.SendL2(make([]byte, 1400-HeaderOverhead+1), mustMAC(macB1), ipA1, ipB1, 67, 68); err == nil || !strings.Contains(err.Error(), "MTU") {
		t.Fatalf("SendL2 over the MTU: %v", err)
	}

	// The interface deleted, then made again under the same name.
	run(t, "ip", "link", "del", ifA1)
	if err := c.Refresh(); !errors.Is(err, ErrNoInterface) {
		t.Fatalf("Refresh after the interface is gone: %v", err)
	}
	run(t, "ip", "link", "add", ifA1, "type", "veth", "peer", "name", "a1peer")
	if err := c.Refresh(); !errors.Is(err, ErrInterfaceReplaced) {
		t.Fatalf("Refresh after the interface was made again: %v", err)
	}
	if got := c.Interface(); !slices.Equal(got.Addrs, want) {
		t.Fatalf("a failed Refresh changed Interface: %+v", got)
	}
}

// On loopback, which is not Ethernet: Listen works, SendL2 says why it
// does not, and ReadFrom does not allocate.
func TestLoopbackAndReadAllocations(t *testing.T) {
	t.Parallel()
	requireNetns(t)
	runScenario(t, "loopback", args{NSA: newNetns(t, "a")})
}

func scenarioLoopback(t *testing.T, a args) {
	c := listen(t, "lo", 0)
	if ht := c.Interface().HardwareType; ht != unix.ARPHRD_LOOPBACK {
		t.Errorf("loopback hardware type %d", ht)
	}
	err := c.SendL2([]byte("x"), mustMAC(macB1), ipA1, ipB1, 67, 68)
	if !errors.Is(err, ErrNotEthernet) || !strings.Contains(err.Error(), `lo`) {
		t.Fatalf("SendL2 on loopback: %v, want ErrNotEthernet", err)
	}

	client, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), c.LocalAddr().Port())
	const runs = 50
	for range runs + 1 { // AllocsPerRun calls once more to warm up
		if _, err := client.WriteToUDPAddrPort([]byte("DHCPDISCOVER"), to); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	var (
		n       int
		dst     netip.Addr
		readErr error
	)
	allocs := testing.AllocsPerRun(runs, func() {
		n, _, dst, readErr = c.ReadFrom(buf)
	})
	if readErr != nil || string(buf[:n]) != "DHCPDISCOVER" || dst.String() != "127.0.0.1" {
		t.Fatalf("ReadFrom: %q to %s, %v", buf[:n], dst, readErr)
	}
	if allocs != 0 {
		t.Fatalf("ReadFrom allocates %v times per datagram", allocs)
	}
}

// Without the privileges, Listen says which it needs.
func TestListenNeedsPrivilege(t *testing.T) {
	t.Parallel()
	a := pairTopology(t, true)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		if os.Getenv("PXED_E2E") == "1" {
			t.Fatalf("setpriv (util-linux) is not installed, and PXED_E2E=1 requires it")
		}
		t.Skip("setpriv (util-linux) is not installed")
	}
	// Root, less CAP_NET_RAW and CAP_NET_BIND_SERVICE.
	const caps = "-net_raw,-net_bind_service"
	runScenario(t, "needs-privilege", a, setpriv, "--inh-caps="+caps, "--ambient-caps=-all", "--bounding-set="+caps, "--")
}

func scenarioNeedsPrivilege(t *testing.T, a args) {
	// Port 67 needs CAP_NET_BIND_SERVICE; any port on Ethernet needs
	// CAP_NET_RAW for the AF_PACKET socket.
	for _, port := range []int{67, 0} {
		c, err := Listen(ifA1, port)
		if err == nil {
			c.Close()
			t.Fatalf("Listen(%q, %d) succeeded without CAP_NET_RAW and CAP_NET_BIND_SERVICE", ifA1, port)
		}
		t.Logf("Listen(%q, %d): %v", ifA1, port, err)
		if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "needs root or CAP_NET_RAW/CAP_NET_BIND_SERVICE") ||
			!strings.Contains(err.Error(), `"`+ifA1+`"`) {
			t.Errorf("Listen(%q, %d): %v", ifA1, port, err)
		}
	}
}

// SendL2 and SendTo from many goroutines at once: every frame arrives
// whole.
func TestSendConcurrently(t *testing.T) {
	t.Parallel()
	runScenario(t, "sendl2-concurrency", pairTopology(t, true))
}

func scenarioSendL2Concurrency(t *testing.T, a args) {
	c := listen(t, ifA1, 67)
	const goroutines, each = 4, 40
	capt := startHelper(t, a.NSB, "capture", args{Iface: ifB1, Port: 68, Max: 2 * goroutines * each, WaitMS: 20000})
	want := map[string]bool{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for g := range goroutines {
		for i := range each {
			want[fmt.Sprintf("l2 %d %d", g, i)] = true
			want[fmt.Sprintf("udp %d %d", g, i)] = true
		}
		wg.Go(func() {
			for i := range each {
				l2 := append([]byte(fmt.Sprintf("l2 %d %d", g, i)), make([]byte, 200+g)...)
				if err := c.SendL2(l2, mustMAC(macB1), ipA1, netip.MustParseAddr("192.0.2.77"), 67, 68); err != nil {
					mu.Lock()
					t.Errorf("SendL2: %v", err)
					mu.Unlock()
				}
				if err := c.SendTo([]byte(fmt.Sprintf("udp %d %d", g, i)), netip.MustParseAddrPort("255.255.255.255:68")); err != nil {
					mu.Lock()
					t.Errorf("SendTo: %v", err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	got := capt.rest()

	// SendL2 does not allocate either: its buffer, sockaddr and callback
	// are pooled.
	payload, mac, yiaddr := make([]byte, 300), mustMAC(macB1), netip.MustParseAddr("192.0.2.77")
	allocs := testing.AllocsPerRun(20, func() {
		if err := c.SendL2(payload, mac, ipA1, yiaddr, 67, 68); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("SendL2: %v allocations per call", allocs)
	}
	for _, r := range got {
		f := parseFrame(t, r)
		checkFrame(t, f, bytes.HasPrefix(f.payload, []byte("l2 ")))
		key := string(bytes.TrimRight(f.payload, "\x00"))
		if !want[key] {
			t.Errorf("unexpected or repeated frame %q", key)
		}
		delete(want, key)
	}
	if len(want) != 0 {
		t.Errorf("%d of %d frames did not arrive", len(want), 2*goroutines*each)
	}
}
