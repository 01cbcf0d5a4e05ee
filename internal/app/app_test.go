package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"pxed/internal/api"
	"pxed/internal/bootfs"
	"pxed/internal/bootplan"
	"pxed/internal/config"
	"pxed/internal/dhcp"
	"pxed/internal/inventory"
	"pxed/internal/lease"
	"pxed/internal/lease/bolt"
	"pxed/internal/testutil"
)

// The snapshot and its reloads, without a network or root: every file is
// written into t.TempDir().

// invProfiles is the inventory's profile section: a kernel with a
// kickstart (so generated files carry the HTTP server's address).
const invProfiles = `profiles:
  el:
    kernel: el/vmlinuz
    initrd: el/initrd.img
    append: quiet
    kickstart: ks.tmpl
`

const (
	web1 = `  - name: web1
    mac: "02:00:00:00:00:01"
    ip: 192.0.2.50
    profile: el
`
	// web2's fixed address is inside the pool.
	web2 = `  - name: web2
    mac: "02:00:00:00:00:02"
    ip: 192.0.2.102
    profile: el
`
	// web3 has no fixed address: it boots with a dynamic lease.
	web3 = `  - name: web3
    mac: "02:00:00:00:00:03"
    profile: el
`
	badHost = `  - name: bad
    mac: "02:00:00:00:00:0b"
    profile: nope
`
)

func inventoryText(hosts ...string) string {
	return invProfiles + "hosts:\n" + strings.Join(hosts, "")
}

// inlineDHCP is the config's inline DHCP section: 192.0.2.0/24 with a
// five-address pool.
const inlineDHCP = `dhcp:
  authoritative: true
  subnets:
    - network: 192.0.2.0/24
      next-server: 192.0.2.1
      filename: pxelinux.0
      pools:
        - ranges: [{start: 192.0.2.100, end: 192.0.2.104}]
`

// iscConf is a dhcpd.conf for the same network; end is the pool's last
// address.
func iscConf(end string) string {
	return `authoritative;
subnet 192.0.2.0 netmask 255.255.255.0 {
  next-server 192.0.2.1;
  filename "pxelinux.0";
  pool {
    range 192.0.2.100 ` + end + `;
  }
}
`
}

// fixture is a configuration written to disk.
type fixture struct {
	dir      string
	inv      string // the inventory file ("" none)
	dhcpconf string // the dhcpd.conf ("" none)
	cfg      *config.Config
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// newFixture writes pxed.yaml with the given DHCP section (inline YAML, or
// a dhcpd.conf when dhcpdConf is not empty) and inventory (none when inv is
// empty), and loads it.
func newFixture(t *testing.T, dhcpSection, dhcpdConf, inv string) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir()}
	state := filepath.Join(f.dir, "state")
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(f.dir, "ks.tmpl"), "# kickstart for {{.Host.Name}}\nurl --url {{.BaseURL}}/os\n")
	y := "state-dir: " + state + "\ntftp: {root: " + f.dir + ", addr: \"\"}\nhttp: {addr: \":8080\"}\n"
	if inv != "" {
		f.inv = filepath.Join(f.dir, "inventory.yaml")
		write(t, f.inv, inv)
		y += "inventory: " + f.inv + "\n"
	}
	if dhcpdConf != "" {
		f.dhcpconf = filepath.Join(f.dir, "dhcpd.conf")
		write(t, f.dhcpconf, dhcpdConf)
		y += "dhcp:\n  dhcpd-conf: " + f.dhcpconf + "\n"
	}
	y += dhcpSection
	file := filepath.Join(f.dir, "pxed.yaml")
	write(t, file, y)
	c, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = c
	return f
}

func (f *fixture) load(t *testing.T, env Env) (*App, *testutil.SyncBuffer) {
	t.Helper()
	buf := &testutil.SyncBuffer{}
	if env.Logger == nil {
		env.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a, err := Load(f.cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	return a, buf
}

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	hw, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return hw
}

// networkHost is the merged network's host declaration named name.
func networkHost(s *Snapshot, name string) *config.Host {
	if s.Network == nil {
		return nil
	}
	for i := range s.Network.Hosts {
		if s.Network.Hosts[i].Name == name {
			return &s.Network.Hosts[i]
		}
	}
	return nil
}

var server = netip.MustParseAddr("192.0.2.1")

// ipxeFile is the boot file the snapshot's boot plan gives host mac's iPXE.
func ipxeFile(t *testing.T, s *Snapshot, mac string) bootplan.Decision {
	t.Helper()
	return s.Boot.Decide(bootplan.Facts{IPXE: true, MAC: mustMAC(t, mac), Server: server}, bootplan.Scope{})
}

func TestLoadBuildsOneSnapshot(t *testing.T) {
	f := newFixture(t, inlineDHCP, "", inventoryText(web1))
	a, _ := f.load(t, Env{})
	s := a.Current()
	if s == nil || s.DHCP == nil || s.Inventory == nil || s.Boot == nil || s.Network == nil || s.Loaded.IsZero() {
		t.Fatalf("snapshot %+v: want DHCP plan, inventory, boot plan and network", s)
	}
	if s.Config != f.cfg || a.Config() != f.cfg {
		t.Fatal("the snapshot does not carry the loaded configuration")
	}
	if h := s.Inventory.Host("web1"); h == nil || h.Addr() != netip.MustParseAddr("192.0.2.50") {
		t.Fatalf("inventory host web1: %+v", h)
	}
	nh := networkHost(s, "web1")
	if nh == nil || nh.MAC != "02:00:00:00:00:01" || len(nh.FixedAddresses) != 1 || nh.FixedAddresses[0] != "192.0.2.50" {
		t.Fatalf("merged network host web1: %+v", nh)
	}
	if got := s.DHCP.Subnets(); len(got) != 1 || got[0] != netip.MustParsePrefix("192.0.2.0/24") {
		t.Fatalf("plan subnets %v", got)
	}
	if v := a.DHCPView(); v.Plan != s.DHCP || v.Boot != s.Boot {
		t.Fatalf("App.DHCPView %+v, want the snapshot's plan and boot plan", v)
	}
	if v := s.DHCPView(); v.Plan != s.DHCP || v.Boot != s.Boot {
		t.Fatalf("Snapshot.DHCPView %+v", v)
	}
	if s.Boot.Inventory() != s.Inventory {
		t.Fatal("the boot plan serves another inventory than the snapshot's")
	}
	// The configuration's port is in iPXE script URLs until SetHTTPPort.
	if d := ipxeFile(t, s, "02:00:00:00:00:01"); d.File != "http://192.0.2.1:8080/ipxe/02-00-00-00-00-01" || d.ScriptURL != d.File || d.Host != "web1" {
		t.Fatalf("iPXE decision %+v", d)
	}
	// The DHCP decision on the snapshot gives web1 its fixed address.
	o := decide(t, a, "02:00:00:00:00:01", nil)
	if o.MessageType() != "OFFER" || o.YIAddr() != netip.MustParseAddr("192.0.2.50") || o.File() != "pxelinux.0" {
		t.Fatalf("DHCP decision for web1: %s %s %q", o.MessageType(), o.YIAddr(), o.File())
	}
}

// decide runs dhcp.Decide on the app's current view for a DISCOVER from mac.
func decide(t *testing.T, a *App, mac string, leases dhcp.LeaseView) dhcp.Outcome {
	t.Helper()
	if leases == nil {
		leases = noLeases{}
	}
	p, err := dhcp.Parse(dhcp.ClientMessage(1, mustMAC(t, mac), 1, netip.Addr{}, nil))
	if err != nil {
		t.Fatal(err)
	}
	port := &dhcp.Port{Name: "veth0", Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}, MTU: 1500}
	return dhcp.Decide(a.DHCPView(), dhcp.Request{Packet: p, Port: port, Src: netip.MustParseAddrPort("0.0.0.0:68"), Dst: netip.IPv4Unspecified()}, leases)
}

// noLeases is a lease view with nothing free.
type noLeases struct{}

func (noLeases) Offer(lease.Request) (netip.Addr, error)    { return netip.Addr{}, lease.ErrExhausted }
func (noLeases) Lookup(lease.ClientKey) (lease.Lease, bool) { return lease.Lease{}, false }
func (noLeases) Withdraw(lease.ClientKey)                   {}
func (noLeases) Answers([]byte, uint16, netip.Prefix) bool  { return true }

func TestReloadSwapsANewSnapshotAndLeavesTheOldOne(t *testing.T) {
	f := newFixture(t, inlineDHCP, "", inventoryText(web1))
	a, buf := f.load(t, Env{})
	old := a.Current()
	oldInv, oldNet, oldPlan, oldBoot, oldLoaded := old.Inventory, old.Network, old.DHCP, old.Boot, old.Loaded
	oldHosts, oldNetHosts := len(old.Inventory.Hosts), len(old.Network.Hosts)
	oldWarnings, oldConfig := len(old.Warnings), old.Config

	write(t, f.inv, inventoryText(web1, web2))
	if err := a.Reload("test"); err != nil {
		t.Fatal(err)
	}
	s := a.Current()
	if s == old {
		t.Fatal("Reload kept the same snapshot pointer")
	}
	if s.Inventory == oldInv || s.DHCP == oldPlan || s.Boot == oldBoot || s.Network == oldNet {
		t.Fatal("the new snapshot shares its inventory, plan, boot plan or network with the old one")
	}
	if s.Inventory.Host("web2") == nil || networkHost(s, "web2") == nil {
		t.Fatal("web2 is not in the new snapshot's inventory and network")
	}
	if d := ipxeFile(t, s, "02:00:00:00:00:02"); d.Host != "web2" {
		t.Fatalf("the new boot plan does not know web2: %+v", d)
	}
	// The old snapshot is unchanged.
	if len(old.Warnings) != oldWarnings || old.Config != oldConfig || old.Inventory != oldInv || old.Network != oldNet || old.DHCP != oldPlan || old.Boot != oldBoot || !old.Loaded.Equal(oldLoaded) {
		t.Fatal("the old snapshot's fields changed")
	}
	if len(old.Inventory.Hosts) != oldHosts || len(old.Network.Hosts) != oldNetHosts || old.Inventory.Host("web2") != nil || networkHost(old, "web2") != nil {
		t.Fatal("the old snapshot's inventory or network gained web2")
	}
	if d := ipxeFile(t, old, "02:00:00:00:00:02"); d.Host != "" {
		t.Fatalf("the old boot plan knows web2: %+v", d)
	}
	// The view follows: web2 gets its fixed address from DHCP.
	if o := decide(t, a, "02:00:00:00:00:02", nil); o.YIAddr() != netip.MustParseAddr("192.0.2.102") || o.Host != "web2" {
		t.Fatalf("after reload web2 offered %s (host %q)", o.YIAddr(), o.Host)
	}
	if log := buf.String(); !strings.Contains(log, "inventory reloaded") || !strings.Contains(log, "hosts=2") || !strings.Contains(log, "trigger=test") {
		t.Fatalf("log %q, want the reload with its trigger and host count", log)
	}
}

var posRe = regexp.MustCompile(`inventory\.yaml:\d+:\d+: .*unknown profile "nope"`)

func TestFailedReloadKeepsTheOldSnapshot(t *testing.T) {
	f := newFixture(t, inlineDHCP, "", inventoryText(web1))
	a, buf := f.load(t, Env{})
	old := a.Current()
	write(t, f.inv, inventoryText(web1, badHost))
	err := a.Reload("test")
	if err == nil {
		t.Fatal("a broken inventory reloaded")
	}
	if !posRe.MatchString(err.Error()) {
		t.Fatalf("error %q, want file:line:column and unknown profile", err)
	}
	if a.Current() != old {
		t.Fatal("a failed reload replaced the snapshot")
	}
	if log := buf.String(); !strings.Contains(log, "inventory reload failed; still serving the previous inventory") {
		t.Fatalf("log %q", log)
	}
	// The fixed file reloads again.
	write(t, f.inv, inventoryText(web1, web2))
	if err := a.Reload("test"); err != nil {
		t.Fatal(err)
	}
	if a.Current() == old || a.Current().Inventory.Host("web2") == nil {
		t.Fatal("the repaired inventory was not served")
	}
}

func TestReloadRefusesDHCPChangesThatNeedARestart(t *testing.T) {
	f := newFixture(t, "", iscConf("192.0.2.104"), inventoryText(web1))
	a, buf := f.load(t, Env{})
	old := a.Current()
	if old.DHCP == nil || networkHost(old, "web1") == nil {
		t.Fatal("dhcpd.conf with the inventory merged: no plan or no web1")
	}

	// Another pool range.
	write(t, f.dhcpconf, iscConf("192.0.2.120"))
	err := a.Reload("test")
	if err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("reload with another pool: %v, want an error saying to restart", err)
	}
	if a.Current() != old {
		t.Fatal("a refused reload replaced the snapshot")
	}
	if !strings.Contains(buf.String(), "reload failed") {
		t.Fatalf("log %q", buf.String())
	}

	// The same pool again, and a new host: fine.
	write(t, f.dhcpconf, iscConf("192.0.2.104")+"host extra { hardware ethernet 02:00:00:00:00:e0; fixed-address 192.0.2.60; }\n")
	if err := a.Reload("test"); err != nil {
		t.Fatal(err)
	}
	if networkHost(a.Current(), "extra") == nil || networkHost(a.Current(), "web1") == nil {
		t.Fatal("the reloaded dhcpd.conf host or the inventory host is missing")
	}
}

func TestReloadRefusesTurningDHCPOffOrOn(t *testing.T) {
	// Without an inventory: removing every subnet is the only problem.
	f := newFixture(t, "", iscConf("192.0.2.104"), "")
	a, buf := f.load(t, Env{})
	old := a.Current()
	write(t, f.dhcpconf, "authoritative;\n")
	err := a.Reload("test")
	if err == nil || !strings.Contains(err.Error(), "restart pxed to turn DHCP off") {
		t.Fatalf("reload without subnets: %v", err)
	}
	if a.Current() != old {
		t.Fatal("a refused reload replaced the snapshot")
	}
	if !strings.Contains(buf.String(), "configuration reload failed; still serving the previous configuration") {
		t.Fatalf("log %q", buf.String())
	}

	// With an inventory host whose ip needs the subnet: refused too (the
	// merge fails first), old snapshot kept.
	f = newFixture(t, "", iscConf("192.0.2.104"), inventoryText(web1))
	a, _ = f.load(t, Env{})
	old = a.Current()
	write(t, f.dhcpconf, "authoritative;\n")
	if err := a.Reload("test"); err == nil {
		t.Fatal("a reload that leaves web1's ip outside every subnet succeeded")
	}
	if a.Current() != old {
		t.Fatal("a refused reload replaced the snapshot")
	}

	// Off at start, a subnet added: turning DHCP on needs a restart too.
	f = newFixture(t, "", "authoritative;\n", "")
	a, _ = f.load(t, Env{})
	old = a.Current()
	if old.DHCP != nil || old.Network != nil {
		t.Fatal("DHCP on without a subnet")
	}
	write(t, f.dhcpconf, iscConf("192.0.2.104"))
	if err := a.Reload("test"); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("reload turning DHCP on: %v", err)
	}
	if a.Current() != old {
		t.Fatal("a refused reload replaced the snapshot")
	}
}

func TestSetHTTPPort(t *testing.T) {
	f := newFixture(t, inlineDHCP, "", inventoryText(web1))
	a, _ := f.load(t, Env{})
	old := a.Current()
	a.SetHTTPPort(9999)
	s := a.Current()
	if s == old {
		t.Fatal("SetHTTPPort changed the snapshot in place")
	}
	if s.Inventory != old.Inventory || s.DHCP != old.DHCP || s.Network != old.Network || s.Config != old.Config {
		t.Fatal("SetHTTPPort rebuilt more than the boot plan")
	}
	if d := ipxeFile(t, s, "02:00:00:00:00:01"); d.File != "http://192.0.2.1:9999/ipxe/02-00-00-00-00-01" || d.ScriptURL != d.File {
		t.Fatalf("after SetHTTPPort: %+v", d)
	}
	if d := ipxeFile(t, old, "02:00:00:00:00:01"); !strings.Contains(d.File, ":8080/") {
		t.Fatalf("the old snapshot's boot plan changed: %+v", d)
	}
	c := bootfs.Client{Addr: netip.MustParseAddr("192.0.2.50"), Local: server, Proto: "tftp"} // web1
	ks, _, ok := s.Boot.Generate(c, "ks/web1")
	if !ok || !strings.Contains(string(ks), "url --url http://192.0.2.1:9999/os") {
		t.Fatalf("kickstart %q ok=%v", ks, ok)
	}
	// The app's generator reads the current snapshot.
	script, _, ok := a.Generator().Generate(c, "ipxe/02-00-00-00-00-01")
	if !ok || !strings.Contains(string(script), "ks=http://192.0.2.1:9999/ks/web1") {
		t.Fatalf("iPXE script %q ok=%v", script, ok)
	}
	// A reload keeps the bound port.
	write(t, f.inv, inventoryText(web1, web2))
	if err := a.Reload("test"); err != nil {
		t.Fatal(err)
	}
	if d := ipxeFile(t, a.Current(), "02:00:00:00:00:02"); d.File != "http://192.0.2.1:9999/ipxe/02-00-00-00-00-02" {
		t.Fatalf("after a reload: %+v", d)
	}
}

// Mirrors dhcp.TestReloadBetweenRequests through the app: a host added by
// a reload with a fixed address inside the pool is never offered to
// another client, even one that was offered the address before.
func TestReloadKeepsTheAllocatorsReservedSetInStep(t *testing.T) {
	f := newFixture(t, inlineDHCP, "", inventoryText(web1, web3))
	a, _ := f.load(t, Env{})
	plan := a.Current().DHCP
	store, err := bolt.Open(filepath.Join(t.TempDir(), "leases.db"))
	if err != nil {
		t.Fatal(err)
	}
	alloc, err := lease.NewAllocator(context.Background(), store, lease.Options{Pools: plan.Pools(), Reserved: plan.Reserved})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alloc.Close() })
	a.UseLeases(alloc)
	if a.Leases() != alloc {
		t.Fatal("Leases is not the allocator UseLeases was given")
	}
	// UseLeases also names dynamic inventory hosts by hex IP: web3 with a
	// bound lease on 192.0.2.103 gets pxelinux.cfg/C0000267.
	dyn := netip.MustParseAddr("192.0.2.103")
	hw3 := mustMAC(t, "02:00:00:00:00:03")
	l3 := lease.Request{Client: lease.Key(nil, hw3), MAC: hw3, Pools: a.Current().DHCP.Pools()}
	if err := alloc.Commit(l3, dyn, time.Hour, nil); err != nil {
		t.Fatal(err)
	}
	c := bootfs.Client{Local: server, Addr: dyn, Proto: "tftp"}
	if cfg, _, ok := a.Generator().Generate(c, "pxelinux.cfg/C0000267"); !ok || !strings.Contains(string(cfg), "host web3") {
		t.Fatalf("hex-IP config of web3's lease: %q ok=%v", cfg, ok)
	}
	fixed := netip.MustParseAddr("192.0.2.102")
	req := func(i int, want netip.Addr) lease.Request {
		hw := net.HardwareAddr{2, 0, 0, 0, 0x10, byte(i)}
		return lease.Request{Client: lease.Key(nil, hw), MAC: hw, Pools: a.Current().DHCP.Pools(), Want: want}
	}
	// Before the reload the address is the pool's like any other.
	if ip, err := alloc.Offer(req(0, fixed)); err != nil || ip != fixed {
		t.Fatalf("before: offer %s %v, want %s", ip, err, fixed)
	}

	write(t, f.inv, inventoryText(web1, web2, web3))
	if err := a.Reload("test"); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		ip, err := alloc.Offer(req(i, fixed))
		if ip == fixed {
			t.Fatalf("client %d offered %s, web2's fixed address since the reload", i, ip)
		}
		if err != nil && !errors.Is(err, lease.ErrExhausted) {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	if err := alloc.Commit(req(9, netip.Addr{}), fixed, time.Hour, nil); err == nil {
		t.Fatal("another client could bind web2's fixed address")
	}
	// Through dhcp.Decide on the app's view: web2 gets its address.
	if o := decide(t, a, "02:00:00:00:00:02", alloc); o.YIAddr() != fixed || o.Host != "web2" {
		t.Fatalf("web2 offered %s (host %q)", o.YIAddr(), o.Host)
	}
	if cfg, _, ok := a.Generator().Generate(c, "pxelinux.cfg/C0000267"); !ok || !strings.Contains(string(cfg), "host web3") {
		t.Fatalf("after the reload, hex-IP config of web3's lease: %q ok=%v", cfg, ok)
	}

	ls, err := a.Service().Leases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range ls {
		found = found || l.IP == dyn.String() && l.MAC == hw3.String()
	}
	if !found {
		t.Fatalf("Service.Leases %+v, want web3's lease", ls)
	}

	// A refused reload leaves the reserved set alone.
	write(t, f.inv, inventoryText(web1, web3, badHost))
	if err := a.Reload("test"); err == nil {
		t.Fatal("a broken inventory reloaded")
	}
	if ip, _ := alloc.Offer(req(20, fixed)); ip == fixed {
		t.Fatal("a refused reload released web2's fixed address")
	}
}

func TestService(t *testing.T) {
	f := newFixture(t, inlineDHCP, "", inventoryText(web1, web3))
	states, err := OpenStates(f.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.load(t, Env{States: states})
	if a.States() != states {
		t.Fatal("States is not the one Load was given")
	}
	svc := a.Service()
	ctx := context.Background()
	hosts, err := svc.Hosts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 2 || hosts[0].Name != "web1" || hosts[1].Name != "web3" {
		t.Fatalf("hosts %+v", hosts)
	}
	if h := hosts[0]; h.IP != "192.0.2.50" || h.Profile != "el" || h.State != "install" || h.Declared != "install" ||
		len(h.MACs) != 1 || h.MACs[0] != "02:00:00:00:00:01" {
		t.Fatalf("web1 %+v", h)
	}
	if hosts[1].IP != "" {
		t.Fatalf("web3 has no fixed address: %+v", hosts[1])
	}
	// Load gave every installing host its install's token; the callback
	// spends it, once, for its own host only.
	inv := a.Current().Inventory
	tok1, tok3 := states.Token(inv.Host("web1")), states.Token(inv.Host("web3"))
	if tok1 == "" || tok3 == "" || tok1 == tok3 {
		t.Fatalf("tokens after Load: %q %q", tok1, tok3)
	}
	for _, bad := range []struct{ host, tok string }{{"web3", tok1}, {"web3", ""}, {"nope", tok3}} {
		if _, err := svc.Installed(ctx, bad.host, bad.tok, "test"); !errors.Is(err, api.ErrBadToken) {
			t.Fatalf("Installed(%s, %q): %v, want ErrBadToken", bad.host, bad.tok, err)
		}
	}
	if v, err := svc.Installed(ctx, "web3", tok3, "api 192.0.2.99"); err != nil || v.State != "local" || v.By != "api 192.0.2.99" {
		t.Fatalf("Installed with web3's token: %+v %v", v, err)
	}
	if _, err := svc.Installed(ctx, "web3", tok3, "test"); !errors.Is(err, api.ErrBadToken) {
		t.Fatalf("the token used twice: %v", err)
	}

	// Set by MAC; persists in the state directory.
	v, err := svc.SetHostState(ctx, "02:00:00:00:00:01", "local", "test")
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "web1" || v.State != "local" || v.Declared != "install" || v.By != "test" || v.Changed == nil {
		t.Fatalf("after SetHostState: %+v", v)
	}
	if v, err := svc.Host(ctx, "web1"); err != nil || v.State != "local" {
		t.Fatalf("Host after SetHostState: %+v %v", v, err)
	}
	// The boot plan reads the same states: web1's iPXE script boots the disk.
	script, _, ok := a.Generator().Generate(bootfs.Client{Local: server, Proto: "tftp"}, "ipxe/02-00-00-00-00-01")
	if !ok || !strings.Contains(string(script), "boots from its local disk") {
		t.Fatalf("script after local: %q", script)
	}
	states2, err := OpenStates(f.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st, rec := states2.State(a.Current().Inventory.Host("web1")); st != inventory.Local || rec == nil || rec.By != "test" {
		t.Fatalf("reopened state file: %v %+v", st, rec)
	}
	a2, _ := f.load(t, Env{States: states2})
	if v, err := a2.Service().Host(ctx, "web1"); err != nil || v.State != "local" {
		t.Fatalf("a new app on the same state dir: %+v %v", v, err)
	}

	// Errors.
	if _, err := svc.SetHostState(ctx, "nope", "local", "test"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("unknown host: %v, want ErrNotFound", err)
	}
	if _, err := svc.Host(ctx, "nope"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Host of an unknown host: %v, want ErrNotFound", err)
	}
	if _, err := svc.SetHostState(ctx, "web1", "reboot", "test"); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("bad state: %v, want ErrBadRequest", err)
	}
	if _, err := svc.Leases(ctx); !errors.Is(err, api.ErrNoDHCP) {
		t.Fatalf("Leases without UseLeases: %v, want ErrNoDHCP", err)
	}

	// Without an inventory.
	f = newFixture(t, inlineDHCP, "", "")
	states3, err := OpenStates(f.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a3, _ := f.load(t, Env{States: states3})
	svc = a3.Service()
	if _, err := svc.Hosts(ctx); !errors.Is(err, api.ErrNoInventory) {
		t.Fatalf("Hosts without an inventory: %v", err)
	}
	if _, err := svc.Host(ctx, "web1"); !errors.Is(err, api.ErrNoInventory) {
		t.Fatalf("Host without an inventory: %v", err)
	}
	if _, err := svc.SetHostState(ctx, "web1", "local", "test"); !errors.Is(err, api.ErrNoInventory) {
		t.Fatalf("SetHostState without an inventory: %v", err)
	}
	if _, err := svc.Installed(ctx, "web1", "x", "test"); !errors.Is(err, api.ErrNoInventory) {
		t.Fatalf("Installed without an inventory: %v", err)
	}
}

// Env.States is documented as optional ("nil: declared states only"), and
// Build/`pxed explain` run without it; the service must not crash then.
func TestServiceWithoutStates(t *testing.T) {
	f := newFixture(t, inlineDHCP, "", inventoryText(web1))
	a, _ := f.load(t, Env{})
	svc := a.Service()
	ctx := context.Background()
	call := func(what string, fn func() error) error {
		t.Helper()
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
					t.Errorf("%s with Env.States nil panics: %v", what, r)
				}
			}()
			err = fn()
		}()
		return err
	}
	var hosts []api.HostView
	if err := call("Service.Hosts", func() (err error) { hosts, err = svc.Hosts(ctx); return err }); err == nil {
		if len(hosts) != 1 || hosts[0].State != "install" {
			t.Errorf("hosts %+v, want web1 in its declared state", hosts)
		}
	} else if !strings.HasPrefix(err.Error(), "panic") {
		t.Errorf("Hosts: %v", err)
	}
	call("Service.Host", func() error { _, err := svc.Host(ctx, "web1"); return err })
	call("Service.SetHostState", func() error { _, err := svc.SetHostState(ctx, "web1", "local", "test"); return err })
	if err := call("Service.Installed", func() error { _, err := svc.Installed(ctx, "web1", "x", "test"); return err }); !errors.Is(err, api.ErrBadToken) {
		t.Errorf("a wrong host token without states: %v", err)
	}
}

func TestWatchReloadsOnFileChange(t *testing.T) {
	f := newFixture(t, inlineDHCP, "", inventoryText(web1))
	a, buf := f.load(t, Env{})
	if files := a.Files(); len(files) != 2 || files[0] != f.inv || files[1] != filepath.Join(f.dir, "ks.tmpl") {
		t.Fatalf("watched files %v, want the inventory and its kickstart", files)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Watch(ctx, 20*time.Millisecond)
	}()
	waitChange := func(old *Snapshot, what string) *Snapshot {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for a.Current() == old {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no reload within 5s; log %q", what, buf.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		return a.Current()
	}
	old := a.Current()
	// Let Watch take its first fingerprint before the change.
	time.Sleep(50 * time.Millisecond)
	write(t, f.inv, inventoryText(web1, web2))
	s := waitChange(old, "inventory change")
	if s.Inventory.Host("web2") == nil {
		t.Fatal("the reload after the change does not have web2")
	}
	// A template the inventory names is watched too.
	write(t, filepath.Join(f.dir, "ks.tmpl"), "# kickstart v2 for {{.Host.Name}}\n")
	s = waitChange(s, "kickstart change")
	if ks, _, ok := s.Boot.Generate(bootfs.Client{Addr: netip.MustParseAddr("192.0.2.50"), Local: server, Proto: "tftp"}, "ks/web1"); !ok || !strings.Contains(string(ks), "v2") {
		t.Fatalf("kickstart after reload %q", ks)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after cancel")
	}
	if !strings.Contains(buf.String(), "trigger=\"file changed\"") {
		t.Fatalf("log %q, want reloads triggered by file changes", buf.String())
	}
}

// An inventory handed over (a cluster's, from etcd) is served as a
// reloaded file is: one that does not fit the DHCP configuration is
// refused and the running snapshot stays; a reload for another reason
// (the dhcpd.conf, SIGHUP) keeps serving the inventory last handed over.
func TestUseInventory(t *testing.T) {
	f := newFixture(t, inlineDHCP, "", "")
	parse := func(text string) *inventory.Inventory {
		t.Helper()
		inv, err := inventory.Parse(filepath.Join(f.dir, "stored"), []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		return inv
	}
	a, buf := f.load(t, Env{Inventory: parse(inventoryText(web1))})
	if a.Current().Inventory.Host("web1") == nil || networkHost(a.Current(), "web1") == nil {
		t.Fatal("the inventory handed to Load is not served")
	}
	if err := a.UseInventory(parse(inventoryText(web1, web2)), "pushed"); err != nil {
		t.Fatal(err)
	}
	if d := ipxeFile(t, a.Current(), "02:00:00:00:00:02"); d.Host != "web2" {
		t.Fatalf("web2 not served after UseInventory: %+v", d)
	}
	if a.States().Token(a.Current().Inventory.Host("web2")) == "" {
		t.Fatal("a host of the new inventory declared install has no install token")
	}
	old := a.Current()
	outside := "  - name: far\n    mac: \"02:00:00:00:00:0f\"\n    ip: 198.51.100.7\n    profile: el\n"
	err := a.UseInventory(parse(inventoryText(web1, outside)), "pushed")
	if err == nil || !strings.Contains(err.Error(), "outside every DHCP subnet") {
		t.Fatalf("an inventory outside the DHCP subnets: %v", err)
	}
	if a.Current() != old {
		t.Fatal("a refused inventory replaced the snapshot")
	}
	if err := a.Reload("SIGHUP"); err != nil {
		t.Fatal(err)
	}
	if a.Current().Inventory.Host("web2") == nil || a.Current().Inventory.Host("far") != nil {
		t.Fatal("a reload does not serve the last inventory handed over")
	}
	if log := buf.String(); !strings.Contains(log, "inventory reload failed; still serving the previous inventory") || !strings.Contains(log, "trigger=pushed") {
		t.Fatalf("log %q", log)
	}
}
