package main

// The stand-in DHCP and TFTP servers of the Xen bootloader's network tests
// (xenboot_net_test.go), run by the test process inside the namespace.

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"pxed/internal/dhcp"
)

// startDHCP answers every DISCOVER with an OFFER of 192.0.2.50 from
// 192.0.2.1 (next-server and router 192.0.2.1, file pxelinux.0) and every
// REQUEST with an ACK, broadcast on xs0.
func (n *xenNet) startDHCP() {
	var conn net.PacketConn
	n.do(func() {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			c.Control(func(fd uintptr) {
				serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, "xs0")
				if serr == nil {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
				}
			})
			return serr
		}}
		var err error
		if conn, err = lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:67"); err != nil {
			n.t.Error(err)
		}
	})
	if conn == nil {
		n.t.FailNow()
	}
	n.t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			m, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			p, err := dhcp.Parse(buf[:m])
			if err != nil {
				continue
			}
			var typ byte
			switch p.Type() {
			case 1:
				n.record("dhcp", "packet", "")
				typ = 2
			case 3:
				typ = 5
			default:
				continue
			}
			conn.WriteTo(dhcpReply(p, typ), &net.UDPAddr{IP: net.IPv4bcast, Port: 68})
		}
	}()
}

func dhcpReply(req *dhcp.Packet, typ byte) []byte {
	b := make([]byte, 240, 300)
	b[0], b[1], b[2] = 2, 1, 6
	binary.BigEndian.PutUint32(b[4:], req.XID)
	binary.BigEndian.PutUint16(b[10:], 0x8000)
	copy(b[16:20], []byte{192, 0, 2, 50}) // yiaddr
	copy(b[20:24], []byte{192, 0, 2, 1})  // siaddr: next-server
	copy(b[28:34], req.MAC())
	copy(b[108:], "pxelinux.0")
	copy(b[236:240], []byte{99, 130, 83, 99})
	// Router 192.0.2.1: xs0 holds the other host's 198.51.100.1 too, so
	// the guest reaches it (when --allow-host allows) through its router.
	b = append(b, 53, 1, typ, 54, 4, 192, 0, 2, 1, 1, 4, 255, 255, 255, 0, 3, 4, 192, 0, 2, 1, 51, 4, 0, 0, 14, 16, 255)
	return b
}

// tftpTransfer is the stand-in's state for one client: lock-step, blocks
// of 512 bytes.
type tftpTransfer struct {
	name string
	f    tftpFile
	sent int64 // bytes sent up to and including block
	blk  uint16
	last bool
}

// startTFTP serves n.tftp on 192.0.2.1:69 from that one port (the client
// locks onto it), lock-step with 512-byte blocks, an OACK with tsize only
// when the file says so and the client asks.
func (n *xenNet) startTFTP() {
	var conn *net.UDPConn
	n.do(func() {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 69})
		if err != nil {
			n.t.Error(err)
		}
		conn = c
	})
	if conn == nil {
		n.t.FailNow()
	}
	n.t.Cleanup(func() { conn.Close() })
	transfers := map[netip.AddrPort]*tftpTransfer{}
	send := func(to netip.AddrPort, tr *tftpTransfer) {
		tr.blk++
		var data []byte
		if tr.f.stall > 0 {
			if tr.sent >= tr.f.stall {
				return // stalled: answer no more
			}
			data = bytes.Repeat([]byte{'X'}, int(min(512, tr.f.stall-tr.sent)))
			if len(data) < 512 {
				data = append(data, 'X') // never a short block: the file goes on
			}
		} else {
			data = tr.f.data[min(tr.sent, int64(len(tr.f.data))):]
			data = data[:min(512, len(data))]
			tr.last = len(data) < 512
		}
		tr.sent += int64(len(data))
		n.mu.Lock()
		n.tftpOut[tr.name] += int64(len(data))
		n.mu.Unlock()
		pkt := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 3), tr.blk)
		conn.WriteToUDPAddrPort(append(pkt, data...), to)
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			m, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if m < 4 {
				continue
			}
			switch op := binary.BigEndian.Uint16(buf); op {
			case 1: // RRQ
				fields := strings.Split(string(buf[2:m]), "\x00")
				name := fields[0]
				n.record("tftp "+name, "udp", from.String())
				n.mu.Lock()
				f, ok := n.tftp[name]
				n.mu.Unlock()
				if !ok {
					conn.WriteToUDPAddrPort(append([]byte{0, 5, 0, 1}, "file not found\x00"...), from)
					continue
				}
				tr := &tftpTransfer{name: name, f: f}
				transfers[from] = tr
				asked := false
				for i := 2; i+1 < len(fields); i += 2 {
					asked = asked || strings.EqualFold(fields[i], "tsize")
				}
				if f.tsize > 0 && asked {
					conn.WriteToUDPAddrPort(append([]byte{0, 6}, "tsize\x00"+strconv.FormatInt(f.tsize, 10)+"\x00"...), from)
					continue
				}
				send(from, tr)
			case 4: // ACK
				tr := transfers[from]
				if tr == nil || binary.BigEndian.Uint16(buf[2:]) != tr.blk {
					continue
				}
				if tr.last {
					delete(transfers, from)
					continue
				}
				send(from, tr)
			case 5: // ERROR: the client gave up
				delete(transfers, from)
			}
		}
	}()
}

// bootloader runs `pxed xen-bootloader ARGS` in the namespace with env
