package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestE2EDebianPackage builds the Debian package with the documented
// command, installs it on this machine with dpkg -i, checks what a user
// gets (pxed version, the pxed system user, the pxed-xenboot link, a unit
// systemd-analyze accepts, a default configuration `pxed check` accepts),
// then purges it and checks that it took everything with it. It changes
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
