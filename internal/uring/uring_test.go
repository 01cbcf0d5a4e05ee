package uring

import (
	"bytes"
	"errors"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// newRing sets up a ring on a locked thread for the calling test, or skips
// when this kernel has no usable io_uring (it fails instead under
// PXED_E2E=1, which CI sets: CI's kernel has it).
func newRing(t *testing.T, entries uint32) *Ring {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	r, err := New(entries)
	if err != nil {
		if errors.Is(err, ErrUnsupported) && os.Getenv("PXED_E2E") != "1" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// udpPair returns two connected non-blocking UDP sockets on loopback.
func udpPair(t *testing.T) (a, b int) {
	t.Helper()
	mk := func() int {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	a, b = mk(), mk()
	sa, _ := unix.Getsockname(a)
	sb, _ := unix.Getsockname(b)
	if err := unix.Connect(a, sb); err != nil {
		t.Fatal(err)
	}
	if err := unix.Connect(b, sa); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// waitFor reaps until n completions arrived or a few seconds passed.
func waitFor(t *testing.T, r *Ring, n int) []CQE {
	t.Helper()
	var got []CQE
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		if err := r.Wait(1, 0, 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		r.Reap(func(c *CQE) { got = append(got, *c) })
	}
	if len(got) < n {
		t.Fatalf("got %d completions, want %d", len(got), n)
	}
	return got
}

func TestNop(t *testing.T) {
	r := newRing(t, 8)
	for i := range 3 {
		PrepNop(r.SQE(), uint64(100+i))
	}
	if r.Pending() != 3 {
		t.Fatalf("Pending = %d, want 3", r.Pending())
	}
	got := waitFor(t, r, 3)
	for i, c := range got {
		if c.UserData != uint64(100+i) || c.Res != 0 {
			t.Errorf("completion %d: %+v, want user data %d result 0 (in order)", i, c, 100+i)
		}
	}
	if r.Pending() != 0 {
		t.Errorf("Pending = %d after submission", r.Pending())
	}
}

func TestSendRecv(t *testing.T) {
	r := newRing(t, 8)
	a, b := udpPair(t)
	buf := make([]byte, 64)
	PrepRecv(r.SQE(), b, buf, 1) // armed before anything arrives
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	if n := r.Reap(func(*CQE) {}); n != 0 {
		t.Fatalf("%d completions before anything was sent", n)
	}
	msg := []byte("\x00\x03\x00\x01hello")
	PrepSend(r.SQE(), a, msg, 2)
	got := waitFor(t, r, 2)
	byUD := map[uint64]CQE{}
	for _, c := range got {
		byUD[c.UserData] = c
	}
	if c := byUD[2]; c.Res != int32(len(msg)) {
		t.Errorf("send: %+v, want %d bytes", c, len(msg))
	}
	if c := byUD[1]; c.Res != int32(len(msg)) || !bytes.Equal(buf[:c.Res], msg) {
		t.Errorf("recv: %+v %q, want %q", c, buf[:max(c.Res, 0)], msg)
	}
}

func TestRecvError(t *testing.T) {
	r := newRing(t, 8)
	a, b := udpPair(t)
	unix.Close(b) // a's peer port is now closed: ICMP port unreachable
	PrepSend(r.SQE(), a, []byte("x"), 1)
	waitFor(t, r, 1)
	buf := make([]byte, 16)
	PrepRecv(r.SQE(), a, buf, 2)
	c := waitFor(t, r, 1)[0]
	if !errors.Is(c.Err(), syscall.ECONNREFUSED) {
		t.Errorf("recv after port unreachable: %+v (%v), want ECONNREFUSED", c, c.Err())
	}
}

func TestCancel(t *testing.T) {
	r := newRing(t, 8)
	_, b := udpPair(t)
	buf := make([]byte, 16)
	PrepRecv(r.SQE(), b, buf, 7)
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	PrepCancel(r.SQE(), 7, 8)
	got := waitFor(t, r, 2)
	res := map[uint64]error{}
	for _, c := range got {
		res[c.UserData] = c.Err()
	}
	if !errors.Is(res[7], syscall.ECANCELED) {
		t.Errorf("cancelled recv: %v, want ECANCELED", res[7])
	}
	if res[8] != nil {
		t.Errorf("cancel: %v", res[8])
	}
}

func TestRead(t *testing.T) {
	r := newRing(t, 8)
	f, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("0123456789")
	buf := make([]byte, 4)
	PrepRead(r.SQE(), int(f.Fd()), buf, 3, 1)
	c := waitFor(t, r, 1)[0]
	if c.Res != 4 || string(buf) != "3456" {
		t.Errorf("read at 3: %+v %q, want 4 bytes \"3456\"", c, buf)
	}
}

func TestWaitTimeout(t *testing.T) {
	r := newRing(t, 8)
	_, b := udpPair(t)
	buf := make([]byte, 16)
	PrepRecv(r.SQE(), b, buf, 1)
	start := time.Now()
	if err := r.Wait(1, 0, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 40*time.Millisecond {
		t.Errorf("Wait returned after %v with nothing to complete, want the 50ms timeout", el)
	}
	if n := r.Reap(func(*CQE) {}); n != 0 {
		t.Errorf("%d completions, want none", n)
	}
	// want > 1 with a minimum wait returns once it has passed with one
	// completion ready, not at the timeout.
	PrepNop(r.SQE(), 2)
	start = time.Now()
	if err := r.Wait(5, time.Millisecond, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("Wait(5, 1ms, 2s) with one completion took %v", el)
	}
}

func TestFullRing(t *testing.T) {
	r := newRing(t, 4)
	n := 0
	for r.SQE() != nil {
		n++
		if n > 1024 {
			t.Fatal("SQE never reports a full ring")
		}
	}
	// Entries handed out but left zero are NOPs (opcode 0).
	if n < 4 {
		t.Fatalf("ring of 4 gave %d entries", n)
	}
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r, n)
	if r.SQE() == nil {
		t.Error("no entry after the ring was submitted and reaped")
	}
}

func TestNewRejectsBadSizes(t *testing.T) {
	for _, n := range []uint32{0, maxEntries + 1} {
		if r, err := New(n); err == nil {
			r.Close()
			t.Errorf("New(%d) succeeded", n)
		}
	}
}

// The wire layout of the structures the kernel reads and writes.
func TestLayout(t *testing.T) {
	var s SQE
	if off := offsetOf(&s, &s.UserData); off != 32 {
		t.Errorf("SQE user_data at %d, want 32", off)
	}
	if off := offsetOf(&s, &s.Len); off != 24 {
		t.Errorf("SQE len at %d, want 24", off)
	}
	var p params
	if off := offsetOf(&p, &p.SQOff); off != 40 {
		t.Errorf("io_uring_params.sq_off at %d, want 40", off)
	}
	if off := offsetOf(&p, &p.CQOff); off != 80 {
		t.Errorf("io_uring_params.cq_off at %d, want 80", off)
	}
}

func offsetOf[S, F any](s *S, f *F) uintptr {
	return uintptr(unsafe.Pointer(f)) - uintptr(unsafe.Pointer(s))
}
