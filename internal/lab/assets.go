package lab

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"
)

// Marker is the line the lab's initramfs prints on the serial console,
// followed by the kernel command line it was booted with.
const Marker = "PXED-LAB-MARKER cmdline="

// CallbackOK and CallbackFailed report the install callback of an
// initramfs booted with pxed.callback=URL on its command line.
const (
	CallbackOK     = "PXED-LAB-CALLBACK ok"
	CallbackFailed = "PXED-LAB-CALLBACK failed"
)

// Assets are the files a lab boots, built from Debian packages and cached:
// nothing here is committed to the repository.
type Assets struct {
	// Kernel is a Debian amd64 kernel (bzImage with an EFI stub).
	Kernel string
	// Initrd is the marker initramfs: busybox, /init, and the e1000
	// module for the install callback.
	Initrd string
	// Xen is the hypervisor (boot/xen-*.gz), when asked for.
	Xen string
	// PXELinux is pxelinux.0; Syslinux the directory of its BIOS .c32
	// modules (ldlinux.c32, mboot.c32, libcom32.c32).
	PXELinux, Syslinux string
	// IPXEEFI is ipxe.efi (Debian ipxe); OVMFCode/OVMFVars the UEFI
	// firmware (Debian ovmf). Empty when not installed.
	IPXEEFI, OVMFCode, OVMFVars string
	// OVMFSecureCode and OVMFMSVars are OVMF with Secure Boot (SMM) and
	// variables with Microsoft's keys enrolled (Debian ovmf), for guests
	// with SecureBoot.
	OVMFSecureCode, OVMFMSVars string
}

// SecureBootAssets are the signed boot chain of Debian: shim (signed by
// Microsoft's UEFI CA) and the network GRUB (signed by Debian, trusted
// through shim), which boot the Debian kernel of Assets, also signed.
type SecureBootAssets struct {
	// Shim is shimx64.efi (shim-signed); GRUB is grubnetx64.efi.signed
	// (grub-efi-amd64-signed), served as grubx64.efi beside shim.
	Shim, GRUB string
	// GRUBModules is the directory of GRUB's x86_64-efi modules
	// (grub-efi-amd64-bin, the signed GRUB's version): the signed image
	// has no multiboot2 built in and, with Secure Boot off, loads it from
	// /grub/x86_64-efi/ on the server.
	GRUBModules string
}

// PrepareSecureBoot fetches (apt-get download) and caches shim and the
// signed network GRUB.
func PrepareSecureBoot(ctx context.Context, cache string) (*SecureBootAssets, error) {
	dir := filepath.Join(cache, "secureboot")
	sb := &SecureBootAssets{Shim: filepath.Join(dir, "shimx64.efi"), GRUB: filepath.Join(dir, "grubx64.efi"), GRUBModules: filepath.Join(dir, "x86_64-efi")}
	for _, f := range []struct{ pkg, pattern, as string }{
		{"shim-signed", `^usr/lib/shim/shimx64\.efi\.signed$`, "shimx64.efi"},
		{"grub-efi-amd64-signed", `^usr/lib/grub/x86_64-efi-signed/grubnetx64\.efi\.signed$`, "grubx64.efi"},
	} {
		if _, err := os.Stat(filepath.Join(dir, f.as)); err == nil {
			continue
		}
		pkg := f.pkg
		if err := fetchDeb(ctx, func(context.Context) (string, error) { return pkg, nil }, dir, map[string]string{f.pattern: f.as}); err != nil {
			return nil, fmt.Errorf("%s: %w", f.pkg, err)
		}
	}
	if _, err := os.Stat(filepath.Join(sb.GRUBModules, "multiboot2.mod")); err != nil {
		// The modules of the signed GRUB's own build: grub-efi-amd64-bin
		// at the version grub-efi-amd64-signed was built from.
		ver, err := signedGRUBVersion(ctx)
		if err != nil {
			return nil, err
		}
		if err := fetchDeb(ctx, func(context.Context) (string, error) { return "grub-efi-amd64-bin=" + ver, nil }, sb.GRUBModules,
			map[string]string{`^usr/lib/grub/x86_64-efi/[^/]+\.(mod|lst)$`: ""}); err != nil {
			return nil, fmt.Errorf("grub-efi-amd64-bin: %w", err)
		}
	}
	return sb, nil
}

// signedGRUBVersion is the grub-efi-amd64-bin version the candidate
// grub-efi-amd64-signed was built from: its Built-Using grub2 version
// (apt-cache lists the candidate first).
func signedGRUBVersion(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "show", "grub-efi-amd64-signed").Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache show grub-efi-amd64-signed: %w", err)
	}
	m := regexp.MustCompile(`(?m)^Built-Using:.*?grub2 \(= ([^)]+)\)`).FindSubmatch(out)
	if m == nil {
		return "", errors.New("apt-cache show grub-efi-amd64-signed names no grub2 version it was built from")
	}
	return string(m[1]), nil
}

// Known places of the Debian packages' files.
var (
	pxelinuxPaths = []string{"/usr/lib/PXELINUX/pxelinux.0"}
	syslinuxDirs  = []string{"/usr/lib/syslinux/modules/bios"}
	ipxeEFIPaths  = []string{"/usr/lib/ipxe/ipxe.efi"}
	ovmfCode      = []string{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_CODE_4M.fd"}
	ovmfVars      = []string{"/usr/share/OVMF/OVMF_VARS.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"}
	ovmfSecure    = []string{"/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"}
	ovmfMSVars    = []string{"/usr/share/OVMF/OVMF_VARS_4M.ms.fd"}
)

func firstExisting(paths []string) string {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// PrepareAssets fetches (apt-get download) and builds what is missing in
// cache. withXen also fetches the Xen hypervisor.
func PrepareAssets(ctx context.Context, cache string, withXen bool) (*Assets, error) {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, err
	}
	a := &Assets{
		PXELinux: firstExisting(pxelinuxPaths), Syslinux: firstExisting(syslinuxDirs),
		IPXEEFI: firstExisting(ipxeEFIPaths), OVMFCode: firstExisting(ovmfCode), OVMFVars: firstExisting(ovmfVars),
		OVMFSecureCode: firstExisting(ovmfSecure), OVMFMSVars: firstExisting(ovmfMSVars),
	}
	if a.PXELinux == "" || a.Syslinux == "" {
		return nil, errors.New("pxelinux.0 or the syslinux BIOS modules are missing: apt-get install pxelinux syslinux-common")
	}
	var err error
	kdir := filepath.Join(cache, "kernel")
	if a.Kernel, err = cachedGlob(kdir, "vmlinuz-*"); err != nil || a.Kernel == "" {
		if err := fetchDeb(ctx, kernelPackage("amd64"), kdir, map[string]string{`^boot/vmlinuz-`: "", `/e1000\.ko$`: "e1000.ko"}); err != nil {
			return nil, fmt.Errorf("kernel: %w", err)
		}
		if a.Kernel, err = cachedGlob(kdir, "vmlinuz-*"); err != nil || a.Kernel == "" {
			return nil, fmt.Errorf("kernel: no vmlinuz in %s", kdir)
		}
	}
	a.Initrd = filepath.Join(cache, "initramfs-"+initVersion+".cpio.gz")
	if _, err := os.Stat(a.Initrd); err != nil {
		if err := buildInitramfs(a.Initrd, filepath.Join(kdir, "e1000.ko")); err != nil {
			return nil, fmt.Errorf("initramfs: %w", err)
		}
	}
	if withXen {
		xdir := filepath.Join(cache, "xen")
		if a.Xen, err = cachedGlob(xdir, "xen-*.gz"); err != nil || a.Xen == "" {
			if err := fetchDeb(ctx, func(context.Context) (string, error) { return "xen-hypervisor-4.17-amd64", nil }, xdir, map[string]string{`^boot/xen-.*\.gz$`: ""}); err != nil {
				return nil, fmt.Errorf("xen: %w", err)
			}
			if a.Xen, err = cachedGlob(xdir, "xen-*.gz"); err != nil || a.Xen == "" {
				return nil, fmt.Errorf("xen: no boot/xen-*.gz in %s", xdir)
			}
		}
	}
	return a, nil
}

func cachedGlob(dir, pattern string) (string, error) {
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(m) == 0 {
		return "", err
	}
	return m[0], nil
}

// kernelPackage returns the finder of the package linux-image-ARCH
// currently depends on (apt-cache run with aptOpts).
func kernelPackage(arch string, aptOpts ...string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		meta := "linux-image-" + arch
		out, err := exec.CommandContext(ctx, "apt-cache", append(aptOpts, "show", meta)...).Output()
		if err != nil {
			return "", fmt.Errorf("apt-cache show %s: %w", meta, err)
		}
		m := regexp.MustCompile(`(?m)^Depends:.*?(linux-image-[0-9][^ ,]*-` + regexp.QuoteMeta(arch) + `)`).FindSubmatch(out)
		if m == nil {
			return "", fmt.Errorf("no kernel package named in apt-cache show %s", meta)
		}
		return string(m[1]), nil
	}
}

// fetchDeb downloads a package with apt-get download and copies the files
// whose path (inside the package, without "./") matches a pattern into
// dir, under the name given ("" keeps the base name). aptOpts go to
// apt-get before "download".
func fetchDeb(ctx context.Context, pkg func(context.Context) (string, error), dir string, want map[string]string, aptOpts ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	name, err := pkg(ctx)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(dir, ".dl-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	cmd := exec.CommandContext(ctx, "apt-get", append(aptOpts, "download", name)...)
	cmd.Dir = work
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get download %s: %v\n%s", name, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(work, "*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("apt-get download %s left %v", name, debs)
	}
	x := filepath.Join(work, "x")
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], x).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg-deb -x %s: %v\n%s", debs[0], err, out)
	}
	res := make(map[*regexp.Regexp]string, len(want))
	for pat, as := range want {
		res[regexp.MustCompile(pat)] = as
	}
	found := 0
	err = filepath.Walk(x, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(x, p)
		for re, as := range res {
			if re.MatchString(rel) {
				if as == "" {
					as = filepath.Base(p)
				}
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, as+".tmp"), data, 0o644); err != nil {
					return err
				}
				if err := os.Rename(filepath.Join(dir, as+".tmp"), filepath.Join(dir, as)); err != nil {
					return err
				}
				found++
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if found < len(want) {
		return fmt.Errorf("%s: found %d of the %d files wanted", name, found, len(want))
	}
	return nil
}

// initVersion names the initramfs in the cache; change it when /init changes.
const initVersion = "v2"

// initScript prints the marker on the console and, when the kernel runs
// without console= (a PXELINUX append line written for real hardware), on
// the first serial port too. With pxed.callback=URL it brings up eth0
// (e1000) with DHCP and POSTs to URL first: the install's %post.
const initScript = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
cmdline=$(cat /proc/cmdline)
say() {
	echo "$*" > /dev/console
	case " $cmdline " in *" console="*) ;; *) echo "$*" > /dev/ttyS0 2>/dev/null ;; esac
}
cb=$(echo "$cmdline" | sed -n 's/.*pxed\.callback=\([^ ]*\).*/\1/p')
if [ -n "$cb" ]; then
	insmod /lib/e1000.ko 2>/dev/null
	ip link set eth0 up
	if udhcpc -i eth0 -n -q -t 5 -T 2 -s /bin/udhcpc.sh >/dev/null 2>&1 && wget -q -O /dev/null --post-data= "$cb"; then
		say "` + CallbackOK + `"
	else
		say "` + CallbackFailed + `"
	fi
fi
say "` + Marker + `$cmdline"
poweroff -f
`

const udhcpcScript = `#!/bin/busybox sh
case "$1" in
bound|renew)
	ip addr add "$ip/${mask:-24}" dev "$interface"
	[ -n "$router" ] && ip route add default via "${router%% *}"
	;;
esac
exit 0
`

// buildInitramfs writes the marker initramfs: a static busybox, /init and,
// if it exists, the e1000 module.
func buildInitramfs(dst, e1000 string) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return errors.New("busybox not found (apt-get install busybox-static)")
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return err
	}
	if !isStatic(data) {
		return fmt.Errorf("%s is not a static busybox (apt-get install busybox-static)", bb)
	}
	entries := []cpioEntry{
		{Name: "bin", Mode: modeDir | 0o755},
		{Name: "dev", Mode: modeDir | 0o755},
		{Name: "dev/console", Mode: modeChar | 0o600, RMajor: 5, RMin: 1},
		{Name: "proc", Mode: modeDir | 0o755},
		{Name: "sys", Mode: modeDir | 0o755},
		{Name: "lib", Mode: modeDir | 0o755},
		{Name: "bin/busybox", Mode: modeFile | 0o755, Data: data},
		{Name: "bin/udhcpc.sh", Mode: modeFile | 0o755, Data: []byte(udhcpcScript)},
		{Name: "init", Mode: modeFile | 0o755, Data: []byte(initScript)},
	}
	if mod, err := os.ReadFile(e1000); err == nil {
		entries = append(entries, cpioEntry{Name: "lib/e1000.ko", Mode: modeFile | 0o644, Data: mod})
	}
	var buf bytes.Buffer
	if err := writeCpioGz(&buf, entries); err != nil {
		return err
	}
	if err := os.WriteFile(dst+".tmp", buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(dst+".tmp", dst)
}

// CacheDir is where the lab keeps its assets: $PXED_LAB_CACHE, else the
// user cache directory.
func CacheDir() string {
	if d := os.Getenv("PXED_LAB_CACHE"); d != "" {
		return d
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "pxed-lab")
}

// isStatic reports whether data is an ELF executable without an
// interpreter (a dynamic loader).
func isStatic(data []byte) bool {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}
