package bootplan

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"pxed/internal/bootfs"
	"pxed/internal/inventory"
	"pxed/internal/pxelinux"
)

// Owns implements the owner check of bootfs.Layered: Generate is asked
// only about names in the boot namespace.
func (p *Plan) Owns(n string) bool { return Owns(n) }

// Lookup says which inventory host a generated name is for, as client c
// asks for it; ok is false when the plan generates nothing under that name
// for c. host is nil for boot.ipxe (the same for everyone) and for ipxe/
// scripts of unknown machines (which say so and exit).
//
// PXELINUX names, under any directory (PXELINUX's path prefix):
// pxelinux.cfg/<uuid> and /01-<mac> name a host outright; the 8-digit hex
// IP names the host with that fixed address or the one holding its lease.
// The shorter hex prefixes and "default" are answered only for the client
// asking: PXELINUX asks for them when the longer names failed, and a prefix
// is shared by many addresses.
//
// A kickstart (ks/<host>) carries the host's install token and often
// secrets: it is answered only to the host's own address when pxed knows
// it (its fixed ip, or a lease of pxed's DHCP on one of its MACs), to
// anyone only when pxed cannot know it (no fixed ip and DHCP off).
func (p *Plan) Lookup(c bootfs.Client, n string) (h *inventory.Host, ok bool) {
	nm := parseName(n)
	inv := p.o.Inventory
	if inv == nil {
		// Without an inventory pxed generates nothing: the tree is served
		// as it is on disk.
		return nil, false
	}
	switch nm.kind {
	case kindBootIPXE:
		return nil, true
	case kindIPXE:
		hw, err := inventory.ParseMAC(nm.rest)
		if err != nil {
			return nil, false
		}
		return inv.ByMAC(hw), true
	case kindKickstart:
		h = inv.Host(nm.rest)
		return h, h != nil && h.HasKickstart() && p.isHost(c, h)
	case kindPXELinux:
		h = p.pxelinuxHost(inv, c, nm.rest)
		return h, h != nil
	case kindGRUB:
		if nm.rest == "" {
			// grub.cfg: the asking client's own config when pxed knows it
			// by its address, else the chain to its MAC's (nil host).
			if c.Addr.IsValid() {
				h = p.hostAt(inv, c.Addr.Unmap())
			}
			return h, true
		}
		if x, ok := strings.CutPrefix(nm.rest, "01-"); ok {
			// The upstream form (01-00-16-3e-…) and the chain's
			// (01-00:16:3e:…, GRUB's $net_default_mac).
			if hw, err := inventory.ParseMAC(x); err == nil && x == strings.ToLower(x) {
				h = inv.ByMAC(hw)
			}
			return h, h != nil
		}
		h = p.pxelinuxHost(inv, c, nm.rest)
		return h, h != nil
	}
	return nil, false
}

func (p *Plan) pxelinuxHost(inv *inventory.Inventory, c bootfs.Client, x string) *inventory.Host {
	switch {
	case len(x) == 36 && strings.Count(x, "-") == 4:
		if x == strings.ToLower(x) {
			return inv.ByUUID(x)
		}
	case strings.HasPrefix(x, "01-") && len(x) == 20:
		if hw, err := inventory.ParseMAC(x[3:]); err == nil && x == pxelinux.MACName(hw) {
			return inv.ByMAC(hw)
		}
	case len(x) == 8 && isUpperHex(x):
		u, _ := strconv.ParseUint(x, 16, 32)
		return p.hostAt(inv, netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)}))
	case (len(x) < 8 && isUpperHex(x)) || x == "default":
		if c.Addr.IsValid() {
			if h := p.hostAt(inv, c.Addr.Unmap()); h != nil && (x == "default" || strings.HasPrefix(pxelinux.HexIP(c.Addr), x)) {
				return h
			}
		}
	}
	return nil
}

// isHost reports whether client c may be host h, as far as pxed can tell.
func (p *Plan) isHost(c bootfs.Client, h *inventory.Host) bool {
	if h.Addr().IsValid() {
		return c.Addr.Unmap() == h.Addr()
	}
	if p.o.LeaseMAC == nil {
		return true
	}
	hw, ok := p.o.LeaseMAC(c.Addr.Unmap())
	return ok && slices.ContainsFunc(h.HWAddrs(), func(m net.HardwareAddr) bool { return bytes.Equal(m, hw) })
}

// HostAt is the inventory host at address a: the one with that fixed ip,
// or the one whose MAC holds a lease of a (nil: none, or no inventory).
func (p *Plan) HostAt(a netip.Addr) *inventory.Host {
	if p.o.Inventory == nil {
		return nil
	}
	return p.hostAt(p.o.Inventory, a.Unmap())
}

func (p *Plan) hostAt(inv *inventory.Inventory, a netip.Addr) *inventory.Host {
	if h := inv.ByIP(a); h != nil {
		return h
	}
	if p.o.LeaseMAC != nil {
		if hw, ok := p.o.LeaseMAC(a); ok {
			return inv.ByMAC(hw)
		}
	}
	return nil
}

// Env is the rendering environment of host h for client c, with the files
// it names written for a PXELINUX config found under dir ("" for the root).
func (p *Plan) Env(c bootfs.Client, h *inventory.Host, dir string) inventory.Env {
	env := inventory.Env{Server: p.HTTPServer(c.Local)}
	if env.Server != "" && h != nil {
		env.BaseURL = baseURL(env.Server)
		if h.HasKickstart() {
			env.KickstartURL = env.BaseURL + "/" + KickstartPath(h.Name)
		}
		env.InstalledURL = installedURL(env.Server, h.Name, p.o.States.Token(h))
	}
	if dir != "" {
		// PXELINUX puts its path prefix (the boot file's directory) before
		// every name but "::name"; the profile's paths are from the root.
		env.Path = func(s string) string { return "::" + strings.TrimPrefix(s, "/") }
	}
	return env
}

// State is host h's boot state now.
func (p *Plan) State(h *inventory.Host) inventory.State {
	st, _ := p.o.States.State(h)
	return st
}

// Generate implements bootfs.Generator.
func (p *Plan) Generate(c bootfs.Client, n string) ([]byte, time.Time, bool) {
	nm := parseName(n)
	if nm.kind == kindNone {
		return nil, time.Time{}, false
	}
	h, ok := p.Lookup(c, n)
	if !ok {
		return nil, time.Time{}, false
	}
	mod := p.o.Loaded
	var st inventory.State
	if h != nil {
		var rec *inventory.Record
		st, rec = p.o.States.State(h)
		if rec != nil && rec.Changed.After(mod) {
			mod = rec.Changed.Truncate(time.Second)
		}
	}
	var data []byte
	var err error
	switch nm.kind {
	case kindPXELinux:
		data, err = h.PXELinux(st, p.Env(c, h, nm.dir))
	case kindBootIPXE:
		// Chain by MAC, so one DHCP boot file serves every host.
		data = []byte("#!ipxe\n# generated by pxed: fetch this machine's own script\nchain --autofree /" + ipxeDir + "${mac:hexhyp}\n")
	case kindIPXE:
		if h == nil {
			// Unknown machines fall through to their next boot device
			// instead of hanging on an error.
			data = []byte("#!ipxe\n# generated by pxed\necho pxed: ${mac} is not in the inventory; add it to boot from the network\nsleep 3\nexit 1\n")
		} else {
			data, err = h.IPXE(st, p.Env(c, h, ""))
		}
	case kindKickstart:
		data, _, err = h.Kickstart(p.Env(c, h, ""))
	case kindGRUB:
		if h == nil {
			data = []byte(grubChain)
		} else {
			data, err = h.GRUB(st, p.Env(c, h, ""))
		}
	}
	if err != nil {
		p.o.Logger.Error("generating boot file failed", "name", n, "host", h.Name, "mac", h.MACList(), "error", err)
		return nil, time.Time{}, false
	}
	if p.o.Logger.Enabled(context.Background(), slog.LevelDebug) {
		attrs := []any{"name", n, "client", c.Addr.String()}
		if h != nil {
			attrs = append(attrs, "host", h.Name, "mac", h.MACList(), "state", string(st))
		}
		p.o.Logger.Debug("generated boot file", attrs...)
	}
	return data, mod, true
}

// grubChain is grub.cfg for a client pxed does not know by its address
// (its DHCP came from another server, or pxed's DHCP is off): GRUB asks
// for its MAC's config, which pxed generates for an inventory host, and
// otherwise leaves for the firmware's next boot entry.
const grubChain = `# generated by pxed: this client's address names no inventory host;
# load the configuration pxed generates for its MAC, if any
configfile "${prefix}/grub.cfg-01-${net_default_mac}"
echo "pxed: ${net_default_mac} is not in the inventory; add it to boot from the network"
sleep 3
exit
`

func isUpperHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
