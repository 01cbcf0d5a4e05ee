package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pxed/internal/testutil"
)

// seedTree builds a /tftpboot like the seeds' with the given files (name ->
// content) and modes.
func seedTree(t *testing.T, files map[string]string, modes map[string]os.FileMode) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "tftpboot")
	for name, data := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		mode := os.FileMode(0o644)
		if m, ok := modes[name]; ok {
			mode = m
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
	}
	return root
}

func explain(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var stdout, stderr testutil.SyncBuffer
	code := run(append([]string{"explain"}, args...), &stdout, &stderr)
	if stderr.String() != "" {
		t.Logf("stderr: %s", stderr.String())
	}
	return stdout.String(), code
}

func wantLines(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("explain output lacks %q:\n%s", w, out)
		}
	}
}

const seedHVMConfig = "default linux\nprompt 1\ntimeout 120\nlabel linux\nkernel el5u4_x86_pxeboot_install/vmlinuz\nappend initrd=el5u4_x86_pxeboot_install/initrd.img\n"

// The seeds' setup as written: the HVM guest's config is found by MAC; the
// kernel was copied without the seeds' chmod 644 and the initrd is missing.
func TestExplainSeedHVMGuest(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "dhcpd.conf")
	writeFile(t, conf, []byte(seedDHCPD))
	root := seedTree(t, map[string]string{
		"pxelinux.0":                        "x",
		"pxelinux.cfg/01-00-16-3e-72-79-e4": seedHVMConfig,
		"el5u4_x86_pxeboot_install/vmlinuz": "kernel",
	}, map[string]os.FileMode{"el5u4_x86_pxeboot_install/vmlinuz": 0o600})
	out, code := explain(t, "--dhcpd-conf", conf, "--tftp-root", root, "--state-dir", dir, "00:16:3E:72:79:E4")
	if code != 1 {
		t.Errorf("exit %d, want 1 (problems found)", code)
	}
	wantLines(t, out,
		"dhcp: host test_hvm ("+conf+":",
		"address: 192.0.2.177",
		"next-server: 192.0.2.166",
		"boot file for BIOS PXE: pxelinux.0",
		"boot file pxelinux.0: ok",
		"tried pxelinux.cfg/01-00-16-3e-72-79-e4: found on disk",
		"(not tried) pxelinux.cfg/C00002B1",
		`boots label "linux" (linux)`,
		"kernel el5u4_x86_pxeboot_install/vmlinuz: REFUSED",
		"not world-readable (mode 0600); chmod o+r",
		"initrd el5u4_x86_pxeboot_install/initrd.img: MISSING",
		"2 problem(s) found",
	)
}

// The classic naming mistakes: a MAC file in upper case, a hex IP in
// lower case, a dotted IP; and the second seed's backslash-continued APPEND.
func TestExplainNamingMistakes(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "dhcpd.conf")
	writeFile(t, conf, []byte(seedDHCPD))
	root := seedTree(t, map[string]string{
		"pxelinux.0":                        "x",
		"pxelinux.cfg/01-00-16-3E-72-79-E4": seedHVMConfig,
		"pxelinux.cfg/c00002b1":             seedHVMConfig,
		"pxelinux.cfg/192.0.2.177":          seedHVMConfig,
		"pxelinux.cfg/00-16-3e-72-79-e4":    seedHVMConfig,
	}, nil)
	out, _ := explain(t, "--dhcpd-conf", conf, "--tftp-root", root, "--state-dir", dir, "00:16:3e:72:79:e4")
	wantLines(t, out,
		"tried pxelinux.cfg/01-00-16-3e-72-79-e4: not found",
		"tried pxelinux.cfg/default: not found",
		"pxelinux.cfg/01-00-16-3E-72-79-E4 is never requested: PXELINUX asks for the MAC in lower case. Rename it to pxelinux.cfg/01-00-16-3e-72-79-e4",
		"pxelinux.cfg/c00002b1 is never requested: PXELINUX asks for the hex IP in upper case. Rename it to pxelinux.cfg/C00002B1",
		"pxelinux.cfg/192.0.2.177 is never requested: PXELINUX asks for the address in hex (pxed hexip 192.0.2.177)",
		"pxelinux.cfg/00-16-3e-72-79-e4 is never requested: PXELINUX asks for 01-<mac>",
		"PXELINUX finds no config for this client",
	)

	// The second seed's C0A8C8B1, moved to this host's hex IP.
	pv, err := os.ReadFile("../../internal/pxelinux/testdata/seed-pv-guest-hexip.cfg")
	if err != nil {
		t.Fatal(err)
	}
	root = seedTree(t, map[string]string{"pxelinux.0": "x", "pxelinux.cfg/C00002B1": string(pv), "vmlinuz": "k", "initrd.img": "i"}, nil)
	out, _ = explain(t, "--dhcpd-conf", conf, "--tftp-root", root, "--state-dir", dir, "00:16:3e:72:79:e4")
	wantLines(t, out,
		"tried pxelinux.cfg/C00002B1: found on disk",
		"pxelinux.cfg/C00002B1:6 ends with a backslash: PXELINUX has no line continuation",
		"pxelinux.cfg/C00002B1:7 ends with a backslash",
		"append: initrd=initrd.img lang=en_US keymap=us \\",
	)
}

// No next-server and no TFTP of pxed's own: the seeds' "No IP address".
func TestExplainMissingNextServer(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "dhcpd.conf")
	writeFile(t, conf, []byte(strings.Replace(seedDHCPD, "next-server 192.0.2.166;", "", 1)))
	root := seedTree(t, map[string]string{"pxelinux.0": "x"}, nil)
	out, code := explain(t, "--dhcpd-conf", conf, "--tftp-root", root, "--tftp-addr", "", "--state-dir", dir, "00:16:3e:72:79:e4")
	if code != 1 {
		t.Errorf("exit %d", code)
	}
	wantLines(t, out, "next-server: none", "PROBLEM: no next-server", "next-server 192.0.2.")
}

// The example inventory: configs generated, the iPXE script shown, the
// kickstart URL given, a disk file shadowing a generated config flagged.
func TestExplainInventory(t *testing.T) {
	dir := t.TempDir()
	root := seedTree(t, map[string]string{
		"pxelinux.0": "x", "ipxe.efi": "x",
		"el5u4_x86_pxeboot_install/vmlinuz": "k", "el5u4_x86_pxeboot_install/initrd.img": "i",
		"pxelinux.cfg/01-00-19-b9-41-2c-b9": "default local\nlabel local\nlocalboot 0\n",
	}, nil)
	// Paths in a config file are relative to the file: this one is in a
	// temporary directory, so the inventory's path is absolute.
	inv, err := filepath.Abs("../../examples/inventory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	yaml := `state-dir: ` + dir + `
inventory: ` + inv + `
tftp: {root: ` + root + `, addr: "192.0.2.1:69"}
http: {addr: "192.0.2.1:8080"}
dhcp:
  interfaces: [pxed-none0]
  subnets:
    - network: 192.0.2.0/24
      filename: pxelinux.0
      pools: [{ranges: [{start: 192.0.2.100, end: 192.0.2.150}]}]
`
	cfg := filepath.Join(dir, "pxed.yaml")
	writeFile(t, cfg, []byte(yaml))
	out, code := explain(t, "--config", cfg, "00:16:3e:72:79:e4")
	if code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	wantLines(t, out,
		"inventory: test_hvm ("+inv+":",
		"profile el5-hvm-install, state install (declared)",
		"address: 192.0.2.177",
		"boot file for UEFI x64: ipxe.efi",
		"boot file for iPXE:     http://192.0.2.1:8080/ipxe/00-16-3e-72-79-e4",
		"tried pxelinux.cfg/01-00-16-3e-72-79-e4: generated from the inventory",
		"append: initrd=el5u4_x86_pxeboot_install/initrd.img lang=en_US keymap=us ksdevice=eth0 ip=dhcp ks=http://192.0.2.1:8080/ks/test_hvm",
		"kernel /el5u4_x86_pxeboot_install/vmlinuz",
		"kickstart\n  http://192.0.2.1:8080/ks/test_hvm",
		"no problems found",
	)
	out, _ = explain(t, "--config", cfg, "00:19:b9:41:2c:b9")
	wantLines(t, out, "tried pxelinux.cfg/01-00-19-b9-41-2c-b9: found on disk, shadowing the inventory's generated config")
}

// PXELINUX prefixes every name with the boot file's directory, a leading
// '/' included ("bios//images/vmlinuz", served as bios/images/vmlinuz);
// only "::name" is absolute. explain walks that layout as real PXELINUX
// does (test/e2e/pathprefix_test.go boots it).
func TestExplainPathPrefix(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "dhcpd.conf")
	writeFile(t, conf, []byte(strings.Replace(seedDHCPD, `filename "pxelinux.0";`, `filename "bios/pxelinux.0";`, 1)))
	root := seedTree(t, map[string]string{
		"bios/pxelinux.0":                        "x",
		"bios/pxelinux.cfg/01-00-16-3e-72-79-e4": "default linux\nlabel linux\nkernel /images/vmlinuz\ninitrd ::bios/images/initrd.gz\n",
		"bios/images/vmlinuz":                    "k",
		"bios/images/initrd.gz":                  "i",
		"images/vmlinuz":                         "the wrong kernel",
	}, nil)
	out, code := explain(t, "--dhcpd-conf", conf, "--tftp-root", root, "--state-dir", dir, "00:16:3e:72:79:e4")
	if code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	wantLines(t, out,
		"boot file for BIOS PXE: bios/pxelinux.0",
		"tried bios/pxelinux.cfg/01-00-16-3e-72-79-e4: found on disk",
		"kernel bios/images/vmlinuz: ok (1 bytes)",
		"initrd bios/images/initrd.gz: ok (1 bytes)",
		"no problems found",
	)
}

// The Secure Boot chain as the firmware would walk it: shim without
// grubx64.efi beside it, a distribution-signed GRUB sent as the first
// program, an unsigned kernel in the generated grub.cfg; and the same
// tree made right passes.
func TestExplainSecureBootChain(t *testing.T) {
	ms := string(testutil.PE64([]byte("..Microsoft Corporation UEFI CA 2011.."), 0))
	distro := string(testutil.PE64([]byte("..Debian Secure Boot CA.."), 0))
	unsigned := string(testutil.PE64(nil, 0))
	dir := t.TempDir()
	conf := filepath.Join(dir, "dhcpd.conf")
	writeFile(t, conf, []byte("subnet 192.0.2.0 netmask 255.255.255.0 {\n  next-server 192.0.2.1;\n  filename \"pxelinux.0\";\n  range 192.0.2.100 192.0.2.150;\n}\n"))
	inv := filepath.Join(dir, "inventory.yaml")
	writeFile(t, inv, []byte("profiles:\n  sb: {kernel: sb/vmlinuz, loader: grub}\nhosts:\n  - {name: sb1, mac: \"52:54:00:5b:00:01\", ip: 192.0.2.61, profile: sb}\n"))
	args := func(root string, extra ...string) []string {
		return append([]string{"--dhcpd-conf", conf, "--inventory", inv, "--tftp-root", root, "--interface", "lo", "--state-dir", t.TempDir()}, append(extra, "52:54:00:5b:00:01")...)
	}

	// shim alone: its second stage is missing.
	out, code := explain(t, args(seedTree(t, map[string]string{"pxelinux.0": "x", "shimx64.efi": ms, "sb/vmlinuz": distro}, nil))...)
	wantLines(t, out, "shimx64.efi (UEFI x64): signed by Microsoft's UEFI CA", "PROBLEM: shim loads grubx64.efi from its own directory, and it cannot be read")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	// GRUB alone (no shim): refused by Secure Boot firmware; a note, a
	// problem with --secure-boot.
	tree := seedTree(t, map[string]string{"pxelinux.0": "x", "grubx64.efi": distro, "sb/vmlinuz": unsigned}, nil)
	out, _ = explain(t, args(tree)...)
	wantLines(t, out, "note: grubx64.efi is trusted only through shim")
	out, code = explain(t, args(tree, "--secure-boot")...)
	wantLines(t, out, "PROBLEM: grubx64.efi is trusted only through shim: firmware with Secure Boot on refuses it as the first program")
	if code != 1 {
		t.Errorf("--secure-boot: exit %d, want 1", code)
	}
	// The whole chain, but an unsigned kernel.
	tree = seedTree(t, map[string]string{"pxelinux.0": "x", "shimx64.efi": ms, "grubx64.efi": distro, "sb/vmlinuz": unsigned}, nil)
	out, _ = explain(t, args(tree, "--secure-boot")...)
	wantLines(t, out, "grubx64.efi (loaded by shim): signed by a distribution's key", "linux /sb/vmlinuz",
		"PROBLEM:   /sb/vmlinuz is not a signed EFI kernel: GRUB under Secure Boot refuses it")
	// Made right: no problem.
	tree = seedTree(t, map[string]string{"pxelinux.0": "x", "shimx64.efi": ms, "grubx64.efi": distro, "sb/vmlinuz": distro}, nil)
	out, code = explain(t, args(tree, "--secure-boot")...)
	if code != 0 || strings.Contains(out, "PROBLEM") {
		t.Errorf("a signed chain: exit %d\n%s", code, out)
	}

	// arm64: its own chain (shimaa64.efi, grubaa64.efi) and the kernel of
	// the grub.cfg branch an arm64 GRUB takes — unsigned here, while the
	// x86_64 branch's is signed.
	writeFile(t, inv, []byte("profiles:\n  sb: {kernel: sb/vmlinuz, loader: grub, arch: {efi-arm64: {kernel: arm64/vmlinuz}}}\nhosts:\n  - {name: sb1, mac: \"52:54:00:5b:00:01\", ip: 192.0.2.61, profile: sb}\n"))
	tree = seedTree(t, map[string]string{"pxelinux.0": "x", "shimx64.efi": ms, "grubx64.efi": distro, "sb/vmlinuz": distro,
		"shimaa64.efi": ms, "grubaa64.efi": distro, "arm64/vmlinuz": unsigned}, nil)
	out, code = explain(t, args(tree, "--secure-boot")...)
	wantLines(t, out, "shimaa64.efi (UEFI arm64): signed by Microsoft's UEFI CA", "grubaa64.efi (loaded by shim): signed by a distribution's key",
		"(arm64 GRUB)", "PROBLEM:   /arm64/vmlinuz is not a signed EFI kernel", "/sb/vmlinuz: signed by a distribution's key")
	if code != 1 || strings.Count(out, "PROBLEM") != 1 {
		t.Errorf("arm64 with an unsigned kernel: exit %d, want 1 and one problem\n%s", code, out)
	}
}
