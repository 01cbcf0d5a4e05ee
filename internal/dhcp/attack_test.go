package dhcp

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"testing"
)

// piecesOf12 is the attack of issue 13 finding 5: a DISCOVER whose options
// are n one-byte pieces of option 12 (host name), which RFC 3396 says to
// concatenate.
func piecesOf12(n int) []byte {
	opts := []byte{optMessageType, 1, msgDiscover}
	for range n {
		opts = append(opts, optHostName, 1, 'x')
	}
	return raw(mac1, append(opts, optEnd), nil)
}

// allocsOf runs f and reports the allocations and bytes allocated per run.
func allocsOf(runs int, f func()) (allocs float64, bytes uint64) {
	f() // warm up pools and maps
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / float64(runs), (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// TestParseConcatenationAttack replays the 64 KB DISCOVER of 21k one-byte
// option-12 pieces (113 ms and 236 MB of allocation each before the fix)
// and the largest datagram pxed accepts built the same way: parsing costs
// a bounded number of allocations and bytes, not a quadratic amount.
func TestParseConcatenationAttack(t *testing.T) {
	big := piecesOf12(21750)
	if len(big) < 65000 || len(big) > 65507 {
		t.Fatalf("attack datagram is %d bytes", len(big))
	}
	if _, err := Parse(big); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("64 KB datagram: %v, want it refused as oversized", err)
	}
	allocs, bytes := allocsOf(20, func() { Parse(big) })
	t.Logf("64 KB datagram, %d pieces: %.0f allocs, %d bytes per Parse", 21750, allocs, bytes)
	if allocs > 10 || bytes > 4096 {
		t.Errorf("refusing a 64 KB datagram cost %.0f allocations, %d bytes", allocs, bytes)
	}

	n := (MaxMessageLen - headerLen - cookieLen - 4) / 3
	max := piecesOf12(n)
	if len(max) > MaxMessageLen {
		t.Fatalf("%d bytes", len(max))
	}
	p, err := Parse(max)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(p.Options[optHostName]); got != n {
		t.Fatalf("host name of %d bytes, want the %d pieces concatenated", got, n)
	}
	allocs, bytes = allocsOf(100, func() { Parse(max) })
	t.Logf("%d-byte datagram, %d pieces: %.0f allocs, %d bytes per Parse", len(max), n, allocs, bytes)
	// Linear: the packet, one copy of the message, the map, one buffer
	// for the concatenated option; no allocation per piece.
	if allocs > 8 || bytes > 3*uint64(MaxMessageLen)+1024 {
		t.Errorf("parsing %d pieces cost %.0f allocations, %d bytes: not linear", n, allocs, bytes)
	}
}

// TestHandleConcatenationAttack sends the same datagrams through the
// server's whole receive path (Handle: parse, decide, deliver): the 64 KB
// one is dropped, the largest accepted one is answered at the cost of an
// ordinary DISCOVER, and the host name it would store is bounded.
func TestHandleConcatenationAttack(t *testing.T) {
	r := newRig(t, seedNetwork())
	go func() {
		for range r.conn.notify {
		}
	}()
	src := netip.MustParseAddrPort("0.0.0.0:68")
	ordinary := msg{t: msgDiscover, mac: "00:16:3e:72:79:e3"}.bytes()
	base, _ := allocsOf(50, func() { r.srv.Handle(context.Background(), r.port, ordinary, src, broadcastAddr) })
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"64 KB", piecesOf12(21750)},
		{"largest accepted", piecesOf12((MaxMessageLen - headerLen - cookieLen - 4) / 3)},
		{"parameter request list of 1200 codes", raw(mac1, append(append([]byte{optMessageType, 1, msgDiscover},
			longOption(optParamRequest, bytes.Repeat([]byte{1, 3, 6, 12, 15, 28, 42, 43, 66, 67, 250, 251}, 100))...), optEnd), nil)},
	} {
		allocs, bytes := allocsOf(50, func() { r.srv.Handle(context.Background(), r.port, tc.b, src, broadcastAddr) })
		t.Logf("%s: %.0f allocs, %d bytes per datagram (an ordinary DISCOVER: %.0f allocs)", tc.name, allocs, bytes, base)
		if allocs > base+10 || bytes > 64<<10 {
			t.Errorf("%s: %.0f allocations and %d bytes per datagram; an ordinary DISCOVER costs %.0f", tc.name, allocs, bytes, base)
		}
	}
}

// longOption writes code with data split into 255-byte instances.
func longOption(code uint8, data []byte) []byte {
	var b []byte
	for len(data) > 0 {
		n := min(len(data), 255)
		b = append(append(b, code, byte(n)), data[:n]...)
		data = data[n:]
	}
	return b
}

// TestStoredHostnameBounded: the host name a client sends is recorded in
// its lease printable and at most MaxStoredString bytes long, whatever it
// sent (21 KB of it were stored before).
func TestStoredHostnameBounded(t *testing.T) {
	r := newRig(t, seedNetwork())
	for _, tc := range []struct {
		name, want string
		sent       []byte
	}{
		{"long", strings.Repeat("x", MaxStoredString), bytes.Repeat([]byte{'x'}, 1000)},
		{"terminal escapes", `node\x1b]0;owned\x07\\`, []byte("node\x1b]0;owned\x07\\")},
		{"escapes cut whole", strings.Repeat(`\xff`, MaxStoredString/4), bytes.Repeat([]byte{0xff}, 300)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mac := "02:00:00:00:0b:01"
			opts := map[uint8][]byte{optHostName: tc.sent}
			r.srv.Handle(context.Background(), r.port, msg{t: msgDiscover, mac: mac}.withLong(opts), netip.MustParseAddrPort("0.0.0.0:68"), broadcastAddr)
			ip := r.conn.next(t).packet.YIAddr
			opts[optServerID], opts[optRequestedIP] = ip4("192.0.2.1"), ip.AsSlice()
			r.srv.Handle(context.Background(), r.port, msg{t: msgRequest, mac: mac}.withLong(opts), netip.MustParseAddrPort("0.0.0.0:68"), broadcastAddr)
			if s := r.conn.next(t); s.packet.Type() != msgAck {
				t.Fatalf("got %s", msgName(s.packet.Type()))
			}
			l, _ := r.alloc.LeaseAt(ip)
			if l.Hostname != tc.want {
				t.Fatalf("stored host name %q (%d bytes), want %q", l.Hostname, len(l.Hostname), tc.want)
			}
		})
	}
}

// withLong is m's message with opts written as long options (RFC 3396).
func (m msg) withLong(opts map[uint8][]byte) []byte {
	b := m.bytes()
	b = b[:len(b)-1] // the end option
	for code, v := range opts {
		b = append(b, longOption(code, v)...)
	}
	return append(b, optEnd)
}
