package main

// Which processes, with which credentials, hold the sockets the Xen
// bootloader's network tests see requests from (xenboot_net_test.go): read
// from /proc, so a test can assert that only the unprivileged worker spoke
// to the network.

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// procInfo is what /proc/PID/status says of a process holding a socket.
type procInfo struct {
	Pid                                   int
	Name                                  string
	Uid, Gid, Groups                      []string
	CapInh, CapPrm, CapEff, CapAmb, NoNew string
}

func (p procInfo) String() string {
	return fmt.Sprintf("pid %d (%s) uid %v gid %v groups %v cap inh %s prm %s eff %s amb %s no_new_privs %s",
		p.Pid, p.Name, p.Uid, p.Gid, p.Groups, p.CapInh, p.CapPrm, p.CapEff, p.CapAmb, p.NoNew)
}

// holders are the processes with a descriptor on socket inode.
func holders(inode string) []procInfo {
	var out []procInfo
	link := "socket:[" + inode + "]"
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	seen := map[int]bool{}
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err != nil || l != link {
			continue
		}
		pid, _ := strconv.Atoi(strings.Split(fd, "/")[2])
		if seen[pid] {
			continue
		}
		seen[pid] = true
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		p := procInfo{Pid: pid}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			f := strings.Fields(v)
			switch k {
			case "Name":
				p.Name = strings.TrimSpace(v)
			case "Uid":
				p.Uid = f
			case "Gid":
				p.Gid = f
			case "Groups":
				p.Groups = f
			case "CapInh":
				p.CapInh = strings.TrimSpace(v)
			case "CapPrm":
				p.CapPrm = strings.TrimSpace(v)
			case "CapEff":
				p.CapEff = strings.TrimSpace(v)
			case "CapAmb":
				p.CapAmb = strings.TrimSpace(v)
			case "NoNewPrivs":
				p.NoNew = strings.TrimSpace(v)
			}
		}
		out = append(out, p)
	}
	return out
}

// socketInodes reads /proc/thread-self/net/FILE in the namespace and
// returns the inodes (last column) of the sockets whose fields match.
func (n *xenNet) socketInodes(file string, match func(fields []string) bool) []string {
	var inodes []string
	n.do(func() {
		b, err := os.ReadFile("/proc/thread-self/net/" + file)
		if err != nil {
			n.t.Error(err)
			return
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 0 && match(f) {
				inodes = append(inodes, f[len(f)-1])
			}
		}
	})
	return inodes
}

// guestAddr is the address the DHCP stand-in leases: requests from it come
// through the bootloader's packet socket (the guest's own stack, in
// userspace), not a socket of dom0's.
var guestAddr = netip.AddrFrom4([4]byte{192, 0, 2, 50})

// record notes who holds the socket a request came from: proto "tcp" or
// "udp" and the client's address (its port), or "packet" (the packet
// sockets bound to xb0), which is also where the guest's address speaks.
func (n *xenNet) record(key, proto, from string) {
	var inodes []string
	if proto != "packet" {
		ap, err := netip.ParseAddrPort(from)
		if err != nil {
			n.t.Errorf("record %s: %v", key, err)
			return
		}
		if ap.Addr().Unmap() == guestAddr {
			proto = "packet"
		} else {
			inodes = n.inodeColumn(proto, fmt.Sprintf(":%04X", ap.Port()))
		}
	}
	if proto == "packet" {
		var idx int
		n.do(func() {
			if ifc, err := net.InterfaceByName("xb0"); err == nil {
				idx = ifc.Index
			}
		})
		inodes = n.socketInodes("packet", func(f []string) bool { return len(f) >= 9 && f[4] == strconv.Itoa(idx) })
	}
	var ps []procInfo
	for _, ino := range inodes {
		ps = append(ps, holders(ino)...)
	}
	n.mu.Lock()
	n.senders[key] = append(n.senders[key], ps...)
	n.mu.Unlock()
}

// inodeColumn returns the inodes of the tcp or udp sockets with local port
// port (":XXXX" in hex), from column 9 of /proc/net/{tcp,udp}.
func (n *xenNet) inodeColumn(proto, port string) []string {
	var inodes []string
	n.do(func() {
		b, err := os.ReadFile("/proc/thread-self/net/" + proto)
		if err != nil {
			n.t.Error(err)
			return
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 9 && strings.HasSuffix(f[1], port) && f[9] != "0" {
				inodes = append(inodes, f[9])
			}
		}
	})
	return inodes
}

// tftpSent is how many DATA bytes of name the TFTP stand-in sent.
func (n *xenNet) tftpSent(name string) int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.tftpOut[name]
}

// sendersOf returns what record noted for key.
func (n *xenNet) sendersOf(key string) []procInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]procInfo(nil), n.senders[key]...)
}
