package dhcp

import (
	"bytes"
	"encoding/hex"
	"net"
	"sort"

	"pxed/internal/lease"
)

// Client architectures (option 93, RFC 4578 §2.1 and the IANA registry) by
// the names the configuration uses in boot-files.
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

func archNames() []string {
	var out []string
	for n := range archByName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// facts are what a request says about the client, parsed once.
type facts struct {
	hw         net.HardwareAddr
	mac        string // lower-case colon form
	key        lease.ClientKey
	clientID   []byte
	arch       uint16
	hasArch    bool
	archName   string // "" when unknown or absent
	pxe        bool   // vendor class starts with "PXEClient"
	httpClient bool   // vendor class starts with "HTTPClient" (UEFI HTTP boot)
	ipxe       bool   // user class (option 77) is "iPXE"
	uuid       string // option 97, hex
	hostname   string // option 12
}

func factsOf(p *Packet) facts {
	hw := p.MAC()
	f := facts{hw: hw, mac: hw.String(), clientID: p.Options[optClientID], hostname: string(p.Options[optHostName])}
	f.key = lease.Key(f.clientID, hw)
	if a := p.Options[optClientArch]; len(a) >= 2 {
		f.arch, f.hasArch = uint16(a[0])<<8|uint16(a[1]), true
		f.archName = archName[f.arch]
	}
	vc := p.Options[optVendorClass]
	f.pxe = bytes.HasPrefix(vc, []byte("PXEClient"))
	f.httpClient = bytes.HasPrefix(vc, []byte("HTTPClient"))
	if uc := p.Options[optUserClass]; len(uc) > 0 {
		// iPXE sends the bare string; RFC 3004 wraps each class in a length byte.
		f.ipxe = bytes.Equal(uc, []byte("iPXE")) || (int(uc[0])+1 <= len(uc) && bytes.Equal(uc[1:1+int(uc[0])], []byte("iPXE")))
	}
	if u := p.Options[optClientUUID]; len(u) == 17 && u[0] == 0 {
		f.uuid = hex.EncodeToString(u[1:])
	}
	return f
}

// bootFile decides what a client should boot, and why (for the log): the
// iPXE script for iPXE (so it does not chainload itself again), then the
// file for its architecture, then the scope's filename.
func bootFile(sc *scope, f facts) (file, why string, ok bool) {
	switch {
	case f.ipxe && sc.ipxeScript != "":
		return sc.ipxeScript, "ipxe-script", true
	case f.archName != "" && sc.bootFiles[f.archName] != "":
		return sc.bootFiles[f.archName], "boot-files[" + f.archName + "]", true
	case sc.hasFilename:
		return sc.filename, "filename", true
	}
	return "", "", false
}
