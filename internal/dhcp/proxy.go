package dhcp

import "log/slog"

// proxyDHCP (PXE specification 2.1 §2.2.3): another server assigns
// addresses; pxed only tells PXE clients what to boot. It answers a PXE
// DISCOVER on port 67 with an OFFER that has no address, and the client's
// follow-up REQUEST on port 4011 with an ACK carrying the boot file.

// pxeVendorOptions is option 43 telling a PXE ROM to skip boot-server
// discovery and download the file named in the reply (PXE_DISCOVERY_CONTROL
// = 8), as every proxyDHCP server does.
var pxeVendorOptions = []byte{6, 1, 8, 255}

func (x *exchange) proxy() {
	if !x.f.pxe && !x.f.httpClient {
		return // not a network-boot client: the other DHCP server answers it
	}
	t := x.p.Type()
	switch {
	case !x.port.PXE && t == msgDiscover:
		x.proxyReply(msgOffer)
	case x.port.PXE && (t == msgRequest || t == msgInform):
		x.proxyReply(msgAck)
	default:
		x.logAt(slog.LevelDebug, "dhcp: proxy mode ignores this message", "type", msgName(t), "port-4011", x.port.PXE)
	}
}

func (x *exchange) proxyReply(t uint8) {
	h, _ := x.fixed()
	sc := x.sn.scope
	if h != nil {
		sc = x.plan.hostScope(h, x.sn)
	}
	if !sc.allowBooting {
		return
	}
	file, why, ok := bootFile(sc, x.f)
	if !ok {
		x.s.warnFirst("proxy-nofile:"+x.sn.prefix.String(), "dhcp: proxy mode, but no filename/boot-files for this client", "subnet", x.sn.prefix.String(), "mac", x.f.mac)
		return
	}
	r := x.newReply(t)
	r.CIAddr = x.p.CIAddr
	// Only boot information: no address, no lease, no network options.
	next := sc.nextServer
	if !sc.nextServerOK && x.serverIP.IsValid() {
		next = x.serverIP
	}
	r.SIAddr = next
	if len(file) < 128 {
		r.File = file
	} else {
		r.set(optBootfile, []byte(file))
	}
	if x.f.httpClient {
		r.set(optVendorClass, []byte("HTTPClient"))
	} else {
		r.set(optVendorClass, []byte("PXEClient"))
		r.set(optVendorOpts, pxeVendorOptions)
	}
	if u := x.p.Options[optClientUUID]; u != nil {
		r.set(optClientUUID, u)
	}
	x.logAt(slog.LevelInfo, "dhcp: proxy "+msgName(t), "next-server", next.String(), "file", file, "chosen-by", why, "arch", x.f.archName)
	x.send(r, t)
}
