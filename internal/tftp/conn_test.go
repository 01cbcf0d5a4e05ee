package tftp

import (
	"errors"
	"syscall"
	"testing"
)

// TestSendError checks what each errno of a send means for a transfer: a
// lost packet (the timer recovers it), the client gone, or a real failure.
// EPERM is what a local netfilter rule dropping the packet returns; it used
// to end the transfer at once, as if the socket had failed.
func TestSendError(t *testing.T) {
	for _, c := range []struct {
		errno syscall.Errno
		want  error // nil: counted as a loss
	}{
		{0, nil},
		{syscall.EAGAIN, nil},
		{syscall.ENOBUFS, nil},
		{syscall.EINTR, nil},
		{syscall.EPERM, nil},
		{syscall.ECONNREFUSED, errUnreachable},
		{syscall.EBADF, syscall.EBADF},
		{syscall.EMSGSIZE, syscall.EMSGSIZE},
	} {
		if got := sendError(c.errno); !errors.Is(got, c.want) || (c.want == nil) != (got == nil) {
			t.Errorf("sendError(%v) = %v, want %v", c.errno, got, c.want)
		}
	}
}
