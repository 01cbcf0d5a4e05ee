package main

import (
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"pxed/internal/testutil"
)

// TestServeNotifiesSystemd runs the binary as systemd runs a Type=notify
// service: with NOTIFY_SOCKET set, READY=1 comes once every listener is
// bound (TFTP and HTTP answer at once, without polling), and STOPPING=1
// once SIGTERM starts the shutdown.
func TestServeNotifiesSystemd(t *testing.T) {
	bin := buildPxed(t)
	sock := filepath.Join(t.TempDir(), "notify")
	mgr, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	next := func(within time.Duration) string {
		t.Helper()
		mgr.SetReadDeadline(time.Now().Add(within))
		buf := make([]byte, 4096)
		n, err := mgr.Read(buf)
		if err != nil {
			t.Fatalf("no notification within %v: %v", within, err)
		}
		return string(buf[:n])
	}

	root := t.TempDir()
	writeFile(t, filepath.Join(root, "pxelinux.0"), []byte("pxelinux binary"))
	httpAddr, tftpAddr := freeTCP(t), freeUDP(t)
	var stderr testutil.SyncBuffer
	cmd := exec.Command(bin, "serve", "--tftp-root", root, "--state-dir", filepath.Join(t.TempDir(), "state"),
		"--tftp-addr", tftpAddr, "--http-addr", httpAddr)
	cmd.Env = append(cmd.Environ(), "NOTIFY_SOCKET="+sock)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer cmd.Process.Kill()

	if got := next(30 * time.Second); got != "READY=1\nSTATUS=serving" {
		t.Fatalf("first notification %q, want READY=1; stderr:\n%s", got, stderr.String())
	}
	ua, _ := net.ResolveUDPAddr("udp4", tftpAddr)
	if got, err := tftpGet(t, ua, "pxelinux.0"); err != nil || string(got) != "pxelinux binary" {
		t.Errorf("TFTP right after READY=1: %q, %v", got, err)
	}
	resp, err := http.Get("http://" + httpAddr + "/pxelinux.0")
	if err != nil {
		t.Fatalf("HTTP right after READY=1: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "pxelinux binary" {
		t.Errorf("HTTP right after READY=1: %q", body)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	if got := next(10 * time.Second); got != "STOPPING=1" {
		t.Errorf("after SIGTERM: %q, want STOPPING=1", got)
	}
	select {
	case err := <-exited:
		if code := exitCode(t, err); code != 0 {
			t.Errorf("exit %d, want 0; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("pxed did not exit after SIGTERM")
	}
}
