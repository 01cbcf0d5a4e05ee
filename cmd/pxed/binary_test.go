package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"pxed/internal/testutil"
)

func TestRunCommands(t *testing.T) {
	tests := []struct {
		args         []string
		code         int
		stdout       string // substring
		stderr       string // substring
		stdoutIsNone bool
	}{
		{args: []string{"version"}, code: 0, stdout: "pxed " + versionString()},
		{args: []string{"--version"}, code: 0, stdout: "pxed"},
		{args: []string{"help"}, code: 0, stdout: "Usage:"},
		{args: nil, code: 2, stderr: "Usage:", stdoutIsNone: true},
		{args: []string{"nonsense"}, code: 2, stderr: `unknown command "nonsense"`, stdoutIsNone: true},
		{args: []string{"serve", "--tftp-max-blksize", "5"}, code: 2, stderr: "tftp.max-blksize", stdoutIsNone: true},
		{args: []string{"serve", "--bogus"}, code: 2, stderr: "bogus", stdoutIsNone: true},
		{args: []string{"serve", "stray"}, code: 2, stderr: `unexpected argument "stray"`, stdoutIsNone: true},
		{args: []string{"serve", "-h"}, code: 0, stderr: "-tftp-root"},
		{args: []string{"hexip", "192.168.200.177"}, code: 0, stdout: "C0A8C8B1\n"},
		{args: []string{"hexip", "192.0.2.177", "nonsense"}, code: 1, stdout: "C00002B1\n", stderr: `"nonsense" is not an IPv4 address`},
		{args: []string{"hexip"}, code: 2, stderr: "usage: pxed hexip", stdoutIsNone: true},
		// --help on every command: exit 0, a synopsis and examples.
		{args: []string{"serve", "--help"}, code: 0, stderr: "Examples:\n  pxed serve --config"},
		{args: []string{"check", "-h"}, code: 0, stderr: "Examples:\n  pxed check --config"},
		{args: []string{"leases", "--help"}, code: 0, stderr: "Examples:\n  pxed leases --config"},
		{args: []string{"host", "--help"}, code: 0, stdout: "usage: pxed host list"},
		{args: []string{"hexip", "--help"}, code: 0, stdout: "Examples:"},
		{args: []string{"vm", "--help"}, code: 0, stdout: "usage: pxed vm create"},
		{args: []string{"vm", "create", "-h"}, code: 0, stdout: "usage: pxed vm create"},
		{args: []string{"explain", "--help"}, code: 0, stderr: "usage: pxed explain"},
		{args: []string{"import", "--help"}, code: 0, stderr: "usage: pxed import"},
		{args: []string{"leases", "stray"}, code: 2, stderr: `unexpected argument "stray"`},
	}
	for _, tt := range tests {
		var stdout, stderr testutil.SyncBuffer
		code := run(tt.args, &stdout, &stderr)
		if code != tt.code {
			t.Errorf("pxed %q: exit %d, want %d; stderr:\n%s", tt.args, code, tt.code, stderr.String())
		}
		if !strings.Contains(stdout.String(), tt.stdout) {
			t.Errorf("pxed %q: stdout %q does not contain %q", tt.args, stdout.String(), tt.stdout)
		}
		if !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("pxed %q: stderr %q does not contain %q", tt.args, stderr.String(), tt.stderr)
		}
		if tt.stdoutIsNone && stdout.String() != "" {
			t.Errorf("pxed %q: wrote %q to stdout, want nothing", tt.args, stdout.String())
		}
	}
}

func TestBinary(t *testing.T) {
	bin := buildPxed(t)

	t.Run("version", func(t *testing.T) {
		out, err := exec.Command(bin, "version").Output()
		if code := exitCode(t, err); code != 0 {
			t.Fatalf("exit %d", code)
		}
		got := strings.TrimSpace(string(out))
		if got != "pxed test-1.2.3" && !strings.HasPrefix(got, "pxed test-1.2.3 (git ") {
			t.Fatalf("pxed version printed %q, want the stamped %q, with the revision when the build recorded it", got, "pxed test-1.2.3")
		}
		// Built in a git checkout, the revision is the checkout's.
		if head, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil && strings.Contains(got, "(git ") {
			if want := "(git " + strings.TrimSpace(string(head))[:12]; !strings.Contains(got, want) {
				t.Errorf("pxed version printed %q, want %s…", got, want)
			}
		}
	})

	t.Run("xen-bootloader help", func(t *testing.T) {
		out, err := exec.Command(bin, "xen-bootloader", "--help").Output()
		if code := exitCode(t, err); code != 0 || !strings.Contains(string(out), "usage: pxed xen-bootloader") || !strings.Contains(string(out), "Examples") {
			t.Fatalf("pxed xen-bootloader --help: exit %d\n%s", code, out)
		}
	})

	t.Run("nonsense", func(t *testing.T) {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "nonsense")
		cmd.Stderr = &stderr
		err := cmd.Run()
		if code := exitCode(t, err); code != 2 {
			t.Errorf("exit %d, want 2", code)
		}
		if !strings.Contains(stderr.String(), "nonsense") {
			t.Errorf("stderr %q does not name the command", stderr.String())
		}
	})

	t.Run("bad-blksize", func(t *testing.T) {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "serve", "--tftp-max-blksize", "5")
		cmd.Stderr = &stderr
		err := cmd.Run()
		if code := exitCode(t, err); code != 2 {
			t.Errorf("exit %d, want 2", code)
		}
		if !strings.Contains(stderr.String(), "tftp.max-blksize") {
			t.Errorf("stderr %q does not name tftp.max-blksize", stderr.String())
		}
	})

	t.Run("serve-sigterm", func(t *testing.T) {
		root := t.TempDir()
		writeFile(t, filepath.Join(root, "pxelinux.0"), []byte("pxelinux binary"))
		httpAddr, tftpAddr := freeTCP(t), freeUDP(t)
		var stderr testutil.SyncBuffer
		cmd := exec.Command(bin, "serve",
			"--tftp-root", root,
			"--state-dir", filepath.Join(t.TempDir(), "state"),
			"--tftp-addr", tftpAddr,
			"--http-addr", httpAddr,
			"--shutdown-grace", "2s",
		)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// exited is closed when the process has been waited for; waitErr is
		// valid after that.
		exited := make(chan struct{})
		var waitErr error
		go func() { waitErr = cmd.Wait(); close(exited) }()
		defer func() {
			select {
			case <-exited:
			default:
				cmd.Process.Kill()
				<-exited
			}
		}()

		// Wait until HTTP answers (or the process dies). The bound is a
		// hang guard for a broken build, not a timing assertion.
		url := "http://" + httpAddr + "/pxelinux.0"
		var body []byte
		for i := 0; ; i++ {
			select {
			case <-exited:
				t.Fatalf("pxed exited early (%v); stderr:\n%s", waitErr, stderr.String())
			default:
			}
			resp, err := http.Get(url)
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("GET %s: status %d, err %v", url, resp.StatusCode, err)
				}
				break
			}
			if i == 600 {
				t.Fatalf("HTTP never answered: %v; stderr:\n%s", err, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		if string(body) != "pxelinux binary" {
			t.Errorf("GET: body %q", body)
		}
		// TFTP works in the real binary too.
		ua, _ := net.ResolveUDPAddr("udp4", tftpAddr)
		if got, err := tftpGet(t, ua, "pxelinux.0"); err != nil || string(got) != "pxelinux binary" {
			t.Errorf("TFTP: %q, %v", got, err)
		}

		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-exited:
			if code := exitCode(t, waitErr); code != 0 {
				t.Errorf("exit %d after SIGTERM, want 0; stderr:\n%s", code, stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("pxed did not exit after SIGTERM; stderr:\n%s", stderr.String())
		}
		if !strings.Contains(stderr.String(), "shutting down") {
			t.Errorf("stderr does not say it is shutting down:\n%s", stderr.String())
		}
	})
}
