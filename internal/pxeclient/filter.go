package pxeclient

import (
	"encoding/binary"
	"net"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// frameFilter is the packet socket's filter for hardware address mac: IPv4
// and ARP frames whose destination is mac or broadcast, never one this
// host sends (PACKET_OUTGOING). On a bridge in promiscuous mode everything
// else stays in the kernel, and what does reach the socket is bounded by
// what is sent to one machine.
func frameFilter(mac net.HardwareAddr) (*unix.SockFprog, error) {
	const (
		accept = 0x40000 // bytes of a frame to keep: all of it
		drop   = 0
	)
	hi := uint32(binary.BigEndian.Uint16(mac[0:2]))
	lo := binary.BigEndian.Uint32(mac[2:6])
	// Skips are relative: instruction i skipping n goes on at i+1+n.
	prog := []bpf.Instruction{
		/* 0 */ bpf.LoadExtension{Num: bpf.ExtType},
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OUTGOING, SkipTrue: 11}, // -> 13 drop
		/* 2 */ bpf.LoadAbsolute{Off: 12, Size: 2},
		/* 3 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0800, SkipTrue: 1}, // IPv4 -> 5
		/* 4 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x0806, SkipTrue: 8}, // not ARP -> 13 drop
		/* 5 */ bpf.LoadAbsolute{Off: 0, Size: 2},
		/* 6 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0xffff, SkipTrue: 3}, // -> 10 broadcast?
		/* 7 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: hi, SkipTrue: 5}, // -> 13 drop
		/* 8 */ bpf.LoadAbsolute{Off: 2, Size: 4},
		/* 9 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: lo, SkipTrue: 2, SkipFalse: 3}, // -> 12 accept, 13 drop
		/* 10 */ bpf.LoadAbsolute{Off: 2, Size: 4},
		/* 11 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0xffffffff, SkipTrue: 1}, // -> 13 drop
		/* 12 */ bpf.RetConstant{Val: accept},
		/* 13 */ bpf.RetConstant{Val: drop},
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, err
	}
	ins := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		ins[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return &unix.SockFprog{Len: uint16(len(ins)), Filter: &ins[0]}, nil
}
