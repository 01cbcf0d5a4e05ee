package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// ARM64Assets are what an arm64 UEFI guest (QEMU virt under TCG) boots
// through a server: Debian's arm64 packages, fetched by an apt-get that
// keeps its arm64 package lists in the cache (the system's apt
// configuration and dpkg's architectures are left as they are), and the
// firmware of Debian's qemu-efi-aarch64.
type ARM64Assets struct {
	// Kernel is a Debian arm64 kernel (an Image with an EFI stub).
	Kernel string
	// Initrd is the marker initramfs: arm64init as /init.
	Initrd string
	// Shim is shimaa64.efi (shim-signed, signed by Microsoft's UEFI CA);
	// GRUB is Debian's signed network GRUB (grub-efi-arm64-signed's
	// grubnetaa64.efi.signed, prefix /grub: it reads grub/grub.cfg),
	// served as grubaa64.efi beside shim.
	Shim, GRUB string
	// Code and Vars are the UEFI firmware (AAVMF) and its variable store;
	// MSVars the store with Microsoft's keys enrolled and Secure Boot on.
	Code, Vars, MSVars string
}

var (
	aavmfCode   = []string{"/usr/share/AAVMF/AAVMF_CODE.fd"}
	aavmfVars   = []string{"/usr/share/AAVMF/AAVMF_VARS.fd"}
	aavmfMSVars = []string{"/usr/share/AAVMF/AAVMF_VARS.ms.fd"}
)

// aptARM64 are apt options that resolve and download arm64 packages from
// the system's sources with lists kept in dir: no dpkg --add-architecture,
// nothing written outside dir.
func aptARM64(dir string) []string {
	return []string{"-o", "APT::Architecture=arm64", "-o", "APT::Architectures=arm64",
		"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"), "-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
		"-o", "Dir::State::status=/dev/null", "-o", "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"}
}

// PrepareARM64 fetches (apt-get download, arm64) and caches the arm64
// kernel, shim and signed network GRUB, and builds the marker initramfs
// with arm64init (go build, GOARCH=arm64): it runs from within the pxed
// module.
func PrepareARM64(ctx context.Context, cache string) (*ARM64Assets, error) {
	a := &ARM64Assets{Code: firstExisting(aavmfCode), Vars: firstExisting(aavmfVars), MSVars: firstExisting(aavmfMSVars)}
	if a.Code == "" || a.Vars == "" || a.MSVars == "" {
		return nil, errors.New("AAVMF firmware missing: apt-get install qemu-efi-aarch64")
	}
	dir := filepath.Join(cache, "arm64")
	kdir, apt := filepath.Join(dir, "kernel"), filepath.Join(dir, "apt")
	a.Shim, a.GRUB = filepath.Join(dir, "shimaa64.efi"), filepath.Join(dir, "grubaa64.efi")
	kernel, err := cachedGlob(kdir, "vmlinuz-*")
	if err != nil {
		return nil, err
	}
	loaders := []struct{ pkg, pattern, file string }{
		{"shim-signed", `^usr/lib/shim/shimaa64\.efi\.signed$`, a.Shim},
		{"grub-efi-arm64-signed", `^usr/lib/grub/arm64-efi-signed/grubnetaa64\.efi\.signed$`, a.GRUB},
	}
	var fetch []int
	for i, l := range loaders {
		if _, err := os.Stat(l.file); err != nil {
			fetch = append(fetch, i)
		}
	}
	if kernel == "" || len(fetch) > 0 {
		if err := aptUpdateARM64(ctx, apt); err != nil {
			return nil, err
		}
	}
	if kernel == "" {
		if err := fetchDeb(ctx, kernelPackage("arm64", aptARM64(apt)...), kdir,
			map[string]string{`^boot/vmlinuz-`: ""}, aptARM64(apt)...); err != nil {
			return nil, fmt.Errorf("arm64 kernel: %w", err)
		}
		if kernel, err = cachedGlob(kdir, "vmlinuz-*"); err != nil || kernel == "" {
			return nil, fmt.Errorf("arm64 kernel: no vmlinuz in %s", kdir)
		}
	}
	a.Kernel = kernel
	for _, i := range fetch {
		l := loaders[i]
		if err := fetchDeb(ctx, func(context.Context) (string, error) { return l.pkg, nil }, dir,
			map[string]string{l.pattern: filepath.Base(l.file)}, aptARM64(apt)...); err != nil {
			return nil, fmt.Errorf("%s: %w", l.pkg, err)
		}
	}
	a.Initrd = filepath.Join(dir, "initramfs.cpio.gz")
	if err := buildARM64Initramfs(ctx, a.Initrd); err != nil {
		return nil, fmt.Errorf("arm64 initramfs: %w", err)
	}
	return a, nil
}

// aptUpdateARM64 reads the arm64 package lists of the system's sources
// into dir.
func aptUpdateARM64(ctx context.Context, dir string) error {
	for _, d := range []string{"lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "apt-get", append(aptARM64(dir), "update")...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("apt-get update (arm64 lists in %s): %v\n%s", dir, err, out)
	}
	return nil
}

// buildARM64Initramfs builds arm64init for the guest and writes the
// initramfs holding it as /init.
func buildARM64Initramfs(ctx context.Context, dst string) error {
	bin := dst + ".init"
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "pxed/internal/lab/arm64init")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build arm64init (run from the pxed module): %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	os.Remove(bin)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := writeCpioGz(&buf, []cpioEntry{
		{Name: "dev", Mode: modeDir | 0o755},
		{Name: "dev/console", Mode: modeChar | 0o600, RMajor: 5, RMin: 1},
		{Name: "proc", Mode: modeDir | 0o755},
		{Name: "init", Mode: modeFile | 0o755, Data: data},
	}); err != nil {
		return err
	}
	if err := os.WriteFile(dst+".tmp", buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(dst+".tmp", dst)
}

// arm64Machine turns the common QEMU arguments of a guest into an arm64
// UEFI one: qemu-system-aarch64, the virt machine with AAVMF as pflash
// (a copy of the variable store per guest: with Microsoft's keys and
// Secure Boot on for secureBoot).
func (l *Lab) arm64Machine(args []string, a *ARM64Assets, secureBoot bool) ([]string, error) {
	src := a.Vars
	if secureBoot {
		src = a.MSVars
	}
	vars := filepath.Join(l.Dir, "AAVMF_VARS-"+fmt.Sprint(seq.Add(1))+".fd")
	if err := copyFile(src, vars); err != nil {
		return nil, err
	}
	out := append([]string{"qemu-system-aarch64"}, args[1:]...)
	// pauth-impdef: QEMU's own pointer authentication algorithm, much
	// faster to emulate than the architected one, same to the guest.
	return append(out, "-machine", "virt", "-cpu", "max,pauth-impdef=on",
		"-drive", "if=pflash,format=raw,readonly=on,file="+a.Code, "-drive", "if=pflash,format=raw,file="+vars), nil
}
