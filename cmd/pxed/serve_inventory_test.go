package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// exampleInventory copies examples/inventory.yaml and its kickstart into a
// temporary directory, with test_hvm at ip (the kickstart goes to the
// host's own address only).
func exampleInventory(t *testing.T, ip string) string {
	t.Helper()
	dir := t.TempDir()
	inv, err := os.ReadFile("../../examples/inventory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ks, err := os.ReadFile("../../examples/kickstart/el5.ks")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "kickstart", "el5.ks"), ks)
	path := filepath.Join(dir, "inventory.yaml")
	writeFile(t, path, []byte(strings.Replace(string(inv), "ip: 192.0.2.177", "ip: "+ip, 1)))
	return path
}

// The inventory over loopback, without root: generated configs over TFTP
// and HTTP name the HTTP server the client reached; the install callback
// from the kickstart switches the host to local boot; the API needs its
// token.
func TestServeInventory(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "pxelinux.0"), []byte("x"))
	c := testConfig(t, root)
	c.Inventory = exampleInventory(t, "127.0.0.1")
	ln, stop := startServe(t, c)
	base := "http://" + ln.HTTP.String()
	cfg, err := tftpGet(t, ln.TFTP, "pxelinux.cfg/01-00-16-3e-72-79-e4")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "ks="+base+"/ks/test_hvm") {
		t.Fatalf("config over TFTP:\n%s\nwant ks=%s/ks/test_hvm", cfg, base)
	}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/pxelinux.cfg/01-00-16-3e-72-79-e4"); code != 200 || body != string(cfg) {
		t.Fatalf("same config over HTTP: %d\n%s", code, body)
	}
	_, ks := get("/ks/test_hvm")
	m := regexp.MustCompile(`curl -fsS -X POST '([^']+)'`).FindStringSubmatch(ks)
	if m == nil {
		t.Fatalf("kickstart has no callback:\n%s", ks)
	}
	if code := postStatus(t, base+"/api/v1/hosts/test_hvm/installed", ""); code != 401 {
		t.Fatalf("callback without token: %d", code)
	}
	if code := postStatus(t, m[1], ""); code != 200 {
		t.Fatalf("callback %s: %d", m[1], code)
	}
	if _, s := get("/ipxe/00-16-3e-72-79-e4"); !strings.Contains(s, "\nexit\n") {
		t.Fatalf("iPXE script after install:\n%s", s)
	}
	tok, err := os.ReadFile(filepath.Join(c.StateDir, "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(c.StateDir, "api-token")); fi.Mode().Perm() != 0o600 {
		t.Errorf("api-token mode %v, want 0600", fi.Mode().Perm())
	}
	if code := postStatus(t, base+"/api/v1/hosts/test_hvm/install", strings.TrimSpace(string(tok))); code != 200 {
		t.Fatalf("install with the API token: %d", code)
	}
	if cfg, _ := tftpGet(t, ln.TFTP, "pxelinux.cfg/01-00-16-3e-72-79-e4"); !strings.Contains(string(cfg), "KERNEL el5u4_x86_pxeboot_install/vmlinuz") {
		t.Fatalf("after install again:\n%s", cfg)
	}
	if err := stop(); err != nil {
		t.Errorf("serve = %v", err)
	}
}
