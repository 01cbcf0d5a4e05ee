package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needTool returns the path of a client program the test replays an attack
// or a request with; without it the test skips, unless PXED_E2E=1.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("PXED_E2E") == "1" {
			t.Fatalf("%s is not installed, and PXED_E2E=1 requires it", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// dialStalled connects from src to addr with a tiny receive buffer, asks for
// path and never reads the answer: the attack of issue 13 finding 7.
func dialStalled(src, addr, path string) (net.Conn, error) {
	d := net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)},
		Timeout:   2 * time.Second,
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
	c, err := d.Dial("tcp4", addr)
	if err != nil {
		return nil, err
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: boot\r\n\r\n", path); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// One address opens 300 connections that ask for a big file and never read.
// The server keeps at most its per-address cap of them (a descriptor for the
// socket and one for the file each), and a client on another address is
// served meanwhile, by curl and by Go's client.
func TestServeHTTPHeldConnections(t *testing.T) {
	curl := needTool(t, "curl")
	root := t.TempDir()
	big := filepath.Join(root, "big.img")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(16 << 20) // sparse: more than any socket buffer holds
	f.Close()
	os.Chmod(big, 0o644)
	kernel := bytes.Repeat([]byte("vmlinuz-"), 8<<10)
	writeFile(t, filepath.Join(root, "vmlinuz"), kernel)
	c := testConfig(t, root)
	c.TFTP.Addr = ""
	ln, stop := startServe(t, c)
	addr := ln.HTTP.String()

	base := openFDs(t)
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	const attack = 300
	for range attack {
		if c, err := dialStalled("127.0.0.1", addr, "/big.img"); err == nil {
			held = append(held, c)
		}
	}
	// The server's descriptors: the process's, less the attacker's sockets.
	server := func() int { return openFDs(t) - base - len(held) }
	n, last := server(), -1
	for deadline := time.Now().Add(5 * time.Second); n != last && time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		last, n = n, server()
	}
	t.Logf("%d stalled connections from 127.0.0.1: the server holds %d descriptors for them", attack, n)
	if limit := 2*c.HTTP.MaxConnsPerIP + 8; n > limit {
		t.Errorf("the server holds %d descriptors for one address's stalled connections, want at most %d (per-address cap %d)", n, limit, c.HTTP.MaxConnsPerIP)
	}

	out := filepath.Join(t.TempDir(), "vmlinuz")
	cmd := exec.Command(curl, "-fsS", "--interface", "127.0.0.2", "--max-time", "10", "-o", out, "http://"+addr+"/vmlinuz")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("curl from 127.0.0.2 while 127.0.0.1 holds its connections: %v\n%s", err, msg)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, kernel) {
		t.Fatalf("curl from 127.0.0.2 got %d bytes, want %d", len(got), len(kernel))
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext,
	}}
	resp, err := hc.Get("http://" + addr + "/vmlinuz")
	if err != nil {
		t.Fatalf("GET from 127.0.0.2: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, kernel) {
		t.Fatalf("GET from 127.0.0.2: status %d, %d bytes, %v", resp.StatusCode, len(body), err)
	}
	hc.CloseIdleConnections()
	for _, c := range held {
		c.Close()
	}
	held = nil
	if err := stop(); err != nil && !strings.Contains(err.Error(), "closed") {
		t.Errorf("serve = %v", err)
	}
}

// testInventory writes an inventory of one host, web1 at ip (its kickstart
// template calls back with .InstalledURL) into dir, and returns its path.
func testInventory(t *testing.T, dir, ip string) string {
	t.Helper()
	writeFile(t, filepath.Join(dir, "ks.tmpl"), []byte("# kickstart for {{.Host.Name}}\nurl --url {{.BaseURL}}/os\n%post\ncurl -fsS -X POST '{{.InstalledURL}}'\n%end\n"))
	inv := filepath.Join(dir, "inventory.yaml")
	writeFile(t, inv, []byte(`profiles:
  inst:
    kernel: os/vmlinuz
    initrd: os/initrd.img
    append: ip=dhcp
    kickstart: ks.tmpl
hosts:
  - name: web1
    mac: 02:00:00:00:00:01
    ip: `+ip+`
    profile: inst
`))
	return inv
}

// rawGetHost sends GET path to addr with the Host header exactly as given
// and returns the status and body.
func rawGetHost(t *testing.T, addr, path, host string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// A hostile Host header must not reach generated files: the URLs in them
// name --http-advertise, else the local address the request arrived on.
func TestServeHostHeaderNotReflected(t *testing.T) {
	curl := needTool(t, "curl")
	const hostile = "x';id;'"
	for _, advertise := range []string{"", "boot.example.net:8080"} {
		t.Run("advertise="+advertise, func(t *testing.T) {
			root := t.TempDir()
			writeFile(t, filepath.Join(root, "os", "vmlinuz"), []byte("kernel"))
			c := testConfig(t, root)
			c.Inventory = testInventory(t, t.TempDir(), "127.0.0.1")
			c.HTTP.Advertise = advertise
			ln, _ := startServe(t, c)
			addr := ln.HTTP.String()
			want := "http://" + addr
			if advertise != "" {
				want = "http://" + advertise
			}
			for _, path := range []string{"/ks/web1", "/ipxe/02-00-00-00-00-01", "/pxelinux.cfg/01-02-00-00-00-00-01", "/boot.ipxe"} {
				code, body := rawGetHost(t, addr, path, hostile)
				if code != 200 {
					t.Fatalf("GET %s: %d %s", path, code, body)
				}
				if strings.Contains(body, "id;") || strings.Contains(body, "x'") {
					t.Errorf("GET %s with Host: %s: the header came back:\n%s", path, hostile, body)
				}
				if path == "/ks/web1" || path == "/pxelinux.cfg/01-02-00-00-00-00-01" {
					if !strings.Contains(body, want+"/") {
						t.Errorf("GET %s: want URLs on %s:\n%s", path, want, body)
					}
				}
			}
			out, err := exec.Command(curl, "-fsS", "--max-time", "10", "-H", "Host: "+hostile, "http://"+addr+"/ks/web1").CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			if strings.Contains(string(out), "id;") || !strings.Contains(string(out), want+"/os") {
				t.Errorf("curl -H 'Host: %s' /ks/web1:\n%s", hostile, out)
			}
		})
	}
}

// callbackRe finds the install callback in a generated kickstart.
var callbackRe = regexp.MustCompile(`curl -fsS -X POST '([^']+)'`)

// kickstartCallback fetches host's kickstart from base (as the host, from
// 127.0.0.1) and returns its callback URL.
func kickstartCallback(t *testing.T, base, host string) string {
	t.Helper()
	resp, err := http.Get(base + "/ks/" + host)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := callbackRe.FindStringSubmatch(string(body))
	if resp.StatusCode != 200 || m == nil || !strings.Contains(m[1], "?token=") {
		t.Fatalf("kickstart of %s: %d\n%s", host, resp.StatusCode, body)
	}
	return m[1]
}

// curlStatus runs curl with args and returns the HTTP status it got.
func curlStatus(t *testing.T, curl string, args ...string) string {
	t.Helper()
	out, err := exec.Command(curl, append([]string{"-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"}, args...)...).Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	return string(out)
}

// The install callback's token is one per install and good once: a second
// use, and the old token after a reinstall, are refused; a restart keeps
// the current one. (It was HMAC(host name): the same for ever.) The
// kickstart that carries it goes to the host's own address only.
func TestServeInstallToken(t *testing.T) {
	curl := needTool(t, "curl")
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "os", "vmlinuz"), []byte("kernel"))
	c := testConfig(t, root)
	c.TFTP.Addr = ""
	c.Inventory = testInventory(t, t.TempDir(), "127.0.0.1")
	ln, stop := startServe(t, c)
	base := "http://" + ln.HTTP.String()

	first := kickstartCallback(t, base, "web1")
	if code := curlStatus(t, curl, "-X", "POST", first); code != "200" {
		t.Fatalf("callback %s: %s", first, code)
	}
	if code := curlStatus(t, curl, "-X", "POST", first); code != "401" {
		t.Fatalf("the same callback again: %s, want 401", code)
	}
	var out, errb bytes.Buffer
	args := []string{"--state-dir", c.StateDir, "--inventory", c.Inventory}
	if rc := cmdHost(append([]string{"install", "web1"}, args...), &out, &errb); rc != 0 {
		t.Fatalf("pxed host install: %d %s", rc, errb.String())
	}
	second := kickstartCallback(t, base, "web1")
	if second == first {
		t.Fatalf("reinstall kept the token: %s", second)
	}
	if code := curlStatus(t, curl, "-X", "POST", first); code != "401" {
		t.Fatalf("the previous install's callback after a reinstall: %s, want 401", code)
	}
	if code := curlStatus(t, curl, "--interface", "127.0.0.2", base+"/ks/web1"); code != "404" {
		t.Fatalf("web1's kickstart from 127.0.0.2 (web1 is 127.0.0.1): %s, want 404", code)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	ln, stop = startServe(t, c)
	base = "http://" + ln.HTTP.String()
	again := kickstartCallback(t, base, "web1")
	_, tok, _ := strings.Cut(second, "?token=")
	if _, tok2, _ := strings.Cut(again, "?token="); tok2 != tok {
		t.Fatalf("after a restart the token is %s, want %s", tok2, tok)
	}
	if code := curlStatus(t, curl, "-X", "POST", again); code != "200" {
		t.Fatalf("the current callback after a restart: %s", code)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
