package tftp

// Generated files: a Server whose FS is a bootfs.Layered passes the client
// to the generator and serves its output like any file.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pxed/internal/bootfs"
)

// clientGen generates files whose content names the client that asked, so a
// test can check both that the client was passed and that the bytes arrive
// intact. It records every client it was asked for, by name.
type clientGen struct {
	mu      sync.Mutex
	clients map[string][]bootfs.Client
}

// genContent is what clientGen serves for name to c: a header naming the
// client, then enough filler to need several blocks (or none, for "empty").
func genContent(c bootfs.Client, name string) []byte {
	if name == "empty.cfg" {
		return nil
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s for %s via %s on %s\n", name, c.Addr, c.Proto, c.Local)
	if name == "big.ipxe" {
		b.Write(randBytes(5000, 77))
	}
	return b.Bytes()
}

func (g *clientGen) Generate(c bootfs.Client, name string) ([]byte, time.Time, bool) {
	switch name {
	case "host.cfg", "big.ipxe", "empty.cfg", "shadowed.cfg", "secret.cfg":
	default:
		return nil, time.Time{}, false
	}
	g.mu.Lock()
	if g.clients == nil {
		g.clients = map[string][]bootfs.Client{}
	}
	g.clients[name] = append(g.clients[name], c)
	g.mu.Unlock()
	return genContent(c, name), time.Now(), true
}

func (g *clientGen) asked(name string) []bootfs.Client {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]bootfs.Client(nil), g.clients[name]...)
}

// layeredTree writes a boot tree with a disk file, a disk file that shadows a
// generated one and an unreadable one, and returns a Layered over it with a
// clientGen.
func layeredTree(t testing.TB) (*bootfs.Layered, *clientGen, map[string][]byte) {
	t.Helper()
	disk := map[string][]byte{
		"pxelinux.0":   randBytes(3000, 78),
		"shadowed.cfg": []byte("from disk\n"),
		"secret.cfg":   []byte("unreadable\n"),
	}
	dir := writeTree(t, disk)
	if err := os.Chmod(filepath.Join(dir, "secret.cfg"), 0o600); err != nil {
		t.Fatal(err)
	}
	tree, err := bootfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tree.Close() })
	l := bootfs.NewLayered(tree, slog.New(slog.NewTextHandler(t.Output(), nil)))
	g := &clientGen{}
	l.SetGenerator(g)
	return l, g, disk
}

// serveWildcard runs s on 0.0.0.0 (a random port), where the local address
// of each request comes from a control message, and returns the address to
// send to on loopback.
func serveWildcard(t *testing.T, s *Server) *net.UDPAddr {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Serve(ctx, conn)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(s.Grace + 10*time.Second):
			t.Errorf("Serve did not return after its context was cancelled")
		}
	})
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: conn.LocalAddr().(*net.UDPAddr).Port}
}

func TestGeneratedFiles(t *testing.T) {
	t.Parallel()
	loopback := netip.MustParseAddr("127.0.0.1")
	for _, mode := range []string{"ephemeral", "single-port", "wildcard"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			l, g, disk := layeredTree(t)
			configure := func(s *Server) {
				s.FS = l
				s.Root = l.Dir()
				s.SinglePort = mode == "single-port"
			}
			var addr *net.UDPAddr
			if mode == "wildcard" {
				s := &Server{Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Timeout: 5 * time.Second, Grace: 2 * time.Second}
				configure(s)
				addr = serveWildcard(t, s)
			} else {
				addr = startServer(t, t.TempDir(), configure).addr
			}

			tests := []struct {
				name   string // requested
				file   string // the clean name
				mode   string
				opts   []string
				want   func(c bootfs.Client) []byte // nil: from disk
				code   uint16                       // an expected ERROR
				netasc bool
			}{
				{name: "host.cfg", file: "host.cfg", mode: "octet", want: func(c bootfs.Client) []byte { return genContent(c, "host.cfg") }},
				{name: "/host.cfg", file: "host.cfg", mode: "octet", want: func(c bootfs.Client) []byte { return genContent(c, "host.cfg") }},
				{name: l.Dir() + "/big.ipxe", file: "big.ipxe", mode: "octet", opts: []string{"blksize", "1024", "tsize", "0"},
					want: func(c bootfs.Client) []byte { return genContent(c, "big.ipxe") }},
				{name: "big.ipxe", file: "big.ipxe", mode: "octet", opts: []string{"windowsize", "4"},
					want: func(c bootfs.Client) []byte { return genContent(c, "big.ipxe") }},
				{name: "empty.cfg", file: "empty.cfg", mode: "octet", want: func(bootfs.Client) []byte { return nil }},
				{name: "host.cfg", file: "host.cfg", mode: "netascii", netasc: true,
					want: func(c bootfs.Client) []byte {
						return bytes.ReplaceAll(genContent(c, "host.cfg"), []byte("\n"), []byte("\r\n"))
					}},
				{name: "pxelinux.0", file: "pxelinux.0", mode: "octet"},
				{name: "shadowed.cfg", file: "shadowed.cfg", mode: "octet"},
				{name: "secret.cfg", file: "secret.cfg", mode: "octet", code: ErrAccess},
				{name: "missing.cfg", file: "missing.cfg", mode: "octet", code: ErrNotFound},
				{name: "../host.cfg", file: "host.cfg", mode: "octet", code: ErrAccess},
			}
			for _, tt := range tests {
				c := newClient(t, addr)
				before := len(g.asked(tt.file))
				r := c.get(tt.name, tt.mode, tt.opts...)
				if tt.code != 0 {
					if r.err == nil || r.err.Code != tt.code {
						t.Errorf("%s: got %v (%d bytes), want ERROR %d", tt.name, r.err, len(r.data), tt.code)
					}
					if got := g.asked(tt.file)[before:]; len(got) != 0 {
						t.Errorf("%s: the generator was asked for %s: %+v", tt.name, tt.file, got)
					}
					continue
				}
				if r.err != nil {
					t.Errorf("%s: %v", tt.name, r.err)
					continue
				}
				clientAddr := netip.MustParseAddrPort(c.conn.LocalAddr().String()).Addr()
				want := disk[tt.file]
				if tt.want != nil {
					want = tt.want(bootfs.Client{Addr: clientAddr, Local: loopback, Proto: "tftp"})
					asked := g.asked(tt.file)[before:]
					if len(asked) != 1 {
						t.Fatalf("%s: generator asked %d times, want 1", tt.name, len(asked))
					}
					wantClient := bootfs.Client{Addr: loopback, Local: loopback, Proto: "tftp"}
					if asked[0] != wantClient {
						t.Errorf("%s: generator saw client %+v, want %+v", tt.name, asked[0], wantClient)
					}
				}
				if !bytes.Equal(r.data, want) {
					t.Errorf("%s: got %d bytes %q..., want %d bytes %q...", tt.name, len(r.data), trunc(r.data), len(want), trunc(want))
				}
				if tt.want != nil && !tt.netasc && !strings.Contains(string(r.data), "for 127.0.0.1 via tftp on 127.0.0.1") && len(want) > 0 {
					t.Errorf("%s: content does not name the client: %q", tt.name, trunc(r.data))
				}
			}
		})
	}
}
