package lab

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"pxed/internal/dhcp"
	"pxed/internal/dhcpnet"
)

// A synthetic capture of one client's boot, written as tcpdump writes
// pcap, read back and summarized.

var (
	capClient    = net.HardwareAddr{0x00, 0x16, 0x3e, 0x72, 0x79, 0xe4}
	capServer    = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	capServerIP  = netip.MustParseAddr("192.0.2.1")
	capClientIP  = netip.MustParseAddr("192.0.2.177")
	capStart     = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	capClientTID = netip.AddrPortFrom(capClientIP, 2070)
	capServerTID = netip.AddrPortFrom(capServerIP, 40001)
)

type pcapWriter struct {
	buf  bytes.Buffer
	nano bool
	t    *testing.T
}

func newPcap(t *testing.T, nano bool) *pcapWriter {
	w := &pcapWriter{nano: nano, t: t}
	magic := uint32(0xa1b2c3d4)
	if nano {
		magic = 0xa1b23c4d
	}
	h := binary.LittleEndian.AppendUint32(nil, magic)
	h = binary.LittleEndian.AppendUint16(h, 2)
	h = binary.LittleEndian.AppendUint16(h, 4)
	h = append(h, make([]byte, 8)...)
	h = binary.LittleEndian.AppendUint32(h, 2048)
	h = binary.LittleEndian.AppendUint32(h, 1) // Ethernet
	w.buf.Write(h)
	return w
}

func (w *pcapWriter) frame(at time.Duration, f []byte) {
	ts := capStart.Add(at)
	r := binary.LittleEndian.AppendUint32(nil, uint32(ts.Unix()))
	frac := ts.Nanosecond()
	if !w.nano {
		frac /= 1000
	}
	r = binary.LittleEndian.AppendUint32(r, uint32(frac))
	r = binary.LittleEndian.AppendUint32(r, uint32(len(f)))
	r = binary.LittleEndian.AppendUint32(r, uint32(len(f)))
	w.buf.Write(r)
	w.buf.Write(f)
}

func (w *pcapWriter) udp(at time.Duration, fromClient bool, src, dst netip.AddrPort, payload []byte) {
	w.t.Helper()
	sm, dm := capServer, capClient
	if fromClient {
		sm, dm = capClient, capServer
	}
	f, err := dhcpnet.AppendEthernetUDP(nil, dm, sm, src.Addr(), dst.Addr(), src.Port(), dst.Port(), 1, payload)
	if err != nil {
		w.t.Fatal(err)
	}
	w.frame(at, f)
}

func tftpPkt(op uint16, rest ...any) []byte {
	b := binary.BigEndian.AppendUint16(nil, op)
	for _, r := range rest {
		switch v := r.(type) {
		case uint16:
			b = binary.BigEndian.AppendUint16(b, v)
		case string:
			b = append(append(b, v...), 0)
		case []byte:
			b = append(b, v...)
		}
	}
	return b
}

func routerSolicitation(mac net.HardwareAddr) []byte {
	f := append(append([]byte{0x33, 0x33, 0, 0, 0, 2}, mac...), 0x86, 0xdd)
	ip := make([]byte, 40+8)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], 8)
	ip[6], ip[7] = 58, 255
	ip[40] = 133
	return append(f, ip...)
}

func bootCapture(t *testing.T, nano bool) []byte {
	w := newPcap(t, nano)
	bcast := netip.AddrPortFrom(netip.IPv4Unspecified(), 68)
	w.udp(2300*time.Millisecond, true, bcast, netip.MustParseAddrPort("255.255.255.255:67"), dhcp.ClientMessage(dhcp.MsgDiscover, capClient, 7, netip.Addr{}, nil))
	offer := dhcp.ClientMessage(dhcp.MsgDiscover, capClient, 7, netip.Addr{}, nil)
	offer[0] = 2
	offer[242] = 2 // option 53 = OFFER (ClientMessage puts 53 first)
	w.udp(2400*time.Millisecond, false, netip.AddrPortFrom(capServerIP, 67), netip.MustParseAddrPort("255.255.255.255:68"), offer)
	w.frame(3500*time.Millisecond, routerSolicitation(capClient))
	w.frame(7500*time.Millisecond, routerSolicitation(capClient))
	w.frame(8000*time.Millisecond, routerSolicitation(net.HardwareAddr{2, 9, 9, 9, 9, 9})) // someone else
	// A refused config search, then a 3-block file with one block sent
	// again, at blksize 1000.
	at := 18 * time.Second
	w.udp(at, true, capClientTID, netip.AddrPortFrom(capServerIP, 69), tftpPkt(1, "pxelinux.cfg/C0A8", "octet"))
	w.udp(at+time.Millisecond, false, capServerTID, capClientTID, tftpPkt(5, uint16(1), "file not found"))
	tid2 := netip.AddrPortFrom(capClientIP, 2071)
	srv2 := netip.AddrPortFrom(capServerIP, 40002)
	at += 10 * time.Millisecond
	w.udp(at, true, tid2, netip.AddrPortFrom(capServerIP, 69), tftpPkt(1, "vmlinuz", "octet", "blksize", "1000", "tsize", "0"))
	w.udp(at+500*time.Microsecond, true, tid2, netip.AddrPortFrom(capServerIP, 69), tftpPkt(1, "vmlinuz", "octet", "blksize", "1000", "tsize", "0")) // the request again
	w.udp(at+time.Millisecond, false, srv2, tid2, tftpPkt(6, "blksize", "1000", "tsize", "2300"))
	w.udp(at+2*time.Millisecond, true, tid2, srv2, tftpPkt(4, uint16(0)))
	w.udp(at+3*time.Millisecond, false, srv2, tid2, tftpPkt(3, uint16(1), make([]byte, 1000)))
	w.udp(at+4*time.Millisecond, true, tid2, srv2, tftpPkt(4, uint16(1)))
	w.udp(at+5*time.Millisecond, false, srv2, tid2, tftpPkt(3, uint16(2), make([]byte, 1000)))
	w.udp(at+1005*time.Millisecond, false, srv2, tid2, tftpPkt(3, uint16(2), make([]byte, 1000))) // timeout: again
	w.udp(at+1006*time.Millisecond, true, tid2, srv2, tftpPkt(4, uint16(2)))
	w.udp(at+1007*time.Millisecond, false, srv2, tid2, tftpPkt(3, uint16(3), make([]byte, 300)))
	w.udp(at+1008*time.Millisecond, true, tid2, srv2, tftpPkt(4, uint16(3)))
	return w.buf.Bytes()
}

func TestSummarizeCapture(t *testing.T) {
	for _, nano := range []bool{false, true} {
		pkts, err := ReadPcap(bytes.NewReader(bootCapture(t, nano)))
		if err != nil {
			t.Fatal(err)
		}
		if len(pkts) != 18 {
			t.Fatalf("nano=%v: %d packets, want 18", nano, len(pkts))
		}
		s := Summarize(pkts, capStart, "00:16:3E:72:79:E4")
		if len(s.DHCP) != 2 || s.DHCP[0].What != "DHCP DISCOVER (wire)" || s.DHCP[1].What != "DHCP OFFER (wire)" || s.DHCP[1].At != 2400*time.Millisecond {
			t.Errorf("nano=%v: DHCP %v", nano, s.DHCP)
		}
		if len(s.RS) != 2 {
			t.Errorf("nano=%v: %d router solicitations from the client, want 2", nano, len(s.RS))
		}
		if len(s.Transfers) != 2 {
			t.Fatalf("nano=%v: transfers %+v, want the refused one and vmlinuz (the repeated request is the same transfer)", nano, s.Transfers)
		}
		if e := s.Transfers[0].Error; e != "1 file not found" {
			t.Errorf("refused request: error %q", e)
		}
		k := s.Transfers[1]
		if k.File != "vmlinuz" || k.Bytes != 2300 || k.Blocks != 3 || k.Blksize != 1000 || k.Retransmits != 1 {
			t.Errorf("vmlinuz: %+v, want 2300 bytes in 3 blocks of 1000, 1 sent again", k)
		}
		if d := k.End.Sub(k.Start); d != 1008*time.Millisecond {
			t.Errorf("vmlinuz took %v on the wire, want 1.008s", d)
		}
		span, bytes := s.TFTPSpan()
		if span != 1008*time.Millisecond || bytes != 2300 {
			t.Errorf("TFTP span %v, %d bytes; want 1.008s (the data-carrying transfers), 2300", span, bytes)
		}
		var lines []string
		for _, e := range s.Events(capStart) {
			lines = append(lines, e.What)
		}
		all := strings.Join(lines, "\n")
		for _, want := range []string{"IPv6 router solicitation (wire; 2 in all, the last at 7.5s", "TFTP vmlinuz on the wire: 2300 bytes in 1.008s, 3 blocks of 1000, 1 sent again", "ERROR 1 file not found"} {
			if !strings.Contains(all, want) {
				t.Errorf("timeline lacks %q:\n%s", want, all)
			}
		}
	}
}

func TestReadPcapErrors(t *testing.T) {
	good := bootCapture(t, false)
	if _, err := ReadPcap(bytes.NewReader(good[:10])); err == nil {
		t.Error("a truncated header was accepted")
	}
	bad := append([]byte(nil), good...)
	copy(bad, []byte{1, 2, 3, 4})
	if _, err := ReadPcap(bytes.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "not a pcap") {
		t.Errorf("bad magic: %v", err)
	}
	other := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(other[20:], 113) // Linux cooked capture
	if _, err := ReadPcap(bytes.NewReader(other)); err == nil {
		t.Error("a non-Ethernet capture was accepted")
	}
	// tcpdump killed mid-record: the whole records before it are kept.
	pkts, err := ReadPcap(bytes.NewReader(good[:len(good)-5]))
	if err != nil || len(pkts) != 17 {
		t.Errorf("cut capture: %d packets, %v; want the 17 whole ones", len(pkts), err)
	}
}
