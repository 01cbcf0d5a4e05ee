// Command arm64init is the /init of the lab's arm64 initramfs: the lab
// builds it for the guest's architecture (GOARCH=arm64, static), so the
// arm64 guest needs no busybox of its own. It prints the lab's marker line
// (lab.Marker, then the kernel command line) on the console and powers
// the machine off.
package main

import (
	"os"
	"strings"
	"syscall"
)

// marker is lab.Marker; the lab's test checks the two agree.
const marker = "PXED-LAB-MARKER cmdline="

func main() {
	os.Mkdir("/proc", 0o555)
	syscall.Mount("proc", "/proc", "proc", 0, "")
	line, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		line = []byte("(unreadable: " + err.Error() + ")")
	}
	if c, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		c.WriteString(marker + strings.TrimSpace(string(line)) + "\n")
		c.Sync()
	}
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
}
