package dhcp

import (
	"bytes"
	"encoding/hex"
	"net"

	"pxed/internal/bootplan"
	"pxed/internal/lease"
)

// The architecture names of boot-files belong to the boot plan; the plan
// compiler checks names against them.
var archByName = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range bootplan.ArchNames() {
		m[n] = true
	}
	return m
}()

func archNames() []string { return bootplan.ArchNames() }

// facts are what a request says about the client, parsed once.
type facts struct {
	hw       net.HardwareAddr
	mac      string // lower-case colon form
	key      lease.ClientKey
	clientID []byte
	archName string // "" when unknown or absent
	boot     bootplan.Facts
	uuid     string // option 97, hex
	hostname string // option 12, printable and bounded
}

func factsOf(p *Packet) facts {
	hw := p.MAC()
	f := facts{hw: hw, mac: hw.String(), clientID: p.Options[optClientID], hostname: printable(p.Options[optHostName])}
	f.key = lease.Key(f.clientID, hw)
	f.boot.MAC, f.boot.MACKey = hw, f.mac
	if a := p.Options[optClientArch]; len(a) >= 2 {
		f.boot.Arch, f.boot.HasArch = uint16(a[0])<<8|uint16(a[1]), true
		f.archName = bootplan.ArchName(f.boot.Arch)
	}
	vc := p.Options[optVendorClass]
	f.boot.PXE = bytes.HasPrefix(vc, []byte("PXEClient"))
	f.boot.HTTPClient = bytes.HasPrefix(vc, []byte("HTTPClient"))
	if uc := p.Options[optUserClass]; len(uc) > 0 {
		// iPXE sends the bare string; RFC 3004 wraps each class in a length byte.
		f.boot.IPXE = bytes.Equal(uc, []byte("iPXE")) || (int(uc[0])+1 <= len(uc) && bytes.Equal(uc[1:1+int(uc[0])], []byte("iPXE")))
	}
	if u := p.Options[optClientUUID]; len(u) == 17 && u[0] == 0 {
		f.uuid = hex.EncodeToString(u[1:])
	}
	return f
}

// bootScope is the boot part of a scope, as the boot plan reads it.
func (sc *scope) bootScope() bootplan.Scope {
	b := bootplan.Scope{Filename: sc.filename, HasFilename: sc.hasFilename, BootFiles: sc.bootFiles, IPXEScript: sc.ipxeScript}
	if sc.nextServerOK {
		b.NextServer = sc.nextServer
	}
	return b
}
