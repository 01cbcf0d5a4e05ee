package dhcp

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

// raw builds a client message: a BOOTP header for chaddr, then the cookie
// and opts verbatim (nil opts: no cookie at all).
func raw(chaddr []byte, opts []byte, edit func(b []byte)) []byte {
	b := make([]byte, headerLen)
	b[0], b[1], b[2] = opRequest, 1, byte(len(chaddr))
	copy(b[4:], []byte{0xde, 0xad, 0xbe, 0xef})
	copy(b[28:], chaddr)
	if edit != nil {
		edit(b)
	}
	if opts != nil {
		b = append(b, magicCookie[:]...)
		b = append(b, opts...)
	}
	return b
}

var mac1 = []byte{0x00, 0x16, 0x3e, 0x72, 0x79, 0xe3}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []byte
		wantErr string
		check   func(t *testing.T, p *Packet)
	}{
		{name: "empty", in: nil, wantErr: "shorter than"},
		{name: "truncated header", in: make([]byte, 235), wantErr: "shorter than"},
		{name: "hlen too big", in: raw(mac1, []byte{255}, func(b []byte) { b[2] = 17 }), wantErr: "hardware address length"},
		{name: "bootp without cookie", in: raw(mac1, nil, func(b []byte) { copy(b[108:], "pxelinux.0") }), check: func(t *testing.T, p *Packet) {
			if p.Options != nil || p.Type() != 0 || p.File != "pxelinux.0" {
				t.Errorf("options %v type %d file %q", p.Options, p.Type(), p.File)
			}
			if p.MAC().String() != "00:16:3e:72:79:e3" || p.XID != 0xdeadbeef {
				t.Errorf("mac %s xid %x", p.MAC(), p.XID)
			}
		}},
		{name: "discover", in: raw(mac1, []byte{53, 1, 1, 50, 4, 192, 0, 2, 9, 55, 3, 1, 3, 6, 0, 0, 255}, nil), check: func(t *testing.T, p *Packet) {
			if p.Type() != msgDiscover || p.Addr(optRequestedIP) != netip.MustParseAddr("192.0.2.9") {
				t.Errorf("type %d requested %s", p.Type(), p.Addr(optRequestedIP))
			}
			if !bytes.Equal(p.Options[optParamRequest], []byte{1, 3, 6}) {
				t.Errorf("PRL %v", p.Options[optParamRequest])
			}
		}},
		{name: "no end option is accepted", in: raw(mac1, []byte{53, 1, 3}, nil), check: func(t *testing.T, p *Packet) {
			if p.Type() != msgRequest {
				t.Errorf("type %d", p.Type())
			}
		}},
		{name: "option length past the end", in: raw(mac1, []byte{53, 1, 1, 12, 40, 'a'}, nil), wantErr: "option 12 in the options claims 40 bytes"},
		{name: "option without length", in: raw(mac1, []byte{53, 1, 1, 12}, nil), wantErr: "no length byte"},
		{name: "repeated option concatenates (RFC 3396)", in: raw(mac1, []byte{53, 1, 1, 12, 2, 'a', 'b', 12, 1, 'c', 255}, nil), check: func(t *testing.T, p *Packet) {
			if string(p.Options[optHostName]) != "abc" {
				t.Errorf("host name %q", p.Options[optHostName])
			}
		}},
		{name: "overload file and sname", in: raw(mac1, []byte{53, 1, 1, 52, 1, 3, 255}, func(b []byte) {
			copy(b[108:], []byte{12, 3, 'f', 'o', 'o', 255})
			copy(b[44:], []byte{60, 9, 'P', 'X', 'E', 'C', 'l', 'i', 'e', 'n', 't'})
		}), check: func(t *testing.T, p *Packet) {
			if string(p.Options[optHostName]) != "foo" || string(p.Options[optVendorClass]) != "PXEClient" {
				t.Errorf("options %q", p.Options)
			}
			if p.File != "" || p.SName != "" {
				t.Errorf("file %q sname %q should be empty when overloaded", p.File, p.SName)
			}
			if _, ok := p.Options[optOverload]; ok {
				t.Error("option 52 should not be visible after it is applied")
			}
		}},
		{name: "bad overload value", in: raw(mac1, []byte{53, 1, 1, 52, 1, 7, 255}, nil), wantErr: "overload"},
		{name: "overload inside file field", in: raw(mac1, []byte{53, 1, 1, 52, 1, 1, 255}, func(b []byte) { copy(b[108:], []byte{52, 1, 2}) }), wantErr: "inside the file field"},
		{name: "bad option in overloaded file", in: raw(mac1, []byte{53, 1, 1, 52, 1, 1, 255}, func(b []byte) { b[108+126] = 12; b[108+127] = 9 }), wantErr: "file field claims"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrMalformed) || !bytes.Contains([]byte(err.Error()), []byte(tc.wantErr)) {
					t.Fatalf("err = %v, want ErrMalformed containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, p)
		})
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	r := &reply{Packet: Packet{Op: opReply, HType: 1, HLen: 6, XID: 7, Flags: 0x8000,
		YIAddr: netip.MustParseAddr("192.0.2.10"), SIAddr: netip.MustParseAddr("192.0.2.1"), File: "pxelinux.0", SName: "boot"}}
	copy(r.CHAddr[:], mac1)
	r.set(optMessageType, []byte{msgAck})
	r.set(optHostName, bytes.Repeat([]byte("h"), 300)) // RFC 3396 split
	r.set(optMessageType, []byte{msgOffer})            // set replaces
	b, dropped := r.marshal(1400)
	if len(dropped) != 0 {
		t.Fatalf("dropped %v", dropped)
	}
	b[0] = opRequest // Parse is the server side's parser; it reads replies just the same
	p, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.Type() != msgOffer || len(p.Options[optHostName]) != 300 || p.File != "pxelinux.0" || p.SName != "boot" ||
		p.YIAddr != r.YIAddr || p.SIAddr != r.SIAddr || p.XID != 7 || !p.Broadcast() {
		t.Fatalf("round trip: %+v", p)
	}
}

func TestMarshalOverloadsAndDrops(t *testing.T) {
	r := &reply{Packet: Packet{Op: opReply, HType: 1, HLen: 6}}
	r.set(optMessageType, []byte{msgAck})
	for code := uint8(100); code < 110; code++ {
		r.set(code, bytes.Repeat([]byte{code}, 60)) // 620 bytes of options: more than 576 allows
	}
	b, dropped := r.marshal(defaultMaxMessage)
	if len(b) > defaultMaxMessage {
		t.Fatalf("reply is %d bytes, max %d", len(b), defaultMaxMessage)
	}
	b[0] = opRequest
	p, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for code := uint8(100); code < 110; code++ {
		if len(p.Options[code]) == 60 {
			got++
		}
	}
	if got+len(dropped) != 10 || len(dropped) == 0 {
		t.Fatalf("%d options arrived, %d dropped (%v): every option must be either sent whole or reported", got, len(dropped), dropped)
	}
	if got < 7 {
		t.Fatalf("only %d options fit; overloading file and sname should carry more", got)
	}
	if p.Type() != msgAck {
		t.Fatal("message type lost")
	}
}

func TestMarshalBOOTP(t *testing.T) {
	r := &reply{Packet: Packet{Op: opReply, HType: 1, HLen: 6, File: "pxelinux.0"}, bootp: true}
	r.set(optMessageType, []byte{msgAck}) // ignored for an RFC 951 client
	b, _ := r.marshal(0)
	if len(b) != minReplyLen {
		t.Fatalf("BOOTP reply is %d bytes, want %d", len(b), minReplyLen)
	}
	if cstring(b[108:236]) != "pxelinux.0" {
		t.Fatalf("file %q", cstring(b[108:236]))
	}
	for _, c := range b[240:] {
		if c != 0 {
			t.Fatal("a BOOTP reply must carry no options")
		}
	}
}
