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
