package dhcp

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"

	"pxed/internal/bootplan"
	"pxed/internal/config/isc"
)

// FuzzParse: any datagram parses or is refused with ErrMalformed; never a panic.
func FuzzParse(f *testing.F) {
	f.Add(msg{t: msgDiscover, mac: "00:16:3e:72:79:e3", opts: map[uint8][]byte{optParamRequest: {1, 3, 6}}}.bytes())
	f.Add(msg{mac: "00:16:3e:72:79:e4", noCookie: true}.bytes())
	f.Add(raw(mac1, []byte{53, 1, 1, 52, 1, 3, 255}, func(b []byte) { copy(b[108:], []byte{12, 3, 'f', 'o', 'o', 255}) }))
	f.Add(piecesOf12(400))
	f.Add(raw(mac1, append(longOption(optParamRequest, bytes.Repeat([]byte{1, 3}, 300)), 12, 2, 'a', 'b', 12, 0, 255), nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		if p.HLen > 16 || len(b) > MaxMessageLen {
			t.Fatalf("hlen %d, %d bytes accepted", p.HLen, len(b))
		}
		// Concatenation never makes more option data than the message
		// holds, and parsing is deterministic.
		total := 0
		for _, v := range p.Options {
			total += len(v)
		}
		if total > len(b) {
			t.Fatalf("%d bytes of options from a %d-byte message", total, len(b))
		}
		q, err := Parse(b)
		if err != nil || len(q.Options) != len(p.Options) {
			t.Fatalf("second parse: %v, %d options, want %d", err, len(q.Options), len(p.Options))
		}
		for c, v := range p.Options {
			if !bytes.Equal(q.Options[c], v) {
				t.Fatalf("option %d: %x then %x", c, v, q.Options[c])
			}
		}
	})
}

// FuzzHandle feeds arbitrary datagrams to a full server (real plan, real
// lease database): it must never panic, and anything it sends must parse.
func FuzzHandle(f *testing.F) {
	for _, m := range []msg{
		{t: msgDiscover, mac: "00:16:3e:72:79:e3"},
		{t: msgRequest, mac: "02:00:00:00:00:01", opts: map[uint8][]byte{optRequestedIP: ip4("192.0.2.200"), optServerID: ip4("192.0.2.1")}},
		{t: msgInform, mac: "02:00:00:00:00:01", ciaddr: "192.0.2.9"},
		{t: msgDecline, mac: "02:00:00:00:00:01", opts: map[uint8][]byte{optRequestedIP: ip4("192.0.2.200")}},
		{t: msgDiscover, mac: "02:00:00:00:00:02", giaddr: "192.0.2.254", opts: map[uint8][]byte{optRelayAgent: {1, 1, 1}, optMaxMessage: {0, 1}}},
		{mac: "02:00:00:00:00:03", noCookie: true},
	} {
		f.Add(m.bytes())
	}
	r := newRig(f, seedNetwork())
	go func() {
		for range r.conn.notify {
			r.conn.mu.Lock()
			r.conn.sent = r.conn.sent[:0]
			r.conn.mu.Unlock()
		}
	}()
	f.Fuzz(func(t *testing.T, b []byte) {
		r.srv.Handle(context.Background(), r.port, b, netip.MustParseAddrPort("0.0.0.0:68"), broadcastAddr)
		r.conn.mu.Lock()
		bad := r.conn.bad
		r.conn.mu.Unlock()
		if bad != nil {
			t.Fatalf("the server sent a reply that does not parse: %v", bad)
		}
	})
}

// FuzzDecideClasses decides arbitrary datagrams against a dhcpd.conf with
// classes, subclasses, conditionals and pool permits: the expressions read
// the packet's options and hardware address (substring offsets,
// binary-to-ascii of hostile lengths); nothing may panic, every trace line
// has a position, and every reply marshals into a message that parses.
func FuzzDecideClasses(f *testing.F) {
	n, _, err := isc.ParseFile("../config/isc/testdata/classes.conf")
	if err != nil {
		f.Fatal(err)
	}
	r := newDecRig(f, n, bootplan.Options{})
	for _, m := range []msg{
		{t: msgDiscover, mac: "02:00:5e:00:53:01", opts: map[uint8][]byte{optVendorClass: []byte("PXEClient:Arch:00007:UNDI:003016"), optClientArch: {0, 7}}},
		{t: msgDiscover, mac: "00:16:3e:00:53:01", opts: map[uint8][]byte{optVendorClass: []byte("HTTPClient:Arch:00016"), optClientArch: {0, 16}, optUserClass: []byte("iPXE")}},
		{t: msgDiscover, mac: "00:16:3e:00:53:02", opts: map[uint8][]byte{optVendorClass: []byte("PXE"), optClientArch: {0, 9}, optHostName: []byte("x")}},
		{t: msgRequest, mac: "02:00:5e:00:53:09", opts: map[uint8][]byte{optRequestedIP: ip4("192.0.2.12"), optServerID: ip4("192.0.2.1"), optVendorClass: []byte("PXEClient")}},
		{mac: "02:00:00:00:00:03", noCookie: true},
	} {
		f.Add(m.bytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		var trace []string
		o := Decide(r.view, Request{Packet: p, Port: r.port, Src: netip.MustParseAddrPort("0.0.0.0:68"), Dst: broadcastAddr, Trace: &trace}, r.alloc)
		for _, line := range trace {
			if !strings.Contains(line, "classes.conf:") {
				t.Fatalf("trace line without a position: %q", line)
			}
		}
		if o.Reply != nil {
			out, _ := o.Reply.marshal(MaxMessageLen)
			if _, err := Parse(out); err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
		}
	})
}
