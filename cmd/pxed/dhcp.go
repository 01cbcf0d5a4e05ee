package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"pxed/internal/bootfs"
	"pxed/internal/config"
	"pxed/internal/config/isc"
	"pxed/internal/dhcp"
	"pxed/internal/dhcpnet"
	"pxed/internal/inventory"
	"pxed/internal/lease"
	"pxed/internal/lease/bolt"
)

// leaseDBName is the lease database's file name inside the state directory.
const leaseDBName = "leases.db"

// loadNetwork returns the DHCP model the configuration names: an ISC
// dhcpd.conf or the inline `dhcp:` section. nil means DHCP is off.
func loadNetwork(c *config.Config) (*config.Network, []dhcp.Warning, error) {
	inline := &c.DHCP.Network
	hasInline := len(inline.Subnets) > 0 || len(inline.Hosts) > 0
	if c.DHCP.DHCPDConf == "" {
		if !hasInline {
			return nil, nil, nil
		}
		return inline, nil, nil
	}
	if hasInline {
		return nil, nil, errors.New("dhcp: both dhcpd-conf and inline subnets/hosts are configured; use one")
	}
	n, warns, err := isc.ParseFile(c.DHCP.DHCPDConf)
	if err != nil {
		return nil, nil, err
	}
	var out []dhcp.Warning
	for _, w := range warns {
		out = append(out, dhcp.Warning{Pos: w.Pos, Msg: w.Msg})
	}
	// Server-wide switches from the YAML still apply to a dhcpd.conf.
	n.Proxy = n.Proxy || inline.Proxy
	n.PingCheck = n.PingCheck || inline.PingCheck
	return n, out, nil
}

// compileNetwork loads and compiles the DHCP model, with the inventory's
// hosts merged in; nil plan means DHCP off.
func compileNetwork(c *config.Config, inv *inventory.Inventory, tree *bootfs.Tree) (*dhcp.Plan, []dhcp.Warning, error) {
	n, warns, err := buildNetwork(c, inv, tree)
	if err != nil || n == nil {
		return nil, warns, err
	}
	if len(n.Subnets) == 0 {
		return nil, append(warns, dhcp.Warning{Msg: "no subnet declared: DHCP stays off"}), nil
	}
	plan, w2, err := dhcp.Compile(n)
	return plan, append(warns, w2...), err
}

// dhcpService is the running DHCP server's parts, opened before anything
// starts so a bad interface or a locked lease database stops serve early.
type dhcpService struct {
	srv   *dhcp.Server
	ports []*dhcp.Port
	alloc *lease.Allocator
}

func openDHCP(c *config.Config, plan *dhcp.Plan, log *slog.Logger) (*dhcpService, error) {
	if len(c.DHCP.Interfaces) == 0 {
		return nil, errors.New("dhcp: subnets are configured but no interface is named; pxed serves DHCP only on the interfaces you name with --interface (or dhcp.interfaces)")
	}
	d := &dhcpService{}
	ok := false
	defer func() {
		if !ok {
			d.close()
		}
	}()
	for _, name := range c.DHCP.Interfaces {
		ports := []int{67}
		if plan.Proxy {
			ports = append(ports, 4011)
		}
		for _, pn := range ports {
			conn, err := dhcpnet.Listen(name, pn)
			if err != nil {
				return nil, fmt.Errorf("dhcp: %w", err)
			}
			ifc := conn.Interface()
			d.ports = append(d.ports, &dhcp.Port{Conn: conn, Name: name, Addrs: ifc.Addrs, MTU: ifc.MTU, PXE: pn == 4011})
			if len(ifc.Addrs) == 0 {
				log.Warn("dhcp: interface has no IPv4 address; directly attached clients cannot be served from it", "iface", name)
			}
		}
	}
	store, err := bolt.Open(filepath.Join(c.StateDir, leaseDBName))
	if err != nil {
		return nil, fmt.Errorf("dhcp: lease database: %w", err)
	}
	d.alloc, err = lease.NewAllocator(context.Background(), store, lease.Options{Pools: plan.Pools(), Reserved: plan.Reserved, Logger: log, CallerCommits: true})
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("dhcp: lease database: %w", err)
	}
	d.srv = &dhcp.Server{Plan: plan, Leases: d.alloc, Logger: log, TFTPEnabled: c.TFTP.Addr != ""}
	if plan.PingCheck {
		p, err := dhcp.NewICMPPinger()
		if err != nil {
			log.Warn("dhcp: ping-check is on but ICMP is unavailable; offering without it", "error", err)
		} else {
			d.srv.Pinger = p
		}
	}
	ok = true
	return d, nil
}

func (d *dhcpService) serve(ctx context.Context) error {
	return d.srv.Serve(ctx, d.ports)
}

// close stops everything; pending lease writes finish first, so every ACK
// that left was for a durable lease.
func (d *dhcpService) close() {
	for _, p := range d.ports {
		p.Conn.Close()
	}
	if d.alloc != nil {
		d.alloc.Close()
	}
}
