package pxelinux

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// HexIP returns an IPv4 address as 8 upper-case hex digits, the form of
// PXELINUX config file names and of "gethostip -x" (192.168.200.177 ->
// "C0A8C8B1"). IPv4-mapped IPv6 addresses are unmapped; for any other
// address HexIP returns "".
func HexIP(ip netip.Addr) string {
	ip = ip.Unmap()
	if !ip.Is4() {
		return ""
	}
	a := ip.As4()
	return fmt.Sprintf("%02X%02X%02X%02X", a[0], a[1], a[2], a[3])
}

// SearchPath returns the configuration files PXELINUX tries, in order:
// pxelinux.cfg/<uuid> (lower case, with dashes; only if uuid is given),
// pxelinux.cfg/01-<mac> (ARP type 1, lower-case hex bytes joined by dashes;
// only if mac is given), the upper-case hex IPv4 address followed by each
// shorter prefix down to one digit (only for an IPv4 ip), and finally
// pxelinux.cfg/default.
//
// uuid (the client machine identifier, DHCP option 97) must hold 32 hex
// digits, optionally with dashes; it is written in the 8-4-4-4-12 form.
// Any other uuid is skipped, so a client cannot smuggle a path into the
// list.
func SearchPath(uuid string, mac net.HardwareAddr, ip netip.Addr) []string {
	const dir = "pxelinux.cfg/"
	var out []string
	if u := CanonicalUUID(uuid); u != "" {
		out = append(out, dir+u)
	}
	if len(mac) > 0 {
		out = append(out, dir+MACName(mac))
	}
	if h := HexIP(ip); h != "" {
		for n := len(h); n > 0; n-- {
			out = append(out, dir+h[:n])
		}
	}
	return append(out, dir+"default")
}

// MACName is the name PXELINUX gives a hardware address in its config
// search and in BOOTIF=: the ARP type 01, then the bytes in lower-case hex,
// all joined by dashes ("01-00-16-3e-72-79-e4").
func MACName(mac net.HardwareAddr) string {
	var b strings.Builder
	b.WriteString("01")
	for _, x := range mac {
		fmt.Fprintf(&b, "-%02x", x)
	}
	return b.String()
}

// CanonicalUUID returns a client UUID (32 hex digits, dashes anywhere, any
// case) in PXELINUX's file-name form, lower case 8-4-4-4-12; "" for
// anything else.
func CanonicalUUID(u string) string {
	u = strings.ReplaceAll(lower(trimSpace(u)), "-", "")
	if len(u) != 32 || !isHex(u) {
		return ""
	}
	return u[0:8] + "-" + u[8:12] + "-" + u[12:16] + "-" + u[16:20] + "-" + u[20:]
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
