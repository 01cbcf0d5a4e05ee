package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pxlab "pxed/internal/lab"
)

// Boot files come from internal/lab (labAssets, in boot_test.go): a Debian
// kernel and the marker initramfs, built and cached, never committed.

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
	i := strings.Index(string(serial), pxlab.Marker)
	if i < 0 {
		t.Fatalf("no marker on the serial console:\n%s", tail(string(serial), 3000))
	}
	line, _, _ := strings.Cut(string(serial)[i+len(pxlab.Marker):], "\n")
	return strings.TrimSpace(line)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
