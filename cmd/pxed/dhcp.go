package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	clientv3 "go.etcd.io/etcd/client/v3"

	"pxed/internal/app"
	"pxed/internal/config"
	"pxed/internal/dhcp"
	"pxed/internal/dhcpnet"
	"pxed/internal/etcdstore"
	"pxed/internal/lease"
	"pxed/internal/lease/bolt"
	"pxed/internal/metrics"
)

// dhcpService is the running DHCP server's parts, opened before anything
// starts so a bad interface or a locked lease database stops serve early.
type dhcpService struct {
	srv    *dhcp.Server
	ports  []*dhcp.Port
	alloc  *lease.Allocator
	pinger *dhcp.ICMPPinger // nil without ping-check
}

// openDHCP binds the DHCP ports of every named interface and opens the
// lease database; the server answers from a's current snapshot.
//
// cli, when not nil, is the cluster's etcd: leases live there, shared with
// the other servers (blocks of addresses, etcdstore); else in bolt.
func openDHCP(c *config.Config, plan *dhcp.Plan, a *app.App, log *slog.Logger, m *metrics.Metrics, ob dhcp.Observer, cli *clientv3.Client) (*dhcpService, error) {
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
	opts := lease.Options{Pools: plan.Pools(), Reserved: plan.Reserved, Logger: log, CallerCommits: true}
	if m != nil {
		opts.OnPut = m.LeaseCommit
	}
	var store lease.Store
	var shared *etcdstore.Leases
	if cli != nil {
		lo := etcdstore.LeasesOptions{ID: serverID(), Logger: log}
		for _, p := range d.ports {
			for _, pfx := range p.Addrs {
				if m := pfx.Masked(); !slices.Contains(lo.Subnets, m) {
					lo.Subnets = append(lo.Subnets, m)
				}
			}
		}
		if m != nil {
			lo.OnHealth, lo.OnBlocks = m.StoreUp, m.StoreBlocks
		}
		shared = etcdstore.NewLeases(cli, etcdstore.Keys{Prefix: c.Store.Prefix}, lo)
		// A transaction waits for a quorum (and, when the leader dies,
		// for a new one): the Allocator's own goroutine commits, and
		// the DHCP loop goes on answering meanwhile.
		opts.Blocks, opts.MaxBatch, opts.OnShort, opts.ShortBelow, opts.CallerCommits = true, etcdstore.MaxBatch, shared.Short, etcdstore.ShortBelow, false
		opts.Linger = etcdstore.Linger
		// Servers on one segment split its clients (RFC 3074).
		opts.Balance = shared.Balance
		store = shared
	} else {
		spec, err := c.StoreSpec()
		if err != nil {
			return nil, err
		}
		b, err := bolt.Open(spec.Path)
		if err != nil {
			return nil, fmt.Errorf("dhcp: lease database: %w", err)
		}
		store = b
	}
	var err error
	d.alloc, err = lease.NewAllocator(context.Background(), store, opts)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("dhcp: lease database: %w", err)
	}
	if shared != nil {
		shared.Start(d.alloc)
	}
	a.UseLeases(d.alloc)
	d.srv = &dhcp.Server{View: a.DHCPView, Leases: d.alloc, Logger: log, Observer: ob}
	if m != nil {
		m.Pools(poolUsage(plan, d.alloc))
	}
	if plan.PingCheck {
		p, err := dhcp.NewICMPPinger()
		if err != nil {
			log.Warn("dhcp: ping-check is on but ICMP is unavailable; offering without it", "error", err)
		} else {
			d.srv.Pinger, d.pinger = p, p
		}
	}
	ok = true
	return d, nil
}

// serverID names this server in the cluster's keys: its host name and a
// random suffix (two servers on one host, or a restart, are distinct).
func serverID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "pxed"
	}
	var b [3]byte
	rand.Read(b[:])
	return h + "-" + hex.EncodeToString(b[:])
}

// etcdClient is the cluster's etcd client, nil outside a cluster.
func (cl *cluster) etcdClient() *clientv3.Client {
	if cl == nil {
		return nil
	}
	return cl.cli
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
	if d.pinger != nil {
		d.pinger.Close()
	}
}

// printable shows a client-supplied string (a lease's host name) on a
// terminal: control characters, invalid UTF-8 and the backslash are
// escaped (\x1b, \u009b, \\), so that what a machine on the network sent
// can neither move the cursor, retitle the window nor break the table.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || r == '\\' || !strconv.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&sb, "\\x%02x", s[i])
		case r == '\\':
			sb.WriteString(`\\`)
		case r < 0x80 && !strconv.IsPrint(r):
			fmt.Fprintf(&sb, "\\x%02x", r)
		case !strconv.IsPrint(r) && r <= 0xffff:
			fmt.Fprintf(&sb, "\\u%04x", r)
		case !strconv.IsPrint(r):
			fmt.Fprintf(&sb, "\\U%08x", r)
		default:
			sb.WriteString(s[i : i+n])
		}
		i += n
	}
	return sb.String()
}
