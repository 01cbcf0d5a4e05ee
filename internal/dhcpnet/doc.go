// Package dhcpnet provides the sockets a DHCPv4 server needs on Linux and
// delivers replies the way RFC 2131 §4.1 asks for them.
//
// A [Conn] serves one interface. It holds two sockets:
//
//   - a UDP socket on 0.0.0.0:port, bound to the interface with
//     SO_BINDTODEVICE, with SO_REUSEADDR, SO_BROADCAST and IP_PKTINFO. It
//     receives requests (and reports each one's destination address, so the
//     server can tell a broadcast from a unicast to itself) and sends the
//     replies that the routing table can deliver: to a relay agent's giaddr,
//     to a client's ciaddr, and to 255.255.255.255, which leaves by this
//     interface and no other;
//   - on Ethernet interfaces, a send-only AF_PACKET socket bound to the
//     interface. [Conn.SendL2] builds the IPv4 and UDP headers itself and
//     sends the datagram to a hardware address. That is how a server
//     unicasts a reply to a client that has no IP address yet (yiaddr at
//     chaddr), as ISC dhcpd does with its LPF interface, without broadcasting
//     and without touching the ARP table.
//
// [PacketConn] is the method set of [Conn] that a server depends on, so that
// its tests can put a fake in its place.
//
// Listen needs root, or CAP_NET_BIND_SERVICE for ports below 1024 and
// CAP_NET_RAW for the AF_PACKET socket.
package dhcpnet
