package tftp

// Interoperability of Client with real TFTP servers on loopback: tftp-hpa's
// in.tftpd and dnsmasq. A missing server (or, as both must run as root here,
// a test not run as root) skips its test, unless PXED_E2E=1, where it fails.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// interopClientFiles are fetched from every server.
var interopClientFiles = map[string][]byte{
	"empty.bin": {},
	"512.bin":   randBytes(512, 2000),
	"1468.bin":  randBytes(1468, 2001),
	"multi.bin": randBytes(1468*40+99, 2002),
	"large.bin": randBytes(3<<20, 2003),
	"sub/x.cfg": []byte("default menu.c32\n"),
}

func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("PXED_E2E") == "1" {
		t.Fatalf("%s needs root, and PXED_E2E=1 requires it", why)
	}
	t.Skipf("%s needs root", why)
}

// startDaemon runs a server in the foreground in its own process group and
// kills that group (the server and any per-transfer children) when the
// test ends.
func startDaemon(t *testing.T, path string, args ...string) *bytes.Buffer {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		syscall.Kill(-pid, syscall.SIGKILL)
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(path), out.String())
		}
	})
	return &out
}

// ready fetches name from a server just started until it comes (5s at
// most; a server that failed to start, say because its address was taken,
// never answers) and checks that it is want.
func ready(server netip.AddrPort, name string, want []byte) error {
	c := &Client{Timeout: 100 * time.Millisecond, Retries: 1}
	var err error
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
		var got bytes.Buffer
		if _, err = c.Get(context.Background(), server, name, &got); err == nil {
			if !bytes.Equal(got.Bytes(), want) {
				return fmt.Errorf("%s: got %q, want %q", name, got.Bytes(), want)
			}
			return nil
		}
		time.Sleep(20 * time.Millisecond) // not an assertion: polling a starting daemon
	}
	return err
}

// freeUDPPort returns a port that was free on 127.0.0.1 a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// fetchAll fetches every file of interopClientFiles from server with each
// client and checks it byte for byte, then a missing file.
func fetchAll(t *testing.T, server netip.AddrPort, clients map[string]*Client) {
	for cname, c := range clients {
		for name, want := range interopClientFiles {
			t.Run(cname+"/"+name, func(t *testing.T) {
				t.Parallel()
				var got bytes.Buffer
				n, err := c.Get(context.Background(), server, name, &got)
				if err != nil {
					t.Fatal(err)
				}
				if n != int64(len(want)) || !bytes.Equal(got.Bytes(), want) {
					t.Fatalf("got %d bytes (n=%d), not the %d of the file", got.Len(), n, len(want))
				}
			})
		}
	}
	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		_, err := new(Client).Get(context.Background(), server, "no-such-file", io.Discard)
		var re *RemoteError
		if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &re) || re.Code != ErrNotFound {
			t.Fatalf("err = %v, want a RemoteError with code 1", err)
		}
	})
}

var interopClients = map[string]*Client{
	"blksize 1468 windowsize 16": {Blksize: 1468, Windowsize: 16},
	"blksize 1468 windowsize 1":  {Blksize: 1468, Windowsize: 1},
	"blksize 512 windowsize 1":   {Blksize: 512, Windowsize: 1},
	"blksize 8192":               {Blksize: 8192},
}

// TestClientInteropTFTPHPA fetches from tftp-hpa, which knows blksize,
// tsize and timeout but not windowsize: the client falls back to lock-step.
func TestClientInteropTFTPHPA(t *testing.T) {
	t.Parallel()
	tftpd := requireTool(t, "in.tftpd")
	requireRoot(t, "in.tftpd -s (chroot)")
	files := map[string][]byte{"ready": []byte("ready\n")}
	for k, v := range interopClientFiles {
		files[k] = v
	}
	dir := writeTree(t, files)
	var server netip.AddrPort
	for attempt := 0; ; attempt++ {
		port := freeUDPPort(t)
		server = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
		out := startDaemon(t, tftpd, "-L", "-s", dir, "-u", "root", "-a", server.String())
		err := ready(server, "ready", files["ready"])
		if err == nil {
			break
		}
		if attempt == 4 {
			t.Fatalf("in.tftpd on %v does not answer: %v\n%s", server, err, out)
		}
	}
	fetchAll(t, server, interopClients)
}

// TestClientInteropDnsmasq fetches from dnsmasq's TFTP server. Its TFTP port
// is always 69, so it listens on a random loopback address of 127/8.
func TestClientInteropDnsmasq(t *testing.T) {
	t.Parallel()
	dnsmasq := requireTool(t, "dnsmasq")
	requireRoot(t, "dnsmasq on port 69")
	files := map[string][]byte{"ready": []byte("ready\n")}
	for k, v := range interopClientFiles {
		files[k] = v
	}
	dir := writeTree(t, files)
	work := t.TempDir()
	var server netip.AddrPort
	for attempt := 0; ; attempt++ {
		addr := netip.AddrFrom4([4]byte{127, byte(100 + rand.IntN(100)), byte(rand.IntN(256)), byte(2 + rand.IntN(250))})
		server = netip.AddrPortFrom(addr, 69)
		out := startDaemon(t, dnsmasq, "--keep-in-foreground", "--log-facility=-", "--conf-file=/dev/null",
			"--port=0", "--enable-tftp", "--tftp-root="+dir, "--listen-address="+addr.String(), "--bind-interfaces",
			"--user=root", "--group=root", "--pid-file="+filepath.Join(work, "dnsmasq"+strconv.Itoa(attempt)+".pid"))
		err := ready(server, "ready", files["ready"])
		if err == nil {
			break
		}
		if attempt == 4 {
			t.Fatalf("dnsmasq on %v does not answer: %v\n%s", server, err, out)
		}
	}
	fetchAll(t, server, interopClients)
}
