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
	live := New(Options{Inventory: inv, HTTPPort: 8080, States: inventory.NewStates(nil, []byte("secret"), nil)})
	c := bootfs.Client{Addr: netip.MustParseAddr("192.0.2.177"), Local: netip.MustParseAddr("192.0.2.1"), Proto: "tftp"}
	for _, name := range []string{
		"pxelinux.cfg/01-00-16-3e-72-79-e4", "pxelinux.cfg/01-00-16-3e-72-79-e3", "pxelinux.cfg/01-00-19-b9-41-2c-b9",
		"pxelinux.cfg/C000024D", "ipxe/00-16-3e-72-79-e4", "ipxe/00-19-b9-41-2c-b9", "ks/test_hvm", "boot.ipxe", "ipxe/02-00-00-00-00-99",
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
	live := New(Options{Inventory: inv, HTTPPort: 8080, States: inventory.NewStates(nil, []byte("s"), nil)})
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
