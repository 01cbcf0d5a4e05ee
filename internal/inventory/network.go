package inventory

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"pxed/internal/config"
)

// Merge returns n with the inventory's hosts added as DHCP host
// declarations (one per MAC). n itself is not modified. Conflicts with
// hosts already in n (one MAC with two addresses, one address for two
// MACs) and fixed addresses outside every subnet of n are errors naming
// both places. A host in both with the same MAC and address is one host.
//
// What a host boots (its iPXE script, a UEFI boot file) is not written
// here: the boot plan decides it per request.
func (inv *Inventory) Merge(n *config.Network) (*config.Network, error) {
	out := *n
	out.Hosts = append([]config.Host(nil), n.Hosts...)
	var subnets []netip.Prefix
	for _, sn := range n.Subnets {
		if p, err := netip.ParsePrefix(sn.Network); err == nil {
			subnets = append(subnets, p.Masked())
		}
	}
	byMAC := map[string]*config.Host{}
	byIP := map[netip.Addr]*config.Host{}
	for i := range n.Hosts {
		h := &n.Hosts[i]
		if hw, err := net.ParseMAC(h.MAC); err == nil {
			byMAC[hw.String()] = h
		}
		for _, a := range h.FixedAddresses {
			if ip, err := netip.ParseAddr(a); err == nil {
				byIP[ip] = h
			}
		}
	}
	var es config.Errors
	bad := func(h *Host, format string, args ...any) {
		es = append(es, &config.Error{File: h.Pos.File, Line: h.Pos.Line, Column: h.Pos.Column, Msg: fmt.Sprintf(format, args...)})
	}
	for _, h := range inv.Hosts {
		// The same machine in both files (its MAC declared in dhcpd.conf
		// with the inventory's address, or the inventory giving none) is
		// one description, not a conflict: dhcpd.conf's declaration
		// stays, the inventory says what it boots.
		var same *config.Host
		for _, hw := range h.hw {
			if o := byMAC[hw.String()]; o != nil && (!h.addr.IsValid() || hasAddr(o, h.addr)) {
				same = o
			}
		}
		if h.addr.IsValid() {
			if o := byIP[h.addr]; o != nil && o != same {
				bad(h, "host %s: ip %s is already host %s's fixed-address (%s)", h.Name, h.addr, o.Name, o.Pos)
			}
			in := false
			for _, p := range subnets {
				in = in || p.Contains(h.addr)
			}
			if !in {
				bad(h, "host %s: ip %s is outside every DHCP subnet (%s)", h.Name, h.addr, prefixList(subnets))
			}
		}
		for i, hw := range h.hw {
			if o := byMAC[hw.String()]; o != nil {
				if o != same {
					bad(h, "host %s: MAC %s is already declared as host %s (%s) with fixed-address %s, not ip %s; keep one of the two",
						h.Name, hw, o.Name, o.Pos, strings.Join(o.FixedAddresses, ", "), h.addr)
				}
				continue
			}
			ch := config.Host{Name: h.Name, MAC: hw.String(), Pos: h.Pos}
			if i > 0 {
				ch.Name = fmt.Sprintf("%s-%d", h.Name, i)
			}
			if h.addr.IsValid() {
				ch.FixedAddresses = []string{h.addr.String()}
			}
			out.Hosts = append(out.Hosts, ch)
		}
	}
	if len(es) > 0 {
		return nil, es
	}
	return &out, nil
}

// hasAddr reports whether h declares fixed address a (a name that
// resolves to it is not compared: names are resolved when served).
func hasAddr(h *config.Host, a netip.Addr) bool {
	for _, f := range h.FixedAddresses {
		if ip, err := netip.ParseAddr(f); err == nil && ip == a {
			return true
		}
	}
	return false
}

func prefixList(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "none declared"
	}
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, ", ")
}
