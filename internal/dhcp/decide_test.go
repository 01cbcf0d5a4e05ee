package dhcp

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"pxed/internal/bootplan"
	"pxed/internal/config"
	"pxed/internal/lease"
	"pxed/internal/lease/leasetest"
)

// Decide is driven directly here: no sockets, no delivery. Each case builds
// a View from a compiled network and a boot plan, a packet with
// ClientMessage + Parse, and a real allocator over an in-memory store.

// decRig is one View with its allocator, for direct calls of Decide.
type decRig struct {
	view  View
	port  *Port
	alloc *lease.Allocator
}

func newDecRig(t testing.TB, n *config.Network, bo bootplan.Options) *decRig {
	t.Helper()
	plan, _, err := Compile(n)
	if err != nil {
		t.Fatal(err)
	}
	alloc, err := lease.NewAllocator(context.Background(), leasetest.New(), lease.Options{Pools: plan.Pools(), Reserved: plan.Reserved})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alloc.Close() })
	return &decRig{
		view: View{Plan: plan, Boot: bootplan.New(bo)},
		// Conn stays nil: Decide never sends.
		port:  &Port{Name: "veth0", Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}, MTU: 1500},
		alloc: alloc,
	}
}

// decMsg is a client message for Decide.
type decMsg struct {
	typ    uint8
	mac    string
	ciaddr string
	opts   map[uint8][]byte
}

func (r *decRig) request(t *testing.T, m decMsg) Request {
	t.Helper()
	hw, err := net.ParseMAC(m.mac)
	if err != nil {
		t.Fatal(err)
	}
	var ci netip.Addr
	src := netip.MustParseAddrPort("0.0.0.0:68")
	dst := broadcastAddr
	if m.ciaddr != "" {
		ci = netip.MustParseAddr(m.ciaddr)
		src, dst = netip.AddrPortFrom(ci, 68), netip.MustParseAddr("192.0.2.1")
	}
	p, err := Parse(ClientMessage(m.typ, hw, 0xfeed, ci, m.opts))
	if err != nil {
		t.Fatal(err)
	}
	return Request{Packet: p, Port: r.port, Src: src, Dst: dst}
}

func (r *decRig) decide(t *testing.T, m decMsg) Outcome {
	t.Helper()
	return Decide(r.view, r.request(t, m), r.alloc)
}

func decAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// decOpt is option code of o's reply (nil: none, or no reply).
func decOpt(o Outcome, code uint8) []byte {
	if o.Reply == nil {
		return nil
	}
	for _, op := range o.Reply.opts {
		if op.code == code {
			return op.data
		}
	}
	return nil
}

func TestDecideTable(t *testing.T) {
	const (
		pvm     = "00:16:3e:72:79:e3" // seed host test_pvm, fixed 192.0.2.199
		unknown = "02:00:00:00:d0:01"
	)
	selecting := func(ip string) map[uint8][]byte {
		return map[uint8][]byte{optServerID: ip4("192.0.2.1"), optRequestedIP: ip4(ip)}
	}
	for _, tc := range []struct {
		name  string
		net   func(*config.Network)
		m     decMsg
		check func(t *testing.T, o Outcome)
	}{
		{
			name: "DISCOVER from a fixed host: OFFER of its address with next-server and filename",
			m:    decMsg{typ: msgDiscover, mac: pvm},
			check: func(t *testing.T, o Outcome) {
				if o.MessageType() != "OFFER" || o.Type != msgOffer || o.Action != Send {
					t.Fatalf("type %q action %v, want OFFER sent as it is", o.MessageType(), o.Action)
				}
				if o.YIAddr() != decAddr("192.0.2.199") || o.IP != decAddr("192.0.2.199") {
					t.Fatalf("yiaddr %s ip %s, want the fixed 192.0.2.199", o.YIAddr(), o.IP)
				}
				if o.SIAddr() != decAddr("192.0.2.166") || o.File() != "pxelinux.0" {
					t.Fatalf("siaddr %s file %q", o.SIAddr(), o.File())
				}
				if o.Boot.Why != "filename" || o.Host != "test_pvm" || o.LeaseTime != 0 {
					t.Fatalf("boot why %q host %q lease time %v", o.Boot.Why, o.Host, o.LeaseTime)
				}
			},
		},
		{
			name: "DISCOVER from an unknown client: OFFER from the pool",
			m:    decMsg{typ: msgDiscover, mac: unknown},
			check: func(t *testing.T, o Outcome) {
				if o.MessageType() != "OFFER" || o.Action != Send || o.Host != "" {
					t.Fatalf("type %q action %v host %q", o.MessageType(), o.Action, o.Host)
				}
				// 192.0.2.199 starts the pool but is test_pvm's.
				if o.YIAddr() != decAddr("192.0.2.200") {
					t.Fatalf("yiaddr %s, want the pool's first free 192.0.2.200", o.YIAddr())
				}
				if o.File() != "pxelinux.0" || o.SIAddr() != decAddr("192.0.2.166") {
					t.Fatalf("file %q siaddr %s", o.File(), o.SIAddr())
				}
			},
		},
		{
			name: "REQUEST selecting a pool address: commit, then ACK",
			m:    decMsg{typ: msgRequest, mac: unknown, opts: selecting("192.0.2.210")},
			check: func(t *testing.T, o Outcome) {
				if o.Action != CommitThenSend || o.MessageType() != "ACK" || o.State != "selecting" {
					t.Fatalf("action %v type %q state %q, want CommitThenSend ACK selecting", o.Action, o.MessageType(), o.State)
				}
				hw, _ := net.ParseMAC(unknown)
				if o.Lease.Client != lease.Key(nil, hw) || o.Lease.Client == "" || o.Lease.Want != decAddr("192.0.2.210") || len(o.Lease.Pools) == 0 {
					t.Fatalf("lease request %+v", o.Lease)
				}
				if o.IP != decAddr("192.0.2.210") || o.YIAddr() != o.IP || o.LeaseTime != 120*time.Second {
					t.Fatalf("ip %s yiaddr %s lease time %v", o.IP, o.YIAddr(), o.LeaseTime)
				}
			},
		},
		{
			name: "REQUEST from a fixed host for its own address: ACK with nothing to commit",
			m:    decMsg{typ: msgRequest, mac: pvm, opts: selecting("192.0.2.199")},
			check: func(t *testing.T, o Outcome) {
				if o.Action != Send || o.MessageType() != "ACK" || o.YIAddr() != decAddr("192.0.2.199") || o.Lease.Client != "" {
					t.Fatalf("action %v type %q yiaddr %s lease %+v", o.Action, o.MessageType(), o.YIAddr(), o.Lease)
				}
			},
		},
		{
			name: "REQUEST from a fixed host for a wrong address (authoritative): NAK",
			m:    decMsg{typ: msgRequest, mac: pvm, opts: map[uint8][]byte{optRequestedIP: ip4("192.0.2.220")}},
			check: func(t *testing.T, o Outcome) {
				if o.MessageType() != "NAK" || o.Type != msgNak || o.Action != Send {
					t.Fatalf("type %q action %v, want NAK", o.MessageType(), o.Action)
				}
				if o.YIAddr().IsValid() || o.IP != decAddr("192.0.2.220") || !strings.Contains(o.State, "fixed-address 192.0.2.199") {
					t.Fatalf("yiaddr %s ip %s reason %q", o.YIAddr(), o.IP, o.State)
				}
				if got := string(decOpt(o, optMessage)); !strings.Contains(got, "test_pvm") {
					t.Fatalf("NAK message %q, want the reason", got)
				}
			},
		},
		{
			name: "REQUEST from a fixed host for a wrong address (not authoritative): silence",
			net:  func(n *config.Network) { n.Authoritative = false },
			m:    decMsg{typ: msgRequest, mac: pvm, opts: map[uint8][]byte{optRequestedIP: ip4("192.0.2.220")}},
			check: func(t *testing.T, o Outcome) {
				if o.Reply != nil || o.MessageType() != "" {
					t.Fatalf("reply %q, want silence", o.MessageType())
				}
				if !strings.Contains(o.Silence, "not authoritative") || !strings.Contains(o.Silence, "fixed-address") || o.SilenceLevel != slog.LevelInfo {
					t.Fatalf("silence %q at %v", o.Silence, o.SilenceLevel)
				}
			},
		},
		{
			name: "REQUEST for another server's offer: silence",
			m:    decMsg{typ: msgRequest, mac: unknown, opts: map[uint8][]byte{optServerID: ip4("192.0.2.9"), optRequestedIP: ip4("192.0.2.210")}},
			check: func(t *testing.T, o Outcome) {
				if o.Reply != nil || o.Action != Send || !strings.Contains(o.Silence, "another server") || !strings.Contains(o.Silence, "192.0.2.9") {
					t.Fatalf("reply %q action %v silence %q", o.MessageType(), o.Action, o.Silence)
				}
			},
		},
		{
			name: "DECLINE: the Decline action",
			m:    decMsg{typ: msgDecline, mac: unknown, opts: selecting("192.0.2.210")},
			check: func(t *testing.T, o Outcome) {
				hw, _ := net.ParseMAC(unknown)
				if o.Action != Decline || o.Reply != nil || o.IP != decAddr("192.0.2.210") || o.Lease.Client != lease.Key(nil, hw) {
					t.Fatalf("action %v reply %q ip %s client %q", o.Action, o.MessageType(), o.IP, o.Lease.Client)
				}
			},
		},
		{
			name: "DECLINE for another server: silence",
			m:    decMsg{typ: msgDecline, mac: unknown, opts: map[uint8][]byte{optServerID: ip4("192.0.2.9"), optRequestedIP: ip4("192.0.2.210")}},
			check: func(t *testing.T, o Outcome) {
				if o.Action != Send || o.Reply != nil || o.Silence == "" {
					t.Fatalf("action %v silence %q", o.Action, o.Silence)
				}
			},
		},
		{
			name: "RELEASE: the Release action",
			m:    decMsg{typ: msgRelease, mac: unknown, ciaddr: "192.0.2.210", opts: map[uint8][]byte{optServerID: ip4("192.0.2.1")}},
			check: func(t *testing.T, o Outcome) {
				hw, _ := net.ParseMAC(unknown)
				if o.Action != Release || o.Reply != nil || o.IP != decAddr("192.0.2.210") || o.Lease.Client != lease.Key(nil, hw) {
					t.Fatalf("action %v reply %q ip %s client %q", o.Action, o.MessageType(), o.IP, o.Lease.Client)
				}
			},
		},
		{
			name: "iPXE with a scope ipxe-script naming {server}",
			net: func(n *config.Network) {
				n.Subnets[0].IPXEScript = "http://{server}:8080/boot.ipxe"
			},
			m: decMsg{typ: msgDiscover, mac: unknown, opts: map[uint8][]byte{optUserClass: []byte("iPXE")}},
			check: func(t *testing.T, o Outcome) {
				want := "http://192.0.2.1:8080/boot.ipxe"
				if o.File() != want || o.Boot.File != want || o.Boot.ScriptURL != want {
					t.Fatalf("file %q boot %+v, want %s", o.File(), o.Boot, want)
				}
				if o.Boot.Why != "ipxe-script (user class iPXE)" {
					t.Fatalf("why %q", o.Boot.Why)
				}
			},
		},
		{
			name: "iPXE with RFC 3004 user class framing",
			net: func(n *config.Network) {
				n.Subnets[0].IPXEScript = "http://{server}:8080/boot.ipxe"
			},
			m: decMsg{typ: msgDiscover, mac: unknown, opts: map[uint8][]byte{optUserClass: append([]byte{4}, "iPXE"...)}},
			check: func(t *testing.T, o Outcome) {
				if o.File() != "http://192.0.2.1:8080/boot.ipxe" {
					t.Fatalf("file %q", o.File())
				}
			},
		},
		{
			name: "UEFI x64 (arch 7) with boot-files[efi-x64]",
			net: func(n *config.Network) {
				n.Subnets[0].BootFiles = map[string]string{"efi-x64": "efi/ipxe.efi"}
			},
			m: decMsg{typ: msgDiscover, mac: unknown, opts: map[uint8][]byte{
				optVendorClass: []byte("PXEClient:Arch:00007:UNDI:003016"), optClientArch: {0, 7},
			}},
			check: func(t *testing.T, o Outcome) {
				if o.File() != "efi/ipxe.efi" || o.Boot.Why != "boot-files[efi-x64]" || o.Boot.ScriptURL != "" {
					t.Fatalf("file %q why %q script %q", o.File(), o.Boot.Why, o.Boot.ScriptURL)
				}
				if string(decOpt(o, optVendorClass)) != "PXEClient" {
					t.Fatalf("vendor class %q, want PXEClient echoed", decOpt(o, optVendorClass))
				}
			},
		},
		{
			name: "BIOS (arch 0) with only an efi-x64 boot file: the filename",
			net: func(n *config.Network) {
				n.Subnets[0].BootFiles = map[string]string{"efi-x64": "efi/ipxe.efi"}
			},
			m: decMsg{typ: msgDiscover, mac: unknown, opts: map[uint8][]byte{optClientArch: {0, 0}}},
			check: func(t *testing.T, o Outcome) {
				if o.File() != "pxelinux.0" || o.Boot.Why != "filename" {
					t.Fatalf("file %q why %q", o.File(), o.Boot.Why)
				}
			},
		},
		{
			name: "ping-check: an offer of a fresh pool address is probed first",
			net:  func(n *config.Network) { n.PingCheck = true },
			m:    decMsg{typ: msgDiscover, mac: unknown},
			check: func(t *testing.T, o Outcome) {
				if o.Action != ProbeThenSend || o.MessageType() != "OFFER" || o.YIAddr() != decAddr("192.0.2.200") {
					t.Fatalf("action %v type %q yiaddr %s, want ProbeThenSend of an OFFER", o.Action, o.MessageType(), o.YIAddr())
				}
			},
		},
		{
			name: "ping-check: a fixed address is not probed",
			net:  func(n *config.Network) { n.PingCheck = true },
			m:    decMsg{typ: msgDiscover, mac: pvm},
			check: func(t *testing.T, o Outcome) {
				if o.Action != Send || o.YIAddr() != decAddr("192.0.2.199") {
					t.Fatalf("action %v yiaddr %s", o.Action, o.YIAddr())
				}
			},
		},
		{
			name: "INFORM: ACK with options and no address",
			m:    decMsg{typ: msgInform, mac: unknown, ciaddr: "192.0.2.230", opts: map[uint8][]byte{optParamRequest: {3}}},
			check: func(t *testing.T, o Outcome) {
				if o.MessageType() != "ACK" || o.State != "inform" || o.YIAddr().IsValid() || o.Action != Send {
					t.Fatalf("type %q state %q yiaddr %s action %v", o.MessageType(), o.State, o.YIAddr(), o.Action)
				}
				if decOpt(o, optLeaseTime) != nil || string(decOpt(o, 3)) != string(ip4("192.0.2.166")) {
					t.Fatalf("options %v", o.Reply.opts)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := seedNetwork()
			if tc.net != nil {
				tc.net(n)
			}
			r := newDecRig(t, n, bootplan.Options{})
			tc.check(t, r.decide(t, tc.m))
		})
	}
}

func TestDecideNoSubnetForPort(t *testing.T) {
	r := newDecRig(t, seedNetwork(), bootplan.Options{})
	r.port = &Port{Name: "veth9", Addrs: []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24")}}
	o := r.decide(t, decMsg{typ: msgDiscover, mac: "02:00:00:00:d1:01"})
	if o.Reply != nil || o.Action != Send {
		t.Fatalf("reply %q action %v, want silence", o.MessageType(), o.Action)
	}
	if o.Silence == "" || o.Warn == "" || !strings.HasPrefix(o.WarnKey, "nosubnet:veth9") {
		t.Fatalf("silence %q warn %q key %q, want a warning keyed by the interface", o.Silence, o.Warn, o.WarnKey)
	}
	// The same from a second client: the same key, so delivery warns once.
	o2 := r.decide(t, decMsg{typ: msgDiscover, mac: "02:00:00:00:d1:02"})
	if o2.WarnKey != o.WarnKey {
		t.Fatalf("keys %q and %q differ", o.WarnKey, o2.WarnKey)
	}
}

func TestDecideExhaustedPool(t *testing.T) {
	n := seedNetwork()
	n.Subnets[0].Pools[0].Ranges[0] = config.Range{Start: "192.0.2.240", End: "192.0.2.240"}
	r := newDecRig(t, n, bootplan.Options{})
	o := r.decide(t, decMsg{typ: msgDiscover, mac: "02:00:00:00:d2:01"})
	if o.YIAddr() != decAddr("192.0.2.240") {
		t.Fatalf("first client offered %s, want the only address", o.YIAddr())
	}
	// Under pressure the offer nobody requested goes to the next client
	// (lease/pressure.go)...
	o = r.decide(t, decMsg{typ: msgDiscover, mac: "02:00:00:00:d2:02"})
	if o.YIAddr() != decAddr("192.0.2.240") {
		t.Fatalf("second client got %q %s, want the first one's offer, reclaimed", o.MessageType(), o.YIAddr())
	}
	// ...and the first client's REQUEST, answering our OFFER, takes it.
	o = r.decide(t, decMsg{typ: msgRequest, mac: "02:00:00:00:d2:01", opts: map[uint8][]byte{optServerID: ip4("192.0.2.1"), optRequestedIP: ip4("192.0.2.240")}})
	if o.Action != CommitThenSend || !o.Lease.TakeOffered {
		t.Fatalf("SELECTING REQUEST: action %v lease %+v, want a commit that may take an offered address", o.Action, o.Lease)
	}
	if err := r.alloc.Commit(o.Lease, o.IP, time.Hour, nil); err != nil {
		t.Fatal(err)
	}
	// Bound: nothing left to offer.
	o = r.decide(t, decMsg{typ: msgDiscover, mac: "02:00:00:00:d2:03"})
	if o.Reply != nil || o.MessageType() != "" {
		t.Fatalf("third client got %q %s, want silence", o.MessageType(), o.YIAddr())
	}
	if !strings.Contains(o.Silence, "cannot offer") || o.Warn == "" || o.WarnKey != "exhausted:192.0.2.0/24" {
		t.Fatalf("silence %q warn %q key %q", o.Silence, o.Warn, o.WarnKey)
	}
}

// A client that holds its address already is offered it again without a
// probe: its own address answering ping is no conflict.
func TestDecidePingCheckSkipsTheClientsOwnAddress(t *testing.T) {
	n := seedNetwork()
	n.PingCheck = true
	r := newDecRig(t, n, bootplan.Options{})
	m := decMsg{typ: msgDiscover, mac: "02:00:00:00:d3:01"}
	o := r.decide(t, m)
	if o.Action != ProbeThenSend {
		t.Fatalf("first offer: action %v, want ProbeThenSend", o.Action)
	}
	ip := o.YIAddr()
	req := r.decide(t, decMsg{typ: msgRequest, mac: m.mac, opts: map[uint8][]byte{optServerID: ip4("192.0.2.1"), optRequestedIP: ip.AsSlice()}})
	if req.Action != CommitThenSend {
		t.Fatalf("request: action %v", req.Action)
	}
	if err := r.alloc.Commit(req.Lease, req.IP, req.LeaseTime, nil); err != nil {
		t.Fatal(err)
	}
	o = r.decide(t, m)
	if o.Action != Send || o.YIAddr() != ip {
		t.Fatalf("bound client: action %v yiaddr %s, want Send of %s", o.Action, o.YIAddr(), ip)
	}
}

// Decide is a pure function of the view: the same request against two
// views gives each view's answer, and a view whose boot plan is nil still
// decides (with an empty boot plan).
func TestDecideReadsOnlyItsView(t *testing.T) {
	n := seedNetwork()
	r := newDecRig(t, n, bootplan.Options{})
	n2 := seedNetwork()
	n2.Subnets[0].Filename = ptr("other.0")
	plan2, _, err := Compile(n2)
	if err != nil {
		t.Fatal(err)
	}
	m := decMsg{typ: msgDiscover, mac: "00:16:3e:72:79:e4"}
	if o := r.decide(t, m); o.File() != "pxelinux.0" {
		t.Fatalf("first view: %q", o.File())
	}
	o := Decide(View{Plan: plan2}, r.request(t, m), r.alloc)
	if o.File() != "other.0" || o.YIAddr() != decAddr("192.0.2.177") || o.Boot.Why != "filename" {
		t.Fatalf("second view, nil boot plan: file %q yiaddr %s why %q", o.File(), o.YIAddr(), o.Boot.Why)
	}
}

// With pxed serving TFTP and a scope without next-server, the boot plan
// names this server's own address and says so.
func TestDecideOwnNextServer(t *testing.T) {
	n := seedNetwork()
	n.Subnets[0].NextServer = ""
	r := newDecRig(t, n, bootplan.Options{TFTP: true})
	o := r.decide(t, decMsg{typ: msgDiscover, mac: "02:00:00:00:d4:01"})
	if o.SIAddr() != decAddr("192.0.2.1") || !o.Boot.OwnNextServer || o.Boot.NextServer != decAddr("192.0.2.1") {
		t.Fatalf("siaddr %s boot %+v, want our own 192.0.2.1", o.SIAddr(), o.Boot)
	}
	r = newDecRig(t, n, bootplan.Options{})
	if o := r.decide(t, decMsg{typ: msgDiscover, mac: "02:00:00:00:d4:01"}); o.SIAddr().IsValid() || o.Boot.OwnNextServer {
		t.Fatalf("TFTP off: siaddr %s boot %+v, want none", o.SIAddr(), o.Boot)
	}
}
