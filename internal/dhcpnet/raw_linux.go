package dhcpnet

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The send and non-blocking receive system calls go through RawSyscall, not
// Syscall: they never block (the sockets are non-blocking), and a Syscall
// that runs longer than ~20 µs — a send on a veth or bridge does the
// receiver's network processing inline — lets the Go runtime hand the
// thread's P to another thread and wake it. Under DHCP load on a VM those
// handoffs cost more CPU than the packets.

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// rawSendto is sendto(2) of b to the socket address sa (salen bytes).
func rawSendto(fd uintptr, b []byte, sa unsafe.Pointer, salen uintptr) error {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(p), uintptr(len(b)), 0, uintptr(sa), salen)
	return errnoErr(e)
}

// sendtoInet4 sends b to dst (IPv4) on a UDP socket.
func sendtoInet4(fd uintptr, b []byte, dst netip.AddrPort) error {
	sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: dst.Addr().As4()}
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p[0], p[1] = byte(dst.Port()>>8), byte(dst.Port())
	return rawSendto(fd, b, unsafe.Pointer(&sa), unix.SizeofSockaddrInet4)
}

// recvmsgInet4 is a non-blocking recvmsg(2): the datagram into b, its
// control messages into oob, its source into from.
func recvmsgInet4(fd uintptr, b, oob []byte, from *unix.RawSockaddrInet4) (n, oobn, flags int, err error) {
	var iov unix.Iovec
	if len(b) > 0 {
		iov.Base = &b[0]
		iov.SetLen(len(b))
	}
	var msg unix.Msghdr
	msg.Name = (*byte)(unsafe.Pointer(from))
	msg.Namelen = unix.SizeofSockaddrInet4
	msg.Iov = &iov
	msg.Iovlen = 1
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	r, _, e := unix.RawSyscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&msg)), unix.MSG_DONTWAIT)
	if e != 0 {
		return 0, 0, 0, e
	}
	return int(r), int(msg.Controllen), int(msg.Flags), nil
}

func portOf(sa *unix.RawSockaddrInet4) uint16 {
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	return uint16(p[0])<<8 | uint16(p[1])
}
