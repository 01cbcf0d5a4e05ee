package bootplan

import (
	"net"
	"path"
	"strings"

	"pxed/internal/inventory"
	"pxed/internal/pxelinux"
)

// The boot namespace: every name pxed generates, and every URL shape it
// hands to a client, is spelled in this file and nowhere else.
const (
	// pxelinuxDir is PXELINUX's config directory, next to pxelinux.0 (so
	// under the boot file's directory: "bios/pxelinux.cfg/01-<mac>").
	pxelinuxDir = "pxelinux.cfg/"
	// ipxeDir holds one iPXE script per MAC: ipxe/<mac in hexhyp form>.
	ipxeDir = "ipxe/"
	// bootIPXE is the one script for everyone: chain to ipxe/${mac:hexhyp}.
	bootIPXE = "boot.ipxe"
	// ksDir holds one kickstart per host: ks/<host name>.
	ksDir = "ks/"
	// grubCfg is GRUB 2's config, in its prefix directory: Debian's signed
	// network GRUB (grubnetx64.efi) reads /grub/grub.cfg and nothing else;
	// an upstream one (grub-mknetdir) searches grubCfg-01-<mac>, then
	// grubCfg-<hex IP> and its prefixes, then grubCfg.
	grubCfg = "grub.cfg"
	// apiHosts is the API's host collection; the install callback is
	// apiHosts + NAME + "/installed".
	apiHosts = "/api/v1/hosts/"
)

// efiCandidates are the UEFI x64 boot files pxed offers inventory hosts
// when no DHCP scope names one, in order of preference: iPXE works under
// every firmware tested, syslinux.efi does not (it cannot fetch
// ldlinux.e64 under OVMF with QEMU's iPXE).
var efiCandidates = []string{"ipxe.efi", "snponly.efi", "syslinux.efi"}

// loaderFiles are, per profile loader and UEFI architecture, the boot
// files that start it, in order of preference: shim first for GRUB, since
// shim (signed by Microsoft's UEFI CA) is what Secure Boot firmware runs,
// and it loads grubx64.efi from the same directory.
var loaderFiles = map[inventory.Loader]map[string][]string{
	inventory.LoaderGRUB:     {"efi-x64": {"shimx64.efi", "grubx64.efi"}, "efi-arm64": {"shimaa64.efi", "grubaa64.efi"}},
	inventory.LoaderIPXE:     {"efi-x64": {"ipxe.efi", "snponly.efi"}, "efi-arm64": {"ipxe-arm64.efi", "snponly-arm64.efi"}},
	inventory.LoaderPXELinux: {"efi-x64": {"syslinux.efi"}},
}

// SecureBootChain is how shim continues on one CPU: the GRUB it loads from
// its own directory, the CPU as GRUB's $grub_cpu names it, where that
// GRUB loads modules from on the server, and Debian's packages of the two.
type SecureBootChain struct {
	GRUB, CPU, ModuleDir                     string
	SignedPackage, SignedFile, ModulePackage string
}

// ShimChains are the chains of the shims pxed hands out, by shim's name.
var ShimChains = map[string]SecureBootChain{
	"shimx64.efi": {GRUB: "grubx64.efi", CPU: "x86_64", ModuleDir: "grub/x86_64-efi",
		SignedPackage: "grub-efi-amd64-signed", SignedFile: "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed", ModulePackage: "grub-efi-amd64-bin"},
	"shimaa64.efi": {GRUB: "grubaa64.efi", CPU: "arm64", ModuleDir: "grub/arm64-efi",
		SignedPackage: "grub-efi-arm64-signed", SignedFile: "/usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed", ModulePackage: "grub-efi-arm64-bin"},
}

// kind is what a generated name is.
type kind int

const (
	kindNone kind = iota
	kindPXELinux
	kindIPXE     // ipxe/<mac>
	kindBootIPXE // boot.ipxe
	kindKickstart
	kindGRUB // grub.cfg, grub.cfg-<suffix>, in any directory
)

// name is a parsed request name in the boot namespace.
type name struct {
	kind kind
	// dir is the directory before pxelinux.cfg/ ("bios/"): PXELINUX's path
	// prefix, which the generated config must account for.
	dir string
	// rest is what follows the kind's directory: the PXELINUX search name,
	// the MAC of ipxe/, the host of ks/.
	rest string
}

// parseName classifies a clean fs.FS path. It allocates nothing for the
// names of ordinary files (kernels, initrds), which every TFTP and HTTP
// request asks about.
func parseName(n string) name {
	switch {
	case n == bootIPXE:
		return name{kind: kindBootIPXE}
	case strings.HasPrefix(n, ipxeDir):
		return name{kind: kindIPXE, rest: strings.TrimSuffix(n[len(ipxeDir):], ".ipxe")}
	case strings.HasPrefix(n, ksDir):
		return name{kind: kindKickstart, rest: n[len(ksDir):]}
	}
	if base := n[strings.LastIndexByte(n, '/')+1:]; strings.HasPrefix(base, grubCfg) {
		switch {
		case base == grubCfg:
			return name{kind: kindGRUB, dir: n[:len(n)-len(base)]}
		case base[len(grubCfg)] == '-':
			return name{kind: kindGRUB, dir: n[:len(n)-len(base)], rest: base[len(grubCfg)+1:]}
		}
	}
	i := strings.LastIndex(n, pxelinuxDir)
	if i < 0 || (i > 0 && n[i-1] != '/') {
		return name{}
	}
	rest := n[i+len(pxelinuxDir):]
	if rest == "" || strings.Contains(rest, "/") {
		return name{}
	}
	return name{kind: kindPXELinux, dir: n[:i], rest: rest}
}

// Owns reports whether name (a clean fs.FS path) is in the generated
// namespace, whoever asks: bootfs.Layered asks the generator only then.
func Owns(n string) bool { return parseName(n).kind != kindNone }

// ContentType is the HTTP Content-Type of a file served under name;
// generated files in the boot namespace are text people read in a browser
// or with curl, everything else (kernels, initrds, boot loaders) bytes.
func ContentType(n string, generated bool) string {
	if generated && (Owns(n) || textExt[path.Ext(n)]) {
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

// GRUBNames are the GRUB config names generated for h whoever asks (each
// MAC, the fixed address), as an upstream network GRUB searches them, in
// dir (its prefix, "grub/").
func GRUBNames(h *inventory.Host, dir string) []string {
	var out []string
	for _, hw := range h.HWAddrs() {
		out = append(out, dir+grubCfg+"-01-"+macHexHyp(hw))
	}
	if h.Addr().IsValid() {
		out = append(out, dir+grubCfg+"-"+pxelinux.HexIP(h.Addr()))
	}
	return out
}

// textExt are the extensions of generated text: iPXE scripts, PXELINUX
// and GRUB configs, kickstarts.
var textExt = map[string]bool{".ipxe": true, ".cfg": true, ".ks": true}

// macHexHyp is a MAC as iPXE's ${mac:hexhyp} writes it: 00-16-3e-72-79-e4.
func macHexHyp(hw net.HardwareAddr) string {
	return strings.ReplaceAll(hw.String(), ":", "-")
}

// IPXEScriptPath is the path of the iPXE script pxed generates for hw.
func IPXEScriptPath(hw net.HardwareAddr) string { return ipxeDir + macHexHyp(hw) }

// KickstartPath is the path of host's generated kickstart.
func KickstartPath(host string) string { return ksDir + host }

// baseURL is the HTTP base URL for server ("host:port").
func baseURL(server string) string { return "http://" + server }

// installedURL is host's netboot-once callback on server, with its token.
func installedURL(server, host, token string) string {
	u := baseURL(server) + apiHosts + host + "/installed"
	if token != "" {
		u += "?token=" + token
	}
	return u
}

// HostNames are the PXELINUX config names generated for h whoever asks
// (UUID, each MAC, fixed address), in PXELINUX's search order, at the root
// of the tree: a file on disk under one of them hides the generated one.
func HostNames(h *inventory.Host) []string {
	var out []string
	if u := h.CanonicalUUID(); u != "" {
		out = append(out, pxelinuxDir+u)
	}
	for _, hw := range h.HWAddrs() {
		out = append(out, pxelinuxDir+pxelinux.MACName(hw))
	}
	if h.Addr().IsValid() {
		out = append(out, pxelinuxDir+pxelinux.HexIP(h.Addr()))
	}
	return out
}
