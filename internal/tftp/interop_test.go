package tftp

// Interoperability with real TFTP clients: curl, tftp-hpa's tftp and atftp,
// run against a Server on 127.0.0.1. A missing client skips its test, unless
// PXED_E2E=1 (set in CI), where it fails.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"pxed/internal/bootfs"
)

// interopFiles are served to every client: empty, exactly one block, and
// many blocks of random bytes.
var interopFiles = map[string][]byte{
	"empty.bin": {},
	"block.bin": randBytes(512, 1000),
	"large.bin": randBytes(3<<20, 1001),
}

func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("PXED_E2E") == "1" {
			t.Fatalf("%s is not installed, and PXED_E2E=1 requires it: %v", name, err)
		}
		t.Skipf("%s is not installed", name)
	}
	return path
}

// runTool runs a client with a deadline and returns its combined output.
func runTool(t *testing.T, dir, tool string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Dir = dir
	cmd.Stdin = nil
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %q did not finish within 60s; output:\n%s", filepath.Base(tool), args, out)
	}
	return string(out), err
}

func checkDownload(t *testing.T, out string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("no download: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("downloaded %d bytes, not the %d of the file", len(got), len(want))
	}
}

func TestInteropCurl(t *testing.T) {
	t.Parallel()
	curl := requireTool(t, "curl")
	dir := writeTree(t, interopFiles)
	servers := map[string]*testServer{}
	for _, m := range modes {
		servers[m.name] = startServer(t, dir, m.set)
	}
	for _, m := range modes {
		mode, ts := m.name, servers[m.name]
		for _, bs := range []int{512, 1468, 65464} {
			if mode == "single-port" && bs != 1468 {
				continue
			}
			for name, want := range interopFiles {
				t.Run(fmt.Sprintf("%s/blksize %d/%s", mode, bs, name), func(t *testing.T) {
					t.Parallel()
					work := t.TempDir()
					out := filepath.Join(work, "out")
					url := fmt.Sprintf("tftp://127.0.0.1:%d/%s", ts.addr.Port, name)
					// With options for every size: curl asks for tsize and
					// aborts on "tsize 0" in an OACK (exit 71, as against
					// tftpd-hpa), so pxed leaves tsize out for empty files.
					opts := []string{"--tftp-blksize", strconv.Itoa(bs)}
					args := append([]string{"--silent", "--show-error", "--max-time", "50", "--output", out}, opts...)
					msg, err := runTool(t, work, curl, append(args, url)...)
					if err != nil {
						t.Fatalf("curl: %v\n%s", err, msg)
					}
					checkDownload(t, out, want)
				})
			}
		}
	}
	t.Run("missing file fails", func(t *testing.T) {
		t.Parallel()
		work := t.TempDir()
		url := fmt.Sprintf("tftp://127.0.0.1:%d/no-such-file", servers["io_uring"].addr.Port)
		msg, err := runTool(t, work, curl, "--silent", "--show-error", "--max-time", "50", "--output", filepath.Join(work, "out"), url)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 68 { // CURLE_TFTP_NOTFOUND
			t.Fatalf("curl on a missing file: %v, want exit status 68 (TFTP file not found)\n%s", err, msg)
		}
	})
}

// TestInteropCurlGenerated fetches a file that exists only in a generator
// (a bootfs.Layered), whose content names the client: curl gets exactly the
// bytes generated for 127.0.0.1.
func TestInteropCurlGenerated(t *testing.T) {
	t.Parallel()
	curl := requireTool(t, "curl")
	l, g, _ := layeredTree(t)
	ts := startServer(t, t.TempDir(), func(s *Server) { s.FS, s.Root = l, l.Dir() })
	loopback := netip.MustParseAddr("127.0.0.1")
	client := bootfs.Client{Addr: loopback, Local: loopback, Proto: "tftp"}
	for _, name := range []string{"big.ipxe", "host.cfg"} {
		work := t.TempDir()
		out := filepath.Join(work, "out")
		url := fmt.Sprintf("tftp://127.0.0.1:%d/%s", ts.addr.Port, name)
		msg, err := runTool(t, work, curl, "--silent", "--show-error", "--max-time", "50", "--tftp-blksize", "1468", "--output", out, url)
		if err != nil {
			t.Fatalf("curl %s: %v\n%s", name, err, msg)
		}
		checkDownload(t, out, genContent(client, name))
		if asked := g.asked(name); len(asked) != 1 || asked[0] != client {
			t.Errorf("%s: generator saw %+v, want one request from %+v", name, asked, client)
		}
	}
}

func TestInteropTFTPHPA(t *testing.T) {
	t.Parallel()
	tftp := requireTool(t, "tftp")
	files := map[string][]byte{"text.txt": []byte("first line\nsecond\r line\n\nlast line without newline")}
	for name, data := range interopFiles {
		files[name] = data
	}
	ts := startServer(t, writeTree(t, files), nil)
	port := strconv.Itoa(ts.addr.Port)
	get := func(t *testing.T, mode, name string) (string, string, error) {
		work := t.TempDir()
		out := filepath.Join(work, "out")
		msg, err := runTool(t, work, tftp, "-m", mode, "127.0.0.1", port, "-c", "get", name, out)
		// tftp-hpa does not always set its exit status on errors.
		if err == nil && (strings.Contains(msg, "Error") || strings.Contains(msg, "timed out")) {
			err = fmt.Errorf("tftp reported a failure")
		}
		return out, msg, err
	}
	for name, want := range interopFiles {
		t.Run("octet/"+name, func(t *testing.T) {
			t.Parallel()
			out, msg, err := get(t, "binary", name)
			if err != nil {
				t.Fatalf("tftp: %v\n%s", err, msg)
			}
			checkDownload(t, out, want)
		})
	}
	// tftp-hpa converts netascii back to the local form: the text comes back
	// exactly as it is on the server.
	t.Run("netascii/text.txt", func(t *testing.T) {
		t.Parallel()
		out, msg, err := get(t, "netascii", "text.txt")
		if err != nil {
			t.Fatalf("tftp: %v\n%s", err, msg)
		}
		checkDownload(t, out, files["text.txt"])
	})
	t.Run("missing file fails", func(t *testing.T) {
		t.Parallel()
		_, msg, err := get(t, "binary", "no-such-file")
		if err == nil || !strings.Contains(msg, "Error code 1") {
			t.Fatalf("tftp on a missing file: err %v, output %q; want Error code 1", err, msg)
		}
	})
}

func TestInteropAtftp(t *testing.T) {
	t.Parallel()
	atftp := requireTool(t, "atftp")
	dir := writeTree(t, interopFiles)
	ts := startServer(t, dir, nil)
	single := startServer(t, dir, func(s *Server) { s.SinglePort = true })
	port := strconv.Itoa(ts.addr.Port)
	for name, want := range interopFiles {
		for _, srv := range []struct {
			mode string
			ts   *testServer
		}{{"ephemeral", ts}, {"single-port", single}} {
			t.Run(srv.mode+"/"+name, func(t *testing.T) {
				t.Parallel()
				work := t.TempDir()
				out := filepath.Join(work, "out")
				msg, err := runTool(t, work, atftp, "--trace", "--option", "windowsize 8", "--option", "blksize 1468",
					"-g", "-r", name, "-l", out, "127.0.0.1", strconv.Itoa(srv.ts.addr.Port))
				if err != nil {
					t.Fatalf("atftp: %v\n%s", err, msg)
				}
				// The options were negotiated, not silently dropped: atftp
				// traces "received OACK <blksize: 1468, windowsize: 8, >".
				// In single-port mode a window is only as large as one
				// ACK pays for (singleport.go): 1 block of 1468.
				window := "windowsize: 8"
				if srv.mode == "single-port" {
					window = "windowsize: 1"
				}
				oack := ""
				for line := range strings.Lines(msg) {
					if strings.HasPrefix(line, "received OACK") {
						oack = line
					}
				}
				if !strings.Contains(oack, window) || !strings.Contains(oack, "blksize: 1468") {
					t.Errorf("atftp did not get an OACK with %s and blksize 1468:\n%s", window, msg)
				}
				checkDownload(t, out, want)
			})
		}
	}
	t.Run("missing file fails", func(t *testing.T) {
		t.Parallel()
		work := t.TempDir()
		msg, err := runTool(t, work, atftp, "-g", "-r", "no-such-file", "-l", filepath.Join(work, "out"), "127.0.0.1", port)
		if err == nil {
			t.Fatalf("atftp succeeded on a missing file:\n%s", msg)
		}
	})
}
