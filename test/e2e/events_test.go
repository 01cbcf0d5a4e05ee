package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EEvents: after ISC dhclient boots as test_pvm (a host declaration
// with a fixed address) and curl fetches a file over TFTP and over HTTP,
// `pxed events` shows the timeline — the DHCP answers and both files —
// for the host by its name, its MAC and its address, and nothing for
// another machine.
func TestE2EEvents(t *testing.T) {
	need(t, "dhclient", "curl")
	l := newLab(t, "192.0.2.1/24")
	l.setClientMAC("00:16:3e:72:79:e3")
	tree := filepath.Join(l.dir, "tftpboot")
	os.MkdirAll(tree, 0o755)
	os.WriteFile(filepath.Join(tree, "pxelinux.0"), bytes.Repeat([]byte("boot "), 1000), 0o644)
	conf := strings.Replace(seedConf, "next-server 192.0.2.166;", "next-server 192.0.2.1;", 1)
	state := t.TempDir()
	l.startPxed(conf, state, "--tftp-addr", "192.0.2.1:69", "--http-addr", "192.0.2.1:8080", "--tftp-root", tree)
	if env := l.dhclient(t); env["new_ip_address"] != "192.0.2.199" {
		t.Fatalf("dhclient bound %q, want test_pvm's 192.0.2.199", env["new_ip_address"])
	}
	for _, url := range []string{"tftp://192.0.2.1/pxelinux.0", "http://192.0.2.1:8080/pxelinux.0"} {
		if out, err := l.try(l.cli, 60*time.Second, "curl", "-sS", "-o", "/dev/null", url); err != nil {
			t.Fatalf("curl %s: %v\n%s", url, err, out)
		}
	}
	events := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(pxed(t), append([]string{"events", "--state-dir", state}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("pxed events %q: %v\n%s", args, err, out)
		}
		return string(out)
	}
	for _, who := range []string{"test_pvm", "00:16:3e:72:79:e3", "192.0.2.199"} {
		out := events(who)
		for _, want := range []string{"REQUEST → ack 192.0.2.199", "pxelinux.0 5000 bytes ok", "/pxelinux.0 200"} {
			if !strings.Contains(out, want) {
				t.Errorf("pxed events %s lacks %q:\n%s", who, want, out)
			}
		}
		for _, kind := range []string{" dhcp ", " tftp ", " http "} {
			if !strings.Contains(out, kind) {
				t.Errorf("pxed events %s has no%sevent:\n%s", who, kind, out)
			}
		}
	}
	if out := events("02:00:5e:00:53:99"); strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("another machine's events:\n%s", out)
	}
	if out := events("--limit", "1"); strings.Count(strings.TrimSpace(out), "\n") != 1 {
		t.Errorf("--limit 1 printed:\n%s", out)
	}
}
