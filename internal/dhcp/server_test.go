package dhcp

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pxed/internal/config"
	"pxed/internal/lease"
	"pxed/internal/lease/bolt"
)

// sent is one datagram the fake conn was asked to send.
type sent struct {
	how    string // "udp" or "l2"
	dst    netip.AddrPort
	mac    net.HardwareAddr
	src    netip.Addr
	packet *Packet
}

// fakeConn records sends; reads block until Close.
type fakeConn struct {
	mu     sync.Mutex
	sent   []sent
	notify chan struct{}
	closed chan struct{}
	once   sync.Once
	bad    error // a reply that did not parse
}

func newFakeConn() *fakeConn {
	return &fakeConn{notify: make(chan struct{}, 100), closed: make(chan struct{})}
}

func (c *fakeConn) ReadFrom([]byte) (int, netip.AddrPort, netip.Addr, error) {
	<-c.closed
	return 0, netip.AddrPort{}, netip.Addr{}, net.ErrClosed
}

func (c *fakeConn) record(s sent, b []byte) error {
	cp := append([]byte(nil), b...)
	cp[0] = opRequest // so Parse accepts it as it would a request; op is checked separately
	p, err := Parse(cp)
	if err != nil {
		c.mu.Lock()
		c.bad = err
		c.mu.Unlock()
		return err
	}
	p.Op = b[0]
	s.packet = p
	c.mu.Lock()
	c.sent = append(c.sent, s)
	c.mu.Unlock()
	c.notify <- struct{}{}
	return nil
}

func (c *fakeConn) SendTo(b []byte, dst netip.AddrPort) error {
	return c.record(sent{how: "udp", dst: dst}, b)
}

func (c *fakeConn) SendL2(b []byte, mac net.HardwareAddr, src, dst netip.Addr, sport, dport uint16) error {
	return c.record(sent{how: "l2", dst: netip.AddrPortFrom(dst, dport), mac: mac, src: src}, b)
}

func (c *fakeConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

// next waits for the next reply, or fails.
func (c *fakeConn) next(t *testing.T) sent {
	t.Helper()
	select {
	case <-c.notify:
	case <-time.After(5 * time.Second):
		t.Fatal("no reply")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sent[0]
	c.sent = c.sent[1:]
	return s
}

// none asserts no reply comes.
func (c *fakeConn) none(t *testing.T) {
	t.Helper()
	select {
	case <-c.notify:
		c.mu.Lock()
		s := c.sent[0]
		c.mu.Unlock()
		t.Fatalf("unexpected reply %s to %s: type %s", s.how, s.dst, msgName(s.packet.Type()))
	case <-time.After(100 * time.Millisecond):
	}
}

func ptr[T any](v T) *T { return &v }

// seedNetwork is the first seed's dhcpd.conf, moved to 192.0.2.0/24.
func seedNetwork() *config.Network {
	return &config.Network{
		Authoritative: true,
		Params:        config.Params{AllowBootp: ptr(true), AllowBooting: ptr(true)},
		Subnets: []config.Subnet{{
			Network: "192.0.2.0/24",
			Params: config.Params{
				DefaultLeaseTime: 120, MaxLeaseTime: 120,
				NextServer: "192.0.2.166", Filename: ptr("pxelinux.0"),
				Options: map[string]string{
					"routers": "192.0.2.166", "subnet-mask": "255.255.255.0", "nis-domain": "example.com",
					"domain-name": "example.com", "domain-name-servers": "192.0.2.166", "time-offset": "-18000",
				},
			},
			Pools: []config.Pool{{Ranges: []config.Range{{Start: "192.0.2.199", End: "192.0.2.254", DynamicBootp: true}}}},
		}},
		Hosts: []config.Host{
			{Name: "test_pvm", MAC: "00:16:3e:72:79:e3", FixedAddresses: []string{"192.0.2.199"}},
			{Name: "test_hvm", MAC: "00:16:3e:72:79:e4", FixedAddresses: []string{"192.0.2.177"}},
		},
	}
}

type rig struct {
	srv   *Server
	port  *Port
	conn  *fakeConn
	alloc *lease.Allocator
}

func newRig(t testing.TB, n *config.Network) *rig {
	t.Helper()
	plan, _, err := Compile(n)
	if err != nil {
		t.Fatal(err)
	}
	store, err := bolt.Open(filepath.Join(t.TempDir(), "leases.db"))
	if err != nil {
		t.Fatal(err)
	}
	alloc, err := lease.NewAllocator(context.Background(), store, lease.Options{Pools: plan.Pools(), Reserved: plan.Reserved})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alloc.Close() })
	conn := newFakeConn()
	return &rig{
		srv:   &Server{Plan: plan, Leases: alloc},
		port:  &Port{Conn: conn, Name: "veth0", Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}, MTU: 1500},
		conn:  conn,
		alloc: alloc,
	}
}

// msg builds a client message of type t (0: BOOTP with cookie) from mac.
type msg struct {
	t        uint8
	mac      string
	opts     map[uint8][]byte
	ciaddr   string
	giaddr   string
	flags    uint16
	noCookie bool
}

func (m msg) bytes() []byte {
	hw, _ := net.ParseMAC(m.mac)
	b := make([]byte, headerLen)
	b[0], b[1], b[2] = opRequest, 1, 6
	binary.BigEndian.PutUint32(b[4:], 0x1234)
	binary.BigEndian.PutUint16(b[10:], m.flags)
	if m.ciaddr != "" {
		a := netip.MustParseAddr(m.ciaddr).As4()
		copy(b[12:], a[:])
	}
	if m.giaddr != "" {
		a := netip.MustParseAddr(m.giaddr).As4()
		copy(b[24:], a[:])
	}
	copy(b[28:], hw)
	if m.noCookie {
		return b
	}
	b = append(b, magicCookie[:]...)
	if m.t != 0 {
		b = append(b, optMessageType, 1, m.t)
	}
	for code, v := range m.opts {
		b = append(b, code, byte(len(v)))
		b = append(b, v...)
	}
	return append(b, optEnd)
}

func ip4(s string) []byte { a := netip.MustParseAddr(s).As4(); return a[:] }

func (r *rig) send(m msg) {
	src := netip.MustParseAddrPort("0.0.0.0:68")
	dst := broadcastAddr
	if m.ciaddr != "" {
		src = netip.AddrPortFrom(netip.MustParseAddr(m.ciaddr), 68)
		dst = netip.MustParseAddr("192.0.2.1")
	}
	if m.giaddr != "" {
		src = netip.AddrPortFrom(netip.MustParseAddr(m.giaddr), 67)
		dst = netip.MustParseAddr("192.0.2.1")
	}
	r.srv.Handle(context.Background(), r.port, m.bytes(), src, dst)
}

func TestSeedFixedHostGetsItsAddressAndBootInfo(t *testing.T) {
	r := newRig(t, seedNetwork())
	r.send(msg{t: msgDiscover, mac: "00:16:3E:72:79:E3", opts: map[uint8][]byte{optParamRequest: {1, 2, 3, 6, 15, 40}}})
	s := r.conn.next(t)
	p := s.packet
	if p.Type() != msgOffer || p.YIAddr.String() != "192.0.2.199" {
		t.Fatalf("got %s yiaddr %s, want OFFER of the fixed 192.0.2.199", msgName(p.Type()), p.YIAddr)
	}
	if s.how != "l2" || s.mac.String() != "00:16:3e:72:79:e3" || s.dst.String() != "192.0.2.199:68" || s.src.String() != "192.0.2.1" {
		t.Fatalf("delivery %s to %s (%s) from %s: want unicast at L2 to the client's MAC and yiaddr (RFC 2131 §4.1)", s.how, s.dst, s.mac, s.src)
	}
	if p.SIAddr.String() != "192.0.2.166" || p.File != "pxelinux.0" {
		t.Fatalf("siaddr %s file %q", p.SIAddr, p.File)
	}
	want := map[uint8][]byte{
		optServerID: ip4("192.0.2.1"), 1: ip4("255.255.255.0"), 3: ip4("192.0.2.166"), 6: ip4("192.0.2.166"),
		2: {0xff, 0xff, 0xb9, 0xb0}, 15: []byte("example.com"), 40: []byte("example.com"), optLeaseTime: {0, 0, 0, 120},
	}
	for code, v := range want {
		if !bytes.Equal(p.Options[code], v) {
			t.Errorf("option %d = %v, want %v", code, p.Options[code], v)
		}
	}
	// REQUEST (selecting) → ACK, also to the fixed address.
	r.send(msg{t: msgRequest, mac: "00:16:3e:72:79:e3", opts: map[uint8][]byte{optServerID: ip4("192.0.2.1"), optRequestedIP: ip4("192.0.2.199")}})
	s = r.conn.next(t)
	if s.packet.Type() != msgAck || s.packet.YIAddr.String() != "192.0.2.199" {
		t.Fatalf("got %s %s", msgName(s.packet.Type()), s.packet.YIAddr)
	}
}

func TestFixedAddressInPoolNeverGivenToOthers(t *testing.T) {
	n := seedNetwork()
	n.Subnets[0].Pools[0].Ranges[0] = config.Range{Start: "192.0.2.199", End: "192.0.2.203"}
	r := newRig(t, n)
	seen := map[string]bool{}
	for i := range 4 {
		mac := net.HardwareAddr{2, 0, 0, 0, 0, byte(i)}.String()
		r.send(msg{t: msgDiscover, mac: mac})
		s := r.conn.next(t)
		ip := s.packet.YIAddr.String()
		if ip == "192.0.2.199" {
			t.Fatalf("client %s was offered 192.0.2.199, the fixed address of test_pvm", mac)
		}
		r.send(msg{t: msgRequest, mac: mac, opts: map[uint8][]byte{optServerID: ip4("192.0.2.1"), optRequestedIP: ip4(ip)}})
		if a := r.conn.next(t); a.packet.Type() != msgAck {
			t.Fatalf("%s: %s", mac, msgName(a.packet.Type()))
		}
		seen[ip] = true
	}
	if len(seen) != 4 {
		t.Fatalf("4 clients got %d distinct addresses: %v", len(seen), seen)
	}
	// The pool (minus the fixed address) is full: a fifth client gets nothing.
	r.send(msg{t: msgDiscover, mac: "02:00:00:00:00:09"})
	r.conn.none(t)
	// A client asking for the fixed address is refused; by INIT-REBOOT it
	// gets no answer at all, having no lease here (RFC 2131 §4.3.2).
	r.send(msg{t: msgRequest, mac: "02:00:00:00:00:0a", opts: map[uint8][]byte{optServerID: ip4("192.0.2.1"), optRequestedIP: ip4("192.0.2.199")}})
	if s := r.conn.next(t); s.packet.Type() != msgNak || s.how != "udp" || s.dst.String() != "255.255.255.255:68" {
		t.Fatalf("got %s %s to %s; want a broadcast NAK", msgName(s.packet.Type()), s.how, s.dst)
	}
	r.send(msg{t: msgRequest, mac: "02:00:00:00:00:0a", opts: map[uint8][]byte{optRequestedIP: ip4("192.0.2.199")}})
	r.conn.none(t)
}

func TestDeliveryRules(t *testing.T) {
	r := newRig(t, seedNetwork())
	// Broadcast flag set: broadcast.
	r.send(msg{t: msgDiscover, mac: "02:00:00:00:01:01", flags: 0x8000})
	if s := r.conn.next(t); s.how != "udp" || s.dst.String() != "255.255.255.255:68" {
		t.Fatalf("broadcast flag: %s to %s", s.how, s.dst)
	}
	// Relayed: to the relay's port 67, option 82 echoed, subnet by giaddr.
	agent := []byte{1, 4, 'p', 'o', 'r', 't'}
	r.send(msg{t: msgDiscover, mac: "02:00:00:00:01:02", giaddr: "192.0.2.254", opts: map[uint8][]byte{optRelayAgent: agent}})
	s := r.conn.next(t)
	if s.how != "udp" || s.dst.String() != "192.0.2.254:67" || !bytes.Equal(s.packet.Options[optRelayAgent], agent) {
		t.Fatalf("relay: %s to %s, option 82 %v", s.how, s.dst, s.packet.Options[optRelayAgent])
	}
	if s.packet.GIAddr.String() != "192.0.2.254" {
		t.Fatalf("giaddr not kept: %s", s.packet.GIAddr)
	}
	// A relay on a network with no subnet: silence.
	r.send(msg{t: msgDiscover, mac: "02:00:00:00:01:03", giaddr: "198.51.100.1"})
	r.conn.none(t)
}

func TestLifecycle(t *testing.T) {
	r := newRig(t, seedNetwork())
	mac := "02:00:00:00:02:01"
	r.send(msg{t: msgDiscover, mac: mac})
	ip := r.conn.next(t).packet.YIAddr
	r.send(msg{t: msgRequest, mac: mac, opts: map[uint8][]byte{optServerID: ip4("192.0.2.1"), optRequestedIP: ip.AsSlice()}})
	if s := r.conn.next(t); s.packet.Type() != msgAck {
		t.Fatal(msgName(s.packet.Type()))
	}
	if l, ok := r.alloc.LeaseAt(ip); !ok || l.State != lease.Bound {
		t.Fatalf("lease after ACK: %+v %v", l, ok)
	}
	// RENEWING: unicast from ciaddr → ACK to ciaddr.
	r.send(msg{t: msgRequest, mac: mac, ciaddr: ip.String()})
	if s := r.conn.next(t); s.packet.Type() != msgAck || s.dst.String() != ip.String()+":68" || s.packet.CIAddr != ip {
		t.Fatalf("renew: %s to %s ciaddr %s", msgName(s.packet.Type()), s.dst, s.packet.CIAddr)
	}
	// INFORM: options, no lease, to ciaddr.
	r.send(msg{t: msgInform, mac: mac, ciaddr: ip.String(), opts: map[uint8][]byte{optParamRequest: {3, 6}}})
	s := r.conn.next(t)
	if s.packet.Type() != msgAck || s.packet.Options[optLeaseTime] != nil || s.packet.YIAddr.IsValid() && !s.packet.YIAddr.IsUnspecified() || s.dst.String() != ip.String()+":68" {
		t.Fatalf("inform: %s lease %v yiaddr %s to %s", msgName(s.packet.Type()), s.packet.Options[optLeaseTime], s.packet.YIAddr, s.dst)
	}
	if !bytes.Equal(s.packet.Options[3], ip4("192.0.2.166")) {
		t.Fatalf("inform routers %v", s.packet.Options[3])
	}
	// Another client cannot take the address.
	r.send(msg{t: msgRequest, mac: "02:00:00:00:02:02", opts: map[uint8][]byte{optServerID: ip4("192.0.2.1"), optRequestedIP: ip.AsSlice()}})
	if s := r.conn.next(t); s.packet.Type() != msgNak {
		t.Fatalf("stealing a bound address: %s", msgName(s.packet.Type()))
	}
	// RELEASE frees it.
	r.send(msg{t: msgRelease, mac: mac, ciaddr: ip.String(), opts: map[uint8][]byte{optServerID: ip4("192.0.2.1")}})
	r.conn.none(t)
	if l, _ := r.alloc.LeaseAt(ip); l.State != lease.Released {
		t.Fatalf("after RELEASE: %v", l.State)
	}
	// DECLINE quarantines.
	r.send(msg{t: msgDiscover, mac: mac})
	ip2 := r.conn.next(t).packet.YIAddr
	r.send(msg{t: msgRequest, mac: mac, opts: map[uint8][]byte{optServerID: ip4("192.0.2.1"), optRequestedIP: ip2.AsSlice()}})
	r.conn.next(t)
	r.send(msg{t: msgDecline, mac: mac, opts: map[uint8][]byte{optServerID: ip4("192.0.2.1"), optRequestedIP: ip2.AsSlice()}})
	r.conn.none(t)
	if l, _ := r.alloc.LeaseAt(ip2); l.State != lease.Declined {
		t.Fatalf("after DECLINE: %v", l.State)
	}
	r.send(msg{t: msgDiscover, mac: "02:00:00:00:02:03"})
	if got := r.conn.next(t).packet.YIAddr; got == ip2 {
		t.Fatalf("declined address %s offered again", ip2)
	}
}

func TestRequestWrongNetworkNAKOnlyWhenAuthoritative(t *testing.T) {
	for _, auth := range []bool{true, false} {
		n := seedNetwork()
		n.Authoritative = auth
		r := newRig(t, n)
		r.send(msg{t: msgRequest, mac: "02:00:00:00:03:01", opts: map[uint8][]byte{optRequestedIP: ip4("203.0.113.5")}})
		if auth {
			s := r.conn.next(t)
			if s.packet.Type() != msgNak || !strings.Contains(string(s.packet.Options[optMessage]), "not on this network") {
				t.Fatalf("authoritative: %s %q", msgName(s.packet.Type()), s.packet.Options[optMessage])
			}
		} else {
			r.conn.none(t)
		}
	}
}

func TestBOOTP(t *testing.T) {
	r := newRig(t, seedNetwork())
	// RFC 951 client (no cookie), fixed host.
	r.send(msg{mac: "00:16:3e:72:79:e4", noCookie: true})
	s := r.conn.next(t)
	if s.packet.YIAddr.String() != "192.0.2.177" || s.packet.File != "pxelinux.0" || s.packet.Options != nil {
		t.Fatalf("bootp fixed: yiaddr %s file %q options %v", s.packet.YIAddr, s.packet.File, s.packet.Options)
	}
	// Dynamic BOOTP client: an address from the dynamic-bootp range, infinite lease.
	r.send(msg{mac: "02:00:00:00:04:01", opts: map[uint8][]byte{}})
	s = r.conn.next(t)
	if !s.packet.YIAddr.IsValid() || s.packet.Options[optMessageType] != nil {
		t.Fatalf("dynamic bootp: %s %v", s.packet.YIAddr, s.packet.Options)
	}
	if l, ok := r.alloc.LeaseAt(s.packet.YIAddr); !ok || !l.Expiry.IsZero() || l.State != lease.Bound {
		t.Fatalf("bootp lease %+v: want bound, infinite", l)
	}
	// deny bootp: silence.
	n := seedNetwork()
	n.AllowBootp = ptr(false)
	r2 := newRig(t, n)
	r2.send(msg{mac: "00:16:3e:72:79:e4", noCookie: true})
	r2.conn.none(t)
	// A range without dynamic-bootp serves no BOOTP client.
	n = seedNetwork()
	n.Subnets[0].Pools[0].Ranges[0].DynamicBootp = false
	r3 := newRig(t, n)
	r3.send(msg{mac: "02:00:00:00:04:02", noCookie: true})
	r3.conn.none(t)
}

func TestPXEBootSelection(t *testing.T) {
	n := seedNetwork()
	n.Subnets[0].BootFiles = map[string]string{"efi-x64": "ipxe.efi", "efi-x64-http": "http://192.0.2.1:8080/ipxe.efi"}
	n.Subnets[0].IPXEScript = "http://192.0.2.1:8080/boot.ipxe"
	r := newRig(t, n)
	pxe := []byte("PXEClient:Arch:00007:UNDI:003016")
	for _, tc := range []struct {
		name   string
		opts   map[uint8][]byte
		file   string
		vendor string
		opt67  bool
	}{
		{"bios", map[uint8][]byte{optVendorClass: []byte("PXEClient:Arch:00000:UNDI:002001"), optClientArch: {0, 0}}, "pxelinux.0", "PXEClient", false},
		{"uefi x64", map[uint8][]byte{optVendorClass: pxe, optClientArch: {0, 7}, optParamRequest: {66, 67}}, "ipxe.efi", "PXEClient", true},
		{"uefi http", map[uint8][]byte{optVendorClass: []byte("HTTPClient:Arch:00016"), optClientArch: {0, 16}}, "http://192.0.2.1:8080/ipxe.efi", "HTTPClient", false},
		{"ipxe", map[uint8][]byte{optVendorClass: pxe, optClientArch: {0, 7}, optUserClass: []byte("iPXE")}, "http://192.0.2.1:8080/boot.ipxe", "PXEClient", false},
		{"no vendor class", map[uint8][]byte{}, "pxelinux.0", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.send(msg{t: msgDiscover, mac: "02:00:00:00:05:01", opts: tc.opts})
			p := r.conn.next(t).packet
			if p.File != tc.file || string(p.Options[optVendorClass]) != tc.vendor {
				t.Fatalf("file %q vendor %q; want %q %q", p.File, p.Options[optVendorClass], tc.file, tc.vendor)
			}
			if tc.vendor == "PXEClient" && !bytes.Equal(p.Options[optVendorOpts], pxeVendorOptions) {
				t.Fatalf("option 43 = %x, want PXE discovery control 8 (boot from this reply)", p.Options[optVendorOpts])
			}
			if got := p.Options[optBootfile] != nil; got != tc.opt67 {
				t.Fatalf("option 67 present=%v, want %v", got, tc.opt67)
			}
			if tc.opt67 && string(p.Options[optTFTPServer]) != "192.0.2.166" {
				t.Fatalf("option 66 %q", p.Options[optTFTPServer])
			}
		})
	}
}

func TestDefaultNextServerWhenTFTPEnabled(t *testing.T) {
	n := seedNetwork()
	n.Subnets[0].NextServer = ""
	r := newRig(t, n)
	r.send(msg{t: msgDiscover, mac: "02:00:00:00:06:01"})
	if p := r.conn.next(t).packet; p.SIAddr.IsValid() && !p.SIAddr.IsUnspecified() {
		t.Fatalf("TFTP off: siaddr %s, want none", p.SIAddr)
	}
	r.srv.TFTPEnabled = true
	r.send(msg{t: msgDiscover, mac: "02:00:00:00:06:01"})
	if p := r.conn.next(t).packet; p.SIAddr.String() != "192.0.2.1" {
		t.Fatalf("TFTP on: siaddr %s, want our own 192.0.2.1", p.SIAddr)
	}
}

func TestProxyDHCP(t *testing.T) {
	n := seedNetwork()
	n.Proxy = true
	n.Subnets[0].Pools = nil
	r := newRig(t, n)
	pxe := map[uint8][]byte{optVendorClass: []byte("PXEClient:Arch:00000:UNDI:002001"), optClientArch: {0, 0}}
	r.send(msg{t: msgDiscover, mac: "02:00:00:00:07:01", opts: pxe})
	s := r.conn.next(t)
	p := s.packet
	if p.Type() != msgOffer || (p.YIAddr.IsValid() && !p.YIAddr.IsUnspecified()) || p.File != "pxelinux.0" || p.SIAddr.String() != "192.0.2.166" {
		t.Fatalf("proxy offer: %s yiaddr %s file %q siaddr %s", msgName(p.Type()), p.YIAddr, p.File, p.SIAddr)
	}
	if !bytes.Equal(p.Options[optVendorOpts], pxeVendorOptions) || p.Options[optLeaseTime] != nil || p.Options[3] != nil {
		t.Fatalf("proxy offer options %v", p.Options)
	}
	// A client that is not PXE: silence (the real DHCP server answers).
	r.send(msg{t: msgDiscover, mac: "02:00:00:00:07:02"})
	r.conn.none(t)
	// Port 4011: REQUEST → ACK back to the sender.
	port4011 := &Port{Conn: r.conn, Name: "veth0", Addrs: r.port.Addrs, PXE: true}
	m := msg{t: msgRequest, mac: "02:00:00:00:07:01", ciaddr: "192.0.2.50", opts: pxe}
	r.srv.Handle(context.Background(), port4011, m.bytes(), netip.MustParseAddrPort("192.0.2.50:4011"), netip.MustParseAddr("192.0.2.1"))
	s = r.conn.next(t)
	if s.packet.Type() != msgAck || s.dst.String() != "192.0.2.50:4011" || s.packet.File != "pxelinux.0" {
		t.Fatalf("4011: %s to %s file %q", msgName(s.packet.Type()), s.dst, s.packet.File)
	}
}

func TestServeStopsOnContext(t *testing.T) {
	r := newRig(t, seedNetwork())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.srv.Serve(ctx, []*Port{r.port}) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
}

func TestTwoInterfacesTwoSubnets(t *testing.T) {
	n := seedNetwork()
	n.Subnets = append(n.Subnets, config.Subnet{
		Network: "198.51.100.0/24",
		Params:  config.Params{Filename: ptr("second.0"), Options: map[string]string{"routers": "198.51.100.1"}},
		Pools:   []config.Pool{{Ranges: []config.Range{{Start: "198.51.100.10", End: "198.51.100.20"}}}},
	})
	r := newRig(t, n)
	conn2 := newFakeConn()
	port2 := &Port{Conn: conn2, Name: "veth1", Addrs: []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24")}, MTU: 1500}
	m := msg{t: msgDiscover, mac: "02:00:00:00:08:01"}
	r.srv.Handle(context.Background(), port2, m.bytes(), netip.MustParseAddrPort("0.0.0.0:68"), broadcastAddr)
	s := conn2.next(t)
	if !netip.MustParsePrefix("198.51.100.0/24").Contains(s.packet.YIAddr) || s.packet.File != "second.0" ||
		!bytes.Equal(s.packet.Options[optServerID], ip4("198.51.100.1")) || s.src.String() != "198.51.100.1" {
		t.Fatalf("second interface: yiaddr %s file %q server-id %v from %s", s.packet.YIAddr, s.packet.File, s.packet.Options[optServerID], s.src)
	}
	r.conn.none(t) // nothing left by the first interface
	r.send(m)
	if s := r.conn.next(t); !netip.MustParsePrefix("192.0.2.0/24").Contains(s.packet.YIAddr) || s.packet.File != "pxelinux.0" {
		t.Fatalf("first interface: yiaddr %s file %q", s.packet.YIAddr, s.packet.File)
	}
	conn2.none(t)
}

func TestUUIDAndHostnameRecorded(t *testing.T) {
	r := newRig(t, seedNetwork())
	uuid := append([]byte{0}, bytes.Repeat([]byte{0xab}, 16)...)
	opts := map[uint8][]byte{optClientUUID: uuid, optHostName: []byte("node7"), optVendorClass: []byte("PXEClient:Arch:00000")}
	r.send(msg{t: msgDiscover, mac: "02:00:00:00:09:01", opts: opts})
	ip := r.conn.next(t).packet.YIAddr
	opts[optServerID], opts[optRequestedIP] = ip4("192.0.2.1"), ip.AsSlice()
	r.send(msg{t: msgRequest, mac: "02:00:00:00:09:01", opts: opts})
	r.conn.next(t)
	l, ok := r.alloc.LeaseAt(ip)
	if !ok || l.UUID != strings.Repeat("ab", 16) || l.Hostname != "node7" || l.MAC.String() != "02:00:00:00:09:01" {
		t.Fatalf("lease %+v: want UUID, hostname and MAC recorded", l)
	}
}

func TestLongBootFileGoesInOption67(t *testing.T) {
	n := seedNetwork()
	long := "http://192.0.2.1:8080/" + strings.Repeat("x", 120) + ".ipxe"
	n.Subnets[0].Filename = &long
	r := newRig(t, n)
	r.send(msg{t: msgDiscover, mac: "02:00:00:00:0a:01"})
	p := r.conn.next(t).packet
	if p.File != "" || string(p.Options[optBootfile]) != long {
		t.Fatalf("file field %q, option 67 %q: a name longer than the 128-byte field must go in option 67", p.File, p.Options[optBootfile])
	}
}

// "{server}" in a boot file becomes the address the reply comes from, so
// one inventory serves clients on every interface.
func TestServerPlaceholderInBootFile(t *testing.T) {
	n := seedNetwork()
	n.Hosts[1].IPXEScript = "http://{server}:8080/ipxe/00-16-3e-72-79-e4"
	r := newRig(t, n)
	r.send(msg{t: msgDiscover, mac: "00:16:3e:72:79:e4", opts: map[uint8][]byte{optUserClass: []byte("iPXE")}})
	if p := r.conn.next(t).packet; p.File != "http://192.0.2.1:8080/ipxe/00-16-3e-72-79-e4" {
		t.Fatalf("file %q", p.File)
	}
}

// A reload swaps the view between two requests (as internal/app does: the
// new plan adopts the old one's pools, the allocator reserves its fixed
// addresses): a host added by a reload gets its fixed address, which the
// pool no longer offers to others.
func TestReloadBetweenRequests(t *testing.T) {
	n := seedNetwork()
	r := newRig(t, n)
	var cur atomic.Pointer[Plan]
	cur.Store(r.srv.Plan)
	r.srv.View = func() View { return View{Plan: cur.Load()} }
	reload := func(p *Plan) error {
		if err := p.Adopt(cur.Load()); err != nil {
			return err
		}
		if err := r.alloc.SetReserved(p.Reserved); err != nil {
			return err
		}
		cur.Store(p)
		return nil
	}
	r.send(msg{t: msgDiscover, mac: "02:00:00:00:07:01"})
	if p := r.conn.next(t).packet; p.YIAddr.String() != "192.0.2.200" {
		t.Fatalf("before: offered %s, want the pool's first free 192.0.2.200", p.YIAddr)
	}
	n2 := seedNetwork()
	n2.Hosts = append(n2.Hosts, config.Host{Name: "new", MAC: "02:00:00:00:07:02", FixedAddresses: []string{"192.0.2.201"}})
	plan, _, err := Compile(n2)
	if err != nil {
		t.Fatal(err)
	}
	if err := reload(plan); err != nil {
		t.Fatal(err)
	}
	r.send(msg{t: msgDiscover, mac: "02:00:00:00:07:02"})
	if p := r.conn.next(t).packet; p.YIAddr.String() != "192.0.2.201" {
		t.Fatalf("new host offered %s, want its fixed 192.0.2.201", p.YIAddr)
	}
	r.send(msg{t: msgDiscover, mac: "02:00:00:00:07:03"})
	if p := r.conn.next(t).packet; p.YIAddr.String() == "192.0.2.201" || !p.YIAddr.IsValid() {
		t.Fatalf("another client offered %s", p.YIAddr)
	}
	// A reload that changes the pools is refused, and the plan stays.
	n3 := seedNetwork()
	n3.Subnets[0].Pools[0].Ranges[0].End = "192.0.2.250"
	plan3, _, err := Compile(n3)
	if err != nil {
		t.Fatal(err)
	}
	if err := reload(plan3); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("reload with other pools: %v, want an error saying to restart", err)
	}
	if cur.Load() != plan {
		t.Fatal("a refused plan replaced the running one")
	}
}
