package dhcpnet

import (
	"errors"
	"net"
	"net/netip"
	"time"
)

// ARPHRDEther is the Linux hardware type (ARPHRD_ETHER) of Ethernet and
// Ethernet-like interfaces (veth, bridges, bonds, VLANs, TAP). It is the only
// type [Conn.SendL2] supports.
const ARPHRDEther = 1

// Errors that Listen, Refresh, InterfaceAddr and SendL2 wrap; test for them
// with errors.Is. Errors for a missing permission wrap the errno, so
// errors.Is(err, os.ErrPermission) holds for them.
var (
	// ErrNoInterface: no interface has the name given.
	ErrNoInterface = errors.New("no such network interface")
	// ErrNoIPv4Address: the interface has no IPv4 address (InterfaceAddr).
	ErrNoIPv4Address = errors.New("interface has no IPv4 address")
	// ErrNotEthernet: SendL2 on an interface whose hardware type is not
	// Ethernet (ARPHRD_ETHER), such as loopback or a point-to-point tunnel.
	ErrNotEthernet = errors.New("not an Ethernet interface")
	// ErrInterfaceReplaced: Refresh found the name on another interface
	// than the one the Conn was bound to (deleted and created again); the
	// sockets still belong to the old one, so Listen again.
	ErrInterfaceReplaced = errors.New("interface was replaced; listen again")
	// ErrTruncated: ReadFrom received a datagram larger than its buffer.
	ErrTruncated = errors.New("datagram larger than the read buffer")
)

// Iface describes the interface a [Conn] serves, as of Listen or the last
// [Conn.Refresh]. Its slices are shared: do not modify them.
type Iface struct {
	// Name is the interface name, such as "eth0".
	Name string
	// Index is the kernel's interface index.
	Index int
	// HardwareType is the Linux ARPHRD_* type; ARPHRDEther for Ethernet.
	HardwareType uint16
	// HardwareAddr is the interface's MAC address.
	HardwareAddr net.HardwareAddr
	// MTU is the interface MTU in bytes: the largest IPv4 datagram it sends.
	MTU int
	// Flags are the interface flags (up, broadcast, loopback, ...).
	Flags net.Flags
	// Addrs are the interface's IPv4 addresses with their prefix lengths,
	// in the kernel's order (the primary address of each subnet first).
	// It is empty when the interface has no IPv4 address, which is not an
	// error: a proxyDHCP or relay-only server may not need one.
	Addrs []netip.Prefix
}

// Addr returns the first IPv4 address of the interface, and false if it has
// none.
func (i Iface) Addr() (netip.Addr, bool) {
	if len(i.Addrs) == 0 {
		return netip.Addr{}, false
	}
	return i.Addrs[0].Addr(), true
}

// PacketConn is what a DHCP server needs from the network, for one
// interface. *[Conn] implements it; tests of a server can implement it with a
// fake.
type PacketConn interface {
	// ReadFrom reads one datagram into b and returns its length, its source
	// and the destination address in its IPv4 header. It is called from one
	// goroutine at a time.
	ReadFrom(b []byte) (n int, src netip.AddrPort, dst netip.Addr, err error)
	// SetReadDeadline sets the deadline for ReadFrom; the zero time means
	// none.
	SetReadDeadline(t time.Time) error
	// SendTo sends b as one UDP datagram to dst through the routing table,
	// leaving by the interface of this PacketConn.
	SendTo(b []byte, dst netip.AddrPort) error
	// SendL2 sends b as the payload of an IPv4/UDP datagram in a frame
	// addressed to dstMAC on this interface.
	SendL2(b []byte, dstMAC net.HardwareAddr, srcIP, dstIP netip.Addr, srcPort, dstPort uint16) error
	// Interface describes the interface as of the last Refresh.
	Interface() Iface
	// Refresh reads the interface's addresses, MTU and flags again.
	Refresh() error
	// Close closes the sockets; a blocked ReadFrom returns an error.
	Close() error
}
