package lab

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"pxed/internal/dhcpnet"
)

// A packet capture on the lab's tap, taken with tcpdump: what any boot
// server — pxed or a peer that logs nothing useful, such as dnsmasq —
// actually sent, timed on the wire. bench/boot compares servers on it.

// Capture is tcpdump running on the tap.
type Capture struct {
	p    *Proc
	path string
}

// StartCapture starts tcpdump on the tap (UDP and ICMPv6, whole packets)
// and waits until it listens.
func (l *Lab) StartCapture(ctx context.Context) (*Capture, error) {
	path := filepath.Join(l.Dir, fmt.Sprintf("tap-%d.pcap", seq.Add(1)))
	p, err := l.Start("tcpdump", nil, "tcpdump", "-i", l.Tap, "-n", "-s", "2048", "-U", "-w", path, "udp or icmp6")
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := WaitOutput(wctx, p, "listening on"); err != nil {
		p.Stop()
		return nil, err
	}
	return &Capture{p: p, path: path}, nil
}

// Stop ends the capture and reads it.
func (c *Capture) Stop() ([]Packet, error) {
	c.p.Stop()
	f, err := os.Open(c.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadPcap(f)
}

// Packet is one captured frame: when, and the frame itself.
type Packet struct {
	At    time.Time
	Frame []byte
}

// ReadPcap reads a classic pcap file (microsecond or nanosecond
// timestamps, either byte order) of Ethernet frames.
func ReadPcap(r io.Reader) ([]Packet, error) {
	br := bufio.NewReader(r)
	var hdr [24]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, fmt.Errorf("pcap header: %w", err)
	}
	var bo binary.ByteOrder
	nano := false
	switch m := binary.LittleEndian.Uint32(hdr[:]); m {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo, nano = binary.LittleEndian, m == 0xa1b23c4d
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo, nano = binary.BigEndian, m == 0x4d3cb2a1
	default:
		return nil, fmt.Errorf("not a pcap file (magic %#x)", m)
	}
	if lt := bo.Uint32(hdr[20:]); lt != 1 {
		return nil, fmt.Errorf("pcap link type %d, want 1 (Ethernet)", lt)
	}
	var out []Packet
	for {
		var rec [16]byte
		if _, err := io.ReadFull(br, rec[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			// tcpdump stopped mid-record: keep what is whole.
			return out, nil
		}
		n := bo.Uint32(rec[8:])
		if n > 1<<18 {
			return out, fmt.Errorf("pcap record of %d bytes", n)
		}
		frame := make([]byte, n)
		if _, err := io.ReadFull(br, frame); err != nil {
			return out, nil
		}
		frac := int64(bo.Uint32(rec[4:]))
		if !nano {
			frac *= 1000
		}
		out = append(out, Packet{At: time.Unix(int64(bo.Uint32(rec[0:])), frac), Frame: frame})
	}
}

// WireTransfer is one TFTP read as seen on the wire.
type WireTransfer struct {
	File        string
	Client      netip.AddrPort
	Start, End  time.Time // the request; the last packet of the transfer
	Bytes       int64     // payload of the DATA blocks, each counted once
	Blocks      int
	Blksize     int
	Retransmits int // DATA blocks sent again
	Error       string
}

// WireSummary is what a capture says of one client's boot.
type WireSummary struct {
	DHCP      []Event // each DHCP message to or from the client
	RS        []time.Time
	Transfers []*WireTransfer
}

const (
	tftpRRQ   = 1
	tftpDATA  = 3
	tftpERROR = 5
	tftpOACK  = 6
)

// Summarize reads the DHCP exchange, the IPv6 router solicitations and the
// TFTP transfers of the client with hardware address mac out of a capture,
// with times relative to start.
func Summarize(pkts []Packet, start time.Time, mac string) *WireSummary {
	s := &WireSummary{}
	byClient := map[netip.AddrPort]*WireTransfer{}
	for _, p := range pkts {
		if isRouterSolicitation(p.Frame, mac) {
			s.RS = append(s.RS, p.At)
			continue
		}
		srcMAC, src, dst, payload, ok := dhcpnet.ParseEthernetUDP(p.Frame, false)
		if !ok {
			continue
		}
		fromClient := strings.EqualFold(srcMAC.String(), mac)
		switch {
		case src.Port() == 68 && dst.Port() == 67 || src.Port() == 67 && dst.Port() == 68:
			if t, chaddr := dhcpType(payload); t != "" && strings.EqualFold(chaddr, mac) {
				s.DHCP = append(s.DHCP, Event{p.At.Sub(start), "DHCP " + t + " (wire)"})
			}
			continue
		case len(payload) < 4:
			continue
		}
		op := binary.BigEndian.Uint16(payload)
		if op == tftpRRQ && fromClient {
			name, _, _ := strings.Cut(string(payload[2:]), "\x00")
			if t := byClient[src]; t != nil && t.File == name && t.Blocks == 0 && t.Error == "" {
				continue // the request again, before any answer reached the client
			}
			t := &WireTransfer{File: name, Client: src, Start: p.At, End: p.At, Blksize: 512}
			byClient[src] = t // a new request from the same port ends the old transfer
			s.Transfers = append(s.Transfers, t)
			continue
		}
		peer := dst
		if fromClient {
			peer = src
		}
		t := byClient[peer]
		if t == nil {
			continue
		}
		t.End = p.At
		switch op {
		case tftpOACK:
			if v := oackValue(payload[2:], "blksize"); v > 0 {
				t.Blksize = v
			}
		case tftpDATA:
			if fromClient {
				continue
			}
			n := len(payload) - 4
			// Blocks are numbered from 1 and wrap; count one past the
			// last as new, anything at or before it as sent again.
			blk := int(binary.BigEndian.Uint16(payload[2:]))
			if blk == (t.Blocks+1)&0xffff {
				t.Blocks++
				t.Bytes += int64(n)
			} else {
				t.Retransmits++
			}
		case tftpERROR:
			msg, _, _ := strings.Cut(string(payload[4:]), "\x00")
			t.Error = fmt.Sprintf("%d %s", binary.BigEndian.Uint16(payload[2:]), msg)
		}
	}
	return s
}

// Events lists the summary as timeline lines, relative to start.
func (s *WireSummary) Events(start time.Time) []Event {
	out := append([]Event(nil), s.DHCP...)
	if len(s.RS) > 0 {
		out = append(out, Event{s.RS[0].Sub(start), fmt.Sprintf("IPv6 router solicitation (wire; %d in all, the last at %.1fs; no router answers in the lab)", len(s.RS), s.RS[len(s.RS)-1].Sub(start).Seconds())})
	}
	for _, t := range s.Transfers {
		what := fmt.Sprintf("TFTP %s on the wire: %d bytes in %s, %d blocks of %d", t.File, t.Bytes, t.End.Sub(t.Start).Round(time.Millisecond), t.Blocks, t.Blksize)
		if t.Retransmits > 0 {
			what += fmt.Sprintf(", %d sent again", t.Retransmits)
		}
		if t.Error != "" {
			what += ", ERROR " + t.Error
		}
		out = append(out, Event{t.Start.Sub(start), what})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// TFTPSpan is the time from the first request of a transfer that
// delivered data to the end of the last such transfer, and the bytes they
// carried: the boot's whole TFTP phase, refused requests (PXELINUX's
// config search) included.
func (s *WireSummary) TFTPSpan() (time.Duration, int64) {
	var first, last time.Time
	var bytes int64
	for _, t := range s.Transfers {
		if t.Bytes == 0 {
			continue
		}
		if first.IsZero() || t.Start.Before(first) {
			first = t.Start
		}
		if t.End.After(last) {
			last = t.End
		}
		bytes += t.Bytes
	}
	return last.Sub(first), bytes
}

var dhcpTypeNames = map[byte]string{1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK", 7: "RELEASE", 8: "INFORM"}

// dhcpType returns the DHCP message type (option 53) and the client
// hardware address of a BOOTP/DHCP payload.
func dhcpType(b []byte) (string, string) {
	if len(b) < 240 || binary.BigEndian.Uint32(b[236:]) != 0x63825363 {
		return "", ""
	}
	chaddr := net.HardwareAddr(b[28:34]).String()
	for o := b[240:]; len(o) >= 1; {
		switch o[0] {
		case 0:
			o = o[1:]
			continue
		case 255:
			return "", chaddr
		}
		if len(o) < 2 || len(o) < 2+int(o[1]) {
			return "", chaddr
		}
		if o[0] == 53 && o[1] == 1 {
			if n, ok := dhcpTypeNames[o[2]]; ok {
				return n, chaddr
			}
			return fmt.Sprintf("type %d", o[2]), chaddr
		}
		o = o[2+int(o[1]):]
	}
	return "", chaddr
}

// oackValue returns the numeric value of option name in an OACK's option
// list, or 0.
func oackValue(b []byte, name string) int {
	f := strings.Split(string(b), "\x00")
	for i := 0; i+1 < len(f); i += 2 {
		if strings.EqualFold(f[i], name) {
			v, err := strconv.Atoi(f[i+1])
			if err != nil || v < 0 {
				return 0
			}
			return v
		}
	}
	return 0
}

// isRouterSolicitation reports whether frame is an ICMPv6 router
// solicitation (type 133) from mac.
func isRouterSolicitation(frame []byte, mac string) bool {
	if len(frame) < 14+40+1 || binary.BigEndian.Uint16(frame[12:]) != 0x86dd {
		return false
	}
	ip := frame[14:]
	return strings.EqualFold(net.HardwareAddr(frame[6:12]).String(), mac) && ip[6] == 58 && ip[40] == 133 // next header ICMPv6 (no extension headers)
}
