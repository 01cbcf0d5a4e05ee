package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// The BOOTP/DHCP message (RFC 951, RFC 2131 §2) and its options (RFC 2132,
// RFC 3396). pxed reads and writes it itself: it must accept BOOTP messages
// without the options cookie, read options overloaded into the file and sname
// fields (option 52), and fit replies to the size the client can take, which
// a general-purpose codec does not do.

const (
	opRequest = 1
	opReply   = 2

	headerLen   = 236 // op .. file
	cookieLen   = 4
	minReplyLen = 300 // RFC 951: BOOTP messages are at least 300 bytes; some relays drop shorter ones
	// defaultMaxMessage is what every client must accept (RFC 2131 §2).
	defaultMaxMessage = 576
	// ipUDPHeaders is what an IPv4 + UDP header take out of a datagram.
	ipUDPHeaders = 28
)

var magicCookie = [4]byte{99, 130, 83, 99}

// Option codes pxed reads or writes itself.
const (
	optPad           = 0
	optSubnetMask    = 1
	optHostName      = 12
	optRequestedIP   = 50
	optLeaseTime     = 51
	optOverload      = 52
	optMessageType   = 53
	optServerID      = 54
	optParamRequest  = 55
	optMessage       = 56
	optMaxMessage    = 57
	optRenewalTime   = 58
	optRebindingTime = 59
	optVendorClass   = 60
	optClientID      = 61
	optTFTPServer    = 66
	optBootfile      = 67
	optUserClass     = 77
	optRelayAgent    = 82
	optClientArch    = 93
	optClientNDI     = 94
	optClientUUID    = 97
	optVendorOpts    = 43
	optEnd           = 255
)

// Message types (option 53).
const (
	msgDiscover = 1
	msgOffer    = 2
	msgRequest  = 3
	msgDecline  = 4
	msgAck      = 5
	msgNak      = 6
	msgRelease  = 7
	msgInform   = 8
)

var msgNames = [...]string{"BOOTP", "DISCOVER", "OFFER", "REQUEST", "DECLINE", "ACK", "NAK", "RELEASE", "INFORM"}

func msgName(t uint8) string {
	if int(t) < len(msgNames) {
		return msgNames[t]
	}
	return fmt.Sprintf("type-%d", t)
}

// Packet is a parsed BOOTP/DHCP message.
type Packet struct {
	Op, HType, HLen, Hops uint8
	XID                   uint32
	Secs, Flags           uint16
	CIAddr, YIAddr        netip.Addr
	SIAddr, GIAddr        netip.Addr
	CHAddr                [16]byte
	SName                 string // empty when overloaded with options
	File                  string // empty when overloaded with options
	// Options holds each option's data, repeated instances concatenated
	// (RFC 3396). Nil for a BOOTP message without the options cookie.
	Options map[uint8][]byte
}

// ErrMalformed wraps every parse error.
var ErrMalformed = errors.New("malformed DHCP message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// MaxMessageLen is the largest DHCP message pxed reads: a datagram that
// fits an unfragmented 1500-byte Ethernet frame (ISC dhcpd's DHCP_MTU_MAX).
// Clients send 300 to 576 bytes; a relay adds its option 82. A longer
// datagram is refused before its options are looked at.
const MaxMessageLen = 1500 - ipUDPHeaders

// Parse reads a message. It never panics, never keeps a reference to b,
// refuses messages longer than MaxMessageLen, and costs time and memory
// linear in len(b) whatever the options (RFC 3396 concatenation included).
func Parse(b []byte) (*Packet, error) {
	if len(b) < headerLen {
		return nil, malformed("%d bytes, shorter than the %d-byte BOOTP header", len(b), headerLen)
	}
	if len(b) > MaxMessageLen {
		return nil, malformed("%d bytes, longer than the %d-byte limit", len(b), MaxMessageLen)
	}
	p := &Packet{
		Op: b[0], HType: b[1], HLen: b[2], Hops: b[3],
		XID:    binary.BigEndian.Uint32(b[4:]),
		Secs:   binary.BigEndian.Uint16(b[8:]),
		Flags:  binary.BigEndian.Uint16(b[10:]),
		CIAddr: addr4(b[12:]), YIAddr: addr4(b[16:]),
		SIAddr: addr4(b[20:]), GIAddr: addr4(b[24:]),
	}
	if p.HLen > 16 {
		return nil, malformed("hardware address length %d > 16", p.HLen)
	}
	copy(p.CHAddr[:], b[28:44])
	sname, file := b[44:108], b[108:236]
	if len(b) < headerLen+cookieLen || [4]byte(b[236:240]) != magicCookie {
		// RFC 951 BOOTP: the vendor area is opaque.
		p.SName, p.File = cstring(sname), cstring(file)
		return p, nil
	}
	// One copy of everything after the cookie; option values point into it.
	b = append([]byte(nil), b...)
	// RFC 3396 §5: the options field, then file, then sname. The first
	// pass checks the areas and sizes every option, the second fills
	// them, so repeated instances cost one buffer, not one per instance.
	areas := [3]area{{b[240:], "options"}}
	var sz optSizes
	if err := sz.scan(areas[0]); err != nil {
		return nil, err
	}
	overload := uint8(0)
	if sz.count[optOverload] > 0 {
		v := areas[0].find(optOverload)
		if sz.count[optOverload] != 1 || len(v) != 1 || v[0] < 1 || v[0] > 3 {
			return nil, malformed("option 52 (overload) is not one byte of 1, 2 or 3")
		}
		overload = v[0]
		sz.count[optOverload] = 0
	}
	if overload&1 != 0 {
		areas[1] = area{b[108:236], "file field"}
		if err := sz.scan(areas[1]); err != nil {
			return nil, err
		}
	} else {
		p.File = cstring(file)
	}
	if overload&2 != 0 {
		areas[2] = area{b[44:108], "sname field"}
		if err := sz.scan(areas[2]); err != nil {
			return nil, err
		}
	} else {
		p.SName = cstring(sname)
	}
	p.Options = make(map[uint8][]byte, sz.distinct)
	for _, a := range areas {
		sz.fill(p.Options, a)
	}
	return p, nil
}

// area is one place options are read from (options, file or sname field).
type area struct {
	b     []byte
	where string
}

// optSizes counts each option's instances and their total length.
type optSizes struct {
	count    [256]uint16
	total    [256]uint16
	distinct int
}

// scan checks a's options and adds them to the counts. An area ends at
// option 255 or at its end (many clients omit 255 in overloaded fields).
func (s *optSizes) scan(a area) error {
	b := a.b
	for i := 0; i < len(b); {
		code := b[i]
		switch code {
		case optPad:
			i++
			continue
		case optEnd:
			return nil
		}
		if i+1 >= len(b) {
			return malformed("option %d in the %s has no length byte", code, a.where)
		}
		n := int(b[i+1])
		if i+2+n > len(b) {
			return malformed("option %d in the %s claims %d bytes, %d left", code, a.where, n, len(b)-i-2)
		}
		if code == optOverload && a.where != "options" {
			return malformed("option 52 (overload) inside the %s", a.where)
		}
		if s.count[code] == 0 {
			s.distinct++
		}
		// Both stay below MaxMessageLen: no overflow.
		s.count[code]++
		s.total[code] += uint16(n)
		i += 2 + n
	}
	return nil
}

// each calls f for every option instance of a scanned area, in order.
func (a area) each(f func(code uint8, data []byte)) {
	b := a.b
	for i := 0; i < len(b); {
		switch code := b[i]; code {
		case optPad:
			i++
		case optEnd:
			return
		default:
			n := int(b[i+1])
			f(code, b[i+2:i+2+n:i+2+n])
			i += 2 + n
		}
	}
}

// find returns the data of the first instance of code in a scanned area.
func (a area) find(code uint8) []byte {
	var v []byte
	a.each(func(c uint8, data []byte) {
		if c == code && v == nil {
			v = data
		}
	})
	return v
}

// fill puts a's options into m: a single instance points into the area,
// repeated ones (RFC 3396) are concatenated into one buffer of their total
// size, so the shared copy is never written through.
func (s *optSizes) fill(m map[uint8][]byte, a area) {
	a.each(func(code uint8, data []byte) {
		switch s.count[code] {
		case 0: // option 52, applied already
		case 1:
			m[code] = data
		default:
			v, ok := m[code]
			if !ok {
				v = make([]byte, 0, s.total[code])
			}
			m[code] = append(v, data...)
		}
	})
}

func addr4(b []byte) netip.Addr { return netip.AddrFrom4([4]byte(b[:4])) }

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// MAC returns the client hardware address (chaddr, HLen bytes).
func (p *Packet) MAC() net.HardwareAddr {
	return net.HardwareAddr(append([]byte(nil), p.CHAddr[:p.HLen]...))
}

// Type returns the DHCP message type, 0 for BOOTP.
func (p *Packet) Type() uint8 {
	if v := p.Options[optMessageType]; len(v) == 1 {
		return v[0]
	}
	return 0
}

// Addr returns an option holding one IPv4 address.
func (p *Packet) Addr(code uint8) netip.Addr {
	if v := p.Options[code]; len(v) == 4 {
		return netip.AddrFrom4([4]byte(v))
	}
	return netip.Addr{}
}

// Broadcast reports the BROADCAST flag (RFC 2131 §2, figure 2).
func (p *Packet) Broadcast() bool { return p.Flags&0x8000 != 0 }

// option is one option of a reply, in the order it is written.
type option struct {
	code uint8
	data []byte
}

// reply is a message being built.
type reply struct {
	Packet
	opts  []option // in write order; what must fit comes first
	bootp bool     // an RFC 951 client: no cookie, no options

	optsBuf [24]option // opts' first backing array
	times   [12]byte   // options 51, 58, 59
}

func (r *reply) set(code uint8, data []byte) {
	for i := range r.opts {
		if r.opts[i].code == code {
			r.opts[i].data = data
			return
		}
	}
	r.opts = append(r.opts, option{code, data})
}

func (r *reply) has(code uint8) bool {
	for _, o := range r.opts {
		if o.code == code {
			return true
		}
	}
	return false
}

// marshal writes the reply in at most max bytes of DHCP message. Options
// that do not fit the options field go to the file and sname fields (option
// 52) when those are unused; an optional option that still does not fit is
// left out and reported in dropped.
func (r *reply) marshal(max int) (out []byte, dropped []uint8) {
	if max < defaultMaxMessage {
		max = defaultMaxMessage
	}
	b := make([]byte, headerLen, max)
	b[0], b[1], b[2], b[3] = r.Op, r.HType, r.HLen, r.Hops
	binary.BigEndian.PutUint32(b[4:], r.XID)
	binary.BigEndian.PutUint16(b[8:], r.Secs)
	binary.BigEndian.PutUint16(b[10:], r.Flags)
	put4(b[12:], r.CIAddr)
	put4(b[16:], r.YIAddr)
	put4(b[20:], r.SIAddr)
	put4(b[24:], r.GIAddr)
	copy(b[28:44], r.CHAddr[:])
	if r.bootp {
		copy(b[44:107], r.SName)
		copy(b[108:235], r.File)
		// RFC 1048: only a client that sent the cookie gets one back.
		for len(b) < minReplyLen {
			b = append(b, 0)
		}
		return b, nil
	}
	b = append(b, magicCookie[:]...)

	// Lay out: the options field up to max (keeping 3 bytes for option 52
	// and 1 for the end), then the file (128) and sname (64) fields when they
	// are free.
	limit := max - 1 - 3
	var fileBuf [128]byte
	var snameBuf [64]byte
	fileArea, snameArea := fileBuf[:0], snameBuf[:0]
	fileFree, snameFree := r.File == "", r.SName == ""
	overload := uint8(0)
	for _, o := range r.opts {
		need := encodedLen(o)
		switch {
		case len(b)+need <= limit:
			b = appendOption(b, o)
		case fileFree && len(fileArea)+need <= len(fileBuf)-1:
			fileArea = appendOption(fileArea, o)
			overload |= 1
		case snameFree && len(snameArea)+need <= len(snameBuf)-1:
			snameArea = appendOption(snameArea, o)
			overload |= 2
		default:
			dropped = append(dropped, o.code)
		}
	}
	if overload != 0 {
		b = append(b, optOverload, 1, overload)
	}
	b = append(b, optEnd)
	if overload&1 != 0 {
		copy(b[108:236], append(fileArea, optEnd))
	} else {
		copy(b[108:235], r.File)
	}
	if overload&2 != 0 {
		copy(b[44:108], append(snameArea, optEnd))
	} else {
		copy(b[44:107], r.SName)
	}
	for len(b) < minReplyLen {
		b = append(b, 0)
	}
	return b, dropped
}

// encodedLen is the size of o on the wire, split into 255-byte instances
// (RFC 3396) when longer.
func encodedLen(o option) int {
	n := len(o.data)
	if n == 0 {
		return 2
	}
	return n + 2*((n+254)/255)
}

func appendOption(dst []byte, o option) []byte {
	d := o.data
	for {
		c := min(len(d), 255)
		dst = append(dst, o.code, byte(c))
		dst = append(dst, d[:c]...)
		d = d[c:]
		if len(d) == 0 {
			return dst
		}
	}
}

func put4(b []byte, a netip.Addr) {
	if a.Is4() {
		v := a.As4()
		copy(b, v[:])
	}
}
