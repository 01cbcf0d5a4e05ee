package e2e

// Issue 13's TFTP attacks replayed against the built pxed on loopback (no
// namespace needed: the attacker and the real client use different
// loopback addresses): the resident memory of unacknowledged netascii
// requests, and a flood of silent requests from one address while tftp-hpa
// and curl fetch a file from another.

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"pxed/internal/testutil"
)

// needTools skips (or, under PXED_E2E=1, fails) unless every tool is on PATH.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if e2eRequired() {
				t.Fatalf("%s is not installed, and PXED_E2E=1 requires it", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
}

// startTFTP runs `pxed serve` with TFTP only on 127.0.0.1 and returns the
// process and its port once a file can be fetched.
func startTFTP(t *testing.T, root string, extra ...string) (*exec.Cmd, int) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	log := &testutil.SyncBuffer{}
	args := append([]string{"serve", "--tftp-root", root, "--tftp-addr", fmt.Sprintf("127.0.0.1:%d", port),
		"--http-addr", "", "--state-dir", t.TempDir()}, extra...)
	cmd := exec.Command(pxed(t), args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if t.Failed() {
			t.Logf("pxed log:\n%s", log.String())
		}
	})
	waitFor(t, 20*time.Second, "pxed to serve TFTP", func() bool {
		_, err := exec.Command("curl", "-fsS", "--max-time", "2", "-o", "/dev/null",
			fmt.Sprintf("tftp://127.0.0.1:%d/ready", port)).CombinedOutput()
		return err == nil
	})
	return cmd, port
}

// vmRSS is a process's resident set in KiB.
func vmRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmRSS in /proc/pid/status")
	return 0
}

// udpFrom is a UDP socket on a loopback address, closed with the test.
func udpFrom(t *testing.T, ip net.IP) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rrq is a read request with option name, value pairs.
func rrq(name, mode string, opts ...string) []byte {
	b := append([]byte{0, 1}, name...)
	b = append(append(append(b, 0), mode...), 0)
	for _, o := range opts {
		b = append(append(b, o...), 0)
	}
	return b
}

func TestE2ETFTPAttacks(t *testing.T) {
	needTools(t, "curl", "tftp")
	root := t.TempDir()
	text := bytes.Repeat([]byte("a line of text\r\nand a bare CR\r, a bare LF\n"), 20<<20/42)
	boot := bytes.Repeat([]byte("pxelinux"), 100_000)
	for name, data := range map[string][]byte{"ready": []byte("ok\n"), "big.txt": text, "pxelinux.0": boot} {
		if err := os.WriteFile(filepath.Join(root, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Finding 2: ten netascii requests for a 20 MB file, never
	// acknowledged. pxed's resident memory went from 12 MB to 370 MB.
	t.Run("unacknowledged netascii", func(t *testing.T) {
		cmd, port := startTFTP(t, root)
		server := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
		before := vmRSS(t, cmd.Process.Pid)
		buf := make([]byte, 1<<16)
		for i := range 10 {
			c := udpFrom(t, net.IPv4(127, 0, 0, 3))
			if _, err := c.WriteToUDP(rrq("big.txt", "netascii"), server); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, _, err := c.ReadFromUDP(buf); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		}
		after := vmRSS(t, cmd.Process.Pid)
		t.Logf("10 unacknowledged netascii requests for a %d MB file: VmRSS %d -> %d KiB", len(text)>>20, before, after)
		if after-before > 64<<10 {
			t.Fatalf("pxed's resident memory grew by %d MiB: netascii is buffered", (after-before)>>10)
		}
	})

	// Finding 4: with max-transfers 20, silent requests (timeout=255) from
	// one address took every slot; tftp-hpa and curl from another address
	// were told "busy".
	t.Run("flood from one address", func(t *testing.T) {
		_, port := startTFTP(t, root, "--tftp-max-transfers", "20")
		server := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
		for range 60 {
			c := udpFrom(t, net.IPv4(127, 0, 0, 2))
			if _, err := c.WriteToUDP(rrq("pxelinux.0", "octet", "timeout", "255", "blksize", "1468"), server); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(200 * time.Millisecond) // let them all take what they can
		work := t.TempDir()
		start := time.Now()
		out := filepath.Join(work, "curl.out")
		if msg, err := exec.Command("curl", "-sS", "--max-time", "10", "--tftp-blksize", "1468", "-o", out,
			fmt.Sprintf("tftp://127.0.0.1:%d/pxelinux.0", port)).CombinedOutput(); err != nil {
			t.Fatalf("curl during the flood: %v\n%s", err, msg)
		}
		hpa := filepath.Join(work, "hpa.out")
		cmd := exec.Command("timeout", "20", "tftp", "-m", "binary", "127.0.0.1", strconv.Itoa(port), "-c", "get", "pxelinux.0", hpa)
		if msg, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(msg), "Error") {
			t.Fatalf("tftp-hpa during the flood: %v\n%s", err, msg)
		}
		t.Logf("curl and tftp-hpa got their file %v after 60 silent requests from 127.0.0.2", time.Since(start).Round(time.Millisecond))
		for _, f := range []string{out, hpa} {
			if got, err := os.ReadFile(f); err != nil || !bytes.Equal(got, boot) {
				t.Fatalf("%s: %d bytes (%v), want the %d of the file", filepath.Base(f), len(got), err, len(boot))
			}
		}
	})
}
