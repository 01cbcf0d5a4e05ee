package bootplan

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"pxed/internal/bootfs"
	"pxed/internal/inventory"
)

// ARM64 UEFI (option 93 = 11, 19 for HTTP boot) gets the arm64 file of
// the profile's loader, the one in the tree, and never an x64 one; the
// host's GRUB config and iPXE script carry its arm64 kernel for the loader
// to pick by its CPU.
func TestARM64(t *testing.T) {
	inv, err := inventory.Parse("inv.yaml", []byte(`profiles:
  g:
    kernel: amd64/vmlinuz
    initrd: amd64/initrd.img
    append: host={{.Host.Name}}
    loader: grub
    arch:
      efi-arm64: {kernel: arm64/vmlinuz, initrd: arm64/initrd.img}
  i: {kernel: amd64/vmlinuz, loader: ipxe, arch: {efi-arm64: {kernel: arm64/vmlinuz}}}
  plain: {kernel: amd64/vmlinuz}
hosts:
  - {name: g, mac: "00:16:3e:00:00:01", ip: 192.0.2.10, profile: g}
  - {name: i, mac: "00:16:3e:00:00:02", profile: i}
  - {name: plain, mac: "00:16:3e:00:00:03", profile: plain}
`))
	if err != nil {
		t.Fatal(err)
	}
	server := netip.MustParseAddr("192.0.2.1")
	tree := fstest.MapFS{"shimx64.efi": {}, "grubx64.efi": {}, "ipxe.efi": {}, "grubaa64.efi": {}, "snponly-arm64.efi": {}}
	p := New(Options{Inventory: inv, HTTPPort: 80, TFTP: true, Tree: tree})
	withShim := New(Options{Inventory: inv, HTTPPort: 80, TFTP: true, Tree: fstest.MapFS{"shimaa64.efi": {}, "grubaa64.efi": {}}})
	seed := Scope{Filename: "pxelinux.0", HasFilename: true, BootFiles: map[string]string{"efi-arm64": "scope-arm64.efi"}}
	mac := func(b byte) net.HardwareAddr { return net.HardwareAddr{0, 0x16, 0x3e, 0, 0, b} }
	for _, tc := range []struct {
		name      string
		plan      *Plan
		f         Facts
		file, why string
	}{
		{"GRUB without shim: grubaa64.efi", p, Facts{MAC: mac(1), PXE: true, Arch: 11, HasArch: true, Server: server}, "grubaa64.efi", "loader grub for efi-arm64"},
		{"shimaa64.efi when there", withShim, Facts{MAC: mac(1), PXE: true, Arch: 11, HasArch: true, Server: server}, "shimaa64.efi", "loader grub for efi-arm64"},
		{"HTTP boot: a URL", p, Facts{MAC: mac(1), HTTPClient: true, Arch: 19, HasArch: true, Server: server}, "http://192.0.2.1:80/grubaa64.efi", "loader grub for efi-arm64-http"},
		{"iPXE loader: the arm64 build in the tree", p, Facts{MAC: mac(2), PXE: true, Arch: 11, HasArch: true, Server: server}, "snponly-arm64.efi", "loader ipxe for efi-arm64"},
		{"no loader: the scope's arm64 file, not ipxe.efi", p, Facts{MAC: mac(3), PXE: true, Arch: 11, HasArch: true, Server: server}, "scope-arm64.efi", "boot-files[efi-arm64]"},
		{"stranger: the scope's arm64 file", p, Facts{MAC: mac(9), PXE: true, Arch: 11, HasArch: true, Server: server}, "scope-arm64.efi", "boot-files[efi-arm64]"},
	} {
		d := tc.plan.Decide(tc.f, seed)
		if d.File != tc.file || !strings.Contains(d.Why, tc.why) {
			t.Errorf("%s: got %q (%s), want %q (~%s)", tc.name, d.File, d.Why, tc.file, tc.why)
		}
	}

	c := bootfs.Client{Addr: netip.MustParseAddr("192.0.2.10"), Local: server}
	cfg, _, ok := p.Generate(c, "grub/grub.cfg")
	want := "  if [ \"$grub_cpu\" = arm64 ]; then\n    linux /arm64/vmlinuz host=g\n    initrd /arm64/initrd.img\n  else\n    linux /amd64/vmlinuz host=g\n"
	if !ok || !strings.Contains(string(cfg), want) {
		t.Errorf("grub/grub.cfg for g: %v\n%s\nwant it to hold\n%s", ok, cfg, want)
	}
	script, _, ok := p.Generate(c, IPXEScriptPath(mac(2)))
	if !ok || !strings.Contains(string(script), "iseq ${buildarch} arm64 && goto pxed-arm64 ||\n") || !strings.Contains(string(script), ":pxed-arm64\nkernel /arm64/vmlinuz") {
		t.Errorf("iPXE script for i: %v\n%s", ok, script)
	}
}

// A profile's arch takes the names boot-files takes, no more, no less.
func TestArchNamesAgree(t *testing.T) {
	if got, want := inventory.ArchNames(), ArchNames(); !slices.Equal(got, want) {
		t.Errorf("inventory.ArchNames() = %q, bootplan.ArchNames() = %q", got, want)
	}
}
