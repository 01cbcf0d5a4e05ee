package e2e

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// nobody is the unprivileged user the service runs as in these tests.
const nobody = 65534

// setpriv runs a command as nobody with exactly caps (e.g.
// "+net_bind_service,+net_raw"; "" for none) as its inheritable, ambient
// and bounding sets: what the systemd unit's User= and
// AmbientCapabilities= give pxed.
func setpriv(caps string) []string {
	set := "-all"
	if caps != "" {
		set += "," + caps
	}
	id := strconv.Itoa(nobody)
	return []string{"setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups",
		"--inh-caps=" + set, "--ambient-caps=" + set, "--bounding-set=" + set, "--"}
}

// unprivilegedLab is a lab whose files nobody can read, with a copy of
// pxed nobody can run and a state directory nobody owns.
func unprivilegedLab(t *testing.T) (*lab, string) {
	t.Helper()
	need(t, "setpriv", "dhclient", "curl")
	l := newLab(t, "192.0.2.1/24")
	for _, d := range []string{filepath.Dir(l.dir), l.dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src, err := os.ReadFile(pxed(t))
	if err != nil {
		t.Fatal(err)
	}
	l.serveBin = filepath.Join(l.dir, "pxed")
	if err := os.WriteFile(l.serveBin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(l.dir, "tftpboot")
	os.MkdirAll(tree, 0o755)
	os.WriteFile(filepath.Join(tree, "pxelinux.0"), bytes.Repeat([]byte("pxelinux "), 5000), 0o644)
	state := filepath.Join(l.dir, "state")
	os.Mkdir(state, 0o750)
	if err := os.Chown(state, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	return l, state
}

// TestE2EUnprivileged runs pxed serve as the systemd unit does: as an
// unprivileged user holding only CAP_NET_BIND_SERVICE and CAP_NET_RAW. It
// serves DHCP on port 67 (ISC dhclient gets its fixed address) and TFTP
// on port 69 (curl gets the file), and /proc shows the process with that
// uid and exactly those two capabilities. Without them, it says which
// capability port 69 needs.
func TestE2EUnprivileged(t *testing.T) {
	t.Run("two capabilities", func(t *testing.T) {
		l, state := unprivilegedLab(t)
		l.serveAs = setpriv("+net_bind_service,+net_raw")
		l.setClientMAC("00:16:3e:72:79:e3")
		srv := l.startPxed(strings.Replace(seedConf, "next-server 192.0.2.166;", "next-server 192.0.2.1;", 1), state,
			"--tftp-addr", "192.0.2.1:69", "--tftp-root", filepath.Join(l.dir, "tftpboot"))

		env := l.dhclient(t)
		if env["new_ip_address"] != "192.0.2.199" {
			t.Fatalf("dhclient bound %q, want test_pvm's fixed 192.0.2.199; pxed log:\n%s", env["new_ip_address"], srv.log.String())
		}
		out := filepath.Join(l.dir, "got")
		if msg, err := l.try(l.cli, 60*time.Second, "curl", "-sS", "-o", out, "tftp://192.0.2.1/pxelinux.0"); err != nil {
			t.Fatalf("curl over TFTP: %v\n%s", err, msg)
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, bytes.Repeat([]byte("pxelinux "), 5000)) {
			t.Fatalf("curl got %d bytes, not the file", len(got))
		}

		status := procStatus(t, l, "pxed")
		if uid := strings.Fields(status["Uid"]); len(uid) < 4 || uid[0] != "65534" || uid[1] != "65534" {
			t.Errorf("pxed runs with Uid %q, want 65534 (real and effective)", status["Uid"])
		}
		// CAP_NET_BIND_SERVICE is bit 10, CAP_NET_RAW bit 13.
		for _, k := range []string{"CapEff", "CapPrm", "CapAmb", "CapBnd"} {
			if v, _ := strconv.ParseUint(status[k], 16, 64); v != 1<<10|1<<13 {
				t.Errorf("%s = %s, want exactly CAP_NET_BIND_SERVICE and CAP_NET_RAW (0x2400)", k, status[k])
			}
		}
	})

	t.Run("no capabilities", func(t *testing.T) {
		l, state := unprivilegedLab(t)
		cmd := exec.Command("ip", append(append([]string{"netns", "exec", l.srv}, setpriv("")...), l.serveBin, "serve",
			"--tftp-addr", "192.0.2.1:69", "--tftp-root", filepath.Join(l.dir, "tftpboot"), "--http-addr", "", "--state-dir", state)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !asExit(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("pxed serve on port 69 without capabilities: %v, want exit 1\n%s", err, out)
		}
		if !strings.Contains(string(out), "port 69 needs root or CAP_NET_BIND_SERVICE") {
			t.Fatalf("the error does not say what port 69 needs:\n%s", out)
		}
	})
}

// procStatus reads /proc/PID/status of the process named name in the
// server namespace's pxed (the only one the lab runs).
func procStatus(t *testing.T, l *lab, name string) map[string]string {
	t.Helper()
	out, err := exec.Command("pgrep", "-f", "-x", l.serveBin+" serve .*").Output()
	if err != nil {
		t.Fatalf("pgrep %s: %v", name, err)
	}
	pid := strings.Fields(string(out))[0]
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}
