package app

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"

	"pxed/internal/api"
	"pxed/internal/events"
)

// Client names a client by its address for the events ring: the MAC
// pxed's DHCP leased the address to, and the inventory host at that
// address (the boot plan's HostAt); else the host declaration whose fixed
// address it is, with its MAC. Empty when none is known.
func (a *App) Client(ip netip.Addr) (mac net.HardwareAddr, host string) {
	ip = ip.Unmap()
	mac, _ = a.leaseMAC(ip)
	snap := a.cur.Load()
	if h := snap.Boot.HostAt(ip); h != nil {
		return mac, h.Name
	}
	if snap.Network == nil {
		return mac, ""
	}
	for _, h := range snap.Network.Hosts {
		if slices.Contains(h.FixedAddresses, ip.String()) {
			if hw, err := net.ParseMAC(h.MAC); err == nil && mac == nil {
				mac = hw
			}
			return mac, h.Name
		}
	}
	return mac, ""
}

// Events implements api.Service: the ring's events of host (an inventory
// name, a MAC or an IP; for an inventory host, also its MACs and address).
func (s service) Events(_ context.Context, host string, limit int) ([]api.EventView, error) {
	ring := s.a.env.Events
	if ring == nil {
		return nil, nil
	}
	var match func(events.Event) bool
	if host != "" {
		names, macs, ips := map[string]bool{host: true}, map[string]bool{}, map[string]bool{}
		if hw, err := net.ParseMAC(host); err == nil {
			macs[hw.String()] = true
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			ips[ip.Unmap().String()] = true
		}
		if inv := s.a.cur.Load().Inventory; inv != nil {
			if h := inv.Host(host); h != nil {
				names[h.Name] = true
				for _, hw := range h.HWAddrs() {
					macs[hw.String()] = true
				}
				if h.Addr().IsValid() {
					ips[h.Addr().String()] = true
				}
			}
		}
		match = func(e events.Event) bool {
			return names[e.Host] || macs[strings.ToLower(e.MAC)] || ips[e.IP]
		}
	}
	var out []api.EventView
	for _, e := range ring.List(match, limit) {
		out = append(out, api.EventView(e))
	}
	return out, nil
}
