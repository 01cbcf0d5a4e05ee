package bootplan

import (
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"pxed/internal/inventory"
)

// Client architectures (DHCP option 93, RFC 4578 §2.1 and the IANA
// registry) by the names the configuration uses in boot-files.
var archByName = map[string][]uint16{
	"bios":           {0},
	"efi-ia32":       {6},
	"efi-x64":        {7, 9}, // 9 is "EFI BC"; firmware that sends it is x64
	"efi-arm32":      {10},
	"efi-arm64":      {11},
	"efi-ia32-http":  {15},
	"efi-x64-http":   {16},
	"efi-arm32-http": {18},
	"efi-arm64-http": {19},
}

var archName = func() map[uint16]string {
	m := map[uint16]string{}
	for name, codes := range archByName {
		for _, c := range codes {
			m[c] = name
		}
	}
	return m
}()

// ArchName is the configuration's name of architecture code a ("" when
// unknown).
func ArchName(a uint16) string { return archName[a] }

// ArchCode is the first option-93 code of an architecture name.
func ArchCode(name string) (uint16, bool) {
	c, ok := archByName[name]
	if !ok {
		return 0, false
	}
	return c[0], true
}

// ArchNames lists the architecture names boot-files accepts, sorted.
func ArchNames() []string { return slices.Sorted(maps.Keys(archByName)) }

// Facts are what a request says about the client, as far as booting goes.
type Facts struct {
	MAC net.HardwareAddr
	// MACKey is MAC in lower-case colon form (the DHCP server has it
	// already; "" to compute it).
	MACKey string
	// Arch is option 93 (HasArch: the client sent it).
	Arch    uint16
	HasArch bool
	// PXE: vendor class PXEClient; HTTPClient: vendor class HTTPClient
	// (UEFI HTTP boot); IPXE: user class iPXE.
	PXE, HTTPClient, IPXE bool
	// Server is this server's address on the client's network: it stands
	// for "{server}" in boot files and is the next-server when the scope
	// names none and pxed serves TFTP.
	Server netip.Addr
}

// Scope is the boot part of the DHCP scope in force for the client, as
// the operator wrote it (dhcpd.conf or YAML), merged over its outer scopes.
type Scope struct {
	Filename    string
	HasFilename bool
	// BootFiles maps an architecture name to a boot file or URL.
	BootFiles map[string]string
	// IPXEScript is the boot file for clients with user class iPXE.
	IPXEScript string
	// NextServer is the configured next-server (invalid: none).
	NextServer netip.Addr
}

// Decision is what a client boots and why.
type Decision struct {
	// File is the boot file or URL for the DHCP reply ("" none), with
	// "{server}" replaced.
	File string
	// ScriptURL is File when it is an iPXE script URL ("" otherwise).
	ScriptURL string
	// NextServer is siaddr (invalid: none); OwnNextServer says it is this
	// server's own address because the scope named none.
	NextServer    netip.Addr
	OwnNextServer bool
	// Host is the inventory host the decision is for ("" none).
	Host string
	// Why says which rule chose File, for logs and `pxed explain`.
	Why string
}

// Decide is the boot decision for a client with facts f in scope sc. It
// does no I/O. In order:
//
//  1. an inventory host's iPXE gets the host's script over HTTP (not for
//     multiboot profiles: iPXE builds before 2021, QEMU's among them,
//     cannot load a gzipped Xen, so those go through pxelinux.0 and
//     mboot.c32);
//  2. iPXE gets the scope's ipxe-script, so it does not chainload itself;
//  3. an inventory host whose profile names a loader, on UEFI, gets that
//     loader's boot file for its architecture (GRUB: shim, which loads
//     grubx64.efi beside it; found in the tree) — over TFTP for PXE
//     firmware, as a URL on pxed's HTTP server for UEFI HTTP boot;
//  4. an inventory host's UEFI x64 firmware gets the EFI boot file found
//     in the tree (iPXE), unless a scope names one for efi-x64; over HTTP
//     for UEFI HTTP boot;
//  5. the scope's boot-files entry for the client's architecture;
//  6. the scope's filename.
func (p *Plan) Decide(f Facts, sc Scope) Decision {
	var d Decision
	var h *inventory.Host
	if inv := p.o.Inventory; inv != nil && len(f.MAC) > 0 {
		if f.MACKey != "" {
			h = inv.ByMACKey(f.MACKey)
		} else {
			h = inv.ByMAC(f.MAC)
		}
	}
	arch := ""
	if f.HasArch {
		arch = archName[f.Arch]
	}
	uefi, overHTTP := strings.CutSuffix(arch, "-http")
	if !strings.HasPrefix(uefi, "efi-") {
		uefi = ""
	}
	// loaderFile is file for this client: a URL for UEFI HTTP boot (""
	// when pxed serves no HTTP), else the TFTP name.
	loaderFile := func(file string) string {
		switch {
		case file == "":
			return ""
		case !overHTTP:
			return file
		case p.httpTemplate() != "":
			return "http://" + p.httpTemplate() + "/" + file
		}
		return ""
	}
	var loader inventory.Loader
	if h != nil && h.ProfileOf() != nil {
		loader = h.ProfileOf().Loader
	}
	switch {
	case h != nil && f.IPXE && !h.Multiboot() && p.httpTemplate() != "":
		d.File = "http://" + p.httpTemplate() + "/" + IPXEScriptPath(f.MAC)
		d.ScriptURL = d.File
		d.Why = "inventory host " + h.Name + ": its iPXE script over HTTP"
	case f.IPXE && sc.IPXEScript != "":
		d.File = sc.IPXEScript
		d.Why = "ipxe-script (user class iPXE)"
		if strings.Contains(d.File, "://") {
			d.ScriptURL = d.File
		}
	case loader != "" && uefi != "" && loaderFile(p.loaders[loader][uefi]) != "":
		d.File = loaderFile(p.loaders[loader][uefi])
		d.Why = "inventory host " + h.Name + ": profile " + h.Profile + " loader " + string(loader) + " for " + arch
	case h != nil && uefi == "efi-x64" && loaderFile(p.EFIBootFile()) != "":
		d.File = loaderFile(p.EFIBootFile())
		d.Why = "inventory host " + h.Name + ": UEFI x64 boot file found in the boot tree"
	case arch != "" && sc.BootFiles[arch] != "":
		d.File = sc.BootFiles[arch]
		d.Why = "boot-files[" + arch + "]"
	case sc.HasFilename:
		d.File = sc.Filename
		d.Why = "filename"
	default:
		d.Why = "no filename, boot-files or ipxe-script applies"
	}
	if h != nil {
		d.Host = h.Name
	}
	// "{server}" stands for this server's address on the client's network:
	// one configuration serves every interface.
	if strings.Contains(d.File, "{server}") && f.Server.IsValid() {
		d.File = strings.ReplaceAll(d.File, "{server}", f.Server.String())
		if d.ScriptURL != "" {
			d.ScriptURL = d.File
		}
	}
	switch {
	case sc.NextServer.IsValid():
		d.NextServer = sc.NextServer
	case p.o.TFTP && f.Server.IsValid():
		d.NextServer, d.OwnNextServer = f.Server, true
	}
	return d
}
