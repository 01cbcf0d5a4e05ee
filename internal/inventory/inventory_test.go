package inventory

import (
	"errors"
	"flag"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"pxed/internal/bootfs"
	"pxed/internal/config"
	"pxed/internal/pxelinux"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

const example = "../../examples/inventory.yaml"

func loadExample(t *testing.T) *Inventory {
	t.Helper()
	inv, err := Load(example)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestLoadExample(t *testing.T) {
	inv := loadExample(t)
	if len(inv.Hosts) != 4 || len(inv.Profiles) != 4 {
		t.Fatalf("%d hosts, %d profiles", len(inv.Hosts), len(inv.Profiles))
	}
	h := inv.Host("00-16-3E-72-79-E4")
	if h == nil || h.Name != "test_hvm" || h.Addr() != netip.MustParseAddr("192.0.2.177") || h.State != Install {
		t.Fatalf("by MAC: %+v", h)
	}
	if inv.Host("TEST_HVM") != h || inv.ByIP(netip.MustParseAddr("192.0.2.177")) != h {
		t.Fatal("lookup by name (any case) or IP failed")
	}
	if p := inv.Profiles["ovm-2.2"]; p.Pos.Line == 0 || p.Multiboot.Loader != "mboot.c32" {
		t.Fatalf("profile pos %v loader %q", p.Pos, p.Multiboot.Loader)
	}
	if h.Pos.Line == 0 || !strings.HasSuffix(h.Pos.File, "inventory.yaml") {
		t.Fatalf("host pos %v", h.Pos)
	}
}

// Every mistake the issue names is an error that says file:line:column.
func TestParseErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.ks"), []byte("{{.Host.Nmae}}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "var.ks"), []byte("host {{.Vars.role}}\n"), 0o644)
	const prof = "profiles:\n  p: {kernel: k}\n"
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"same MAC twice", prof + "hosts:\n  - {name: a, mac: 00:16:3e:00:00:01, profile: p}\n  - {name: b, mac: 00-16-3E-00-00-01, profile: p}\n",
			[]string{"inv.yaml:5:5: host b: MAC 00:16:3e:00:00:01 is also host a's (inv.yaml:4:5)"}},
		{"unknown profile", prof + "hosts:\n  - {name: a, mac: 00:16:3e:00:00:01, profile: q}\n",
			[]string{`inv.yaml:4:5: host a: unknown profile "q" (profiles: p)`}},
		{"same name", prof + "hosts:\n  - {name: a, mac: 00:16:3e:00:00:01, profile: p}\n  - {name: A, mac: 00:16:3e:00:00:02, profile: p}\n",
			[]string{"inv.yaml:5:5: host A: declared twice"}},
		{"same ip", prof + "hosts:\n  - {name: a, mac: 00:16:3e:00:00:01, ip: 192.0.2.5, profile: p}\n  - {name: b, mac: 00:16:3e:00:00:02, ip: 192.0.2.5, profile: p}\n",
			[]string{"inv.yaml:5:5: host b: ip 192.0.2.5 is also host a's"}},
		{"bad mac", prof + "hosts:\n  - {name: a, mac: 00:16:3e, profile: p}\n", []string{`host a: MAC "00:16:3e" is not an Ethernet address`}},
		{"no mac", prof + "hosts:\n  - {name: a, profile: p}\n", []string{"host a: needs a mac"}},
		{"bad ip", prof + "hosts:\n  - {name: a, mac: 00:16:3e:00:00:01, ip: 2001:db8::1, profile: p}\n", []string{"is not an IPv4 address"}},
		{"bad uuid", prof + "hosts:\n  - {name: a, mac: 00:16:3e:00:00:01, uuid: xyz, profile: p}\n", []string{`uuid "xyz" is not 32 hex digits`}},
		{"bad state", prof + "hosts:\n  - {name: a, mac: 00:16:3e:00:00:01, profile: p, state: done}\n", []string{`state "done" is not install or local`}},
		{"bad name", prof + "hosts:\n  - {name: ../x, mac: 00:16:3e:00:00:01, profile: p}\n", []string{`host "../x": name must be`}},
		{"unknown key", "profiles:\n  p: {kernel: k, apend: x}\n", []string{"inv.yaml:2:1: field apend not found"}},
		{"two forms", "profiles:\n  p: {kernel: k, localboot: true}\n", []string{"inv.yaml:2:3: profile p: give exactly one of kernel, multiboot or localboot"}},
		{"escape", "profiles:\n  p: {kernel: ../../etc/shadow}\n", []string{"leaves the boot tree"}},
		{"append template", "profiles:\n  p: {kernel: k, append: '{{.Nope'}\n", []string{"profile p: append:"}},
		{"kickstart missing", "profiles:\n  p: {kernel: k, kickstart: none.ks}\n", []string{"profile p: kickstart: stat"}},
		{"kickstart field typo", "profiles:\n  p: {kernel: k, kickstart: bad.ks}\nhosts:\n  - {name: a, mac: 00:16:3e:00:00:01, profile: p}\n",
			[]string{"inv.yaml:4:5: host a: kickstart:", "Nmae"}},
		{"var missing for one host", "profiles:\n  p: {kernel: k, kickstart: var.ks}\nhosts:\n  - {name: a, mac: 00:16:3e:00:00:01, profile: p, vars: {role: web}}\n  - {name: b, mac: 00:16:3e:00:00:02, profile: p}\n",
			[]string{"inv.yaml:5:5: host b: kickstart:", "role"}},
		{"multiboot separator", "profiles:\n  x: {multiboot: {hypervisor: xen.gz, kernel: vmlinuz, kernel-args: 'a --- b'}}\n", []string{`may not contain "---"`}},
		{"yaml syntax", "hosts: [\n", []string{"inv.yaml:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(filepath.Join(dir, "inv.yaml"), []byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			msg := strings.ReplaceAll(err.Error(), dir+"/", "")
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q\nwant it to contain %q", msg, w)
				}
			}
			var es config.Errors
			if !errors.As(err, &es) {
				t.Errorf("error is %T, want config.Errors", err)
			}
		})
	}
}

func TestEmptyInventory(t *testing.T) {
	inv, err := Parse("empty.yaml", nil)
	if err != nil || len(inv.Hosts) != 0 {
		t.Fatalf("%v %v", inv, err)
	}
}

// The generated files for the seed machines, compared with golden files
// (go test ./internal/inventory -update rewrites them after a deliberate change).
func TestGolden(t *testing.T) {
	inv := loadExample(t)
	live := NewLive(inv, nil, Options{HTTPPort: 8080, Secret: []byte("secret")})
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
	live := NewLive(inv, nil, Options{HTTPPort: 8080, Secret: []byte("s")})
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
	live.SetState("test_hvm", Local, "test")
	if b = resolve("pxelinux.cfg/01-00-16-3e-72-79-e4"); b.Kind != pxelinux.KindLocalboot {
		t.Errorf("after install: %+v, want LOCALBOOT", b)
	}
}

// The names PXELINUX tries: the host's own names for anyone, the shorter
// hex prefixes and default only for the client they belong to.
func TestLookup(t *testing.T) {
	inv, err := Parse("inv.yaml", []byte(`profiles:
  p: {kernel: k}
hosts:
  - {name: fixed, mac: "00:16:3e:00:00:01", ip: 192.0.2.10, uuid: 4C4C4544-0032-3510-8052-B8C04F4A4E31, profile: p}
  - {name: dyn, macs: ["00:16:3e:00:00:02", "00:16:3e:00:00:03"], profile: p}
`))
	if err != nil {
		t.Fatal(err)
	}
	leases := map[netip.Addr]net.HardwareAddr{netip.MustParseAddr("192.0.2.200"): {0, 0x16, 0x3e, 0, 0, 3}}
	live := NewLive(inv, nil, Options{LeaseMAC: func(a netip.Addr) (net.HardwareAddr, bool) { hw, ok := leases[a]; return hw, ok }})
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
	got := strings.Join(inv.Host("test_hvm").Names(), " ")
	if got != "pxelinux.cfg/01-00-16-3e-72-79-e4 pxelinux.cfg/C00002B1" {
		t.Fatalf("names %s", got)
	}
}

// A kickstart path naming a device or FIFO is refused instead of hanging
// the load (or a reload) forever.
func TestKickstartMustBeRegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ks := range []string{"/dev/zero", fifo} {
		_, err := Parse(filepath.Join(dir, "inv.yaml"), []byte("profiles: {p: {kernel: k, kickstart: "+ks+"}}\n"))
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("kickstart %s: %v", ks, err)
		}
	}
}
