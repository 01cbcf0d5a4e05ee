package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Boot assets, built from Debian packages by the tests and cached (never
// committed): a kernel from linux-image-*-amd64 and a busybox initramfs
// whose /init prints a marker line with /proc/cmdline and powers off.

// Marker is what the test initramfs prints, followed by /proc/cmdline.
const Marker = "PXED-E2E-MARKER cmdline="

func cacheDir(t *testing.T) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "pxed-e2e")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

var (
	kernelOnce sync.Once
	kernelPath string
	kernelErr  error
)

// debianKernel returns the path of a Debian amd64 kernel image, fetched
// with apt-get download on first use.
func debianKernel(t *testing.T) string {
	t.Helper()
	need(t, "apt-get", "dpkg-deb", "apt-cache")
	kernelOnce.Do(func() { kernelPath, kernelErr = fetchKernel(cacheDir(t)) })
	if kernelErr != nil {
		if e2eRequired() {
			t.Fatalf("kernel for the boot tests: %v", kernelErr)
		}
		t.Skipf("kernel for the boot tests: %v", kernelErr)
	}
	return kernelPath
}

func fetchKernel(dir string) (string, error) {
	if m, _ := filepath.Glob(filepath.Join(dir, "vmlinuz-*")); len(m) > 0 {
		return m[0], nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "apt-cache", "show", "linux-image-amd64").Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache show linux-image-amd64: %v", err)
	}
	m := regexp.MustCompile(`(?m)^Depends:.*?(linux-image-[0-9][^ ,]*-amd64)`).FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("no kernel package in apt-cache show linux-image-amd64")
	}
	work, err := os.MkdirTemp(dir, "dl-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	cmd := exec.CommandContext(ctx, "apt-get", "download", string(m[1]))
	cmd.Dir = work
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download %s: %v\n%s", m[1], err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(work, "*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download left %v", debs)
	}
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], filepath.Join(work, "x")).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb -x: %v\n%s", err, out)
	}
	k, _ := filepath.Glob(filepath.Join(work, "x", "boot", "vmlinuz-*"))
	if len(k) != 1 {
		return "", fmt.Errorf("no boot/vmlinuz-* in %s", debs[0])
	}
	dst := filepath.Join(dir, filepath.Base(k[0]))
	data, err := os.ReadFile(k[0])
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(dst+".tmp", data, 0o644); err != nil {
		return "", err
	}
	return dst, os.Rename(dst+".tmp", dst)
}

const initScript = `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox echo "` + Marker + `$(/bin/busybox cat /proc/cmdline)"
/bin/busybox poweroff -f
`

// initramfs builds (once per test binary and cache) a gzipped newc cpio
// with a static busybox and the marker /init.
func initramfs(t *testing.T) string {
	t.Helper()
	need(t, "busybox")
	dst := filepath.Join(cacheDir(t), "initramfs-marker.cpio.gz")
	if _, err := os.Stat(dst); err == nil {
		return dst
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("file", "-L", bb).Output(); len(out) > 0 && !strings.Contains(string(out), "statically linked") {
		t.Fatalf("%s is not static (install busybox-static)", bb)
	}
	root := t.TempDir()
	for _, d := range []string{"bin", "proc", "dev"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755)
	os.WriteFile(filepath.Join(root, "init"), []byte(initScript), 0o755)
	// The kernel opens /dev/console for init's output.
	if out, err := exec.Command("mknod", "-m", "600", filepath.Join(root, "dev", "console"), "c", "5", "1").CombinedOutput(); err != nil {
		t.Fatalf("mknod /dev/console: %v\n%s", err, out)
	}
	cmd := exec.Command("sh", "-c", "find . | busybox cpio -o -H newc 2>/dev/null | gzip -9 > "+dst+".tmp && mv "+dst+".tmp "+dst)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the initramfs: %v\n%s", err, out)
	}
	return dst
}

// bootDirect boots kernel+initrd with args under QEMU (software
// emulation) and returns the /proc/cmdline the marker printed.
func bootDirect(t *testing.T, kernel, initrd, args string) string {
	t.Helper()
	need(t, "qemu-system-x86_64")
	log := filepath.Join(t.TempDir(), "serial.log")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-display", "none", "-monitor", "none",
		"-no-reboot", "-nic", "none", "-kernel", kernel, "-initrd", initrd, "-append", args+" console=ttyS0 panic=-1",
		"-serial", "file:"+log)
	cmd.Stdin = nil
	out, err := cmd.CombinedOutput()
	serial, _ := os.ReadFile(log)
	if ctx.Err() != nil {
		t.Fatalf("QEMU did not power off in 120s\n%s", tail(string(serial), 2000))
	}
	if err != nil {
		t.Fatalf("qemu: %v\n%s\n%s", err, out, tail(string(serial), 2000))
	}
	i := strings.Index(string(serial), Marker)
	if i < 0 {
		t.Fatalf("no marker on the serial console:\n%s", tail(string(serial), 3000))
	}
	line, _, _ := strings.Cut(string(serial)[i+len(Marker):], "\n")
	return strings.TrimSpace(line)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
