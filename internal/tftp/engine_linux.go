package tftp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// errUnreachable: the client's port is closed (ICMP port unreachable).
var errUnreachable = errors.New("client unreachable")

// connSender is a transfer's own UDP socket, connected to the client, used
// without Go's netpoller: the worker that owns the transfer polls it.
type connSender struct{ fd int }

func newConnSender(local netip.Addr, peer netip.AddrPort) (*connSender, error) {
	family := unix.AF_INET
	if peer.Addr().Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Bind(fd, sockaddr(netip.AddrPortFrom(local, 0), family)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind %s: %w", local, err)
	}
	if err := unix.Connect(fd, sockaddr(peer, family)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("connect %s: %w", peer, err)
	}
	return &connSender{fd: fd}, nil
}

func sockaddr(ap netip.AddrPort, family int) unix.Sockaddr {
	if family == unix.AF_INET {
		a := ap.Addr()
		if !a.IsValid() || !a.Is4() {
			a = netip.IPv4Unspecified()
		}
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	}
	a := ap.Addr()
	if !a.IsValid() {
		a = netip.IPv6Unspecified()
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
}

func (c *connSender) send(b []byte) error {
	for {
		_, err := unix.Write(c.fd, b)
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.ENOBUFS:
			// The socket buffer is full: treat the packet as lost; the
			// retransmission timer recovers it.
			return nil
		case unix.ECONNREFUSED:
			return errUnreachable
		default:
			return err
		}
	}
}

func (c *connSender) close() {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}

// worker is an event loop that drives the transfers handed to it: one epoll
// set over their sockets, one eventfd to be told of new transfers and of
// shutdown. A Server runs one per CPU.
type worker struct {
	srv  *Server
	l    *listener
	epfd int
	evfd int

	mu      sync.Mutex
	pending []*transfer
	stopped bool
	closed  bool

	byFD map[int32]*transfer // owned by run
}

func newWorker(s *Server, l *listener) (*worker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, fmt.Errorf("epoll: %w", err)
	}
	return &worker{srv: s, l: l, epfd: epfd, evfd: evfd, byFD: map[int32]*transfer{}}, nil
}

// add hands a transfer to the worker; it starts on the worker's goroutine.
func (w *worker) add(t *transfer) {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		t.fail(errAborted)
		return
	}
	w.pending = append(w.pending, t)
	w.mu.Unlock()
	w.wake()
}

// wake interrupts epoll_wait. It holds mu so that it never writes to the
// eventfd after close: the number could by then belong to a new socket, and
// the write would go to a client.
func (w *worker) wake() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	var one = [8]byte{1}
	unix.Write(w.evfd, one[:])
}

// stop ends run once its transfers are gone (Serve has waited for them).
func (w *worker) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	w.wake()
}

func (w *worker) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.closed = true
	unix.Close(w.epfd)
	unix.Close(w.evfd)
}

func (w *worker) run(abortCtx context.Context) {
	defer w.close()
	stopAbort := context.AfterFunc(abortCtx, w.wake)
	defer stopAbort()
	events := make([]unix.EpollEvent, 256)
	var buf [1024]byte // ACKs are 4 bytes; errors carry a short message
	var nextTick time.Time
	for {
		timeout := -1
		if len(w.byFD) > 0 {
			timeout = int(timerTick / time.Millisecond)
		}
		n, err := unix.EpollWait(w.epfd, events, timeout)
		if err != nil && err != unix.EINTR {
			w.srv.logger().Error("tftp: epoll_wait failed", "error", err)
			time.Sleep(timerTick)
		}
		now := time.Now()
		for _, ev := range events[:max(n, 0)] {
			if ev.Fd == int32(w.evfd) {
				var b [8]byte
				unix.Read(w.evfd, b[:])
				if w.intake(now) {
					return
				}
				continue
			}
			t := w.byFD[ev.Fd]
			if t == nil {
				continue
			}
			// One read per event: a lock-step client has one ACK in
			// flight, so reading until EAGAIN would cost a second syscall
			// per block for nothing. epoll is level-triggered: anything
			// left is reported again on the next round.
			k, err := unix.Read(int(ev.Fd), buf[:])
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			var over bool
			if err != nil {
				over = t.fail(fmt.Errorf("%w: %v", errUnreachable, err))
			} else {
				over = t.onPacket(buf[:k], now)
			}
			if over {
				w.drop(ev.Fd)
			}
		}
		if abortCtx.Err() != nil {
			for fd, t := range w.byFD {
				t.fail(errAborted)
				w.drop(fd)
			}
		}
		if !now.Before(nextTick) {
			nextTick = now.Add(timerTick)
			for fd, t := range w.byFD {
				if !now.Before(t.deadline) && t.onTimer(now) {
					w.drop(fd)
				}
			}
		}
	}
}

// intake starts the pending transfers; it reports whether the worker should
// exit (stopped and idle).
func (w *worker) intake(now time.Time) bool {
	w.mu.Lock()
	pending := w.pending
	w.pending = nil
	stopped := w.stopped
	w.mu.Unlock()
	for _, t := range pending {
		cs := t.out.(*connSender)
		fd := int32(cs.fd)
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, cs.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: fd}); err != nil {
			t.fail(fmt.Errorf("epoll: %w", err))
			continue
		}
		w.byFD[fd] = t
		if t.begin(now) {
			w.drop(fd)
		}
	}
	return stopped && len(w.byFD) == 0
}

// drop forgets a finished transfer. Its socket is already closed, which
// removes it from the epoll set.
func (w *worker) drop(fd int32) {
	delete(w.byFD, fd)
}
