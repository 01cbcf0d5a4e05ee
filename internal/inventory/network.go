package inventory

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"pxed/internal/config"
)

// DHCPOptions say how inventory hosts are announced by pxed's DHCP server.
type DHCPOptions struct {
	// IPXEScript is the boot file for a host's iPXE (not for multiboot
	// profiles, which boot through mboot.c32); "{mac}" is replaced
	// by the host's MAC in file-name form ("00-16-3e-72-79-e4") and
	// "{server}" is left for the DHCP server (its own address). Empty: the
	// DHCP scopes decide.
	IPXEScript string
	// EFIBootFile is given to UEFI x64 clients (option 93 = 7 or 9) when
	// no scope names a boot file for them.
	EFIBootFile string
}

// Merge returns n with the inventory's hosts added as DHCP host
// declarations (one per MAC). n itself is not modified. Conflicts with
// hosts already in n (the same MAC, the same fixed address) and fixed
// addresses outside every subnet of n are errors naming both places.
func (inv *Inventory) Merge(n *config.Network, o DHCPOptions) (*config.Network, error) {
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
	efiSet := func(sc config.Params) bool { return sc.BootFiles["efi-x64"] != "" }
	anyEFI := efiSet(n.Params)
	for _, sn := range n.Subnets {
		anyEFI = anyEFI || efiSet(sn.Params)
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
			// A Xen host goes through PXELINUX's mboot.c32 even from iPXE:
			// iPXE builds before 2021 cannot load a gzipped hypervisor
			// (QEMU's ROMs among them).
			if o.IPXEScript != "" && (h.prof == nil || h.prof.Multiboot == nil) {
				ch.IPXEScript = strings.ReplaceAll(o.IPXEScript, "{mac}", dashed(hw))
			}
			if o.EFIBootFile != "" && !anyEFI {
				ch.BootFiles = map[string]string{"efi-x64": o.EFIBootFile}
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

// dashed is a MAC in lower-case hex joined by dashes, iPXE's ${mac:hexhyp}.
func dashed(hw net.HardwareAddr) string {
	return strings.ReplaceAll(hw.String(), ":", "-")
}
