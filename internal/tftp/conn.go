package tftp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// errUnreachable: the client's port is closed (ICMP port unreachable).
var errUnreachable = errors.New("client unreachable")

// connSender is a transfer's own UDP socket (its TID), bound to the address
// the client wrote to and connected to the client, so that the kernel drops
// packets from anyone else.
//
// Sends bypass the Go runtime's syscall accounting. Every DATA packet wakes
// a client, and the kernel often preempts the sender right then, inside
// write(2); the runtime takes a thread that long in a syscall for blocked,
// hands its P to another thread and keeps its monitor polling every 20 µs.
// In a 200-client storm with pxed in its own session (as under systemd)
// that cost as much CPU as the transfers themselves. A send on a
// non-blocking UDP socket never blocks, so it is made as a raw system call.
type connSender struct {
	c   *net.UDPConn
	raw syscall.RawConn

	// The packet and result of the send in progress, so that writeFn, bound
	// once, needs no closure (and no allocation) per packet.
	pkt     []byte
	err     syscall.Errno
	writeFn func(fd uintptr) bool

	// sendmmsg state, allocated on the first windowed send; nbatch is how
	// many of hdrs the send in progress uses.
	nbatch     int
	hdrs       []unix.Mmsghdr
	iovs       []unix.Iovec
	sendmmsgFn func(fd uintptr) bool
}

func newConnSender(local netip.Addr, peer netip.AddrPort) (*connSender, error) {
	c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), net.UDPAddrFromAddrPort(peer))
	if err != nil {
		return nil, err
	}
	raw, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	s := &connSender{c: c, raw: raw}
	s.writeFn = s.write
	s.sendmmsgFn = s.sendmmsg
	return s, nil
}

func (s *connSender) write(fd uintptr) bool {
	_, _, s.err = syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(s.pkt))), uintptr(len(s.pkt)))
	return true // never wait for writability: a full buffer is a lost packet
}

// sendBatch sends pkts with one raw sendmmsg(2). Packets the kernel does not
// take (a full socket buffer) are lost like any other; the retransmission
// timer recovers them.
func (s *connSender) sendBatch(pkts [][]byte) error {
	if cap(s.hdrs) < len(pkts) {
		s.hdrs = make([]unix.Mmsghdr, len(pkts))
		s.iovs = make([]unix.Iovec, len(pkts))
	}
	hdrs, iovs := s.hdrs[:len(pkts)], s.iovs[:len(pkts)]
	for i, p := range pkts {
		iovs[i] = unix.Iovec{Base: unsafe.SliceData(p)}
		iovs[i].SetLen(len(p))
		hdrs[i] = unix.Mmsghdr{}
		hdrs[i].Hdr.Iov = &iovs[i]
		hdrs[i].Hdr.SetIovlen(1)
	}
	s.nbatch = len(pkts)
	err := s.raw.Write(s.sendmmsgFn)
	for i := range iovs {
		iovs[i].Base = nil // do not keep the pooled buffer alive
	}
	if err != nil {
		return err
	}
	return s.result()
}

func (s *connSender) sendmmsg(fd uintptr) bool {
	_, _, s.err = syscall.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(unsafe.SliceData(s.hdrs))), uintptr(s.nbatch), 0, 0, 0)
	return true
}

func (s *connSender) send(b []byte) error {
	s.pkt = b
	err := s.raw.Write(s.writeFn)
	s.pkt = nil
	if err != nil {
		return err // the socket is closed
	}
	return s.result()
}

// result interprets the errno of the last raw send.
func (s *connSender) result() error { return sendError(s.err) }

// sendError is what a send that ended with errno e means for a transfer,
// whichever way it was sent (write, sendmmsg, io_uring).
func sendError(e syscall.Errno) error {
	switch e {
	case 0:
		return nil
	case syscall.ECONNREFUSED:
		return errUnreachable
	case syscall.ENOBUFS, syscall.EAGAIN, syscall.EINTR, syscall.EPERM:
		// A full socket buffer, or a local firewall rule dropping the
		// packet (netfilter answers EPERM): the packet is lost, and the
		// retransmission timer recovers it, or ends the transfer after
		// Retries if the loss persists.
		return nil
	default:
		return e
	}
}

func (s *connSender) close() { s.c.Close() }

// runConn drives a transfer on its own socket until it ends. Each transfer
// is one goroutine blocked in Go's netpoller between ACKs: measured against
// a hand-rolled epoll loop per CPU, this was 25-30% faster in a 100-client
// storm, because the runtime moves runnable transfers between CPUs when
// the kernel preempts a thread after a send wakes a client.
func (t *transfer) runConn(abortCtx context.Context) {
	cs := t.out.(*connSender)
	stop := context.AfterFunc(abortCtx, func() { cs.c.SetReadDeadline(time.Now()) })
	defer stop()
	var buf [1024]byte // ACKs are 4 bytes; errors carry a short message
	if t.begin(time.Now()) {
		return
	}
	// The socket's read deadline only has to come no later than the
	// transfer's. Moving it for every block (the transfer's deadline moves
	// with every window) costs a runtime timer update per block; instead it
	// stays put until it passes or falls after the transfer's, so a read may
	// wake early once per timeout period and simply go on waiting.
	var deadline time.Time
	now := time.Now()
	for {
		if !now.Before(deadline) || deadline.After(t.deadline) {
			deadline = t.deadline
			cs.c.SetReadDeadline(deadline)
		}
		n, err := cs.c.Read(buf[:])
		now = time.Now()
		if err != nil {
			var ne net.Error
			switch {
			case abortCtx.Err() != nil:
				t.fail(errAborted)
				return
			case errors.As(err, &ne) && ne.Timeout():
				if now.Before(t.deadline) {
					continue // woken early; not yet due
				}
				if t.onTimer(now) {
					return
				}
			default:
				t.fail(fmt.Errorf("%w: %v", errUnreachable, err))
				return
			}
			continue
		}
		if t.onPacket(buf[:n], now) {
			return
		}
	}
}
