package dhcp

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pxed/internal/config"
	"pxed/internal/dhcpopt"
	"pxed/internal/lease"
	"pxed/internal/pos"
)

// ISC dhcpd's defaults when a scope says nothing.
const (
	defaultLeaseTime = 43200 * time.Second
	defaultMaxLease  = 86400 * time.Second
)

// Plan is a config.Network compiled for serving: addresses parsed, options
// encoded, scopes merged, pools built. It is read-only once made, so every
// goroutine may share it.
type Plan struct {
	Authoritative bool
	PingCheck     bool
	Proxy         bool

	global       *scope
	globalParams config.Params
	subnets      []*subnet
	byMAC        map[string][]*host // lower-case colon MAC
	byID         map[string][]*host // client identifier bytes
	// Reserved lists every fixed address; the allocator never hands them out.
	Reserved []netip.Addr
	table    *dhcpopt.Table

	// hostScopes caches hostScope: hostOnSubnet -> *scope.
	hostScopes sync.Map
	// dyn holds the classes and conditionals; nil when there are none,
	// and then every scope is compiled once, here.
	dyn *dynamic
}

// scope is one level's effective parameters (already merged with the levels
// above it), ready to put in a reply.
type scope struct {
	opts         []option // encoded, by code; protocol options left out
	byCode       map[uint8][]byte
	nextServer   netip.Addr
	nextServerOK bool
	filename     string
	hasFilename  bool
	serverName   string
	defLease     time.Duration
	maxLease     time.Duration
	allowBootp   bool
	allowBooting bool
	bootFiles    map[string]string // arch name -> file or URL
	ipxeScript   string
	bootUnknown  bool // answer clients without a host declaration
}

type subnet struct {
	prefix    netip.Prefix
	mask      []byte // option 1 for the prefix
	pos       config.Pos
	scope     *scope
	pools     []*pool
	leasePool []*lease.Pool
	params    config.Params // merged over global, for hosts to merge over
	layer     *layer        // params with conditionals (Plan.dyn only)
	permits   bool          // some pool has allow/deny permits
	// byKnown are the pools an unknown ([0]) and a known ([1]) client may
	// use, when the permits depend on nothing else (static).
	byKnown [2][]*lease.Pool
	static  bool
	// ownNextServerWarned: the "no next-server, sending our own" warning
	// was logged (once per subnet, checked per reply without building a key).
	ownNextServerWarned atomic.Bool
}

type pool struct {
	scope   *scope
	params  config.Params // merged over the subnet's, for hosts to merge over
	layer   *layer        // own params with conditionals (Plan.dyn only)
	permits []permit
	ranges  []lease.Range
	lp      *lease.Pool
}

type host struct {
	name   string
	fixed  []netip.Addr
	params config.Params // own + groups
	layer  *layer        // params with conditionals (Plan.dyn only)
	pos    config.Pos
}

// Warning is a problem that does not stop pxed, with where it was written.
type Warning = pos.Warning

// Compile checks n and builds its Plan. Errors name file:line:column.
func Compile(n *config.Network) (*Plan, []Warning, error) {
	c := &compiler{}
	p := c.compile(n)
	if len(c.errs) > 0 {
		return nil, c.warns, c.errs
	}
	return p, c.warns, nil
}

type compiler struct {
	errs  config.Errors
	warns []Warning
	table *dhcpopt.Table
	// ignored: the protocol options already warned about, by where they
	// were set.
	ignored map[ignoredOption]bool
}

type ignoredOption struct {
	pos  config.Pos
	name string
}

func (c *compiler) errorf(pos config.Pos, format string, args ...any) {
	c.errs = append(c.errs, &config.Error{File: pos.File, Line: pos.Line, Column: pos.Column, Msg: fmt.Sprintf(format, args...)})
}

func (c *compiler) warnf(pos config.Pos, format string, args ...any) {
	c.warns = append(c.warns, Warning{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func (c *compiler) compile(n *config.Network) *Plan {
	table, err := n.OptionTable()
	if err != nil {
		var es config.Errors
		if errors.As(err, &es) {
			c.errs = append(c.errs, es...)
		} else {
			c.errorf(config.Pos{}, "option definitions: %v", err)
		}
		return nil
	}
	c.table = table
	p := &Plan{
		Authoritative: n.Authoritative,
		PingCheck:     n.PingCheck,
		Proxy:         n.Proxy,
		byMAC:         map[string][]*host{},
		byID:          map[string][]*host{},
		table:         table,
	}
	global := n.Params
	p.globalParams = global
	p.global = c.scope(global, config.Pos{}, "global scope")
	if hasConds(n) {
		p.dyn = &dynamic{cache: map[string]*scope{}}
		c.classes(p.dyn, n)
	}
	classNames := map[string]bool{}
	for _, cl := range n.Classes {
		classNames[cl.Name] = true
	}
	for i := range n.Subnets {
		s := &n.Subnets[i]
		sn := &subnet{pos: s.Pos}
		pfx, err := netip.ParsePrefix(s.Network)
		switch {
		case err != nil || !pfx.Addr().Is4():
			c.errorf(s.Pos, "subnet %q: not an IPv4 network in CIDR form (192.0.2.0/24)", s.Network)
			continue
		case pfx.Masked() != pfx:
			c.errorf(s.Pos, "subnet %s: host bits are set (did you mean %s?)", s.Network, pfx.Masked())
			continue
		}
		sn.prefix = pfx
		sn.mask = maskOf(pfx)
		for _, o := range p.subnets {
			if o.prefix.Overlaps(pfx) {
				c.errorf(s.Pos, "subnet %s overlaps subnet %s declared at %s", pfx, o.prefix, o.pos)
			}
		}
		sn.params = s.Params.Over(global)
		sn.scope = c.scope(sn.params, s.Pos, "subnet "+pfx.String())
		if p.dyn != nil {
			sn.layer = c.newLayer(p.dyn, sn.params, "subnet "+pfx.String(), s.Pos, sn.params, false)
		}
		for j := range s.Pools {
			pl := &s.Pools[j]
			pp := &pool{scope: sn.scope, params: sn.params}
			if !paramsEmpty(pl.Params) {
				pp.params = pl.Params.Over(sn.params)
				pp.scope = c.scope(pp.params, pl.Pos, "pool")
			}
			if p.dyn != nil {
				pp.layer = c.newLayer(p.dyn, pl.Params, "pool", pl.Pos, pp.params, false)
			}
			for _, pm := range pl.Permits {
				if pm.Kind == config.PermitClass && !classNames[pm.Class] {
					c.errorf(pm.Pos, "%s: no such class %q", pm.Text, pm.Class)
				}
				pp.permits = append(pp.permits, permit{deny: pm.Deny, kind: pm.Kind, class: pm.Class})
			}
			for _, r := range pl.Ranges {
				lr, ok := c.rangeOf(r, pfx)
				if !ok {
					continue
				}
				for _, other := range sn.pools {
					for _, or := range other.ranges {
						if lr.Start.Compare(or.End) <= 0 && or.Start.Compare(lr.End) <= 0 {
							c.errorf(r.Pos, "range %s-%s overlaps range %s-%s in the same subnet", lr.Start, lr.End, or.Start, or.End)
						}
					}
				}
				for _, or := range pp.ranges {
					if lr.Start.Compare(or.End) <= 0 && or.Start.Compare(lr.End) <= 0 {
						c.errorf(r.Pos, "range %s-%s overlaps range %s-%s in the same pool", lr.Start, lr.End, or.Start, or.End)
					}
				}
				pp.ranges = append(pp.ranges, lr)
			}
			if len(pp.ranges) == 0 {
				continue
			}
			sn.permits = sn.permits || len(pp.permits) > 0
			pp.lp = &lease.Pool{Ranges: pp.ranges}
			sn.pools = append(sn.pools, pp)
			sn.leasePool = append(sn.leasePool, pp.lp)
		}
		if len(sn.pools) == 0 && !n.Proxy {
			c.warnf(s.Pos, "subnet %s has no range: only hosts with a fixed-address get an address there", pfx)
		}
		p.subnets = append(p.subnets, sn)
	}

	fixedOwner := map[netip.Addr]*config.Host{}
	for i := range n.Hosts {
		h := &n.Hosts[i]
		hh := &host{name: h.Name, params: h.Params, pos: h.Pos}
		if p.dyn != nil {
			hh.layer = c.newLayer(p.dyn, h.Params, "host "+h.Name, h.Pos, h.Params.Over(global), false)
		}
		if h.MAC == "" && h.ClientID == "" {
			c.warnf(h.Pos, "host %s has neither hardware ethernet nor dhcp-client-identifier: no client can match it", h.Name)
		}
		for _, fa := range h.FixedAddresses {
			a, err := netip.ParseAddr(fa)
			if err != nil || !a.Is4() {
				c.errorf(h.Pos, "host %s: fixed-address %q is not an IPv4 address (pxed does not resolve names here)", h.Name, fa)
				continue
			}
			if o := fixedOwner[a]; o != nil {
				c.warnf(h.Pos, "host %s: fixed-address %s is also given to host %s at %s", h.Name, a, o.Name, o.Pos)
			}
			fixedOwner[a] = h
			if sn := p.subnetFor(a); sn == nil {
				c.warnf(h.Pos, "host %s: fixed-address %s is in no declared subnet; it will never be offered", h.Name, a)
			} else if pl := sn.poolOf(a); pl != nil {
				// ISC: "Dynamic and static leases present". Legal, and the seed does it.
				c.warnf(h.Pos, "host %s: fixed-address %s lies inside a dynamic range of %s; pxed keeps it for this host and never leases it to another client", h.Name, a, sn.prefix)
			}
			hh.fixed = append(hh.fixed, a)
			p.Reserved = append(p.Reserved, a)
		}
		// Check the host's own options now so errors point at it.
		for _, sn := range p.subnetsOf(hh) {
			c.scope(h.Params.Over(sn.params), h.Pos, "host "+h.Name)
		}
		if len(hh.fixed) == 0 {
			c.scope(h.Params.Over(global), h.Pos, "host "+h.Name)
		}
		if h.MAC != "" {
			mac, err := net.ParseMAC(h.MAC)
			if err != nil {
				c.errorf(h.Pos, "host %s: hardware ethernet %q: %v", h.Name, h.MAC, err)
			} else {
				p.byMAC[mac.String()] = append(p.byMAC[mac.String()], hh)
			}
		}
		if h.ClientID != "" {
			id, err := hex.DecodeString(strings.ReplaceAll(h.ClientID, ":", ""))
			if err != nil {
				c.errorf(h.Pos, "host %s: client-id %q: %v", h.Name, h.ClientID, err)
			} else {
				p.byID[string(id)] = append(p.byID[string(id)], hh)
			}
		}
	}
	for _, sn := range p.subnets {
		sn.poolsByKnown()
	}
	slices.SortFunc(p.Reserved, netip.Addr.Compare)
	p.Reserved = slices.Compact(p.Reserved)
	return p
}

func (c *compiler) rangeOf(r config.Range, pfx netip.Prefix) (lease.Range, bool) {
	start, err1 := netip.ParseAddr(r.Start)
	end := start
	var err2 error
	if r.End != "" {
		end, err2 = netip.ParseAddr(r.End)
	}
	if err1 != nil || err2 != nil || !start.Is4() || !end.Is4() {
		c.errorf(r.Pos, "range %s %s: not IPv4 addresses (pxed does not resolve names here)", r.Start, r.End)
		return lease.Range{}, false
	}
	if end.Less(start) {
		c.errorf(r.Pos, "range %s %s: the first address is after the last", start, end)
		return lease.Range{}, false
	}
	if !pfx.Contains(start) || !pfx.Contains(end) {
		c.errorf(r.Pos, "range %s %s is not inside subnet %s", start, end, pfx)
		return lease.Range{}, false
	}
	if pfx.Bits() < 31 {
		netAddr, bcast := pfx.Addr(), lastAddr(pfx)
		if start == netAddr || end == bcast {
			c.errorf(r.Pos, "range %s %s includes the network or broadcast address of %s", start, end, pfx)
			return lease.Range{}, false
		}
	}
	return lease.Range{Start: start, End: end, BOOTP: r.DynamicBootp}, true
}

// scope encodes merged params; problems are reported at pos.
func (c *compiler) scope(pr config.Params, pos config.Pos, what string) *scope {
	s := &scope{
		defLease:     time.Duration(pr.DefaultLeaseTime) * time.Second,
		maxLease:     time.Duration(pr.MaxLeaseTime) * time.Second,
		allowBootp:   pr.AllowBootp == nil || *pr.AllowBootp,
		allowBooting: pr.AllowBooting == nil || *pr.AllowBooting,
		bootFiles:    pr.BootFiles,
		ipxeScript:   pr.IPXEScript,
		bootUnknown:  pr.BootUnknownClients == nil || *pr.BootUnknownClients,
		byCode:       map[uint8][]byte{},
	}
	if s.defLease == 0 {
		s.defLease = defaultLeaseTime
	}
	if s.maxLease == 0 {
		s.maxLease = defaultMaxLease
	}
	if s.defLease > s.maxLease {
		s.defLease = s.maxLease
	}
	if pr.NextServer != "" {
		a, err := netip.ParseAddr(pr.NextServer)
		if err != nil || !a.Is4() {
			c.errorf(pos, "%s: next-server %q is not an IPv4 address (pxed does not resolve names here)", what, pr.NextServer)
		} else {
			s.nextServer, s.nextServerOK = a, true
		}
	}
	if pr.Filename != nil {
		s.filename, s.hasFilename = *pr.Filename, true
	}
	if pr.ServerName != nil {
		s.serverName = *pr.ServerName
	}
	for arch := range pr.BootFiles {
		if _, ok := archByName[arch]; !ok {
			c.errorf(pos, "%s: boot-files: unknown architecture %q (one of %s)", what, arch, strings.Join(archNames(), ", "))
		}
	}
	for _, o := range c.options(pr, pos, what) {
		if o.def.Protocol || o.def.Code == optRelayAgent {
			// Once per statement, not again in every scope inheriting it.
			if k := (ignoredOption{o.pos, o.def.Name}); !c.ignored[k] {
				if c.ignored == nil {
					c.ignored = map[ignoredOption]bool{}
				}
				c.ignored[k] = true
				c.warnf(o.pos, "%s: option %s is set by pxed itself; the configured value is ignored", what, o.def.Name)
			}
			continue
		}
		s.byCode[o.def.Code] = o.data
	}
	for code, data := range s.byCode {
		s.opts = append(s.opts, option{code, data})
	}
	slices.SortFunc(s.opts, func(a, b option) int { return int(a.code) - int(b.code) })
	return s
}

// configured is an option value of a scope, ready to send.
type configured struct {
	def  dhcpopt.Def
	data []byte
	pos  config.Pos // where it was set; the scope's position if unknown
}

// options returns pr's option values in name order. A value a front end
// has encoded already (pr.Encoded: the dhcpd.conf reader encodes from the
// file's tokens) is used as it is; only text values (pr.Options without an
// encoding: YAML, which config.Load has checked, or a Network built in Go)
// are encoded here, and problems with them are reported at scopePos.
func (c *compiler) options(pr config.Params, scopePos config.Pos, what string) []configured {
	names := make([]string, 0, len(pr.Options)+len(pr.Encoded))
	for name := range pr.Options {
		names = append(names, name)
	}
	for name := range pr.Encoded {
		if _, dup := pr.Options[name]; !dup {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	out := make([]configured, 0, len(names))
	for _, name := range names {
		if e, ok := pr.Encoded[name]; ok {
			def, known := c.table.Lookup(name)
			if !known {
				c.errorf(e.Pos, "%s: unknown option %q", what, name)
				continue
			}
			at := e.Pos
			if at == (config.Pos{}) {
				at = scopePos
			}
			out = append(out, configured{def, e.Data, at})
			continue
		}
		def, data, err := c.table.Encode(name, pr.Options[name])
		if err != nil {
			c.errorf(scopePos, "%s: option %s: %v", what, name, err)
			continue
		}
		out = append(out, configured{def, data, scopePos})
	}
	return out
}

func paramsEmpty(p config.Params) bool { return p.IsZero() }

// subnetFor returns the subnet holding a.
func (p *Plan) subnetFor(a netip.Addr) *subnet {
	for _, s := range p.subnets {
		if s.prefix.Contains(a) {
			return s
		}
	}
	return nil
}

func (p *Plan) subnetsOf(h *host) []*subnet {
	var out []*subnet
	for _, a := range h.fixed {
		if s := p.subnetFor(a); s != nil && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Subnets lists the declared networks, for logs and `pxed check`.
func (p *Plan) Subnets() []netip.Prefix {
	out := make([]netip.Prefix, len(p.subnets))
	for i, s := range p.subnets {
		out[i] = s.prefix
	}
	return out
}

// findHost returns the host declaration for a client: by client identifier
// first, then by MAC; with several declarations, the one with a fixed
// address in sn wins.
func (p *Plan) findHost(clientID []byte, mac string, sn *subnet) *host {
	var cands []*host
	if len(clientID) > 0 {
		cands = p.byID[string(clientID)]
	}
	if len(cands) == 0 {
		cands = p.byMAC[mac]
	}
	if len(cands) == 0 {
		return nil
	}
	if sn != nil {
		for _, h := range cands {
			for _, a := range h.fixed {
				if sn.prefix.Contains(a) {
					return h
				}
			}
		}
	}
	return cands[0]
}

// hostScope is the effective scope of h on subnet sn with an address from
// pool pl (nil: a fixed address; host over groups over pool over subnet
// over global), compiled the first time a client of h shows up there and
// kept: the plan never changes, so neither does the scope.
func (p *Plan) hostScope(h *host, sn *subnet, pl *pool) *scope {
	key := hostOnSubnet{h, sn, pl}
	if sc, ok := p.hostScopes.Load(key); ok {
		return sc.(*scope)
	}
	outer := p.globalParams
	switch {
	case pl != nil:
		outer = pl.params
	case sn != nil:
		outer = sn.params
	}
	c := &compiler{table: p.table}
	sc, _ := p.hostScopes.LoadOrStore(key, c.scope(h.params.Over(outer), h.pos, "host "+h.name))
	return sc.(*scope)
}

type hostOnSubnet struct {
	h  *host
	sn *subnet
	pl *pool
}

func (sn *subnet) poolOf(a netip.Addr) *pool {
	for _, pl := range sn.pools {
		for _, r := range pl.ranges {
			if !a.Less(r.Start) && !r.End.Less(a) {
				return pl
			}
		}
	}
	return nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= ^uint32(0) >> p.Bits()
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func maskOf(p netip.Prefix) []byte {
	m := net.CIDRMask(p.Bits(), 32)
	return []byte(m)
}

// Pools lists every dynamic pool, for lease.Options.Pools.
func (p *Plan) Pools() []*lease.Pool {
	var out []*lease.Pool
	for _, s := range p.subnets {
		out = append(out, s.leasePool...)
	}
	return out
}

// adoptPools makes p use old's lease pools, which the allocator knows, when
// both plans declare the same pools; a reload that changes pools is
// refused (the allocator's pools are fixed when it starts).
func (p *Plan) adoptPools(old *Plan) error {
	changed := errors.New("dhcp: the reload changes subnets or pools; restart pxed to apply that")
	if len(p.subnets) != len(old.subnets) {
		return changed
	}
	for i, sn := range p.subnets {
		on := old.subnets[i]
		if sn.prefix != on.prefix || len(sn.pools) != len(on.pools) {
			return changed
		}
		for j, pp := range sn.pools {
			if !slices.Equal(pp.ranges, on.pools[j].ranges) {
				return changed
			}
		}
	}
	for i, sn := range p.subnets {
		for j, pp := range sn.pools {
			pp.lp = old.subnets[i].pools[j].lp
			sn.leasePool[j] = pp.lp
		}
		sn.poolsByKnown()
	}
	return nil
}

// poolsByKnown fills byKnown when the subnet's permits name only known,
// unknown or all clients, so choosing pools costs nothing per request.
func (sn *subnet) poolsByKnown() {
	sn.static = true
	for _, pl := range sn.pools {
		for _, pm := range pl.permits {
			if pm.kind != config.PermitKnown && pm.kind != config.PermitUnknown && pm.kind != config.PermitAll {
				sn.static = false
			}
		}
	}
	if !sn.permits || !sn.static {
		return
	}
	for k, known := range []bool{false, true} {
		sn.byKnown[k] = nil
		for _, pl := range sn.pools {
			if permitted(pl.permits, func(pm permit) bool {
				return pm.kind == config.PermitAll || (pm.kind == config.PermitKnown) == known
			}) {
				sn.byKnown[k] = append(sn.byKnown[k], pl.lp)
			}
		}
	}
}
