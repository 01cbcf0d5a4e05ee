package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"pxed/internal/testutil"
)

// TestE2EDebianPackage builds the Debian package with the documented
// command, installs it on this machine with dpkg -i, checks what a user
// gets (pxed version, the pxed system user, the pxed-xenboot link, a unit
// systemd-analyze accepts, a default configuration `pxed check` accepts),
// runs the installed unit's ExecStart as its service manager would (see
// runAsUnit), then purges it and checks that it took everything with it. It changes
// the machine it runs on, so it refuses to replace a pxed package that is
// already installed.
func TestE2EDebianPackage(t *testing.T) {
	need(t, "dpkg", "dpkg-deb", "go", "git", "systemd-analyze")
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "pxed").Output(); err == nil && strings.Contains(string(out), "installed") {
		t.Fatalf("a pxed package is installed on this machine (%s): not replacing it", out)
	}
	run := func(timeout time.Duration, name string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "VERSION=9.9.9~test")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	dist := t.TempDir()
	run(10*time.Minute, "packaging/build-deb.sh", dist)
	deb := filepath.Join(dist, "pxed_9.9.9~test_"+strings.TrimSpace(run(time.Minute, "go", "env", "GOARCH"))+".deb")
	if _, err := os.Stat(deb); err != nil {
		t.Fatalf("build-deb.sh made no %s: %v", filepath.Base(deb), err)
	}

	t.Cleanup(func() { exec.Command("dpkg", "--purge", "pxed").Run() })
	run(2*time.Minute, "dpkg", "-i", deb)
	if got := strings.TrimSpace(run(time.Minute, "/usr/bin/pxed", "version")); !strings.HasPrefix(got, "pxed v9.9.9~test") {
		t.Errorf("installed pxed version: %q, want pxed v9.9.9~test", got)
	}
	if uid, err := exec.Command("id", "-u", "pxed").Output(); err != nil {
		t.Errorf("no pxed user after install: %v", err)
	} else if n, _ := strconv.Atoi(strings.TrimSpace(string(uid))); n == 0 || n >= 1000 {
		t.Errorf("the pxed user has uid %d, want a system user (1..999)", n)
	}
	if dst, err := os.Readlink("/usr/lib/pxed/pxed-xenboot"); err != nil || dst != "/usr/bin/pxed" {
		t.Errorf("/usr/lib/pxed/pxed-xenboot -> %q (%v), want /usr/bin/pxed", dst, err)
	}
	for _, f := range []string{"/usr/share/man/man8/pxed.8.gz", "/usr/share/bash-completion/completions/pxed", "/usr/share/fish/vendor_completions.d/pxed.fish"} {
		if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
			t.Errorf("%s is missing or empty after install: %v", f, err)
		}
	}
	if fi, err := os.Stat("/srv/tftp"); err != nil || !fi.IsDir() {
		t.Errorf("/srv/tftp, the default boot tree, is not there after install: %v", err)
	}
	if out := run(time.Minute, "systemd-analyze", "verify", "/lib/systemd/system/pxed.service"); strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify on the installed unit:\n%s", out)
	}
	if out := run(time.Minute, "/usr/bin/pxed", "check", "--config", "/etc/pxed/pxed.yaml"); !strings.Contains(out, "configuration is valid") {
		t.Errorf("pxed check on the shipped /etc/pxed/pxed.yaml:\n%s", out)
	}

	runAsUnit(t, "/lib/systemd/system/pxed.service")

	run(2*time.Minute, "dpkg", "--purge", "pxed")
	for _, p := range []string{"/usr/bin/pxed", "/usr/lib/pxed/pxed-xenboot", "/lib/systemd/system/pxed.service", "/etc/pxed/pxed.yaml", "/var/lib/pxed"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is still there after dpkg --purge", p)
		}
	}
	if _, err := os.Stat("/srv/tftp"); err != nil {
		t.Errorf("purging pxed removed /srv/tftp, the site's boot tree (tftpd-hpa's too): %v", err)
	}
	if err := exec.Command("id", "pxed").Run(); err == nil {
		t.Error("the pxed user is still there after dpkg --purge")
	}
}

// runAsUnit runs the installed unit's ExecStart the way systemd starts
// the service (there is no systemd PID 1 in CI): as its User and Group
// with exactly its AmbientCapabilities (also the bounding set),
// NoNewPrivileges, its UMask, the StateDirectory created for the user,
// and a NOTIFY_SOCKET; in a namespace of its own, on the shipped
// /etc/pxed/pxed.yaml. It checks that the server says READY=1 once it
// serves, serves a file of /srv/tftp over TFTP (port 69) and HTTP, holds
// only those two capabilities, survives ExecReload (SIGHUP), and on
// SIGTERM says STOPPING=1 and exits 0.
func runAsUnit(t *testing.T, unit string) {
	t.Helper()
	need(t, "setpriv", "curl")
	// The last value of each key, as systemd keeps for these.
	u := map[string]string{}
	for k, vs := range testutil.UnitKeys(t, unit) {
		u[k] = vs[len(vs)-1]
	}
	if u["Type"] != "notify" || u["User"] != "pxed" || u["ExecReload"] != "/bin/kill -HUP $MAINPID" {
		t.Fatalf("%s: Type=%s User=%s ExecReload=%s, not what this test emulates", unit, u["Type"], u["User"], u["ExecReload"])
	}
	var caps []string
	for _, c := range strings.Fields(u["AmbientCapabilities"]) {
		caps = append(caps, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	set := "-all," + strings.Join(caps, ",")
	if err := exec.Command("install", "-d", "-o", "pxed", "-g", "pxed", "-m", u["StateDirectoryMode"], "/var/lib/"+u["StateDirectory"]).Run(); err != nil {
		t.Fatalf("StateDirectory: %v", err)
	}
	const probe = "/srv/tftp/pxed-unit-test.txt"
	if err := os.WriteFile(probe, []byte("served by the unit\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(probe) })

	ns := fmt.Sprintf("pxunit-%d", os.Getpid()%100000)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	for _, c := range [][]string{{"netns", "add", ns}, {"-n", ns, "link", "set", "lo", "up"}} {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			t.Fatalf("ip %q: %v %s", c, err, out)
		}
	}
	// Where the service user can reach it, as systemd's /run/systemd/notify.
	sockDir, err := os.MkdirTemp("/run", "pxed-notify-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	os.Chmod(sockDir, 0o755)
	sockPath := filepath.Join(sockDir, "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	os.Chmod(sockPath, 0o777) // the service user writes to it, as to systemd's
	msgs := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := notify.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	waitMsg := func(want string) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					t.Fatalf("notify socket closed before %s", want)
				}
				if slices.Contains(strings.Split(m, "\n"), want) {
					return
				}
			case <-timeout:
				t.Fatalf("no %s on NOTIFY_SOCKET within 20 s", want)
			}
		}
	}

	args := append([]string{"netns", "exec", ns, "setpriv", "--reuid=pxed", "--regid=pxed", "--init-groups", "--no-new-privs",
		"--inh-caps=" + set, "--ambient-caps=" + set, "--bounding-set=" + set, "--"}, strings.Fields(u["ExecStart"])...)
	cmd := exec.Command("ip", args...)
	log := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sockPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	umask, _ := strconv.ParseUint(u["UMask"], 8, 32)
	old := syscall.Umask(int(umask))
	err = cmd.Start()
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if t.Failed() {
			t.Logf("pxed (as the unit) log:\n%s", log.String())
		}
	})
	waitMsg("READY=1")

	for _, url := range []string{"tftp://127.0.0.1/pxed-unit-test.txt", "http://127.0.0.1:8080/pxed-unit-test.txt"} {
		out, err := exec.Command("ip", "netns", "exec", ns, "curl", "-fsS", "--max-time", "20", url).CombinedOutput()
		if err != nil || string(out) != "served by the unit\n" {
			t.Errorf("curl %s from the unit's server: %v %q", url, err, out)
		}
	}
	pid, err := exec.Command("pgrep", "-u", "pxed", "-f", "-x", strings.Join(strings.Fields(u["ExecStart"]), " ")).Output()
	if err != nil {
		t.Fatalf("no pxed process of user pxed: %v", err)
	}
	status, _ := os.ReadFile("/proc/" + strings.Fields(string(pid))[0] + "/status")
	for _, l := range strings.Split(string(status), "\n") {
		// CAP_NET_BIND_SERVICE (10) and CAP_NET_RAW (13), nothing else.
		if k, v, _ := strings.Cut(l, ":"); (k == "CapEff" || k == "CapBnd" || k == "CapAmb") && strings.TrimSpace(v) != "0000000000002400" {
			t.Errorf("the unit's pxed has %s %s, want 0000000000002400 (net_bind_service, net_raw)", k, strings.TrimSpace(v))
		}
	}
	if fi, err := os.Stat("/var/lib/pxed/api-token"); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("the API token in the StateDirectory: %v, mode %v (want none for group and others)", err, fi.Mode())
	}

	syscall.Kill(cmd.Process.Pid, syscall.SIGHUP) // ExecReload
	time.Sleep(500 * time.Millisecond)
	if out, err := exec.Command("ip", "netns", "exec", ns, "curl", "-fsS", "--max-time", "20", "http://127.0.0.1:8080/pxed-unit-test.txt").CombinedOutput(); err != nil {
		t.Errorf("after ExecReload (SIGHUP): %v %s", err, out)
	}
	syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
	waitMsg("STOPPING=1")
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("pxed (as the unit) on SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("pxed (as the unit) still runs 20 s after SIGTERM")
	}
}
