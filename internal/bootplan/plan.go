// Package bootplan answers "what does this machine boot, and why" for the
// whole server. It owns the boot namespace — the generated names
// (pxelinux.cfg/…, ipxe/…, boot.ipxe, ks/…), the URL shapes handed to
// clients (iPXE script URLs, kickstart and install-callback URLs) and their
// content types — and the boot decision: which file or script a client
// gets for its architecture, user class and vendor class, and from which
// next-server (Decide). DHCP, the TFTP/HTTP generators and `pxed explain`
// all ask one Plan; no other package spells these names.
//
// A Plan is immutable: internal/app builds one per snapshot and swaps it
// whole on reload. The host states it reads (netboot once) and the lease
// view (hex-IP config names of dynamic clients) are live views passed in.
package bootplan

import (
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"pxed/internal/config"
	"pxed/internal/inventory"
)

// Options are what a Plan is built from.
type Options struct {
	// Inventory is the boot inventory (nil: none).
	Inventory *inventory.Inventory
	// States are the hosts' run-time boot states (nil: the declared ones).
	States *inventory.States
	// LeaseMAC finds the client holding a dynamic lease on an address, so
	// a config named by hex IP can be generated for an inventory host
	// without a fixed address, and its kickstart served to it alone (nil:
	// pxed's DHCP is off; fixed addresses only, and the kickstart of a
	// host without one goes to any client).
	LeaseMAC func(netip.Addr) (net.HardwareAddr, bool)
	// HTTPPort is pxed's HTTP port (0: HTTP off); Advertise, when set
	// ("boot.example.net:8080"), is the HTTP server named to clients
	// whatever address they used.
	HTTPPort  int
	Advertise string
	// TFTP: pxed serves TFTP, so a scope without next-server gets this
	// server's own address rather than none.
	TFTP bool
	// Tree is the boot tree (nil: none), searched once for a UEFI boot file.
	Tree fs.StatFS
	// ScopeBootFiles are the boot-files maps of every DHCP scope: when one
	// names an efi-x64 file, the operator chose, and inventory hosts get
	// that one too.
	ScopeBootFiles []map[string]string
	// Loaded is when the snapshot was built (Last-Modified of generated files).
	Loaded time.Time
	Logger *slog.Logger
}

// Plan is one snapshot's boot plan.
type Plan struct {
	o Options
	// efiFile is the UEFI x64 boot file inventory hosts get ("" none).
	efiFile string
	// scopeEFI: a DHCP scope names an efi-x64 file itself.
	scopeEFI bool
	// httpServer is Advertise, or "" to use the address each client reached.
	httpServer string
	// loaders are, per profile loader and UEFI architecture, its boot file
	// found in the tree (or, when none is, its first candidate, so the
	// decision names what is missing).
	loaders map[inventory.Loader]map[string]string
	// warnings: profiles whose loader has no boot file in the tree.
	warnings []Warning
}

// Warning is something in the inventory the plan cannot serve as written.
type Warning struct {
	Pos config.Pos
	Msg string
}

// New builds a Plan.
func New(o Options) *Plan {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.States == nil {
		o.States = inventory.NewStates(nil, nil)
	}
	if o.Loaded.IsZero() {
		o.Loaded = time.Now()
	}
	o.Loaded = o.Loaded.Truncate(time.Second)
	p := &Plan{o: o, httpServer: o.Advertise}
	for _, bf := range o.ScopeBootFiles {
		if bf["efi-x64"] != "" {
			p.scopeEFI = true
		}
	}
	p.loaders = map[inventory.Loader]map[string]string{}
	missing := map[inventory.Loader][]string{} // architectures without a boot file
	for l, byArch := range loaderFiles {
		p.loaders[l] = map[string]string{}
		for arch, files := range byArch {
			p.loaders[l][arch] = files[0]
			found := false
			for _, f := range files {
				if o.Tree != nil {
					if fi, err := o.Tree.Stat(f); err == nil && fi.Mode().IsRegular() {
						p.loaders[l][arch], found = f, true
						break
					}
				}
			}
			if !found {
				missing[l] = append(missing[l], arch)
			}
		}
	}
	if o.Tree != nil && o.Inventory != nil {
		for _, name := range slices.Sorted(maps.Keys(o.Inventory.Profiles)) {
			pr := o.Inventory.Profiles[name]
			for _, arch := range missing[pr.Loader] {
				// x64 is every profile's; other architectures are the
				// ones a profile gives files for (arch:).
				if arch != "efi-x64" && pr.Arch[arch] == nil {
					continue
				}
				p.warnings = append(p.warnings, Warning{Pos: pr.Pos, Msg: fmt.Sprintf("profile %s: loader %s, but none of %s is in the boot tree: its hosts' %s firmware will not find its boot file",
					name, pr.Loader, strings.Join(loaderFiles[pr.Loader][arch], ", "), arch)})
			}
		}
	}
	if o.Tree != nil {
		for _, f := range efiCandidates {
			if fi, err := o.Tree.Stat(f); err == nil && fi.Mode().IsRegular() {
				p.efiFile = f
				break
			}
		}
	}
	return p
}

// Warnings are what the plan found it cannot serve as the inventory says.
func (p *Plan) Warnings() []Warning { return p.warnings }

// Inventory is the inventory the plan serves (nil: none).
func (p *Plan) Inventory() *inventory.Inventory { return p.o.Inventory }

// States are the host states the plan reads.
func (p *Plan) States() *inventory.States { return p.o.States }

// EFIBootFile is the UEFI x64 boot file found in the tree for inventory
// hosts ("" when none, or when a DHCP scope names its own).
func (p *Plan) EFIBootFile() string {
	if p.scopeEFI {
		return ""
	}
	return p.efiFile
}

// HTTPServer is "host:port" of the HTTP server as a client that reached
// pxed on local should use: Advertise, else local with pxed's HTTP port;
// "" when HTTP is off or local is unknown. Never what a client wrote (an
// HTTP Host header): it ends up in kickstarts and shell lines.
func (p *Plan) HTTPServer(local netip.Addr) string {
	switch {
	case p.httpServer != "":
		return p.httpServer
	case local.IsValid() && p.o.HTTPPort > 0:
		return netip.AddrPortFrom(local.Unmap(), uint16(p.o.HTTPPort)).String()
	}
	return ""
}

// httpTemplate is the HTTP server with "{server}" for the DHCP server's
// own address, as boot files in the configuration write it.
func (p *Plan) httpTemplate() string {
	switch {
	case p.httpServer != "":
		return p.httpServer
	case p.o.HTTPPort > 0:
		return "{server}:" + strconv.Itoa(p.o.HTTPPort)
	}
	return ""
}
