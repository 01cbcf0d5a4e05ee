package pxeclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"strings"

	"pxed/internal/pxelinux"
)

// Server is the boot server a lease names: next-server (siaddr), as
// PXE ROMs and pypxeboot use, else option 66 when it is an address, else
// the DHCP server itself.
func (l *Lease) Server() (netip.Addr, string) {
	switch {
	case l.NextServer.IsValid() && !l.NextServer.IsUnspecified():
		return l.NextServer, "next-server"
	case l.TFTPServer != "":
		if a, err := netip.ParseAddr(l.TFTPServer); err == nil {
			return a, "option 66"
		}
		if addrs, err := resolver(l.Resolver).LookupNetIP(context.Background(), "ip4", l.TFTPServer); err == nil && len(addrs) > 0 {
			return addrs[0].Unmap(), "option 66 (" + l.TFTPServer + ")"
		}
	}
	return l.ServerID, "DHCP server"
}

// resolver is r, or the host's resolver when r is nil.
func resolver(r *net.Resolver) *net.Resolver {
	if r == nil {
		return net.DefaultResolver
	}
	return r
}

// BootHosts are the hosts the answer names for booting, the ones a careful
// client fetches from (see Source.Hosts): the boot server (Server), option
// 66 as given, and the hosts of the boot file, option 209 and option 210
// when they are URLs or host::path names.
func (l *Lease) BootHosts() []string {
	var hosts []string
	if server, _ := l.Server(); server.IsValid() {
		hosts = append(hosts, server.String())
	}
	if l.TFTPServer != "" {
		hosts = append(hosts, l.TFTPServer)
	}
	for _, n := range []string{l.File, cString(l.Options[209]), cString(l.Options[210])} {
		if h := nameHost(n); h != "" {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// Try is one configuration file name Find asked for and why it failed
// (Err nil for the one found).
type Try struct {
	Name string
	Err  error
}

// Module is one multiboot module of an mboot.c32 label, its file name
// resolved.
type Module struct {
	Name string
	Args string
}

// Plan is what a PXELINUX configuration boots for this client, with every
// file name resolved as PXELINUX resolves it (ResolveName with Prefix).
type Plan struct {
	// Prefix is the path prefix (PathPrefix of the boot file and option
	// 210).
	Prefix string
	// Config is the configuration file found and ConfigData its bytes as
	// fetched; Tried every name asked for up to and including it.
	Config     string
	ConfigData []byte
	Tried      []Try
	// Includes are the INCLUDEd files, as fetched, in the order read.
	Includes []string
	// Boot is the entry as the configuration writes it (names unresolved).
	Boot  pxelinux.Boot
	Label string
	Kind  pxelinux.BootKind
	// Kernel is the file the label boots (a Linux kernel, a .c32 module,
	// a CONFIG file, ...); Initrds the initial ramdisks of a Linux label;
	// Modules the multiboot modules of an mboot.c32 label.
	Kernel  string
	Initrds []string
	Modules []Module
	// Args is a Linux label's kernel command line: its APPEND without
	// initrd= items, with IPAPPEND's ip=/BOOTIF= added.
	Args string
	// Localboot: the label boots the local disk.
	Localboot bool
}

// ForPV says whether a Xen PV guest can boot the plan: a Linux label or
// LOCALBOOT (which the caller hands to the local bootloader).
func (p *Plan) ForPV() error {
	if p.Localboot || p.Kind == pxelinux.KindLinux {
		return nil
	}
	return fmt.Errorf("%s: label %q boots %s (%s), which a Xen PV guest cannot run; choose a Linux label with --label=", p.Config, p.Boot.Label, p.Boot.Kernel, p.Kind)
}

// Bounds on what configuration files may cost: one file (DefaultMaxConfig
// unless Find is given another), all files of one Find (four times that),
// and INCLUDE nesting.
const (
	DefaultMaxConfig = 1 << 20
	maxConfigFetches = 64
	maxIncludeDepth  = 8
)

// Find does what PXELINUX does after it starts: it takes the path prefix
// from option 210 in the lease, else from the boot file (PathPrefix); asks
// for option 209's config file, if any, then walks the search (UUID,
// 01-<mac>, hex IP and its prefixes, default) under pxelinux.cfg/; parses
// the first config found (INCLUDEs fetched the same way) and resolves label
// ("" = the default). Every name is resolved with ResolveName. Any label
// kind is returned; ForPV says whether a PV guest can boot it. On an error
// after the search began, the plan so far (Prefix, Tried, Config) comes
// with it. Each configuration file may have maxConfig bytes
// (DefaultMaxConfig when 0), all of them together four times that.
func Find(ctx context.Context, f Fetcher, l *Lease, mac net.HardwareAddr, uuid, label string, maxConfig int64) (*Plan, error) {
	p := &Plan{Prefix: PathPrefix(l.File, cString(l.Options[210]))}
	if maxConfig <= 0 {
		maxConfig = DefaultMaxConfig
	}
	budget := &configBudget{each: maxConfig, bytes: 4 * maxConfig, fetches: maxConfigFetches}
	var names []string
	if c := cString(l.Options[209]); c != "" {
		names = append(names, c)
	}
	names = append(names, pxelinux.SearchPath(uuid, mac, l.IP)...)
	for _, name := range names {
		full := ResolveName(p.Prefix, name)
		data, err := budget.fetch(ctx, f, full)
		p.Tried = append(p.Tried, Try{Name: full, Err: err})
		if err == nil {
			p.Config, p.ConfigData = full, data
			break
		}
		if ctx.Err() != nil {
			return p, fmt.Errorf("looking for the PXELINUX config: %w", ctx.Err())
		}
		// PXELINUX goes on past any file the server refuses; a server
		// that does not answer (or a file over the limits) ends the search.
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
			return p, fmt.Errorf("fetching %s: %w", full, err)
		}
	}
	if p.Config == "" {
		tried := make([]string, len(p.Tried))
		for i, t := range p.Tried {
			tried[i] = t.Name
		}
		return p, fmt.Errorf("no PXELINUX config for %s (%s): tried %s", mac, l.IP, strings.Join(tried, ", "))
	}
	first := true
	open := func(name string) (io.ReadCloser, error) {
		if first {
			first = false
			return io.NopCloser(bytes.NewReader(p.ConfigData)), nil
		}
		full := ResolveName(p.Prefix, name)
		data, err := budget.fetch(ctx, f, full)
		if err != nil {
			return nil, err
		}
		p.Includes = append(p.Includes, full)
		return io.NopCloser(bytes.NewReader(data)), nil
	}
	cfg, err := pxelinux.ParseWithIncludes(p.Config, open, maxIncludeDepth)
	if err != nil {
		return p, err
	}
	b, err := cfg.Resolve(label)
	if err != nil {
		return p, fmt.Errorf("%s: %w", p.Config, err)
	}
	p.Boot, p.Label, p.Kind = b, b.Label, b.Kind
	if b.Kind == pxelinux.KindLocalboot {
		p.Localboot = true
		return p, nil
	}
	p.Kernel = ResolveName(p.Prefix, b.Kernel)
	for _, i := range b.Initrds {
		p.Initrds = append(p.Initrds, ResolveName(p.Prefix, i))
	}
	for _, m := range b.Multiboot {
		p.Modules = append(p.Modules, Module{Name: ResolveName(p.Prefix, m.Path), Args: m.Args})
	}
	if b.Kind != pxelinux.KindLinux {
		return p, nil
	}
	var args []string
	for _, w := range strings.Fields(b.Append) {
		if !strings.HasPrefix(w, "initrd=") {
			args = append(args, w)
		}
	}
	if b.IPAppend&1 != 0 {
		server, _ := l.Server()
		args = append(args, "ip="+l.IP.String()+":"+addrOrEmpty(server)+":"+addrOrEmpty(l.Router)+":"+addrOrEmpty(l.Mask))
	}
	if b.IPAppend&2 != 0 {
		args = append(args, "BOOTIF="+pxelinux.MACName(mac))
	}
	p.Args = strings.Join(args, " ")
	return p, nil
}

// cString is a DHCP text option as PXELINUX reads it: up to the first NUL.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func addrOrEmpty(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// configBudget bounds the configuration files of one Find.
type configBudget struct {
	each, bytes int64
	fetches     int
}

func (c *configBudget) fetch(ctx context.Context, f Fetcher, name string) ([]byte, error) {
	if c.fetches <= 0 {
		return nil, fmt.Errorf("%s: more than %d configuration files fetched", name, maxConfigFetches)
	}
	c.fetches--
	var b bytes.Buffer
	lim := &Limit{W: &b, N: min(c.each, c.bytes), Max: c.each,
		What: fmt.Sprintf("each configuration file; %d bytes for all of one search", 4*c.each)}
	err := f.Fetch(ctx, name, lim)
	c.bytes -= int64(b.Len())
	if err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
