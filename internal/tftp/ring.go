package tftp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"pxed/internal/uring"
)

// The ring engine drives ephemeral-port transfers from a few worker
// threads, each with its own io_uring. A worker waits for ACKs on all its
// transfers' sockets at once and answers every ACK that arrived with one
// io_uring_enter(2) for the whole batch: one system call, and one context
// switch, per batch instead of per DATA packet. That is where a boot storm's
// CPU goes: every DATA packet wakes a client, and a server that writes
// packet by packet is preempted by that client after each write.
//
// Request handling stays where it was: the listener parses the request, a
// short-lived goroutine opens the file (which may touch the disk) and the
// transfer's socket, then hands both to a worker. From then on only that
// worker touches the transfer.

// ringEntries is the submission ring size per worker; the completion ring
// is four times larger, and the kernel keeps overflowing completions
// (IORING_FEAT_NODROP), so this bounds batching, not transfers.
const ringEntries = 2048

// How a worker waits: see waitPolicy.
var (
	ringMinWait  = 50 * time.Microsecond
	ringBusyRate = 20000 // packets a second
	ringSpin     = 50 * time.Microsecond
	ringSpinMax  = 4
)

// recvBufSize holds any ACK or ERROR packet a client sends mid-transfer.
const recvBufSize = 1024

// user_data: kind in the top 8 bits, a generation in the next 24 (slots
// are reused; a late completion of a previous occupant must not reach the
// new one), an index in the low 32.
const (
	udRecv = iota + 1
	udSend
	udEvent
	udCancel
	udClose
)

func ud(kind uint8, gen uint32, idx uint32) uint64 {
	return uint64(kind)<<56 | uint64(gen&0xffffff)<<32 | uint64(idx)
}

func udSplit(v uint64) (kind uint8, gen uint32, idx uint32) {
	return uint8(v >> 56), uint32(v>>32) & 0xffffff, uint32(v)
}

// ringEngine is the set of workers of one Serve call.
type ringEngine struct {
	workers []*ringWorker
	next    atomic.Uint32
	wg      sync.WaitGroup
}

// newRingEngine starts n workers, or returns an error (uring.ErrUnsupported
// when the kernel or its policy has no io_uring) and starts none.
func newRingEngine(srv *Server, n int, abortCtx context.Context) (*ringEngine, error) {
	e := &ringEngine{}
	for i := 0; i < n; i++ {
		w, err := startRingWorker(srv, abortCtx, &e.wg)
		if err != nil {
			e.stop()
			return nil, err
		}
		e.workers = append(e.workers, w)
	}
	return e, nil
}

// adopt gives a transfer whose file is open to a worker, which sends the
// OACK or first window and drives it to the end.
func (e *ringEngine) adopt(t *transfer, oack []option) {
	start := int(e.next.Add(1))
	for i := range e.workers {
		w := e.workers[(start+i)%len(e.workers)]
		w.mu.Lock()
		if w.dead.Load() {
			w.mu.Unlock()
			continue
		}
		w.incoming = append(w.incoming, adoption{t, oack})
		w.mu.Unlock()
		w.wake()
		return
	}
	t.fail(&transferError{code: ErrUndefined, msg: "server cannot serve transfers", err: errors.New("every io_uring worker has failed")})
}

// stop ends the workers once every transfer they hold has ended (the
// caller has waited for the transfers), and waits for them.
func (e *ringEngine) stop() {
	for _, w := range e.workers {
		w.stopping.Store(true)
		w.wake()
	}
	e.wg.Wait()
}

type adoption struct {
	t    *transfer
	oack []option
}

type ringSlot struct {
	t       *transfer
	s       *ringSender
	gen     uint32
	armed   bool // a RECV is in flight
	closing bool // the transfer is over; close the socket once the RECV is back
	recv    []byte
}

// sendBuf is a send in flight: its buffer, and the transfer it is for.
type sendBuf struct {
	buf  *[]byte
	slot uint32
	gen  uint32
}

type ringWorker struct {
	srv      *Server
	ring     *uring.Ring
	abortCtx context.Context

	mu       sync.Mutex
	incoming []adoption
	efd      int         // eventfd: adoption, abort or stop
	woken    atomic.Bool // an eventfd write is pending
	stopping atomic.Bool
	dead     atomic.Bool // the ring failed; incoming is refused (set under mu)
	efdBuf   []byte

	slots     []*ringSlot
	freeSlots []uint32
	active    int
	bufs      []sendBuf // sends in flight, by index; freeBufs lists the unused entries
	freeBufs  []uint32
	aborted   bool
	nextTick  time.Time
	lastTick  time.Time
	now       time.Time
	recvs     int // packets received since lastTick
	rate      int // packets a second over the last tick
	spinSkip  int // waits to go before spinning again
	spinFails int // spins in a row that found nothing
	completeF func(*uring.CQE)
}

func startRingWorker(srv *Server, abortCtx context.Context, wg *sync.WaitGroup) (*ringWorker, error) {
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	w := &ringWorker{srv: srv, abortCtx: abortCtx, efd: efd, efdBuf: make([]byte, 8)}
	w.completeF = w.complete
	ready := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		// The ring is single-issuer: it is created, submitted to and
		// waited on by this one thread.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		r, err := uring.New(ringEntries)
		if err != nil {
			unix.Close(efd)
			ready <- err
			return
		}
		w.ring = r
		ready <- nil
		w.run()
		r.Close()
		w.mu.Lock()
		unix.Close(w.efd)
		w.efd = -1
		w.mu.Unlock()
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	context.AfterFunc(abortCtx, w.wake)
	return w, nil
}

// wake makes the worker look at its incoming transfers, the abort and the
// stop flag. The eventfd is written under mu so that no write can reach it
// once the worker has closed it (the number could name another file by
// then).
func (w *ringWorker) wake() {
	if w.woken.Swap(true) {
		return
	}
	var one [8]byte // eventfd(2) adds a host-endian uint64
	binary.NativeEndian.PutUint64(one[:], 1)
	w.mu.Lock()
	if w.efd >= 0 {
		unix.Write(w.efd, one[:])
	}
	w.mu.Unlock()
}

func (w *ringWorker) sqe() *uring.SQE {
	for {
		if s := w.ring.SQE(); s != nil {
			return s
		}
		// The submission ring is full: hand it to the kernel and go on.
		w.ring.Submit()
	}
}

func (w *ringWorker) run() {
	uring.PrepRead(w.sqe(), w.efd, w.efdBuf, 0, ud(udEvent, 0, 0))
	w.now = time.Now()
	w.lastTick = w.now
	w.nextTick = w.now.Add(timerTick)
	for {
		n := w.ring.Reap(w.completeF)
		w.now = time.Now()
		if !w.now.Before(w.nextTick) {
			w.tick()
			if el := w.now.Sub(w.lastTick); el > 0 {
				w.rate = int(float64(w.recvs) / el.Seconds())
			}
			w.recvs, w.lastTick = 0, w.now
			w.nextTick = w.now.Add(timerTick)
		}
		if w.stopping.Load() && w.active == 0 {
			return
		}
		if n > 0 || w.ring.Pending() > 0 {
			// Send what the completions produced and collect what
			// arrived meanwhile, then look again.
			if err := w.ring.Submit(); err != nil {
				w.fatal(err)
				return
			}
			continue
		}
		minWait, spun := w.waitPolicy()
		if spun {
			continue
		}
		if err := w.ring.Wait(w.active, minWait, w.nextTick.Sub(w.now)); err != nil {
			w.fatal(err)
			return
		}
	}
}

// waitPolicy decides how the worker waits when it has nothing to do, the
// way network drivers coalesce interrupts:
//
//   - Busy (more than ringBusyRate packets a second in the last tick, from
//     more than ringSpinMax transfers): wait up to ringMinWait for the ACKs
//     of all transfers, so that one system call answers a batch. Each wake
//     otherwise costs a context switch, and on a machine whose CPUs are
//     shared with other work (a dom0, a loaded host, the benchmark's own
//     clients) those switches are most of the server's cost. At that rate
//     ringMinWait is small beside the time a packet queues anyway.
//   - A few transfers: poll for the next ACK for up to ringSpin before
//     sleeping. A lock-step client on a fast path answers within
//     microseconds, and waking a sleeping thread costs more than that (tens
//     of microseconds in a VM). Spinning that does not pay (clients behind a
//     real network, or emulated ones) backs off exponentially.
//   - Otherwise: sleep until the first completion.
//
// It reports spun when spinning found a completion.
func (w *ringWorker) waitPolicy() (minWait time.Duration, spun bool) {
	if w.active > ringSpinMax {
		if w.rate > ringBusyRate {
			return ringMinWait, false
		}
		return 0, false
	}
	if w.active == 0 || ringSpin <= 0 {
		return 0, false
	}
	if w.spinSkip > 0 {
		w.spinSkip--
		return 0, false
	}
	if w.spin() {
		w.spinFails = 0
		return 0, true
	}
	w.spinFails = min(w.spinFails+1, 10)
	w.spinSkip = 1<<w.spinFails - 1
	return 0, false
}

// spin polls the ring for up to ringSpin and reports whether a completion
// arrived.
func (w *ringWorker) spin() bool {
	deadline := w.now.Add(ringSpin)
	for {
		if err := w.ring.Submit(); err != nil {
			return false
		}
		if w.ring.Ready() > 0 {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
	}
}

// fatal ends every transfer when the ring itself fails (it does not in
// practice: only a bug or a kernel out of memory gets here). Their sockets
// close with the ring.
func (w *ringWorker) fatal(err error) {
	w.mu.Lock()
	w.dead.Store(true)
	in := w.incoming
	w.incoming = nil
	w.mu.Unlock()
	err = fmt.Errorf("io_uring: %w", err)
	for _, a := range in {
		a.t.fail(err) // not adopted: its sender still writes and closes directly
	}
	for _, sl := range w.slots {
		if sl.s == nil {
			continue
		}
		sl.s.w = nil // from now on the sender writes and closes directly
		if sl.t != nil && !sl.t.done {
			sl.t.fail(err)
		}
		sl.s.close()
	}
}

func (w *ringWorker) tick() {
	w.aborted = w.aborted || w.abortCtx.Err() != nil
	for _, sl := range w.slots {
		if sl.t == nil || sl.t.done {
			continue
		}
		if w.aborted {
			sl.t.fail(errAborted)
			continue
		}
		if !w.now.Before(sl.t.deadline) {
			sl.t.onTimer(w.now)
		}
	}
}

func (w *ringWorker) complete(c *uring.CQE) {
	kind, gen, idx := udSplit(c.UserData)
	switch kind {
	case udRecv:
		w.recvs++
		sl := w.slots[idx]
		if sl.gen != gen {
			return
		}
		sl.armed = false
		if sl.closing {
			w.release(idx)
			return
		}
		t := sl.t
		switch {
		case c.Res >= 0:
			t.onPacket(sl.recv[:c.Res], w.now)
		case c.Res == -int32(unix.ECONNREFUSED):
			t.fail(errUnreachable)
		case c.Res == -int32(unix.EINTR) || c.Res == -int32(unix.EAGAIN):
		default:
			t.fail(fmt.Errorf("%w: receive: %v", errUnreachable, c.Err()))
		}
		if !t.done {
			w.arm(idx)
		}
	case udSend:
		b := &w.bufs[idx]
		slot, sgen := b.slot, b.gen
		w.srv.putBuf(b.buf)
		b.buf = nil
		w.freeBufs = append(w.freeBufs, idx)
		if c.Res >= 0 {
			return
		}
		sl := w.slots[slot]
		if sl.gen != sgen || sl.t == nil || sl.t.done {
			return
		}
		if err := sendError(syscall.Errno(-c.Res)); err != nil {
			sl.t.fail(fmt.Errorf("send: %w", err))
		}
	case udEvent:
		w.woken.Store(false)
		w.mu.Lock()
		in := w.incoming
		w.incoming = nil
		w.mu.Unlock()
		for _, a := range in {
			w.begin(a)
		}
		if w.abortCtx.Err() != nil && !w.aborted {
			w.now = time.Now()
			w.nextTick = w.now // abort at once
		}
		uring.PrepRead(w.sqe(), w.efd, w.efdBuf, 0, ud(udEvent, 0, 0))
	case udClose:
		if sl := w.slots[idx]; sl.gen == gen && sl.closing {
			w.release(idx)
		}
	case udCancel:
	}
}

func (w *ringWorker) begin(a adoption) {
	var idx uint32
	if n := len(w.freeSlots); n > 0 {
		idx = w.freeSlots[n-1]
		w.freeSlots = w.freeSlots[:n-1]
	} else {
		idx = uint32(len(w.slots))
		w.slots = append(w.slots, &ringSlot{recv: make([]byte, recvBufSize)})
	}
	sl := w.slots[idx]
	sl.gen++
	sl.t = a.t
	sl.s = a.t.out.(*ringSender)
	sl.closing, sl.armed = false, false
	sl.s.w, sl.s.slot, sl.s.gen = w, idx, sl.gen
	w.active++
	w.arm(idx)
	a.t.launch(a.oack, time.Now())
}

func (w *ringWorker) arm(idx uint32) {
	sl := w.slots[idx]
	uring.PrepRecv(w.sqe(), sl.s.fd, sl.recv, ud(udRecv, sl.gen, idx))
	sl.armed = true
}

// closeSlot is the sender's close. The socket must outlive the entries
// already queued for it (the transfer's last packets, often an ERROR): were
// it closed now, its number could name another transfer's socket by the
// time they are submitted. So the close waits for a completion queued
// behind them: the cancelled RECV, or a no-op when no RECV is in flight.
func (w *ringWorker) closeSlot(idx uint32) {
	sl := w.slots[idx]
	if sl.closing {
		return
	}
	sl.closing = true
	if sl.armed {
		uring.PrepCancel(w.sqe(), ud(udRecv, sl.gen, idx), ud(udCancel, sl.gen, idx))
	} else {
		uring.PrepNop(w.sqe(), ud(udClose, sl.gen, idx))
	}
}

func (w *ringWorker) release(idx uint32) {
	sl := w.slots[idx]
	if sl.s == nil {
		return
	}
	unix.Close(sl.s.fd)
	sl.s.fd = -1
	sl.t, sl.s = nil, nil
	w.freeSlots = append(w.freeSlots, idx)
	w.active--
}

// queueSend copies pkt into a buffer from the server's pools, which the
// ring holds until the send completes, and queues the send.
func (w *ringWorker) queueSend(s *ringSender, pkt []byte) {
	var idx uint32
	if n := len(w.freeBufs); n > 0 {
		idx = w.freeBufs[n-1]
		w.freeBufs = w.freeBufs[:n-1]
	} else {
		idx = uint32(len(w.bufs))
		w.bufs = append(w.bufs, sendBuf{})
	}
	b := &w.bufs[idx]
	b.buf, b.slot, b.gen = w.srv.getBuf(len(pkt)), s.slot, s.gen
	n := copy(*b.buf, pkt)
	uring.PrepSend(w.sqe(), s.fd, (*b.buf)[:n], ud(udSend, 0, idx))
}

// ringSender is a transfer's own UDP socket (its TID), connected to the
// client. Until a worker adopts the transfer (while the file is opened) it
// sends with write(2); then every send is queued on the worker's ring.
type ringSender struct {
	fd   int
	w    *ringWorker
	slot uint32
	gen  uint32
}

// newRingSender opens the transfer's socket: bound to the address the
// client wrote to, on a new port, and connected to the client so that the
// kernel drops packets from anyone else.
func newRingSender(local netip.Addr, peer netip.AddrPort) (*ringSender, error) {
	family := unix.AF_INET
	if peer.Addr().Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if local.IsValid() && local.Is4() == peer.Addr().Is4() {
		if err := unix.Bind(fd, sockaddr(netip.AddrPortFrom(local, 0))); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("bind %s: %w", local, err)
		}
	}
	if err := unix.Connect(fd, sockaddr(peer)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("connect %s: %w", peer, err)
	}
	return &ringSender{fd: fd}, nil
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func (s *ringSender) send(b []byte) error {
	if s.w != nil {
		s.w.queueSend(s, b)
		return nil
	}
	_, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(s.fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	return sendError(e)
}

func (s *ringSender) sendBatch(pkts [][]byte) error {
	for _, p := range pkts {
		if err := s.send(p); err != nil {
			return err
		}
	}
	return nil
}

func (s *ringSender) close() {
	if s.w != nil {
		s.w.closeSlot(s.slot)
		return
	}
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
}
