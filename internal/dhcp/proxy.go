package dhcp

import (
	"log/slog"
	"net/netip"
)

// proxyDHCP (PXE specification 2.1 §2.2.3): another server assigns
// addresses; pxed only tells PXE clients what to boot. It answers a PXE
// DISCOVER on port 67 with an OFFER that has no address, and the client's
// follow-up REQUEST on port 4011 with an ACK carrying the boot file.

// pxeVendorOptions is option 43 telling a PXE ROM to skip boot-server
// discovery and download the file named in the reply (PXE_DISCOVERY_CONTROL
// = 8), as every proxyDHCP server does.
var pxeVendorOptions = []byte{6, 1, 8, 255}

func (x *exchange) proxy() Outcome {
	if !x.f.boot.PXE && !x.f.boot.HTTPClient {
		return silence(slog.LevelDebug, "proxy mode: not a network-boot client (the other DHCP server answers it)")
	}
	t := x.p.Type()
	switch {
	case !x.port.PXE && t == msgDiscover:
		return x.proxyReply(msgOffer)
	case x.port.PXE && (t == msgRequest || t == msgInform):
		return x.proxyReply(msgAck)
	}
	return silence(slog.LevelDebug, "proxy mode ignores "+msgName(t)+" on this port")
}

func (x *exchange) proxyReply(t uint8) Outcome {
	h, _ := x.fixed()
	sc := x.scopeFor(h, netip.Addr{})
	if !sc.allowBooting {
		return silence(slog.LevelDebug, deniedBooting)
	}
	// Another server assigns addresses; pxed's next-server is its own
	// address when the scope names none, TFTP or not.
	bs := sc.bootScope()
	if !bs.NextServer.IsValid() {
		bs.NextServer = x.serverIP
	}
	d := x.v.Boot.Decide(x.f.boot, bs)
	if d.File == "" {
		o := silence(slog.LevelDebug, "proxy mode, but no filename/boot-files for this client")
		o.WarnKey, o.Warn = "proxy-nofile:"+x.sn.prefix.String(), "dhcp: proxy mode, but no filename/boot-files for this client"
		o.Boot = d
		return o
	}
	r := x.newReply(t)
	r.CIAddr = x.p.CIAddr
	// Only boot information: no address, no lease, no network options.
	r.SIAddr = d.NextServer
	if len(d.File) < 128 {
		r.File = d.File
	} else {
		r.set(optBootfile, []byte(d.File))
	}
	if x.f.boot.HTTPClient {
		r.set(optVendorClass, []byte("HTTPClient"))
	} else {
		r.set(optVendorClass, []byte("PXEClient"))
		r.set(optVendorOpts, pxeVendorOptions)
	}
	if u := x.p.Options[optClientUUID]; u != nil {
		r.set(optClientUUID, u)
	}
	return Outcome{Reply: r, Type: t, Host: hostName(h), Boot: d, State: "proxy"}
}
