package bootplan

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"testing/fstest"

	"pxed/internal/bootfs"
	"pxed/internal/inventory"
)

// The boot decision, rule by rule, for inventory hosts and strangers.
func TestDecide(t *testing.T) {
	inv, err := inventory.Parse("inv.yaml", []byte(`profiles:
  linux: {kernel: images/vmlinuz}
  xen: {multiboot: {hypervisor: xen.gz, kernel: vmlinuz}}
hosts:
  - {name: web, mac: "00:16:3e:00:00:01", profile: linux}
  - {name: dom0, mac: "00:16:3e:00:00:02", profile: xen}
`))
	if err != nil {
		t.Fatal(err)
	}
	tree := fstest.MapFS{"ipxe.efi": {Data: []byte("efi")}, "snponly.efi": {Data: []byte("efi")}}
	server := netip.MustParseAddr("192.0.2.1")
	web := net.HardwareAddr{0, 0x16, 0x3e, 0, 0, 1}
	dom0 := net.HardwareAddr{0, 0x16, 0x3e, 0, 0, 2}
	stranger := net.HardwareAddr{0, 0x16, 0x3e, 0, 0, 9}
	seed := Scope{Filename: "pxelinux.0", HasFilename: true, NextServer: netip.MustParseAddr("192.0.2.166")}
	withFiles := seed
	withFiles.BootFiles = map[string]string{"efi-x64": "shim.efi", "efi-arm64": "grubaa64.efi"}
	withFiles.IPXEScript = "http://{server}:8080/boot.ipxe"
	noNext := Scope{Filename: "pxelinux.0", HasFilename: true}

	plan := New(Options{Inventory: inv, HTTPPort: 8080, TFTP: true, Tree: tree})
	advertised := New(Options{Inventory: inv, HTTPPort: 8080, Advertise: "boot.example.net:80", Tree: tree})
	noHTTP := New(Options{Inventory: inv, Tree: tree})
	operatorEFI := New(Options{Inventory: inv, HTTPPort: 8080, Tree: tree, ScopeBootFiles: []map[string]string{withFiles.BootFiles}})

	bios := Facts{PXE: true, Arch: 0, HasArch: true, Server: server}
	efi := Facts{PXE: true, Arch: 7, HasArch: true, Server: server}
	efiBC := Facts{PXE: true, Arch: 9, HasArch: true, Server: server}
	arm := Facts{PXE: true, Arch: 11, HasArch: true, Server: server}
	ipxe := Facts{PXE: true, IPXE: true, Arch: 0, HasArch: true, Server: server}
	with := func(f Facts, hw net.HardwareAddr) Facts { f.MAC = hw; return f }

	for _, tc := range []struct {
		name  string
		plan  *Plan
		f     Facts
		sc    Scope
		file  string
		why   string
		host  string
		next  string
		own   bool
		isURL bool
	}{
		{"BIOS inventory host", plan, with(bios, web), seed, "pxelinux.0", "filename", "web", "192.0.2.166", false, false},
		{"BIOS stranger", plan, with(bios, stranger), seed, "pxelinux.0", "filename", "", "192.0.2.166", false, false},
		{"iPXE inventory host gets its script", plan, with(ipxe, web), withFiles, "http://192.0.2.1:8080/ipxe/00-16-3e-00-00-01", "inventory host web: its iPXE script over HTTP", "web", "192.0.2.166", false, true},
		{"iPXE host script names the advertised server", advertised, with(ipxe, web), seed, "http://boot.example.net:80/ipxe/00-16-3e-00-00-01", "inventory host web", "web", "192.0.2.166", false, true},
		{"iPXE without HTTP: scope rules", noHTTP, with(ipxe, web), seed, "pxelinux.0", "filename", "web", "192.0.2.166", false, false},
		{"iPXE multiboot host goes through pxelinux.0", plan, with(ipxe, dom0), seed, "pxelinux.0", "filename", "dom0", "192.0.2.166", false, false},
		{"iPXE multiboot host, scope ipxe-script", plan, with(ipxe, dom0), withFiles, "http://192.0.2.1:8080/boot.ipxe", "ipxe-script", "dom0", "192.0.2.166", false, true},
		{"iPXE stranger, scope ipxe-script", plan, with(ipxe, stranger), withFiles, "http://192.0.2.1:8080/boot.ipxe", "ipxe-script", "", "192.0.2.166", false, true},
		{"UEFI inventory host gets ipxe.efi from the tree", plan, with(efi, web), seed, "ipxe.efi", "UEFI x64 boot file found", "web", "192.0.2.166", false, false},
		{"EFI BC is x64", plan, with(efiBC, web), seed, "ipxe.efi", "UEFI x64", "web", "192.0.2.166", false, false},
		{"UEFI stranger: scope filename", plan, with(efi, stranger), seed, "pxelinux.0", "filename", "", "192.0.2.166", false, false},
		{"UEFI host, operator's efi-x64 wins", operatorEFI, with(efi, web), withFiles, "shim.efi", "boot-files[efi-x64]", "web", "192.0.2.166", false, false},
		{"arm64 boot-files", plan, with(arm, stranger), withFiles, "grubaa64.efi", "boot-files[efi-arm64]", "", "192.0.2.166", false, false},
		{"no next-server, TFTP on: own address", plan, with(bios, stranger), noNext, "pxelinux.0", "filename", "", "192.0.2.1", true, false},
		{"no next-server, TFTP off: none", noHTTP, with(bios, stranger), noNext, "pxelinux.0", "filename", "", "", false, false},
		{"nothing applies", plan, with(bios, stranger), Scope{}, "", "no filename", "", "192.0.2.1", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.plan.Decide(tc.f, tc.sc)
			next := ""
			if d.NextServer.IsValid() {
				next = d.NextServer.String()
			}
			if d.File != tc.file || !strings.Contains(d.Why, tc.why) || d.Host != tc.host || next != tc.next || d.OwnNextServer != tc.own || (d.ScriptURL != "") != tc.isURL {
				t.Errorf("got %+v\nwant file %q why ~%q host %q next %q own %v script %v", d, tc.file, tc.why, tc.host, tc.next, tc.own, tc.isURL)
			}
		})
	}
}

// Without ipxe.efi in the tree, snponly.efi; without either, nothing for
// an inventory host beyond the scope's rules.
func TestEFIFilePreference(t *testing.T) {
	if f := New(Options{Tree: fstest.MapFS{"snponly.efi": {}, "syslinux.efi": {}}}).EFIBootFile(); f != "snponly.efi" {
		t.Errorf("got %q", f)
	}
	if f := New(Options{Tree: fstest.MapFS{"ipxe.efi": {Mode: 0o755 | 1<<31}}}).EFIBootFile(); f != "" {
		t.Errorf("a directory named ipxe.efi was chosen: %q", f)
	}
}

// The namespace: which names are generated, and under which directory.
func TestOwnsAndContentType(t *testing.T) {
	for n, want := range map[string]bool{
		"pxelinux.cfg/default": true, "bios/pxelinux.cfg/01-00-16-3e-00-00-01": true, "a/b/pxelinux.cfg/C0": true,
		"ipxe/00-16-3e-00-00-01": true, "boot.ipxe": true, "ks/web": true,
		"pxelinux.cfg": false, "pxelinux.cfg/": false, "xpxelinux.cfg/default": false, "pxelinux.cfg/a/b": false,
		"images/vmlinuz": false, "pxelinux.0": false, "bios/boot.ipxe": false,
	} {
		if got := Owns(n); got != want {
			t.Errorf("Owns(%q) = %v", n, got)
		}
	}
	if ContentType("ks/web", true) != "text/plain; charset=utf-8" || ContentType("ks/web", false) != "application/octet-stream" || ContentType("vmlinuz", true) != "application/octet-stream" {
		t.Error("content types")
	}
}

// A config PXELINUX asks for under its path prefix (bios/pxelinux.cfg/…)
// names the profile's files with "::", which PXELINUX does not prefix.
func TestGeneratedUnderPathPrefix(t *testing.T) {
	inv, err := inventory.Parse("inv.yaml", []byte(`profiles:
  linux: {kernel: images/vmlinuz, initrd: [images/a.gz, images/b.gz], append: quiet}
  xen: {multiboot: {hypervisor: xen.gz, kernel: vmlinuz, initrd: initrd.img}}
hosts:
  - {name: web, mac: "00:16:3e:00:00:01", profile: linux}
  - {name: dom0, mac: "00:16:3e:00:00:02", profile: xen}
`))
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{Inventory: inv})
	c := bootfs.Client{}
	get := func(n string) string {
		data, _, ok := p.Generate(c, n)
		if !ok {
			t.Fatalf("%s not generated", n)
		}
		return string(data)
	}
	if got := get("bios/pxelinux.cfg/01-00-16-3e-00-00-01"); !strings.Contains(got, "KERNEL ::images/vmlinuz\n  APPEND initrd=::images/a.gz,::images/b.gz quiet\n") {
		t.Errorf("under bios/:\n%s", got)
	}
	if got := get("pxelinux.cfg/01-00-16-3e-00-00-01"); !strings.Contains(got, "KERNEL images/vmlinuz\n  APPEND initrd=images/a.gz,images/b.gz quiet\n") {
		t.Errorf("at the root:\n%s", got)
	}
	if got := get("bios/pxelinux.cfg/01-00-16-3e-00-00-02"); !strings.Contains(got, "KERNEL ::mboot.c32\n  APPEND ::xen.gz --- ::vmlinuz --- ::initrd.img\n") {
		t.Errorf("multiboot under bios/:\n%s", got)
	}
}

// A profile's loader: GRUB through shim for UEFI PXE and UEFI HTTP boot,
// BIOS and iPXE unchanged; iPXE for HTTP boot of a host without one.
func TestDecideLoader(t *testing.T) {
	inv, err := inventory.Parse("inv.yaml", []byte(`profiles:
  sb: {kernel: vmlinuz, loader: grub}
  plain: {kernel: vmlinuz}
  syslinux: {kernel: vmlinuz, loader: pxelinux}
hosts:
  - {name: sb, mac: "00:16:3e:00:00:01", profile: sb}
  - {name: plain, mac: "00:16:3e:00:00:02", profile: plain}
  - {name: old, mac: "00:16:3e:00:00:03", profile: syslinux}
`))
	if err != nil {
		t.Fatal(err)
	}
	server := netip.MustParseAddr("192.0.2.1")
	withShim := New(Options{Inventory: inv, HTTPPort: 80, TFTP: true, Tree: fstest.MapFS{"shimx64.efi": {}, "grubx64.efi": {}, "ipxe.efi": {}}})
	grubOnly := New(Options{Inventory: inv, HTTPPort: 80, TFTP: true, Tree: fstest.MapFS{"grubx64.efi": {}}})
	empty := New(Options{Inventory: inv, TFTP: true, Tree: fstest.MapFS{}})
	seed := Scope{Filename: "pxelinux.0", HasFilename: true}
	mac := func(b byte) net.HardwareAddr { return net.HardwareAddr{0, 0x16, 0x3e, 0, 0, b} }
	for _, tc := range []struct {
		name      string
		plan      *Plan
		f         Facts
		file, why string
	}{
		{"UEFI PXE: shim", withShim, Facts{MAC: mac(1), PXE: true, Arch: 7, HasArch: true, Server: server}, "shimx64.efi", "profile sb loader grub for efi-x64"},
		{"UEFI HTTP boot: shim URL", withShim, Facts{MAC: mac(1), HTTPClient: true, Arch: 16, HasArch: true, Server: server}, "http://192.0.2.1:80/shimx64.efi", "loader grub for efi-x64-http"},
		{"no shim: GRUB itself", grubOnly, Facts{MAC: mac(1), PXE: true, Arch: 7, HasArch: true, Server: server}, "grubx64.efi", "loader grub"},
		{"neither: shim named, missing", empty, Facts{MAC: mac(1), PXE: true, Arch: 9, HasArch: true, Server: server}, "shimx64.efi", "loader grub"},
		{"HTTP boot without HTTP: scope", empty, Facts{MAC: mac(1), HTTPClient: true, Arch: 16, HasArch: true, Server: server}, "pxelinux.0", "filename"},
		{"BIOS: PXELINUX whatever the loader", withShim, Facts{MAC: mac(1), PXE: true, Arch: 0, HasArch: true, Server: server}, "pxelinux.0", "filename"},
		{"iPXE: its script whatever the loader", withShim, Facts{MAC: mac(1), PXE: true, IPXE: true, Arch: 7, HasArch: true, Server: server}, "http://192.0.2.1:80/ipxe/00-16-3e-00-00-01", "iPXE script"},
		{"no loader, UEFI HTTP boot: ipxe.efi URL", withShim, Facts{MAC: mac(2), HTTPClient: true, Arch: 16, HasArch: true, Server: server}, "http://192.0.2.1:80/ipxe.efi", "UEFI x64 boot file"},
		{"loader pxelinux: syslinux.efi", withShim, Facts{MAC: mac(3), PXE: true, Arch: 7, HasArch: true, Server: server}, "syslinux.efi", "loader pxelinux"},
		{"arm64 GRUB", withShim, Facts{MAC: mac(1), PXE: true, Arch: 11, HasArch: true, Server: server}, "shimaa64.efi", "loader grub for efi-arm64"},
	} {
		d := tc.plan.Decide(tc.f, seed)
		if d.File != tc.file || !strings.Contains(d.Why, tc.why) {
			t.Errorf("%s: got %q (%s), want %q (~%s)", tc.name, d.File, d.Why, tc.file, tc.why)
		}
	}
	if _, err := inventory.Parse("inv.yaml", []byte("profiles: {p: {kernel: k, loader: grub2}}\n")); err == nil || !strings.Contains(err.Error(), `loader "grub2" is not one of ipxe, grub, pxelinux`) {
		t.Errorf("unknown loader: %v", err)
	}
}

// GRUB configs: the client's own grub.cfg by its address, every host's by
// MAC (upstream's hyphen form and $net_default_mac's colon form) and by
// hex IP, the chain for a client pxed does not know, and what each holds.
func TestGenerateGRUB(t *testing.T) {
	inv, err := inventory.Parse("inv.yaml", []byte(`profiles:
  linux: {kernel: images/vmlinuz, initrd: [images/a.gz, images/b.gz], append: "quiet x='1 2' {{.Host.Name}}", loader: grub}
  xen: {multiboot: {hypervisor: xen.gz, hypervisor-args: dom0_mem=1G, kernel: vmlinuz, kernel-args: console=hvc0, initrd: initrd.img}}
  disk: {localboot: true}
hosts:
  - {name: web, mac: "00:16:3e:00:00:01", ip: 192.0.2.10, profile: linux}
  - {name: dom0, mac: "00:16:3e:00:00:02", profile: xen}
  - {name: pc, mac: "00:16:3e:00:00:03", profile: disk}
`))
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{Inventory: inv, HTTPPort: 8080})
	get := func(c bootfs.Client, n string) (string, bool) {
		data, _, ok := p.Generate(c, n)
		return string(data), ok
	}
	web := bootfs.Client{Addr: netip.MustParseAddr("192.0.2.10"), Local: netip.MustParseAddr("192.0.2.1")}
	stranger := bootfs.Client{Addr: netip.MustParseAddr("192.0.2.99"), Local: netip.MustParseAddr("192.0.2.1")}
	wantWeb := "  linux /images/vmlinuz quiet 'x='\\''1' '2'\\''' web\n  initrd /images/a.gz /images/b.gz\n"
	for _, tc := range []struct {
		c    bootfs.Client
		name string
		want string
	}{
		{web, "grub/grub.cfg", wantWeb},
		{stranger, "grub/grub.cfg-01-00-16-3e-00-00-01", wantWeb},
		{stranger, "grub/grub.cfg-01-00:16:3e:00:00:01", wantWeb},
		{stranger, "boot/grub/grub.cfg-C000020A", wantWeb},
		{stranger, "grub/grub.cfg", `configfile "${prefix}/grub.cfg-01-${net_default_mac}"`},
		{stranger, "grub/grub.cfg-01-00-16-3e-00-00-02", "  multiboot2 /xen.gz dom0_mem=1G\n  module2 /vmlinuz console=hvc0\n  module2 /initrd.img\n"},
		{stranger, "grub/grub.cfg-01-00-16-3e-00-00-03", "exit\n"},
	} {
		got, ok := get(tc.c, tc.name)
		if !ok || !strings.Contains(got, tc.want) {
			t.Errorf("%s for %s: %v\n%s\nwant it to hold\n%s", tc.name, tc.c.Addr, ok, got, tc.want)
		}
	}
	for _, n := range []string{"grub/grub.cfg-01-00-16-3E-00-00-01", "grub/grub.cfg-01-00-16-3e-00-00-09", "grub/grub.cfg-C000020B", "grub/grub.cfgx"} {
		if got, ok := get(stranger, n); ok {
			t.Errorf("%s generated:\n%s", n, got)
		}
	}
	if names := GRUBNames(inv.Host("web"), "grub/"); strings.Join(names, " ") != "grub/grub.cfg-01-00-16-3e-00-00-01 grub/grub.cfg-C000020A" {
		t.Errorf("GRUBNames: %q", names)
	}
	// A state of local is exit, whatever the profile.
	p.States().Set(inv, "web", inventory.Local, "test")
	if got, _ := get(web, "grub/grub.cfg"); !strings.HasSuffix(got, "exit\n") || strings.Contains(got, "  linux ") {
		t.Errorf("web, state local:\n%s", got)
	}
}

// A profile whose loader has no boot file in the tree is a warning at
// load, with its position; one whose loader is there is not.
func TestLoaderWarnings(t *testing.T) {
	inv, err := inventory.Parse("inv.yaml", []byte(`profiles:
  sb: {kernel: vmlinuz, loader: grub}
  ipxe: {kernel: vmlinuz, loader: ipxe}
`))
	if err != nil {
		t.Fatal(err)
	}
	w := New(Options{Inventory: inv, Tree: fstest.MapFS{"ipxe.efi": {}}}).Warnings()
	if len(w) != 1 || !strings.Contains(w[0].Msg, "profile sb: loader grub, but none of shimx64.efi, grubx64.efi is in the boot tree") || w[0].Pos.Line != 2 {
		t.Errorf("warnings %+v", w)
	}
	if w := New(Options{Inventory: inv, Tree: fstest.MapFS{"ipxe.efi": {}, "grubx64.efi": {}}}).Warnings(); len(w) != 0 {
		t.Errorf("warnings with both loaders in the tree: %+v", w)
	}
	// arm64 is checked for a profile that gives arm64 files.
	inv, err = inventory.Parse("inv.yaml", []byte("profiles:\n  both: {kernel: vmlinuz, loader: grub, arch: {efi-arm64: {kernel: arm64/vmlinuz}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	w = New(Options{Inventory: inv, Tree: fstest.MapFS{"shimx64.efi": {}, "grubx64.efi": {}}}).Warnings()
	if len(w) != 1 || !strings.Contains(w[0].Msg, "none of shimaa64.efi, grubaa64.efi is in the boot tree: its hosts' efi-arm64 firmware") {
		t.Errorf("arm64 warnings %+v", w)
	}
}
