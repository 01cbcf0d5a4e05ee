package lab

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The newc archive is read back by a real cpio (busybox's), names, modes
// and device numbers included.
func TestCpioReadByBusybox(t *testing.T) {
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Skip("busybox not installed")
	}
	var buf bytes.Buffer
	err := writeCpioGz(&buf, []cpioEntry{
		{Name: "bin", Mode: modeDir | 0o755},
		{Name: "bin/hello", Mode: modeFile | 0o755, Data: []byte("#!/bin/sh\necho hi\n")},
		{Name: "dev", Mode: modeDir | 0o755},
		{Name: "dev/console", Mode: modeChar | 0o600, RMajor: 5, RMin: 1},
		{Name: "odd", Mode: modeFile | 0o644, Data: []byte("abc")}, // lengths not multiples of 4
	})
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	cmd := exec.Command("busybox", "cpio", "-t", "-v")
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("busybox cpio -t: %v\n%s", err, out)
	}
	for _, want := range []string{"drwxr-xr-x", "bin/hello", "-rwxr-xr-x", "crw-------", "dev/console", "odd"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("cpio -tv lacks %q:\n%s", want, out)
		}
	}
	if !bytes.Contains(raw, []byte("TRAILER!!!")) {
		t.Error("no trailer")
	}
}

func TestPxedEvents(t *testing.T) {
	start := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	log := `{"time":"2026-11-22T04:00:02.5Z","level":"DEBUG","msg":"dhcp: OFFER","mac":"00:16:3e:72:79:e4","ip":"192.0.2.177"}
{"time":"2026-11-22T04:00:03.5Z","level":"INFO","msg":"dhcp: ACK","mac":"00:16:3e:72:79:e4","ip":"192.0.2.177","next-server":"192.0.2.1","file":"pxelinux.0"}
{"time":"2026-11-22T04:00:03.6Z","level":"INFO","msg":"dhcp: ACK","mac":"02:00:00:00:00:01","ip":"192.0.2.100","file":"pxelinux.0"}
not json
{"time":"2026-11-22T04:00:18.5Z","level":"INFO","msg":"tftp transfer","client":"192.0.2.177:2070","file":"pxelinux.0","bytes":42430,"duration":10000000,"result":"ok"}
{"time":"2026-11-22T04:00:19Z","level":"INFO","msg":"http request","client":"192.0.2.177:40000","method":"GET","path":"/k","status":200,"bytes":8247232,"duration":168000000}
`
	ev := PxedEvents(log, start, "00:16:3E:72:79:E4", "192.0.2.177")
	var b strings.Builder
	FormatTimeline(&b, ev)
	want := `     2.5s  DHCP offer 192.0.2.177
     3.5s  DHCP ack 192.0.2.177, next-server 192.0.2.1, boot file pxelinux.0
    18.5s  TFTP pxelinux.0 (42430 bytes, 10ms, ok)
    19.0s  HTTP GET /k (200, 8247232 bytes, 168ms)
`
	if b.String() != want {
		t.Errorf("timeline:\n%s\nwant:\n%s", b.String(), want)
	}
}

// The kernel package is found from the meta-package's dependency, per
// architecture (apt-cache on this machine's own lists).
func TestKernelPackage(t *testing.T) {
	if _, err := exec.LookPath("apt-cache"); err != nil {
		t.Skip("apt-cache is not installed")
	}
	name, err := kernelPackage("amd64")(context.Background())
	if err != nil || !regexp.MustCompile(`^linux-image-[0-9][^ ]*-amd64$`).MatchString(name) {
		t.Fatalf("kernelPackage(amd64) = %q, %v", name, err)
	}
	if _, err := kernelPackage("no-such-arch")(context.Background()); err == nil {
		t.Error("a meta-package that does not exist gave a kernel package")
	}
}
