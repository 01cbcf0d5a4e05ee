// Package uring is a small io_uring(7) binding: one submission and one
// completion ring, the handful of operations a UDP server needs (send,
// receive, read, cancel, no-op), and a wait with a timeout.
//
// Its reason to exist is batching. A server that answers many clients
// queues every client's reply and hands the whole batch to the kernel in one
// io_uring_enter(2); a server that writes each reply with its own write(2)
// pays a system call per packet and, on a busy machine, a context switch per
// packet too, because each packet wakes a client that preempts the writer on
// its way back to user space.
//
// A Ring belongs to one goroutine locked to its OS thread
// (runtime.LockOSThread): it is set up with IORING_SETUP_SINGLE_ISSUER and
// DEFER_TASKRUN where the kernel has them, which both require one submitting
// thread. Buffers handed to an operation must stay reachable and unmoved
// until its completion has been reaped: use heap memory (Go's collector does
// not move heap objects) and keep a reference.
package uring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Operation codes (enum io_uring_op in linux/io_uring.h).
const (
	OpNop         = 0
	OpAsyncCancel = 14
	OpRead        = 22
	OpSend        = 26
	OpRecv        = 27
)

// Setup flags, enter flags and feature bits used here.
const (
	setupCQSize        = 1 << 3
	setupCoopTaskrun   = 1 << 8
	setupSingleIssuer  = 1 << 12
	setupDeferTaskrun  = 1 << 13
	enterGetEvents     = 1 << 0
	enterExtArg        = 1 << 3
	featSingleMmap     = 1 << 0
	featNoDrop         = 1 << 1
	featFastPoll       = 1 << 5
	featExtArg         = 1 << 8
	featMinTimeout     = 1 << 15
	offSQRing          = 0
	offCQRing          = 0x8000000
	offSQEs            = 0x10000000
	asyncCancelAll     = 1 << 0
	requiredFeatures   = featSingleMmap | featNoDrop | featFastPoll | featExtArg
	maxEntries         = 32768
	cqEntriesPerSQE    = 4
	sqeSize, cqeSize   = 64, 16
	paramsSize         = 120
	getEventsArgSize   = 24
	kernelTimespecSize = 16
)

// SQE is a submission queue entry (struct io_uring_sqe, 64 bytes).
type SQE struct {
	Opcode      uint8
	Flags       uint8
	IoPrio      uint16
	Fd          int32
	Off         uint64
	Addr        uint64
	Len         uint32
	OpFlags     uint32
	UserData    uint64
	BufIndex    uint16
	Personality uint16
	SpliceFdIn  int32
	Addr3       uint64
	_           uint64
}

// CQE is a completion queue entry (struct io_uring_cqe, 16 bytes). Res is
// the operation's result: a byte count, or a negated errno.
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// Err returns Res as an error when it is a negated errno, else nil.
func (c *CQE) Err() error {
	if c.Res < 0 {
		return syscall.Errno(-c.Res)
	}
	return nil
}

type sqOffsets struct {
	Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
	UserAddr                                                        uint64
}

type cqOffsets struct {
	Head, Tail, RingMask, RingEntries, Overflow, Cqes, Flags, Resv1 uint32
	UserAddr                                                        uint64
}

type params struct {
	SQEntries, CQEntries, Flags, SQThreadCPU, SQThreadIdle, Features, WQFd uint32
	Resv                                                                   [3]uint32
	SQOff                                                                  sqOffsets
	CQOff                                                                  cqOffsets
}

type getEventsArg struct {
	Sigmask   uint64
	SigmaskSz uint32
	MinWait   uint32
	Ts        uint64
}

// Ring is one io_uring instance. It is not safe for concurrent use.
type Ring struct {
	fd       int
	ringMem  []byte // SQ and CQ rings (one mapping: IORING_FEAT_SINGLE_MMAP)
	sqeMem   []byte
	sqHead   *uint32 // kernel-owned
	sqTail   *uint32
	sqMask   uint32
	sqArray  []uint32
	sqes     []SQE
	cqHead   *uint32
	cqTail   *uint32 // kernel-owned
	cqMask   uint32
	cqes     []CQE
	sqLocal  uint32 // next SQE to hand out (tail not yet published)
	pending  uint32 // SQEs handed out and published but not yet submitted
	deferred bool   // DEFER_TASKRUN: completions need an enter with GETEVENTS
	minWait  bool   // IORING_FEAT_MIN_TIMEOUT

	ts  unix.Timespec
	arg getEventsArg
}

// ErrUnsupported wraps every reason this kernel (or a seccomp policy, or
// kernel.io_uring_disabled) cannot give a usable ring; callers fall back.
var ErrUnsupported = errors.New("io_uring unavailable")

// New sets up a ring with at least entries submission slots and four times
// as many completion slots.
func New(entries uint32) (*Ring, error) {
	if entries == 0 || entries > maxEntries {
		return nil, fmt.Errorf("uring: %d entries (1..%d)", entries, maxEntries)
	}
	if unsafe.Sizeof(SQE{}) != sqeSize || unsafe.Sizeof(CQE{}) != cqeSize || unsafe.Sizeof(params{}) != paramsSize ||
		unsafe.Sizeof(getEventsArg{}) != getEventsArgSize || unsafe.Sizeof(unix.Timespec{}) != kernelTimespecSize {
		return nil, fmt.Errorf("%w: unexpected structure sizes on this platform", ErrUnsupported)
	}
	base := uint32(setupCQSize)
	var fd int
	var p params
	var err error
	// Newest flags first; older kernels refuse unknown flags with EINVAL.
	for _, flags := range []uint32{setupSingleIssuer | setupDeferTaskrun, setupCoopTaskrun, 0} {
		p = params{Flags: base | flags, CQEntries: entries * cqEntriesPerSQE}
		r1, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
		if e == 0 {
			fd, err = int(r1), nil
			break
		}
		err = e
		if e != unix.EINVAL {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: io_uring_setup: %v", ErrUnsupported, err)
	}
	if p.Features&requiredFeatures != requiredFeatures {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: kernel lacks features %#x (has %#x)", ErrUnsupported, requiredFeatures, p.Features)
	}
	r := &Ring{fd: fd, deferred: p.Flags&setupDeferTaskrun != 0, minWait: p.Features&featMinTimeout != 0}
	sqSize := p.SQOff.Array + p.SQEntries*4
	cqSize := p.CQOff.Cqes + p.CQEntries*cqeSize
	size := max(sqSize, cqSize)
	r.ringMem, err = unix.Mmap(fd, offSQRing, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: mmap rings: %v", ErrUnsupported, err)
	}
	r.sqeMem, err = unix.Mmap(fd, offSQEs, int(p.SQEntries*sqeSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		unix.Munmap(r.ringMem)
		unix.Close(fd)
		return nil, fmt.Errorf("%w: mmap SQEs: %v", ErrUnsupported, err)
	}
	at := func(off uint32) unsafe.Pointer { return unsafe.Pointer(&r.ringMem[off]) }
	r.sqHead = (*uint32)(at(p.SQOff.Head))
	r.sqTail = (*uint32)(at(p.SQOff.Tail))
	r.sqMask = *(*uint32)(at(p.SQOff.RingMask))
	r.sqArray = unsafe.Slice((*uint32)(at(p.SQOff.Array)), p.SQEntries)
	r.sqes = unsafe.Slice((*SQE)(unsafe.Pointer(&r.sqeMem[0])), p.SQEntries)
	r.cqHead = (*uint32)(at(p.CQOff.Head))
	r.cqTail = (*uint32)(at(p.CQOff.Tail))
	r.cqMask = *(*uint32)(at(p.CQOff.RingMask))
	r.cqes = unsafe.Slice((*CQE)(at(p.CQOff.Cqes)), p.CQEntries)
	r.sqLocal = atomic.LoadUint32(r.sqTail)
	return r, nil
}

// Close releases the ring. Operations still in flight are cancelled by the
// kernel; their buffers may be reused once Close returns.
func (r *Ring) Close() error {
	if r.fd < 0 {
		return nil
	}
	unix.Munmap(r.sqeMem)
	unix.Munmap(r.ringMem)
	err := unix.Close(r.fd)
	r.fd = -1
	return err
}

// SQE returns a zeroed submission entry to fill, or nil when the
// submission ring is full (Submit, then ask again).
func (r *Ring) SQE() *SQE {
	head := atomic.LoadUint32(r.sqHead)
	if r.sqLocal-head >= uint32(len(r.sqes)) {
		return nil
	}
	i := r.sqLocal & r.sqMask
	r.sqArray[i] = i
	s := &r.sqes[i]
	*s = SQE{}
	r.sqLocal++
	r.pending++
	return s
}

// Pending is how many entries have been handed out and not yet submitted.
func (r *Ring) Pending() int { return int(r.pending) }

// Submit hands the queued entries to the kernel without waiting. It also
// runs completions the kernel deferred to this thread, so that Reap sees
// them. It never blocks.
func (r *Ring) Submit() error {
	atomic.StoreUint32(r.sqTail, r.sqLocal)
	flags := uintptr(0)
	if r.deferred {
		flags = enterGetEvents
	}
	if r.pending == 0 && flags == 0 {
		return nil
	}
	for {
		// Raw: the call returns at once, and a thread preempted on its way
		// out must not be taken for one blocked in a system call (the
		// runtime would hand its P away and keep its monitor polling).
		_, _, e := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(r.pending), 0, flags, 0, 0)
		r.syncPending()
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.EBUSY:
			// Out of kernel resources or completion space: reap first.
			return nil
		default:
			return fmt.Errorf("io_uring_enter: %w", e)
		}
	}
}

// Wait submits what is queued and blocks until at least want completions
// are ready or timeout passes (timeout <= 0: do not block). With minWait
// (kernels with IORING_FEAT_MIN_TIMEOUT, Linux 6.12+; ignored elsewhere) it
// returns as soon as minWait has passed with at least one completion
// ready, which lets a busy caller collect a batch without stalling a quiet
// one. It returns nil on a timeout too; Reap tells what arrived.
func (r *Ring) Wait(want int, minWait, timeout time.Duration) error {
	atomic.StoreUint32(r.sqTail, r.sqLocal)
	if timeout <= 0 {
		return r.Submit()
	}
	want = max(want, 1)
	if !r.minWait {
		minWait = 0
	}
	if minWait == 0 {
		want = 1 // without a minimum wait, more would stall a quiet ring
	}
	r.ts = unix.NsecToTimespec(int64(timeout))
	r.arg = getEventsArg{Ts: uint64(uintptr(unsafe.Pointer(&r.ts))), MinWait: uint32(minWait / time.Microsecond)}
	_, _, e := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(r.pending), uintptr(want),
		enterGetEvents|enterExtArg, uintptr(unsafe.Pointer(&r.arg)), getEventsArgSize)
	r.syncPending()
	switch e {
	case 0, unix.ETIME, unix.EINTR, unix.EAGAIN, unix.EBUSY:
		// EINTR: a signal, the Go runtime's preemption signal among them.
		// EAGAIN/EBUSY: no room for more completions. Either way the
		// caller reaps what there is and waits again.
		return nil
	default:
		return fmt.Errorf("io_uring_enter: %w", e)
	}
}

// Ready is how many completions are waiting to be reaped.
func (r *Ring) Ready() int { return int(atomic.LoadUint32(r.cqTail) - *r.cqHead) }

// syncPending recounts the entries the kernel has not consumed yet.
func (r *Ring) syncPending() { r.pending = r.sqLocal - atomic.LoadUint32(r.sqHead) }

// Reap calls f for every completion that is ready and then releases them.
// f must not keep the pointer.
func (r *Ring) Reap(f func(*CQE)) int {
	head := *r.cqHead
	tail := atomic.LoadUint32(r.cqTail)
	n := 0
	for ; head != tail; head++ {
		f(&r.cqes[head&r.cqMask])
		n++
	}
	atomic.StoreUint32(r.cqHead, head)
	return n
}

// PrepSend fills s to send b on the connected socket fd.
func PrepSend(s *SQE, fd int, b []byte, userData uint64) {
	s.Opcode = OpSend
	s.Fd = int32(fd)
	s.Addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	s.Len = uint32(len(b))
	s.OpFlags = unix.MSG_NOSIGNAL
	s.UserData = userData
}

// PrepRecv fills s to receive one datagram from fd into b.
func PrepRecv(s *SQE, fd int, b []byte, userData uint64) {
	s.Opcode = OpRecv
	s.Fd = int32(fd)
	s.Addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	s.Len = uint32(len(b))
	s.UserData = userData
}

// PrepRead fills s to read len(b) bytes of fd at offset off into b.
func PrepRead(s *SQE, fd int, b []byte, off int64, userData uint64) {
	s.Opcode = OpRead
	s.Fd = int32(fd)
	s.Addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	s.Len = uint32(len(b))
	s.Off = uint64(off)
	s.UserData = userData
}

// PrepCancel fills s to cancel every operation queued with target as its
// user data; the cancelled operations complete with ECANCELED.
func PrepCancel(s *SQE, target, userData uint64) {
	s.Opcode = OpAsyncCancel
	s.Fd = -1
	s.Addr = target
	s.OpFlags = asyncCancelAll
	s.UserData = userData
}

// PrepNop fills s with an operation that completes at once with result 0.
func PrepNop(s *SQE, userData uint64) {
	s.Opcode = OpNop
	s.Fd = -1
	s.UserData = userData
}
