package explain

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"strings"

	"pxed/internal/config"
	"pxed/internal/dhcp"
	"pxed/internal/lease"
)

// answer is what one simulated client was offered.
type answer struct {
	kind     string
	yiaddr   netip.Addr
	siaddr   netip.Addr
	file     string
	why      string // the boot plan's reason for file
	silence  string // why nothing was offered
	answered bool
	// trace: the classes matched and the conditionals evaluated for this
	// client (dhcpd.conf), as the decision reports them.
	trace []string
}

type answers struct {
	bios, efi, ipxe, http, arm64 answer
	server                       netip.Addr
}

// The clients explain asks for: what their firmware sends.
var clients = []struct {
	kind, vendor string
	arch         uint16
	ipxe         bool
}{
	{"BIOS PXE", "PXEClient:Arch:00000:UNDI:002001", 0, false},
	{"UEFI x64", "PXEClient:Arch:00007:UNDI:003016", 7, false},
	{"iPXE", "PXEClient:Arch:00000:UNDI:002001", 0, true},
	{"UEFI HTTP", "HTTPClient:Arch:00016", 16, false},
	{"UEFI arm64", "PXEClient:Arch:00011:UNDI:003016", 11, false},
}

// dhcp shows what the DHCP decision answers a BIOS PXE, a UEFI x64 and an
// iPXE DISCOVER from this MAC.
func (w *walk) dhcp() answers {
	s := w.in.Snapshot
	var out answers
	w.heading("dhcp")
	if s.DHCP == nil {
		w.info("off in this configuration: another DHCP server must give this client an address, next-server and filename")
		return out
	}
	prefix, server, assumed := w.serverAddr(s.Network)
	if !prefix.IsValid() {
		w.problem("no subnet declared for this client's network")
		return out
	}
	out.server = server
	how := ""
	if assumed {
		how = " (assumed: no configured interface has an address there)"
	}
	w.info("subnet %s, server address %s%s", prefix.Masked(), server, how)
	uuid := ""
	if w.host != nil {
		uuid = w.host.CanonicalUUID()
	}
	res := make([]answer, len(clients))
	for i, c := range clients {
		res[i] = w.decide(prefix, c.kind, c.vendor, c.arch, c.ipxe, uuid)
	}
	out.bios, out.efi, out.ipxe, out.http, out.arm64 = res[0], res[1], res[2], res[3], res[4]
	bios, efi := out.bios, out.efi
	if !bios.answered {
		w.problem("no answer to a BIOS PXE client: %s", bios.silence)
		return out
	}
	w.info("address: %s", bios.yiaddr)
	w.info("next-server: %s", orNone(bios.siaddr))
	for _, a := range res {
		if a.answered {
			why := ""
			if a.why != "" {
				why = "  (" + a.why + ")"
			}
			w.info("boot file for %-9s %s%s", a.kind+":", orNoneS(a.file), why)
		} else if a.kind != "BIOS PXE" {
			w.info("no answer to a %s client: %s", a.kind, a.silence)
		}
		for _, t := range a.trace {
			w.info("%s: %s", a.kind, t)
		}
	}
	if !bios.siaddr.IsValid() || bios.siaddr.IsUnspecified() {
		w.problem("no next-server: PXE ROMs then ask 0.0.0.0 for the boot file and fail (\"No IP address\" / PXE-E32). Add `next-server %s;` to the subnet (dhcpd.conf) or next-server: under the subnet (YAML)", server)
	} else if !sameTFTP(bios.siaddr, server) {
		w.note("next-server %s is not this server: the files below must also exist on that TFTP server", bios.siaddr)
	}
	if bios.file == "" {
		w.problem("no boot file (filename): the ROM has nothing to load. Add `filename \"pxelinux.0\";`")
	}
	if efi.answered && isBIOSLoader(efi.file) {
		w.note("if this machine boots UEFI, it gets %q, a BIOS program it cannot run: put ipxe.efi (or snponly.efi) in the boot tree, or set boot-files: {efi-x64: ipxe.efi}", efi.file)
	}
	return out
}

// decide runs one DISCOVER through the real DHCP decision with an empty
// lease database.
func (w *walk) decide(pfx netip.Prefix, kind, vendor string, arch uint16, ipxe bool, uuid string) answer {
	a := answer{kind: kind}
	s := w.in.Snapshot
	alloc, err := lease.NewAllocator(context.Background(), emptyStore{}, lease.Options{Pools: s.DHCP.Pools(), Reserved: s.DHCP.Reserved, CallerCommits: true})
	if err != nil {
		a.silence = err.Error()
		return a
	}
	defer alloc.Close()
	opts := map[uint8][]byte{
		55: {1, 3, 6, 12, 15, 43, 60, 66, 67},
		60: []byte(vendor),
		93: {byte(arch >> 8), byte(arch)},
	}
	if ipxe {
		opts[77] = []byte("iPXE")
	}
	if raw, err := hex.DecodeString(strings.ReplaceAll(uuid, "-", "")); err == nil && len(raw) == 16 {
		opts[97] = append([]byte{0}, raw...) // type 0: UUID/GUID
	}
	p, err := dhcp.Parse(dhcp.ClientMessage(1, w.hw, 0x70786564, netip.Addr{}, opts))
	if err != nil {
		a.silence = err.Error()
		return a
	}
	port := &dhcp.Port{Name: "explain", Addrs: []netip.Prefix{pfx}, MTU: 1500}
	o := dhcp.Decide(s.DHCPView(), dhcp.Request{Trace: &a.trace, Packet: p, Port: port, Src: netip.MustParseAddrPort("0.0.0.0:68"), Dst: netip.IPv4Unspecified()}, alloc)
	if o.MessageType() != "OFFER" {
		a.silence = o.Silence
		if a.silence == "" {
			a.silence = "the server stays silent for this client"
		}
		return a
	}
	a.answered = true
	a.yiaddr, a.siaddr, a.file, a.why = o.YIAddr(), o.SIAddr(), o.File(), o.Boot.Why
	return a
}

// serverAddr picks the subnet the client is on (its fixed address's, else
// the first with a pool) and this server's address there: a configured
// interface's, else an assumed one.
func (w *walk) serverAddr(n *config.Network) (netip.Prefix, netip.Addr, bool) {
	var prefixes []netip.Prefix
	for _, sn := range n.Subnets {
		if p, err := netip.ParsePrefix(sn.Network); err == nil {
			prefixes = append(prefixes, p.Masked())
		}
	}
	var fixed []netip.Addr
	for _, h := range n.Hosts {
		if m, err := net.ParseMAC(h.MAC); err == nil && string(m) == string(w.hw) {
			for _, a := range h.FixedAddresses {
				if ip, err := netip.ParseAddr(a); err == nil {
					fixed = append(fixed, ip)
				}
			}
		}
	}
	var pfx netip.Prefix
	for _, p := range prefixes {
		for _, a := range fixed {
			if p.Contains(a) && !pfx.IsValid() {
				pfx = p
			}
		}
	}
	if !pfx.IsValid() {
		for i, sn := range n.Subnets {
			if len(sn.Pools) > 0 && i < len(prefixes) {
				pfx = prefixes[i]
				break
			}
		}
	}
	if !pfx.IsValid() && len(prefixes) > 0 {
		pfx = prefixes[0]
	}
	if !pfx.IsValid() {
		return pfx, netip.Addr{}, false
	}
	for _, name := range w.in.Interfaces {
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && pfx.Contains(p.Addr()) {
				return netip.PrefixFrom(p.Addr(), pfx.Bits()), p.Addr(), false
			}
		}
	}
	// Assume the next-server if it is on the subnet, else the first address.
	for _, sn := range n.Subnets {
		if ns, err := netip.ParseAddr(sn.NextServer); err == nil && pfx.Contains(ns) {
			return netip.PrefixFrom(ns, pfx.Bits()), ns, true
		}
	}
	first := pfx.Addr().Next()
	return netip.PrefixFrom(first, pfx.Bits()), first, true
}

func orNone(a netip.Addr) string {
	if !a.IsValid() || a.IsUnspecified() {
		return "none"
	}
	return a.String()
}

func orNoneS(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func isBIOSLoader(file string) bool {
	return strings.HasSuffix(file, ".0") || strings.HasSuffix(file, ".kpxe") || strings.HasSuffix(file, ".pxe")
}

// sameTFTP reports whether next-server is (probably) this pxed.
func sameTFTP(next, server netip.Addr) bool {
	if next == server {
		return true
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr() == next {
				return true
			}
		}
	}
	return false
}

// emptyStore is a lease store with no leases that refuses writes: explain
// never commits a lease.
type emptyStore struct{}

func (emptyStore) Load(context.Context) ([]lease.Lease, error) { return nil, nil }
func (emptyStore) Put(context.Context, []lease.Lease) ([]lease.Lease, error) {
	return nil, errors.New("explain does not write leases")
}
func (emptyStore) Close() error { return nil }
