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
// hosts already in n (the same MAC, the same fixed address) and fixed
// addresses outside every subnet of n are errors naming both places.
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
		if h.addr.IsValid() {
			if o := byIP[h.addr]; o != nil {
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
				bad(h, "host %s: MAC %s is already declared as host %s (%s); keep one of the two", h.Name, hw, o.Name, o.Pos)
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
