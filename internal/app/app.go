// Package app builds and swaps what a running pxed answers from. Load reads
// the configuration, the DHCP network (dhcpd.conf or YAML) with the
// inventory merged in, compiles the DHCP plan and builds the boot plan:
// one immutable Snapshot. DHCP, the TFTP/HTTP generators, the API and
// `pxed explain` all read the current snapshot; Reload builds a new one
// and swaps it in one atomic step, or keeps the old one whole when the new
// one fails.
package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"pxed/internal/bootfs"
	"pxed/internal/bootplan"
	"pxed/internal/config"
	"pxed/internal/config/isc"
	"pxed/internal/dhcp"
	"pxed/internal/events"
	"pxed/internal/inventory"
	"pxed/internal/lease"
)

// Snapshot is everything a running server answers from, built by one Load
// and never changed afterwards.
type Snapshot struct {
	Config *config.Config
	// Network is the DHCP model with the inventory's hosts merged in;
	// nil when DHCP is off.
	Network *config.Network
	// Warnings are the configuration's warnings, with their positions.
	Warnings []dhcp.Warning
	// DHCP is the compiled DHCP plan; nil when DHCP is off.
	DHCP *dhcp.Plan
	// Inventory is the boot inventory; nil without one.
	Inventory *inventory.Inventory
	// Boot is the boot plan: names, URLs and the boot decision.
	Boot *bootplan.Plan
	// Loaded is when the snapshot was built.
	Loaded time.Time
}

// DHCPView is the snapshot as the DHCP server reads it.
func (s *Snapshot) DHCPView() dhcp.View { return dhcp.View{Plan: s.DHCP, Boot: s.Boot} }

// Env is what snapshots are built against that a reload does not change:
// the opened boot tree, the host states, the HTTP port once bound.
type Env struct {
	// Tree is the boot tree (nil: none).
	Tree *bootfs.Tree
	// States are the hosts' run-time states (nil: declared states only).
	States *inventory.States
	// HTTPPort is the bound HTTP port (0: from the configuration).
	HTTPPort int
	Logger   *slog.Logger
	// OnReload, when set, hears of each reload's result (metrics).
	OnReload func(err error)
	// Events, when set, is the boot events ring (pxed events); the install
	// callback is recorded there, and the API lists it.
	Events *events.Ring
	// Inventory, when set, is served in place of the configuration's
	// inventory file: a cluster's, read from etcd. UseInventory replaces
	// it.
	Inventory *inventory.Inventory
}

// Build reads and compiles the configuration into a snapshot. It binds
// nothing and changes nothing on disk.
func Build(c *config.Config, env Env) (*Snapshot, error) {
	return build(c, env, nil)
}

func build(c *config.Config, env Env, leaseMAC func(netip.Addr) (net.HardwareAddr, bool)) (*Snapshot, error) {
	s := &Snapshot{Config: c, Loaded: time.Now(), Inventory: env.Inventory}
	if c.Inventory != "" && env.Inventory == nil {
		inv, err := inventory.Load(c.Inventory)
		if err != nil {
			return nil, err
		}
		s.Inventory = inv
	}
	n, warns, err := loadNetwork(c)
	s.Warnings = warns
	if err != nil {
		return s, err
	}
	switch {
	case n == nil && s.Inventory != nil:
		fixed := 0
		for _, h := range s.Inventory.Hosts {
			if h.Addr().IsValid() {
				fixed++
			}
		}
		if fixed > 0 {
			s.Warnings = append(s.Warnings, dhcp.Warning{Pos: config.Pos{File: s.Inventory.File}, Msg: fmt.Sprintf("%d host ip(s) are not handed out: pxed's DHCP is off (they still name the hosts' hex-IP configs; your DHCP server must give those addresses)", fixed)})
		}
	case n != nil && s.Inventory != nil:
		if n, err = s.Inventory.Merge(n); err != nil {
			return s, err
		}
	}
	s.Network = n
	if n != nil && len(n.Subnets) == 0 {
		s.Warnings = append(s.Warnings, dhcp.Warning{Msg: "no subnet declared: DHCP stays off"})
		s.Network = nil
	}
	if s.Network != nil {
		plan, w, err := dhcp.Compile(s.Network)
		s.Warnings = append(s.Warnings, w...)
		if err != nil {
			return s, err
		}
		s.DHCP = plan
	}
	s.Boot = bootPlan(c, env, s, leaseMAC)
	for _, w := range s.Boot.Warnings() {
		s.Warnings = append(s.Warnings, dhcp.Warning{Pos: w.Pos, Msg: w.Msg})
	}
	return s, nil
}

// bootPlan builds the snapshot's boot plan.
func bootPlan(c *config.Config, env Env, s *Snapshot, leaseMAC func(netip.Addr) (net.HardwareAddr, bool)) *bootplan.Plan {
	o := bootplan.Options{
		Inventory: s.Inventory,
		States:    env.States,
		HTTPPort:  env.HTTPPort,
		Advertise: c.HTTP.Advertise,
		TFTP:      c.TFTP.Addr != "",
		Loaded:    s.Loaded,
		Logger:    env.Logger,
	}
	if o.HTTPPort == 0 {
		o.HTTPPort = configPort(c.HTTP.Addr)
	}
	if s.DHCP != nil {
		o.LeaseMAC = leaseMAC
	}
	if env.Tree != nil {
		o.Tree = env.Tree
	}
	if n := s.Network; n != nil {
		o.ScopeBootFiles = append(o.ScopeBootFiles, n.BootFiles)
		for _, sn := range n.Subnets {
			o.ScopeBootFiles = append(o.ScopeBootFiles, sn.BootFiles)
		}
	}
	return bootplan.New(o)
}

func configPort(addr string) int {
	if addr == "" {
		return 0
	}
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return p
}

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
	var strict config.Errors
	for _, w := range warns {
		out = append(out, dhcp.Warning{Pos: w.Pos, Msg: w.Msg})
		strict = append(strict, &config.Error{File: w.Pos.File, Line: w.Pos.Line, Column: w.Pos.Column, Msg: w.Msg + " (an error with --strict)"})
	}
	if c.Strict && len(strict) > 0 {
		return nil, nil, strict
	}
	// Server-wide switches from the YAML still apply to a dhcpd.conf.
	n.Proxy = n.Proxy || inline.Proxy
	n.PingCheck = n.PingCheck || inline.PingCheck
	return n, out, nil
}

// App holds the current snapshot of a running server.
type App struct {
	cfg   *config.Config
	env   Env
	log   *slog.Logger
	cur   atomic.Pointer[Snapshot]
	alloc atomic.Pointer[lease.Allocator]
	mu    sync.Mutex // serialises reloads
}

// Load builds the first snapshot. A configuration error is returned with
// its positions and nothing is served.
func Load(c *config.Config, env Env) (*App, error) {
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	if env.States == nil {
		// Declared states, kept in memory: the service and the boot plan
		// must share one.
		env.States = inventory.NewStates(nil, env.Logger)
	}
	a := &App{cfg: c, env: env, log: env.Logger}
	s, err := build(c, env, a.leaseMAC)
	if err == nil {
		err = env.States.EnsureTokens(s.Inventory)
	}
	if err != nil {
		return nil, err
	}
	a.cur.Store(s)
	a.reportShadows(s)
	return a, nil
}

// Current is the snapshot in force.
func (a *App) Current() *Snapshot { return a.cur.Load() }

// Config is the configuration the app was loaded with.
func (a *App) Config() *config.Config { return a.cfg }

// States are the hosts' run-time states.
func (a *App) States() *inventory.States { return a.env.States }

// DHCPView is the current snapshot as the DHCP server reads it.
func (a *App) DHCPView() dhcp.View { return a.cur.Load().DHCPView() }

// UseLeases connects the running DHCP server's leases: hex-IP config names
// then find inventory hosts with dynamic addresses, and reloads keep the
// allocator's reserved addresses in step with the plan.
func (a *App) UseLeases(alloc *lease.Allocator) { a.alloc.Store(alloc) }

// Leases is the running DHCP server's allocator (nil: none).
func (a *App) Leases() *lease.Allocator { return a.alloc.Load() }

func (a *App) leaseMAC(ip netip.Addr) (net.HardwareAddr, bool) {
	alloc := a.alloc.Load()
	if alloc == nil {
		return nil, false
	}
	l, ok := alloc.LeaseAt(ip)
	if !ok || l.State != lease.Bound {
		return nil, false
	}
	return l.MAC, true
}

// SetHTTPPort is called once the HTTP server is bound (port 0 in tests):
// generated files then name the port clients can reach.
func (a *App) SetHTTPPort(port int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.env.HTTPPort = port
	old := a.cur.Load()
	s := *old
	s.Boot = bootPlan(a.cfg, a.env, &s, a.leaseMAC)
	a.cur.Store(&s)
}

// Reload builds a new snapshot from the same configuration (re-reading the
// dhcpd.conf, the inventory and its templates) and swaps it in. When the
// new one fails — a bad file, or a DHCP change that needs a restart — the
// running snapshot stays, whole, and the error says why.
func (a *App) Reload(why string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reload(a.env, why)
}

// UseInventory serves inv (a cluster's inventory, from etcd) from now on,
// as Reload would serve a changed inventory file: when the snapshot built
// with it fails, the running one stays, whole, and the error says why.
func (a *App) UseInventory(inv *inventory.Inventory, why string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	env := a.env
	env.Inventory = inv
	if err := a.reload(env, why); err != nil {
		return err
	}
	a.env.Inventory = inv // the field alone: requests read a.env's others
	return nil
}

// reload builds a snapshot against env and swaps it in. a.mu is held.
func (a *App) reload(env Env, why string) (err error) {
	old := a.cur.Load()
	s, err := build(a.cfg, env, a.leaseMAC)
	if err == nil {
		err = a.adopt(old, s)
	}
	what := "configuration"
	if a.cfg.Inventory != "" || env.Inventory != nil {
		what = "inventory"
	}
	if a.env.OnReload != nil {
		defer func() { a.env.OnReload(err) }()
	}
	if err != nil {
		a.log.Error(what+" reload failed; still serving the previous "+what, "file", a.cfg.Inventory, "trigger", why, "error", err)
		return err
	}
	for _, w := range s.Warnings {
		a.log.Warn("dhcp config: " + w.String())
	}
	// Hosts the new file declares install get their install's token;
	// without one their callback needs the API token.
	if err := a.env.States.EnsureTokens(s.Inventory); err != nil {
		a.log.Error("host states: cannot record install tokens", "error", err)
	}
	a.cur.Store(s)
	a.reportShadows(s)
	args := []any{"trigger", why}
	if s.Inventory != nil {
		args = append(args, "file", s.Inventory.File, "hosts", len(s.Inventory.Hosts), "profiles", len(s.Inventory.Profiles))
	}
	a.log.Info(what+" reloaded", args...)
	return nil
}

// adopt checks that s can replace old in the running DHCP server and
// prepares it: same subnets and pools (the allocator's are fixed), the
// allocator reserving s's fixed addresses.
func (a *App) adopt(old, s *Snapshot) error {
	alloc := a.alloc.Load()
	switch {
	case old.DHCP == nil && s.DHCP == nil:
		return nil
	case old.DHCP == nil:
		return errors.New("the reloaded configuration turns DHCP on; restart pxed to do that")
	case s.DHCP == nil:
		return errors.New("the reloaded configuration has no DHCP subnet; restart pxed to turn DHCP off")
	}
	if err := s.DHCP.Adopt(old.DHCP); err != nil {
		return err
	}
	if alloc != nil {
		return alloc.SetReserved(s.DHCP.Reserved)
	}
	return nil
}

// reportShadows warns about files on disk that hide generated configs
// (disk files win, so such a host never sees its inventory entry).
func (a *App) reportShadows(s *Snapshot) {
	if a.env.Tree == nil || s.Inventory == nil {
		return
	}
	for _, h := range s.Inventory.Hosts {
		for _, name := range bootplan.HostNames(h) {
			if _, err := a.env.Tree.Stat(name); err == nil {
				a.log.Warn("inventory: a file on disk shadows the generated config; remove it to serve the inventory's", "host", h.Name, "file", a.env.Tree.Dir()+"/"+name)
			}
		}
	}
}

// Generator is a bootfs.Generator over the current snapshot's boot plan:
// the TFTP and HTTP front ends see a reload from their next request on.
func (a *App) Generator() bootfs.Generator { return generator{a} }

type generator struct{ a *App }

func (g generator) Owns(name string) bool { return bootplan.Owns(name) }

func (g generator) Generate(c bootfs.Client, name string) ([]byte, time.Time, bool) {
	return g.a.cur.Load().Boot.Generate(c, name)
}
