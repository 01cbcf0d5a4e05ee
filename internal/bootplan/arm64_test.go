package bootplan

import (
	"net"
	"net/netip"
	"regexp"
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

// FuzzParse's arch seed is a valid inventory whose configs pass its
// checks, and the checks still refuse a command hidden in a branch line.
func TestArchSeed(t *testing.T) {
	inv, err := inventory.Parse("seed.yaml", []byte(archSeed))
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{Inventory: inv, HTTPPort: 8080})
	cfg, _, _ := p.Generate(bootfs.Client{Addr: netip.MustParseAddr("192.0.2.1")}, "grub/grub.cfg")
	if err := checkGRUB(string(cfg)); err != nil || !strings.Contains(string(cfg), `elif [ "$grub_cpu" = i386 ]; then`) {
		t.Errorf("%v\n%s", err, cfg)
	}
	for _, bad := range []string{`if [ "$grub_cpu" = arm64 ]; then linux evil`, `fi; linux evil`, `if [ "$grub_cpu" = $x ]; then`} {
		if checkGRUB(bad+"\n") == nil {
			t.Errorf("checkGRUB accepts %q", bad)
		}
	}
	if ipxeArchLine.MatchString("iseq ${buildarch} arm64 && goto pxed-arm64 || chain evil") {
		t.Error("ipxeArchLine accepts a command after the branch")
	}
}

// A profile's arch takes the names boot-files takes, no more, no less.
func TestArchNamesAgree(t *testing.T) {
	if got, want := inventory.ArchNames(), ArchNames(); !slices.Equal(got, want) {
		t.Errorf("inventory.ArchNames() = %q, bootplan.ArchNames() = %q", got, want)
	}
}

// The lines a per-architecture profile adds to generated configs, which
// FuzzParse accepts as written and nothing like them: the CPU names come
// from pxed's table, never from the inventory.
var (
	grubArchLine = regexp.MustCompile(`^((el)?if \[ "\$grub_cpu" = [a-z0-9_]+ \]; then|else|fi)$`)
	ipxeArchLine = regexp.MustCompile(`^(iseq \$\{buildarch\} ([a-z0-9_]+) && goto pxed-[a-z0-9_]+ \|\||:pxed-[a-z0-9_]+)$`)
)

// archSeed is FuzzParse's seed with per-architecture kernels.
const archSeed = "profiles: {p: {kernel: k, initrd: i, loader: grub, append: \"a {{.Vars.x}}\", arch: {efi-arm64: {kernel: a, initrd: [b, c]}, efi-ia32: {kernel: d}}}}\n" +
	"hosts: [{name: h, mac: '00:16:3e:00:00:01', ip: 192.0.2.1, profile: p, vars: {x: \"fi\\nlinux evil\"}}]\n"
