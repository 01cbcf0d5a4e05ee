package httpboot

// Generated files: a Files handler over a bootfs.Layered passes the client
// to the generator and serves its output as text.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"pxed/internal/bootfs"
	"pxed/internal/bootplan"
)

// hostGen generates files that name the client as the handler describes
// it, and records the clients it saw.
type hostGen struct {
	mu      sync.Mutex
	clients []bootfs.Client
}

var genTime = time.Date(2024, 4, 1, 8, 0, 0, 0, time.UTC)

func hostContent(c bootfs.Client, name string) string {
	return fmt.Sprintf("#!ipxe\n# %s for %s via %s, local %s\nchain http://%s/next\n", name, c.Addr, c.Proto, c.Local, c.Local)
}

func (g *hostGen) Generate(c bootfs.Client, name string) ([]byte, time.Time, bool) {
	switch name {
	case "boot.ipxe", "pxelinux.cfg/01-aa-bb-cc-dd-ee-ff", "ks/host1", "ipxe/host1", "grub/grub.cfg", "kick.ks",
		"sub/pxelinux.cfg/default", "blob.bin", "vmlinuz", "secret":
	default:
		return nil, time.Time{}, false
	}
	g.mu.Lock()
	g.clients = append(g.clients, c)
	g.mu.Unlock()
	return []byte(hostContent(c, name)), genTime, true
}

func (g *hostGen) last() (bootfs.Client, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.clients) == 0 {
		return bootfs.Client{}, 0
	}
	return g.clients[len(g.clients)-1], len(g.clients)
}

func TestGeneratedFiles(t *testing.T) {
	f := newFixture(t)
	layered := bootfs.NewLayered(f.tree, nil)
	g := &hostGen{}
	layered.SetGenerator(g)
	f.h.FS = layered
	f.h.ContentType = bootplan.ContentType
	url, _ := f.start(t)
	loopback := netip.MustParseAddr("127.0.0.1")

	tests := []struct {
		path   string
		host   string // Host header; "" for the URL's (never seen by the generator)
		ctype  string // "" for a disk file's application/octet-stream
		status int
		disk   []byte // served from disk
	}{
		{path: "/boot.ipxe", ctype: "text/plain; charset=utf-8"},
		{path: "/boot.ipxe", host: "boot.example:8080", ctype: "text/plain; charset=utf-8"},
		{path: "/pxelinux.cfg/01-aa-bb-cc-dd-ee-ff", ctype: "text/plain; charset=utf-8"},
		{path: "/ks/host1", ctype: "text/plain; charset=utf-8"},
		{path: "/ipxe/host1", ctype: "text/plain; charset=utf-8"},
		{path: "/kick.ks", ctype: "text/plain; charset=utf-8"},
		{path: "/sub/pxelinux.cfg/default", ctype: "text/plain; charset=utf-8"},
		{path: "/blob.bin", ctype: "application/octet-stream"},
		// Disk files win, and stay binary whatever their name.
		{path: "/vmlinuz", disk: content},
		{path: "/boot/grub/grub.cfg", disk: []byte("set timeout=5\n")},
		// A refused disk file is not replaced by the generated one.
		{path: "/secret", status: http.StatusForbidden},
		{path: "/missing.ipxe", status: http.StatusNotFound},
		{path: "/../boot.ipxe", status: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.host, func(t *testing.T) {
			req, err := http.NewRequest("GET", url+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.path == "/../boot.ipxe" {
				code, body := rawGet(t, url, tt.path)
				if code != tt.status {
					t.Errorf("status %d (%q), want %d", code, body, tt.status)
				}
				return
			}
			if tt.host != "" {
				req.Host = tt.host
			}
			_, before := g.last()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if tt.status != 0 {
				if resp.StatusCode != tt.status {
					t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
				}
				if len(body) > 0 && string(body) != "forbidden\n" && string(body) != "not found\n" {
					t.Errorf("body %q", body)
				}
				return
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, body %q", resp.StatusCode, body)
			}
			if tt.disk != nil {
				if string(body) != string(tt.disk) {
					t.Errorf("body %q, want the disk file %q", body, tt.disk)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
					t.Errorf("disk file Content-Type %q", ct)
				}
				return
			}
			c, after := g.last()
			if after != before+1 {
				t.Fatalf("generator asked %d times, want once", after-before)
			}
			if c.Addr != loopback || c.Local != loopback || c.Proto != "http" {
				t.Errorf("generator saw %+v, want Addr and Local 127.0.0.1, Proto http", c)
			}
			if want := hostContent(c, tt.path[1:]); string(body) != want {
				t.Errorf("body %q, want %q", body, want)
			}
			if ct := resp.Header.Get("Content-Type"); ct != tt.ctype {
				t.Errorf("Content-Type %q, want %q", ct, tt.ctype)
			}
			if lm := resp.Header.Get("Last-Modified"); lm != genTime.Format(http.TimeFormat) {
				t.Errorf("Last-Modified %q, want %q", lm, genTime.Format(http.TimeFormat))
			}
			if cl := resp.Header.Get("Content-Length"); cl != fmt.Sprint(len(body)) {
				t.Errorf("Content-Length %q for %d bytes", cl, len(body))
			}
		})
	}

	t.Run("Range", func(t *testing.T) {
		c := bootfs.Client{Addr: loopback, Local: loopback, Proto: "http"}
		full := hostContent(c, "boot.ipxe")
		for _, tc := range []struct {
			rng  string
			want string
		}{
			{"bytes=0-5", full[:6]},
			{"bytes=7-", full[7:]},
			{"bytes=-10", full[len(full)-10:]},
		} {
			resp, body := do(t, "GET", url+"/boot.ipxe", map[string]string{"Range": tc.rng})
			if resp.StatusCode != http.StatusPartialContent || string(body) != tc.want {
				t.Errorf("Range %s: status %d, body %q; want 206 %q", tc.rng, resp.StatusCode, body, tc.want)
			}
			if want := fmt.Sprintf("/%d", len(full)); len(resp.Header.Get("Content-Range")) == 0 ||
				resp.Header.Get("Content-Range")[len(resp.Header.Get("Content-Range"))-len(want):] != want {
				t.Errorf("Range %s: Content-Range %q", tc.rng, resp.Header.Get("Content-Range"))
			}
		}
		resp, _ := do(t, "GET", url+"/boot.ipxe", map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(full)+5)})
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			t.Errorf("Range past the end: status %d, want 416", resp.StatusCode)
		}
	})
	t.Run("HEAD", func(t *testing.T) {
		resp, body := do(t, "HEAD", url+"/boot.ipxe", nil)
		if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("HEAD: status %d, %d bytes, Content-Type %q", resp.StatusCode, len(body), resp.Header.Get("Content-Type"))
		}
	})
}

// TestGeneratedClientDirect checks the client handed over when the handler
// is called without a server: no local address in the context, and a
// RemoteAddr that is not an address.
func TestGeneratedClientDirect(t *testing.T) {
	dir := t.TempDir()
	tree, err := bootfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	if err := os.WriteFile(filepath.Join(dir, "unused"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	layered := bootfs.NewLayered(tree, nil)
	g := &hostGen{}
	layered.SetGenerator(g)
	h := &Files{FS: layered}
	tests := []struct {
		remote string
		local  net.Addr
		want   bootfs.Client
	}{
		{"192.0.2.7:1234", nil, bootfs.Client{Addr: netip.MustParseAddr("192.0.2.7"), Proto: "http"}},
		{"[::ffff:192.0.2.7]:1234", &net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 80},
			bootfs.Client{Addr: netip.MustParseAddr("192.0.2.7"), Local: netip.MustParseAddr("192.0.2.1"), Proto: "http"}},
		{"[2001:db8::7]:1234", &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 80},
			bootfs.Client{Addr: netip.MustParseAddr("2001:db8::7"), Local: netip.MustParseAddr("2001:db8::1"), Proto: "http"}},
		{"not an address", &net.UnixAddr{Name: "/run/pxed.sock", Net: "unix"}, bootfs.Client{Proto: "http"}},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("GET", "http://pxe.example/boot.ipxe", nil)
		req.RemoteAddr = tt.remote
		if tt.local != nil {
			req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, tt.local))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Errorf("%s: status %d", tt.remote, rec.Code)
			continue
		}
		if c, _ := g.last(); c != tt.want {
			t.Errorf("%s: generator saw %+v, want %+v", tt.remote, c, tt.want)
		}
	}
}
