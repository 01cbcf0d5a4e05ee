package bootplan

import (
	"flag"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pxed/internal/bootfs"
	"pxed/internal/inventory"
	"pxed/internal/pxelinux"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

const example = "../../examples/inventory.yaml"

func loadExample(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// The generated files for the seed machines, compared with golden files
// (go test ./internal/bootplan -update rewrites them after a deliberate change).
func TestGolden(t *testing.T) {
	inv := loadExample(t)
	// A recorded install token (they are random), as a restart reads it.
	states := filepath.Join(t.TempDir(), "hosts.json")
	os.WriteFile(states, []byte(`{"version": 1, "hosts": {"test_hvm": {"state": "install", "declared": "install", "token": "00112233445566778899aabbccddeeff"}}}`), 0o600)
	sf, err := inventory.OpenStateFile(states)
	if err != nil {
		t.Fatal(err)
	}
	live := New(Options{Inventory: inv, HTTPPort: 8080, States: inventory.NewStates(sf, nil)})
	c := bootfs.Client{Addr: netip.MustParseAddr("192.0.2.177"), Local: netip.MustParseAddr("192.0.2.1"), Proto: "tftp"}
	for _, name := range []string{
		"pxelinux.cfg/01-00-16-3e-72-79-e4", "pxelinux.cfg/01-00-16-3e-72-79-e3", "pxelinux.cfg/01-00-19-b9-41-2c-b9",
		"pxelinux.cfg/C000024D", "ipxe/00-16-3e-72-79-e4", "ipxe/00-19-b9-41-2c-b9", "ks/test_hvm", "boot.ipxe", "ipxe/02-00-00-00-00-99",
		"grub/grub.cfg", "grub/grub.cfg-01-00-19-b9-41-2c-b9", "grub/grub.cfg-01-00-16-3e-62-39-d3",
	} {
		data, _, ok := live.Generate(c, name)
		if !ok {
			t.Errorf("%s: not generated", name)
			continue
		}
		golden := filepath.Join("testdata", "golden", strings.ReplaceAll(name, "/", "_"))
		if *update {
			os.MkdirAll(filepath.Dir(golden), 0o755)
			os.WriteFile(golden, data, 0o644)
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test -update)", err)
		}
		if string(data) != string(want) {
			t.Errorf("%s:\n%s\nwant (%s):\n%s", name, data, golden, want)
		}
	}
}

// What pxed generates, PXELINUX reads back as meant: the resolver (which
// the Xen bootloader and explain share) finds the profile's kernel,
// initrds and command line.
func TestGeneratedConfigsResolve(t *testing.T) {
	inv := loadExample(t)
	live := New(Options{Inventory: inv, HTTPPort: 8080, States: inventory.NewStates(nil, nil)})
	c := bootfs.Client{Local: netip.MustParseAddr("192.0.2.1")}
	resolve := func(name string) pxelinux.Boot {
		t.Helper()
		data, _, ok := live.Generate(c, name)
		if !ok {
			t.Fatalf("%s not generated", name)
		}
		cfg, err := pxelinux.Parse(name, strings.NewReader(string(data)))
		if err != nil {
			t.Fatal(err)
		}
		b, err := cfg.Resolve("")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := resolve("pxelinux.cfg/01-00-16-3e-72-79-e4")
	if b.Kernel != "el5u4_x86_pxeboot_install/vmlinuz" || len(b.Initrds) != 1 || b.Initrds[0] != "el5u4_x86_pxeboot_install/initrd.img" ||
		!strings.Contains(b.Append, "ks=http://192.0.2.1:8080/ks/test_hvm") || !strings.Contains(b.Append, "ksdevice=eth0 ip=dhcp") {
		t.Errorf("HVM guest: %+v", b)
	}
	b = resolve("pxelinux.cfg/01-00-19-b9-41-2c-b9")
	if b.Kernel != "mboot.c32" || len(b.Multiboot) != 3 || b.Multiboot[0].Path != "ovm/2.2/xen-64bit-3.4.0.gz" || b.Multiboot[0].Args != "noreboot" ||
		b.Multiboot[1].Args != "ro root=LABEL=/" || b.Multiboot[2].Path != "ovm/2.2/initrd-2.6.18-128.2.1.4.9.el5xen.img" {
		t.Errorf("Xen host: %+v", b)
	}
	live.States().Set(inv, "test_hvm", inventory.Local, "test")
	if b = resolve("pxelinux.cfg/01-00-16-3e-72-79-e4"); b.Kind != pxelinux.KindLocalboot {
		t.Errorf("after install: %+v, want LOCALBOOT", b)
	}
}

// The names PXELINUX tries: the host's own names for anyone, the shorter
// hex prefixes and default only for the client they belong to.
func TestLookup(t *testing.T) {
	inv, err := inventory.Parse("inv.yaml", []byte(`profiles:
  p: {kernel: k}
hosts:
  - {name: fixed, mac: "00:16:3e:00:00:01", ip: 192.0.2.10, uuid: 4C4C4544-0032-3510-8052-B8C04F4A4E31, profile: p}
  - {name: dyn, macs: ["00:16:3e:00:00:02", "00:16:3e:00:00:03"], profile: p}
`))
	if err != nil {
		t.Fatal(err)
	}
	leases := map[netip.Addr]net.HardwareAddr{netip.MustParseAddr("192.0.2.200"): {0, 0x16, 0x3e, 0, 0, 3}}
	live := New(Options{Inventory: inv, LeaseMAC: func(a netip.Addr) (net.HardwareAddr, bool) { hw, ok := leases[a]; return hw, ok }})
	anyone := bootfs.Client{Addr: netip.MustParseAddr("198.51.100.9")}
	fixedC := bootfs.Client{Addr: netip.MustParseAddr("192.0.2.10")}
	dynC := bootfs.Client{Addr: netip.MustParseAddr("192.0.2.200")}
	for _, tc := range []struct {
		c    bootfs.Client
		name string
		host string
	}{
		{anyone, "pxelinux.cfg/4c4c4544-0032-3510-8052-b8c04f4a4e31", "fixed"},
		{anyone, "pxelinux.cfg/4C4C4544-0032-3510-8052-B8C04F4A4E31", ""}, // PXELINUX asks in lower case
		{anyone, "pxelinux.cfg/01-00-16-3e-00-00-01", "fixed"},
		{anyone, "pxelinux.cfg/01-00-16-3E-00-00-01", ""}, // never requested: upper-case MAC
		{anyone, "pxelinux.cfg/00-16-3e-00-00-01", ""},    // no ARP type prefix
		{anyone, "pxelinux.cfg/01-00-16-3e-00-00-03", "dyn"},
		{anyone, "pxelinux.cfg/C000020A", "fixed"},
		{anyone, "pxelinux.cfg/c000020a", ""},    // PXELINUX asks in upper case
		{anyone, "pxelinux.cfg/C00002C8", "dyn"}, // through the lease
		{anyone, "pxelinux.cfg/C00002", ""},
		{anyone, "pxelinux.cfg/default", ""},
		{fixedC, "pxelinux.cfg/C00002", "fixed"},
		{fixedC, "pxelinux.cfg/C", "fixed"},
		{fixedC, "pxelinux.cfg/C1", ""}, // not a prefix of its address
		{fixedC, "pxelinux.cfg/default", "fixed"},
		{dynC, "pxelinux.cfg/C00002C", "dyn"},
		{anyone, "ks/fixed", ""}, // profile without kickstart
		{anyone, "other/file", ""},
	} {
		data, _, ok := live.Generate(tc.c, tc.name)
		if tc.host == "" {
			if ok {
				t.Errorf("%s for %v: generated, want nothing:\n%s", tc.name, tc.c.Addr, data)
			}
			continue
		}
		if !ok || !strings.Contains(string(data), "for host "+tc.host+" ") {
			t.Errorf("%s for %v: ok=%v\n%s\nwant host %s", tc.name, tc.c.Addr, ok, data, tc.host)
		}
	}
}

func TestNames(t *testing.T) {
	inv := loadExample(t)
	got := strings.Join(HostNames(inv.Host("test_hvm")), " ")
	if got != "pxelinux.cfg/01-00-16-3e-72-79-e4 pxelinux.cfg/C00002B1" {
		t.Fatalf("names %s", got)
	}
}

// A kickstart goes only to its host when pxed knows the host's address: a
// fixed ip, or a lease of pxed's DHCP on one of its MACs. Without DHCP and
// without a fixed ip pxed cannot tell, and serves it to anyone.
func TestKickstartOnlyToHost(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ks.tmpl"), []byte("# ks for {{.Host.Name}}\n"), 0o644)
	inv, err := inventory.Parse(filepath.Join(dir, "inv.yaml"), []byte(`profiles:
  p: {kernel: k, kickstart: ks.tmpl}
hosts:
  - {name: fixed, mac: "00:16:3e:00:00:01", ip: 192.0.2.10, profile: p}
  - {name: dyn, macs: ["00:16:3e:00:00:02", "00:16:3e:00:00:03"], profile: p}
`))
	if err != nil {
		t.Fatal(err)
	}
	leases := map[netip.Addr]net.HardwareAddr{
		netip.MustParseAddr("192.0.2.200"): {0, 0x16, 0x3e, 0, 0, 3},
		netip.MustParseAddr("192.0.2.201"): {0, 0x16, 0x3e, 0, 0, 9},
	}
	withDHCP := New(Options{Inventory: inv, HTTPPort: 8080, LeaseMAC: func(a netip.Addr) (net.HardwareAddr, bool) { hw, ok := leases[a]; return hw, ok }})
	noDHCP := New(Options{Inventory: inv, HTTPPort: 8080})
	client := func(a string) bootfs.Client {
		return bootfs.Client{Addr: netip.MustParseAddr(a), Local: netip.MustParseAddr("192.0.2.1"), Proto: "http"}
	}
	for _, tc := range []struct {
		p    *Plan
		c    bootfs.Client
		name string
		ok   bool
	}{
		{withDHCP, client("192.0.2.10"), "ks/fixed", true},
		{withDHCP, client("::ffff:192.0.2.10"), "ks/fixed", true},
		{withDHCP, client("192.0.2.11"), "ks/fixed", false},
		{withDHCP, client("192.0.2.200"), "ks/fixed", false},
		{withDHCP, client("192.0.2.200"), "ks/dyn", true},  // its lease
		{withDHCP, client("192.0.2.201"), "ks/dyn", false}, // another MAC's lease
		{withDHCP, client("192.0.2.10"), "ks/dyn", false},
		{withDHCP, bootfs.Client{}, "ks/dyn", false},
		{noDHCP, client("198.51.100.9"), "ks/fixed", false},
		{noDHCP, client("198.51.100.9"), "ks/dyn", true}, // cannot tell
	} {
		data, _, ok := tc.p.Generate(tc.c, tc.name)
		if ok != tc.ok {
			t.Errorf("%s for %v (DHCP %v): served %v, want %v %s", tc.name, tc.c.Addr, tc.p.o.LeaseMAC != nil, ok, tc.ok, data)
		}
	}
}

// The callback URL carries the token of the host's current install: a new
// one per install, none once installed.
func TestInstalledURLToken(t *testing.T) {
	inv := loadExample(t)
	states := inventory.NewStates(nil, nil)
	live := New(Options{Inventory: inv, HTTPPort: 8080, States: states})
	c := bootfs.Client{Addr: netip.MustParseAddr("192.0.2.177"), Local: netip.MustParseAddr("192.0.2.1"), Proto: "http"}
	h := inv.Host("test_hvm")
	url := func() string { return live.Env(c, h, "").InstalledURL }
	const base = "http://192.0.2.1:8080/api/v1/hosts/test_hvm/installed"
	if got := url(); got != base {
		t.Fatalf("before any token: %q", got)
	}
	if err := states.EnsureTokens(inv); err != nil {
		t.Fatal(err)
	}
	first := url()
	if !strings.HasPrefix(first, base+"?token=") || len(first) != len(base)+len("?token=")+32 {
		t.Fatalf("first install: %q", first)
	}
	if _, err := states.Set(inv, "test_hvm", inventory.Install, "test"); err != nil {
		t.Fatal(err)
	}
	second := url()
	if second == first || !strings.HasPrefix(second, base+"?token=") {
		t.Fatalf("reinstall kept the token: %q, then %q", first, second)
	}
	if _, err := states.Installed(inv, "test_hvm", strings.TrimPrefix(second, base+"?token="), "test"); err != nil {
		t.Fatal(err)
	}
	if got := url(); got != base {
		t.Fatalf("installed: %q", got)
	}
}
