package guestnet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"pxed/internal/pxeclient"
)

const (
	ethHeaderLen = 14
	etherTypeIP  = 0x0800
	etherTypeARP = 0x0806
	// maxFrame is the largest frame read: a bridge may hand up a frame
	// the local stack sent with segmentation offloaded, up to 64 KiB of
	// IPv4 datagram. A larger one is truncated and dropped.
	maxFrame = ethHeaderLen + 65535
)

// link moves frames between the packet socket and the stack. It owns a
// duplicate of the socket, non-blocking and in Go's poller, so that Close
// wakes a blocked read.
type link struct {
	f       *os.File
	raw     syscall.RawConn
	ifindex int

	received, sent, dropped atomic.Uint64

	txMu  sync.Mutex
	txBuf []byte // the frame being sent, under txMu
}

func newLink(sock *os.File, ifindex int) (*link, error) {
	sc, err := sock.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("guestnet: packet socket: %w", err)
	}
	var fd int
	var derr error
	if err := sc.Control(func(s uintptr) { fd, derr = unix.Dup(int(s)) }); err != nil || derr != nil {
		return nil, fmt.Errorf("guestnet: duplicate packet socket: %v", errors.Join(err, derr))
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("guestnet: packet socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "guestnet")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("guestnet: packet socket: %w", err)
	}
	return &link{f: f, raw: raw, ifindex: ifindex}, nil
}

func (l *link) close() { l.f.Close() }

func (l *link) stats() Stats {
	return Stats{Received: l.received.Load(), Sent: l.sent.Load(), Dropped: l.dropped.Load()}
}

// receive reads frames until the socket is closed and passes the guest's
// to the stack: IPv4 or ARP, to mac or to broadcast (the socket's filter
// already keeps to these; they are checked again here), with valid
// checksums, or with transport checksums filled in where the kernel left
// them to the hardware. (Reading a window's frames with one recvmmsg(2)
// instead measured no faster: the stack's own hand-offs dominate.)
func (l *link) receive(ep *channel.Endpoint, mac net.HardwareAddr) {
	buf := make([]byte, maxFrame+1)
	oob := make([]byte, 64) // PACKET_AUXDATA: a 16-byte header and 20 bytes
	for {
		var n, oobn, flags int
		var from unix.Sockaddr
		var rerr error
		err := l.raw.Read(func(fd uintptr) bool {
			n, oobn, flags, from, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_TRUNC)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			return // closed
		}
		if rerr != nil {
			if rerr == unix.EINTR || rerr == unix.ENETDOWN {
				continue
			}
			return
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if n > maxFrame || flags&unix.MSG_TRUNC != 0 {
			l.dropped.Add(1)
			continue
		}
		frame := buf[:n]
		if !l.accept(frame, mac, pxeclient.ChecksumPending(oob[:oobn])) {
			l.dropped.Add(1)
			continue
		}
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
		ep.InjectInbound(tcpip.NetworkProtocolNumber(binary.BigEndian.Uint16(frame[12:])), pkt)
		pkt.DecRef()
		l.received.Add(1)
	}
}

// accept reports whether frame is for the guest and sound, filling in the
// transport checksum of an IPv4 frame whose checksum is not ready.
func (l *link) accept(frame []byte, mac net.HardwareAddr, csumPartial bool) bool {
	if len(frame) < ethHeaderLen {
		return false
	}
	dst := frame[:6]
	if !bytes.Equal(dst, mac) && !bytes.Equal(dst, broadcast) {
		return false
	}
	switch binary.BigEndian.Uint16(frame[12:]) {
	case etherTypeARP:
		return true
	case etherTypeIP:
		return checkIPv4(frame[ethHeaderLen:], csumPartial)
	}
	return false
}

var broadcast = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// checkIPv4 checks an IPv4 packet's header checksum and, for TCP and UDP
// in an unfragmented packet, its transport checksum; with partial set (the
// sender is on this host and left the transport checksum to offload), it
// computes the transport checksum instead. The stack, told that the link
// checks checksums, checks none itself.
func checkIPv4(p []byte, partial bool) bool {
	if len(p) < header.IPv4MinimumSize {
		return false
	}
	ip := header.IPv4(p)
	hl := int(ip.HeaderLength())
	total := int(ip.TotalLength())
	if p[0]>>4 != 4 || hl < header.IPv4MinimumSize || total < hl || total > len(p) {
		return false
	}
	if !ip.IsChecksumValid() {
		return false
	}
	proto := ip.TransportProtocol()
	var off int // the checksum's offset in the transport header
	switch proto {
	case header.TCPProtocolNumber:
		off = 16
	case header.UDPProtocolNumber:
		off = 6
	default:
		return true // ICMP and the rest: the stack checks its own
	}
	if ip.More() || ip.FragmentOffset() != 0 {
		// A fragment: the checksum covers the reassembled datagram. The
		// stack checks nothing (the link says it does), so a datagram
		// that needs reassembly is not taken: the boot server sends
		// blocks that fit the MTU, and TCP never fragments.
		return false
	}
	seg := p[hl:total]
	if len(seg) < off+2 {
		return false
	}
	if proto == header.UDPProtocolNumber && !partial && binary.BigEndian.Uint16(seg[off:]) == 0 {
		return true // no UDP checksum
	}
	pseudo := header.PseudoHeaderChecksum(proto, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(seg)))
	if !partial {
		return checksum.Checksum(seg, pseudo) == 0xffff
	}
	seg[off], seg[off+1] = 0, 0
	sum := ^checksum.Checksum(seg, pseudo)
	if sum == 0 && proto == header.UDPProtocolNumber {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(seg[off:], sum)
	return true
}

// txEndpoint is the stack's link endpoint: the channel endpoint for what
// comes in (InjectInbound), while what goes out is written to the socket
// at once, by the goroutine that sends it: no queue, no hand-over to
// another goroutine per frame (a TFTP window's ACK waits for nothing), and
// nothing left unsent when the stack is closed right after a transfer's
// last ACK.
type txEndpoint struct {
	*channel.Endpoint
	l *link
}

// WritePackets implements stack.LinkEndpoint.
func (e *txEndpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n := 0
	for _, pkt := range pkts.AsSlice() {
		e.l.write(pkt)
		n++
	}
	return n, nil
}

// write sends one frame of the stack's.
func (l *link) write(pkt *stack.PacketBuffer) {
	l.txMu.Lock()
	defer l.txMu.Unlock()
	buf := l.txBuf[:0]
	for _, s := range pkt.AsSlices() {
		buf = append(buf, s...)
	}
	l.txBuf = buf
	l.send(buf)
}

// send writes one frame to the socket; a frame the kernel does not take
// is lost, as on a wire.
func (l *link) send(buf []byte) {
	if len(buf) < ethHeaderLen {
		return
	}
	sa := &unix.SockaddrLinklayer{Ifindex: l.ifindex, Protocol: htons(binary.BigEndian.Uint16(buf[12:])), Halen: 6}
	copy(sa.Addr[:], buf[:6])
	var werr error
	err := l.raw.Write(func(fd uintptr) bool {
		werr = unix.Sendto(int(fd), buf, 0, sa)
		return werr != unix.EAGAIN
	})
	if err != nil || werr != nil {
		l.dropped.Add(1) // closed, ENOBUFS and the like: a lost frame
		return
	}
	l.sent.Add(1)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
