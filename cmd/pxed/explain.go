package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strings"

	"pxed/internal/bootfs"
	"pxed/internal/config"
	"pxed/internal/dhcp"
	"pxed/internal/inventory"
	"pxed/internal/lease"
	"pxed/internal/pxelinux"
)

const explainUsage = `usage: pxed explain [serve flags] MAC

Walks the boot path of the machine with this MAC without touching the
network: its host entries, the DHCP answer for a BIOS PXE, UEFI x64 and
iPXE client, the PXELINUX config file it will find (every name tried),
the label that boots, the kernel and initrd files (present? readable?),
the iPXE script and kickstart URL. It flags the classic mistakes with
their fix. Takes the same flags as pxed serve (--config, --dhcpd-conf,
--inventory, --tftp-root, ...). Exit status 1 when it found a problem.
`

// cmdExplain implements `pxed explain`.
func cmdExplain(args []string, stdout, stderr io.Writer) int {
	f := newServeFlags(stderr)
	f.fs.Init("explain", flag.ContinueOnError)
	f.fs.Usage = func() { fmt.Fprint(stderr, explainUsage) }
	c, pos, err := f.loadWithArgs(args)
	if err != nil {
		return f.loadFailed("explain", err, stderr)
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, explainUsage)
		return 2
	}
	mac := pos[0]
	hw, err := inventory.ParseMAC(mac)
	if err != nil {
		fmt.Fprintf(stderr, "pxed explain: %v\n", err)
		return 2
	}
	e := &explainer{c: c, hw: hw, out: stdout}
	e.run()
	if len(e.problems) > 0 {
		return 1
	}
	return 0
}

type explainer struct {
	c        *config.Config
	hw       net.HardwareAddr
	out      io.Writer
	problems []string

	inv   *inventory.Inventory
	live  *inventory.Live
	tree  *bootfs.Tree
	files *bootfs.Layered
}

func (e *explainer) say(format string, args ...any) { fmt.Fprintf(e.out, format+"\n", args...) }

// problem records a mistake and its fix.
func (e *explainer) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	e.problems = append(e.problems, msg)
	e.say("  PROBLEM: %s", msg)
}

func (e *explainer) note(format string, args ...any) { e.say("  note: "+format, args...) }

// dhcpAnswer is what a simulated client was offered.
type dhcpAnswer struct {
	kind     string
	yiaddr   netip.Addr
	siaddr   netip.Addr
	file     string
	log      string // the server's log lines when it did not answer
	answered bool
}

func (e *explainer) run() {
	c := e.c
	e.say("pxed explain %s", e.hw)
	var err error
	if e.inv, err = loadInventory(c); err != nil {
		e.say("")
		e.problem("inventory: %v", err)
		return
	}
	if c.TFTP.Root != "" {
		if e.tree, err = bootfs.Open(c.TFTP.Root); err != nil {
			e.problem("boot tree: %v (set --tftp-root)", err)
		} else {
			defer e.tree.Close()
			e.files = bootfs.NewLayered(e.tree, slog.New(slog.DiscardHandler))
		}
	}
	if e.inv != nil {
		states, err := inventory.OpenStateFile(filepath.Join(c.StateDir, hostStateName))
		if err != nil {
			e.note("%v; showing declared states", err)
			states = nil
		}
		var secret []byte
		if tok, err := os.ReadFile(filepath.Join(c.StateDir, apiTokenName)); err == nil {
			secret = bytes.TrimSpace(tok)
		}
		e.live = inventory.NewLive(e.inv, states, inventory.Options{HTTPPort: httpPort(c), Server: c.HTTP.Advertise, Secret: secret})
		if e.files != nil {
			e.files.SetGenerator(e.live)
		}
	}

	// Host entries.
	e.say("\nhost")
	n, warns, nerr := buildNetwork(c, e.inv, e.tree)
	var ih *inventory.Host
	if e.inv != nil {
		if ih = e.inv.ByMAC(e.hw); ih != nil {
			st, rec := e.live.State(ih)
			how := "declared"
			if rec != nil {
				how = fmt.Sprintf("set %s by %s", rec.Changed.Format("2006-01-02 15:04"), rec.By)
			}
			e.say("  inventory: %s (%s), profile %s, state %s (%s)", ih.Name, ih.Pos, ih.Profile, st, how)
		} else {
			e.say("  inventory: no host with this MAC in %s", c.Inventory)
		}
	}
	if n != nil {
		for _, h := range n.Hosts {
			if m, err := net.ParseMAC(h.MAC); err == nil && bytes.Equal(m, e.hw) && (e.inv == nil || h.Pos.File != e.inv.File) {
				e.say("  dhcp: host %s (%s), fixed-address %s", h.Name, h.Pos, strings.Join(h.FixedAddresses, ", "))
			}
		}
	}
	for _, w := range warns {
		e.note("dhcp config: %s", w)
	}
	if nerr != nil {
		e.problem("configuration: %v", nerr)
		return
	}

	// DHCP.
	e.say("\ndhcp")
	var bios, efi, ipxe dhcpAnswer
	var server netip.Addr
	if n == nil || len(n.Subnets) == 0 {
		e.say("  off in this configuration: another DHCP server must give this client an address, next-server and filename")
	} else {
		plan, _, err := dhcp.Compile(n)
		if err != nil {
			e.problem("dhcp: %v", err)
			return
		}
		var assumed bool
		var prefix netip.Prefix
		prefix, server, assumed = e.serverAddr(n, ih)
		if !prefix.IsValid() {
			e.problem("no subnet declared for this client's network")
			return
		}
		e.say("  subnet %s, server address %s%s", prefix.Masked(), server, map[bool]string{true: " (assumed: no configured interface has an address there)", false: ""}[assumed])
		uuid := ""
		if ih != nil {
			uuid = ih.CanonicalUUID()
		}
		bios = e.simulate(plan, prefix, server, "BIOS PXE", "PXEClient:Arch:00000:UNDI:002001", 0, false, uuid)
		efi = e.simulate(plan, prefix, server, "UEFI x64", "PXEClient:Arch:00007:UNDI:003016", 7, false, uuid)
		ipxe = e.simulate(plan, prefix, server, "iPXE", "PXEClient:Arch:00000:UNDI:002001", 0, true, uuid)
		if !bios.answered {
			e.problem("no answer to a BIOS PXE client: %s", strings.TrimSpace(bios.log))
		} else {
			e.say("  address: %s", bios.yiaddr)
			e.say("  next-server: %s", orNone(bios.siaddr))
			for _, a := range []dhcpAnswer{bios, efi, ipxe} {
				if a.answered {
					e.say("  boot file for %-9s %s", a.kind+":", orNoneS(a.file))
				}
			}
			if !bios.siaddr.IsValid() || bios.siaddr.IsUnspecified() {
				e.problem("no next-server: PXE ROMs then ask 0.0.0.0 for the boot file and fail (\"No IP address\" / PXE-E32). Add `next-server %s;` to the subnet (dhcpd.conf) or next-server: under the subnet (YAML)", server)
			} else if !sameTFTP(bios.siaddr, server) {
				e.note("next-server %s is not this server: the files below must also exist on that TFTP server", bios.siaddr)
			}
			if bios.file == "" {
				e.problem("no boot file (filename): the ROM has nothing to load. Add `filename \"pxelinux.0\";`")
			}
			if efi.answered && isBIOSLoader(efi.file) {
				e.note("if this machine boots UEFI, it gets %q, a BIOS program it cannot run: put ipxe.efi (or snponly.efi) in the boot tree, or set boot-files: {efi-x64: ipxe.efi}", efi.file)
			}
		}
	}

	// The boot files.
	if e.files == nil {
		return
	}
	if bios.answered && bios.file != "" && !strings.Contains(bios.file, "://") {
		e.say("\nboot file")
		e.checkFile(bios.file, "boot file")
		if strings.HasSuffix(bios.file, "pxelinux.0") {
			e.pxelinux(bios, ih, server)
		}
	} else if n == nil {
		// DHCP elsewhere: still show what PXELINUX would find.
		a := dhcpAnswer{file: "pxelinux.0"}
		if ih != nil {
			a.yiaddr = ih.Addr()
		}
		e.pxelinux(a, ih, netip.Addr{})
	}
	if ipxe.answered && strings.HasPrefix(ipxe.file, "http://") {
		e.ipxeScript(ipxe.file, server)
	}
	if ih != nil && e.live != nil {
		env := e.live.Env(bootfs.Client{Local: server}, ih)
		if url := ih.Data(env).KickstartURL; url != "" {
			e.say("\nkickstart\n  %s", url)
		}
	}
	e.say("")
	if len(e.problems) == 0 {
		e.say("no problems found")
	} else {
		e.say("%d problem(s) found", len(e.problems))
	}
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

// serverAddr picks the subnet the client is on (its fixed address's, else
// the first with a pool) and this server's address there: a configured
// interface's, else an assumed one.
func (e *explainer) serverAddr(n *config.Network, ih *inventory.Host) (netip.Prefix, netip.Addr, bool) {
	var prefixes []netip.Prefix
	for _, sn := range n.Subnets {
		if p, err := netip.ParsePrefix(sn.Network); err == nil {
			prefixes = append(prefixes, p.Masked())
		}
	}
	var fixed []netip.Addr
	if ih != nil && ih.Addr().IsValid() {
		fixed = append(fixed, ih.Addr())
	}
	for _, h := range n.Hosts {
		if m, err := net.ParseMAC(h.MAC); err == nil && bytes.Equal(m, e.hw) {
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
	for _, name := range e.c.DHCP.Interfaces {
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

// simulate runs one DISCOVER through the real DHCP server code with an
// empty lease database and returns the OFFER.
func (e *explainer) simulate(plan *dhcp.Plan, pfx netip.Prefix, server netip.Addr, kind, vendor string, arch uint16, ipxe bool, uuid string) dhcpAnswer {
	ans := dhcpAnswer{kind: kind}
	alloc, err := lease.NewAllocator(context.Background(), memStore{}, lease.Options{Pools: plan.Pools(), Reserved: plan.Reserved, CallerCommits: true})
	if err != nil {
		ans.log = err.Error()
		return ans
	}
	defer alloc.Close()
	var logBuf bytes.Buffer
	conn := &captureConn{}
	srv := &dhcp.Server{Plan: plan, Leases: alloc, TFTPEnabled: e.c.TFTP.Addr != "",
		Logger: slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelWarn}))}
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
	port := &dhcp.Port{Conn: conn, Name: "explain", Addrs: []netip.Prefix{pfx}, MTU: 1500}
	srv.Handle(context.Background(), port, dhcp.ClientMessage(dhcp.MsgDiscover, e.hw, 0x70786564, netip.Addr{}, opts), netip.MustParseAddrPort("0.0.0.0:68"), netip.IPv4Unspecified())
	ans.log = logBuf.String()
	if conn.sent == nil {
		if ans.log == "" {
			ans.log = "the server stays silent for this client (unknown client on a subnet without a pool, or booting denied)"
		}
		return ans
	}
	p, err := dhcp.Parse(conn.sent)
	if err != nil {
		ans.log = err.Error()
		return ans
	}
	ans.answered = true
	ans.yiaddr, ans.siaddr, ans.file = p.YIAddr, p.SIAddr, p.File
	if f := p.Options[67]; len(f) > 0 {
		ans.file = string(f)
	}
	return ans
}

// pxelinux walks PXELINUX's search for a client that booted pxelinux.0.
func (e *explainer) pxelinux(a dhcpAnswer, ih *inventory.Host, server netip.Addr) {
	e.say("\npxelinux")
	uuid := ""
	if ih != nil {
		uuid = ih.CanonicalUUID()
	}
	// PXELINUX looks for pxelinux.cfg/ next to pxelinux.0.
	dir := path.Dir(strings.TrimPrefix(strings.ReplaceAll(a.file, `\`, "/"), "/"))
	if dir == "." {
		dir = ""
	} else {
		dir += "/"
	}
	client := bootfs.Client{Addr: a.yiaddr, Local: server, Proto: "tftp"}
	found := ""
	for _, name := range pxelinux.SearchPath(uuid, e.hw, a.yiaddr) {
		full := dir + name
		src, shadowed := e.files.Source(client, full)
		switch {
		case found != "":
			e.say("  (not tried) %s", full)
			continue
		case src == "":
			e.say("  tried %s: not found", full)
			continue
		}
		what := "found on disk"
		if src == "generated" {
			what = "generated from the inventory"
		}
		if shadowed {
			what = "found on disk, shadowing the inventory's generated config"
		}
		e.say("  tried %s: %s", full, what)
		if _, err := e.files.OpenFor(client, full); err != nil {
			e.problem("%s: %v", full, err)
			continue
		}
		found = full
	}
	e.checkNeverRequested(dir, a.yiaddr, uuid)
	if found == "" {
		e.problem("PXELINUX finds no config for this client: it stops at the boot prompt. Add the host to the inventory, or create %spxelinux.cfg/%s", dir, pxelinux.MACName(e.hw))
		return
	}
	open := func(p string) (io.ReadCloser, error) { return e.files.OpenFor(client, dir+strings.TrimPrefix(p, "/")) }
	cfg, err := pxelinux.ParseWithIncludes(found, open, 8)
	if err != nil {
		e.problem("%v", err)
		return
	}
	if raw, err := fs.ReadFile(fsFunc(func(n string) (fs.File, error) { return e.files.OpenFor(client, n) }), found); err == nil {
		for i, line := range strings.Split(string(raw), "\n") {
			if strings.HasSuffix(strings.TrimRight(line, " \t\r"), `\`) {
				e.problem("%s:%d ends with a backslash: PXELINUX has no line continuation, so the next line is not part of this one (its words never reach the kernel). Join the lines", found, i+1)
			}
		}
	}
	b, err := cfg.Resolve("")
	if err != nil {
		e.problem("%s: %v", found, err)
		return
	}
	e.say("  boots label %q (%s)", b.Label, b.Kind)
	switch b.Kind {
	case pxelinux.KindLocalboot:
		e.say("  local disk (LOCALBOOT %d)", b.Localboot)
		return
	}
	e.checkFile(dir+b.Kernel, "kernel")
	if len(b.Multiboot) > 0 {
		for i, m := range b.Multiboot {
			what := "module"
			switch i {
			case 0:
				what = "hypervisor"
			case 1:
				what = "dom0 kernel"
			}
			e.checkFile(dir+m.Path, what)
			if m.Args != "" {
				e.say("      args: %s", m.Args)
			}
		}
	} else {
		for _, i := range b.Initrds {
			e.checkFile(dir+i, "initrd")
		}
		e.say("  append: %s", b.Append)
	}
}

// checkNeverRequested flags files in pxelinux.cfg/ meant for this client
// under a name PXELINUX never asks for (wrong case, no "01-", colons).
func (e *explainer) checkNeverRequested(dir string, ip netip.Addr, uuid string) {
	entries, err := os.ReadDir(filepath.Join(e.tree.Dir(), filepath.FromSlash(dir), "pxelinux.cfg"))
	if err != nil {
		return
	}
	want := map[string]bool{}
	for _, n := range pxelinux.SearchPath(uuid, e.hw, ip) {
		want[strings.TrimPrefix(n, "pxelinux.cfg/")] = true
	}
	mac := pxelinux.MACName(e.hw)
	dashed := strings.TrimPrefix(mac, "01-")
	type variant struct{ name, why, fix string }
	vs := []variant{
		{mac, "PXELINUX asks for the MAC in lower case", mac},
		{dashed, "PXELINUX asks for 01-<mac> (01 is the ARP type of Ethernet)", mac},
		{e.hw.String(), "PXELINUX asks for 01-<mac> with dashes", mac},
		{"01-" + e.hw.String(), "PXELINUX asks for 01-<mac> with dashes", mac},
		{strings.ReplaceAll(dashed, "-", ""), "PXELINUX asks for 01-<mac> with dashes", mac},
		{mac + ".cfg", "PXELINUX asks for the name without an extension", mac},
	}
	if hexIP := pxelinux.HexIP(ip); hexIP != "" {
		vs = append(vs,
			variant{hexIP, "PXELINUX asks for the hex IP in upper case", hexIP},
			variant{hexIP + ".cfg", "PXELINUX asks for the name without an extension", hexIP},
			variant{ip.String(), "PXELINUX asks for the address in hex (pxed hexip " + ip.String() + ")", hexIP})
	}
	for _, ent := range entries {
		name := ent.Name()
		if want[name] {
			continue
		}
		for _, v := range vs {
			if strings.EqualFold(name, v.name) {
				e.problem("%spxelinux.cfg/%s is never requested: %s. Rename it to %spxelinux.cfg/%s", dir, name, v.why, dir, v.fix)
				break
			}
		}
	}
}

// checkFile says whether a file the client will fetch is there and readable.
func (e *explainer) checkFile(name, what string) {
	name = strings.TrimPrefix(name, "/")
	fi, err := e.files.Stat(name)
	var de *bootfs.DeniedError
	switch {
	case err == nil:
		e.say("  %s %s: ok (%d bytes)", what, name, fi.Size())
	case errors.As(err, &de):
		e.say("  %s %s: REFUSED", what, name)
		e.problem("%s %s is refused: %s (the seeds' `find /tftpboot -type f -exec chmod 644 {} \\;`)", what, name, de.Reason)
	case errors.Is(err, fs.ErrNotExist):
		e.say("  %s %s: MISSING", what, name)
		e.problem("%s %s does not exist in the boot tree %s", what, name, e.tree.Dir())
	default:
		e.problem("%s %s: %v", what, name, err)
	}
}

// ipxeScript shows the script iPXE gets from pxed's HTTP server.
func (e *explainer) ipxeScript(url string, server netip.Addr) {
	e.say("\nipxe")
	rest := strings.TrimPrefix(url, "http://")
	host, p, _ := strings.Cut(rest, "/")
	e.say("  script %s", url)
	f, err := e.files.OpenFor(bootfs.Client{Local: server, Host: host, Proto: "http"}, p)
	if err != nil {
		e.note("not served by pxed from the boot tree: %v", err)
		return
	}
	defer f.Close()
	data, _ := io.ReadAll(f)
	for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		e.say("    %s", l)
		if fields := strings.Fields(l); len(fields) >= 2 && (fields[0] == "kernel" || fields[0] == "initrd" || fields[0] == "module") && strings.HasPrefix(fields[1], "/") {
			e.checkFile(fields[1], "  "+fields[0])
		}
	}
}

// fsFunc adapts an open function to fs.FS.
type fsFunc func(string) (fs.File, error)

func (f fsFunc) Open(name string) (fs.File, error) { return f(name) }

// memStore is an empty lease store that refuses writes: explain never
// commits a lease.
type memStore struct{}

func (memStore) Load(context.Context) ([]lease.Lease, error) { return nil, nil }
func (memStore) Put(context.Context, []lease.Lease) ([]lease.Lease, error) {
	return nil, errors.New("explain does not write leases")
}
func (memStore) Close() error { return nil }

// captureConn keeps the reply instead of sending it.
type captureConn struct{ sent []byte }

func (c *captureConn) ReadFrom([]byte) (int, netip.AddrPort, netip.Addr, error) {
	return 0, netip.AddrPort{}, netip.Addr{}, net.ErrClosed
}
func (c *captureConn) SendTo(b []byte, _ netip.AddrPort) error {
	c.sent = append([]byte(nil), b...)
	return nil
}
func (c *captureConn) SendL2(b []byte, _ net.HardwareAddr, _, _ netip.Addr, _, _ uint16) error {
	c.sent = append([]byte(nil), b...)
	return nil
}
func (c *captureConn) Close() error { return nil }
