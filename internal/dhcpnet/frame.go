package dhcpnet

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// Ethernet II framing, for clients that speak DHCP with a hardware
// address of their choosing through a raw packet socket (pxed's Xen
// bootloader sends as the guest's MAC from dom0).
const (
	ethHeaderLen = 14
	etherTypeIP  = 0x0800
)

// AppendEthernetUDP appends to dst an Ethernet II frame from srcMAC to
// dstMAC carrying an IPv4/UDP datagram (headers as SendL2 builds them, id
// the IPv4 identification) and returns the extended slice.
func AppendEthernetUDP(dst []byte, dstMAC, srcMAC net.HardwareAddr, srcIP, dstIP netip.Addr, srcPort, dstPort, id uint16, payload []byte) ([]byte, error) {
	if len(dstMAC) != 6 || len(srcMAC) != 6 {
		return dst, fmt.Errorf("dhcpnet: %s -> %s: not Ethernet addresses", srcMAC, dstMAC)
	}
	srcIP, dstIP = srcIP.Unmap(), dstIP.Unmap()
	if !srcIP.Is4() || !dstIP.Is4() {
		return dst, fmt.Errorf("dhcpnet: %s -> %s: not IPv4 addresses", srcIP, dstIP)
	}
	dst = append(dst, dstMAC...)
	dst = append(dst, srcMAC...)
	dst = binary.BigEndian.AppendUint16(dst, etherTypeIP)
	return appendIPv4UDP(dst, srcIP.As4(), dstIP.As4(), srcPort, dstPort, id, payload)
}

// ParseEthernetUDP reads an Ethernet II frame carrying an unfragmented
// IPv4/UDP datagram. ok is false for anything else: another EtherType (a
// VLAN tag included), a fragment, lengths that do not add up, a wrong IPv4
// header checksum or, when checkUDP, a wrong UDP checksum (zero, "none",
// is accepted). A packet socket must not check the UDP checksum of a frame
// the kernel marks TP_STATUS_CSUMNOTREADY (sent from this host with
// checksum offload, as over veth): it holds only the pseudo-header sum.
// payload aliases frame.
func ParseEthernetUDP(frame []byte, checkUDP bool) (srcMAC net.HardwareAddr, src, dst netip.AddrPort, payload []byte, ok bool) {
	if len(frame) < ethHeaderLen+HeaderOverhead || binary.BigEndian.Uint16(frame[12:]) != etherTypeIP {
		return nil, src, dst, nil, false
	}
	srcMAC = net.HardwareAddr(frame[6:12])
	ip := frame[ethHeaderLen:]
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	switch {
	case ip[0]>>4 != 4, ihl < ipv4HeaderLen, total < ihl+udpHeaderLen, total > len(ip),
		ip[9] != protocolUDP,
		binary.BigEndian.Uint16(ip[6:])&0x3fff != 0, // MF or a fragment offset
		checksum(ip[:ihl], 0) != 0:
		return nil, src, dst, nil, false
	}
	udp := ip[ihl:total]
	ulen := int(binary.BigEndian.Uint16(udp[4:]))
	if ulen < udpHeaderLen || ulen > len(udp) {
		return nil, src, dst, nil, false
	}
	udp = udp[:ulen]
	srcIP := netip.AddrFrom4([4]byte(ip[12:16]))
	dstIP := netip.AddrFrom4([4]byte(ip[16:20]))
	if checkUDP && binary.BigEndian.Uint16(udp[6:]) != 0 {
		sum := sum16(ip[12:20], 0)
		sum += protocolUDP + uint32(ulen)
		if checksum(udp, sum) != 0 {
			return nil, src, dst, nil, false
		}
	}
	src = netip.AddrPortFrom(srcIP, binary.BigEndian.Uint16(udp[0:]))
	dst = netip.AddrPortFrom(dstIP, binary.BigEndian.Uint16(udp[2:]))
	return srcMAC, src, dst, udp[udpHeaderLen:], true
}
