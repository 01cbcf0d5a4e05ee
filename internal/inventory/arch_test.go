package inventory

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

const archInventory = `profiles:
  linux:
    kernel: amd64/vmlinuz
    initrd: amd64/initrd.img
    append: console=ttyS0 host={{.Host.Name}}
    loader: grub
    arch:
      efi-arm64: {kernel: arm64/vmlinuz, initrd: [arm64/initrd.img, arm64/extra.img]}
      efi-arm64-http: {kernel: arm64/vmlinuz, initrd: [arm64/initrd.img, arm64/extra.img]}
      efi-ia32: {kernel: ia32/vmlinuz}
hosts:
  - {name: h, mac: "00:16:3e:00:00:01", profile: linux}
`

// A profile's arch entries: read with their positions; a loader on a CPU
// gets its entry, one per CPU, sorted.
func TestArchFiles(t *testing.T) {
	inv, err := Parse("inv.yaml", []byte(archInventory))
	if err != nil {
		t.Fatal(err)
	}
	p := inv.Profiles["linux"]
	if a := p.Arch["efi-arm64"]; a == nil || a.Pos.Line != 8 || a.Pos.Column != 7 || a.Pos.File != "inv.yaml" {
		t.Fatalf("efi-arm64 entry %+v", a)
	}
	arm32, err := Parse("inv.yaml", []byte("profiles:\n  p: {kernel: k, arch: {efi-arm32: {kernel: a}, efi-arm32-http: {kernel: a}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    *Profile
		grub bool
		want string
	}{
		{p, true, "arm64 arm64/vmlinuz [arm64/initrd.img arm64/extra.img]; i386 ia32/vmlinuz []"},
		{p, false, "arm64 arm64/vmlinuz [arm64/initrd.img arm64/extra.img]; i386 ia32/vmlinuz []"},
		{arm32.Profiles["p"], true, "arm a []"},
		{arm32.Profiles["p"], false, "arm32 a []"},
	} {
		var got []string
		for _, v := range tc.p.variants(tc.grub) {
			got = append(got, fmt.Sprintf("%s %s %v", v.cpu, v.kernel, v.initrd))
		}
		if strings.Join(got, "; ") != tc.want {
			t.Errorf("%s variants(grub %v) = %q, want %q", tc.p.Name, tc.grub, got, tc.want)
		}
	}
}

// Mistakes in arch are errors at the entry (or the profile), never a
// silent default.
func TestArchErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown arch", "profiles:\n  p:\n    kernel: k\n    arch:\n      aarch64: {kernel: a}\n",
			`inv.yaml:5:7: profile p: arch "aarch64" is not one of bios, efi-arm32,`},
		{"no kernel", "profiles:\n  p:\n    kernel: k\n    arch:\n      efi-arm64: {initrd: i}\n",
			"inv.yaml:5:7: profile p: arch efi-arm64 needs a kernel"},
		{"null entry", "profiles:\n  p:\n    kernel: k\n    arch:\n      efi-arm64:\n",
			"inv.yaml:2:3: profile p: arch efi-arm64 needs a kernel"},
		{"escape", "profiles:\n  p:\n    kernel: k\n    arch:\n      efi-arm64: {kernel: ../../etc/shadow}\n",
			`profile p: arch efi-arm64 kernel "../../etc/shadow" leaves the boot tree`},
		{"initrd with a comma", "profiles:\n  p:\n    kernel: k\n    arch:\n      efi-arm64: {kernel: a, initrd: 'x,y'}\n",
			`profile p: arch efi-arm64 initrd "x,y" contains a space, comma`},
		{"unknown key", "profiles:\n  p:\n    kernel: k\n    arch:\n      efi-arm64: {kernel: a, initrds: b}\n",
			`inv.yaml:5:30: unknown key "initrds" in profiles.p.arch.efi-arm64 (known: kernel, initrd, append)`},
		{"same CPU, other files", "profiles:\n  p:\n    kernel: k\n    arch:\n      efi-arm64: {kernel: a}\n      efi-arm64-http: {kernel: b}\n",
			"inv.yaml:6:7: profile p: arch efi-arm64 and efi-arm64-http give different files, but both run on arm64"},
		{"bios and ia32 differ", "profiles:\n  p:\n    kernel: k\n    arch:\n      bios: {kernel: a}\n      efi-ia32: {kernel: a, initrd: i}\n",
			"profile p: arch bios and efi-ia32 give different files, but both run on i386"},
		{"with multiboot", "profiles:\n  p:\n    multiboot: {hypervisor: xen.gz, kernel: vmlinuz}\n    arch:\n      efi-arm64: {kernel: a}\n",
			"inv.yaml:2:3: profile p: arch gives kernels per architecture: it goes with kernel, not multiboot or localboot"},
		{"with localboot", "profiles:\n  p:\n    localboot: true\n    arch:\n      efi-arm64: {kernel: a}\n",
			"profile p: arch gives kernels per architecture"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(filepath.Join(dir, "inv.yaml"), []byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			if msg := strings.ReplaceAll(err.Error(), dir+"/", ""); !strings.Contains(msg, tc.want) {
				t.Errorf("error %q\nwant it to contain %q", msg, tc.want)
			}
		})
	}
}

// The generated GRUB config and iPXE script carry every variant and pick
// by the CPU the loader runs on; PXELINUX (x86 only) and a profile
// without arch are as before.
func TestArchRender(t *testing.T) {
	inv, err := Parse("inv.yaml", []byte(archInventory))
	if err != nil {
		t.Fatal(err)
	}
	h := inv.Host("h")
	env := Env{Server: "192.0.2.1:8080", BaseURL: "http://192.0.2.1:8080"}
	grub, err := h.GRUB(Install, env)
	if err != nil {
		t.Fatal(err)
	}
	wantGRUB := `  if [ "$grub_cpu" = arm64 ]; then
    linux /arm64/vmlinuz console=ttyS0 host=h
    initrd /arm64/initrd.img /arm64/extra.img
  elif [ "$grub_cpu" = i386 ]; then
    linux /ia32/vmlinuz console=ttyS0 host=h
  else
    linux /amd64/vmlinuz console=ttyS0 host=h
    initrd /amd64/initrd.img
  fi
}
`
	if !strings.HasSuffix(string(grub), wantGRUB) {
		t.Errorf("GRUB:\n%s\nwant it to end with\n%s", grub, wantGRUB)
	}
	ipxe, err := h.IPXE(Install, env)
	if err != nil {
		t.Fatal(err)
	}
	wantIPXE := `iseq ${buildarch} arm64 && goto pxed-arm64 ||
iseq ${buildarch} i386 && goto pxed-i386 ||
kernel /amd64/vmlinuz initrd=initrd.img console=ttyS0 host=h
initrd /amd64/initrd.img
boot
:pxed-arm64
kernel /arm64/vmlinuz initrd=initrd.img initrd=extra.img console=ttyS0 host=h
initrd /arm64/initrd.img
initrd /arm64/extra.img
boot
:pxed-i386
kernel /ia32/vmlinuz console=ttyS0 host=h
boot
`
	if !strings.HasSuffix(string(ipxe), wantIPXE) {
		t.Errorf("iPXE:\n%s\nwant it to end with\n%s", ipxe, wantIPXE)
	}
	pxl, err := h.PXELinux(Install, env)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(pxl), "KERNEL amd64/vmlinuz\n  APPEND initrd=amd64/initrd.img console=ttyS0") || strings.Contains(string(pxl), "arm64") {
		t.Errorf("PXELINUX:\n%s", pxl)
	}
	// Without arch, no branches.
	plain, err := Parse("inv.yaml", []byte("profiles:\n  p: {kernel: k, initrd: i}\nhosts:\n  - {name: h, mac: \"00:16:3e:00:00:01\", profile: p}\n"))
	if err != nil {
		t.Fatal(err)
	}
	g, _ := plain.Host("h").GRUB(Install, env)
	x, _ := plain.Host("h").IPXE(Install, env)
	if strings.Contains(string(g), "grub_cpu") || !strings.Contains(string(g), "  linux /k\n  initrd /i\n}") ||
		strings.Contains(string(x), "buildarch") || !strings.HasSuffix(string(x), "kernel /k initrd=i\ninitrd /i\nboot\n") {
		t.Errorf("a profile without arch:\n%s\n%s", g, x)
	}
}

// An architecture may have its own command line (its serial console): the
// GRUB and iPXE branches of that CPU use it, with ks= added as for the
// profile's; same-CPU entries must agree on it; a template an arch's
// append cannot render for a host is an error at load.
func TestArchAppend(t *testing.T) {
	inv, err := Parse("inv.yaml", []byte(`profiles:
  p:
    kernel: amd64/vmlinuz
    append: console=ttyS0 host={{.Host.Name}}
    arch:
      efi-arm64: {kernel: arm64/vmlinuz, append: "console=ttyAMA0 host={{.Host.Name}}"}
hosts:
  - {name: h, mac: "00:16:3e:00:00:01", profile: p}
`))
	if err != nil {
		t.Fatal(err)
	}
	env := Env{Server: "192.0.2.1:8080", BaseURL: "http://192.0.2.1:8080", KickstartURL: "http://192.0.2.1:8080/ks/h"}
	h := inv.Host("h")
	grub, err := h.GRUB(Install, env)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"    linux /arm64/vmlinuz console=ttyAMA0 host=h ks=http://192.0.2.1:8080/ks/h\n",
		"    linux /amd64/vmlinuz console=ttyS0 host=h ks=http://192.0.2.1:8080/ks/h\n",
	} {
		if !strings.Contains(string(grub), want) {
			t.Errorf("GRUB config lacks %q:\n%s", want, grub)
		}
	}
	ipxe, err := h.IPXE(Install, env)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ipxe), ":pxed-arm64\nkernel /arm64/vmlinuz console=ttyAMA0 host=h ks=") || !strings.Contains(string(ipxe), "kernel /amd64/vmlinuz console=ttyS0 host=h ks=") {
		t.Errorf("iPXE script:\n%s", ipxe)
	}
	for src, want := range map[string]string{
		"profiles: {p: {kernel: k, arch: {efi-arm64: {kernel: a, append: x}, efi-arm64-http: {kernel: a, append: y}}}}\n":                                       "give different files, but both run on arm64",
		"profiles: {p: {kernel: k, arch: {efi-arm64: {kernel: a, append: \"{{.Vars.console}}\"}}}}\nhosts: [{name: h, mac: '00:16:3e:00:00:01', profile: p}]\n": "(arch arm64 append)",
		"profiles: {p: {kernel: k, arch: {efi-arm64: {kernel: a, append: '{{'}}}}\n":                                                                            "arch efi-arm64 append",
	} {
		if _, err := Parse("inv.yaml", []byte(src)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one with %q", src, err, want)
		}
	}
}
