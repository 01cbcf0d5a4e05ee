package pxeclient

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countWriter counts what reaches it.
type countWriter struct{ n int64 }

func (c *countWriter) Write(b []byte) (int, error) {
	c.n += int64(len(b))
	return len(b), nil
}

// hostileHTTP is a boot server on 127.0.0.1 and another host on
// 127.0.0.2 that counts the requests it gets.
type hostileHTTP struct {
	boot  *httptest.Server
	other *httptest.Server
	hits  atomic.Int32
}

func newHostileHTTP(t *testing.T) *hostileHTTP {
	t.Helper()
	h := &hostileHTTP{}
	ln, err := net.Listen("tcp4", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2: %v", err)
	}
	h.other = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h.hits.Add(1)
		io.WriteString(w, "from another host")
	})}}
	h.other.Start()
	t.Cleanup(h.other.Close)
	mux := http.NewServeMux()
	mux.HandleFunc("/small", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "kernel") })
	mux.HandleFunc("/endless", func(w http.ResponseWriter, r *http.Request) {
		// 4 MiB, flushed, then nothing until the client goes away.
		buf := make([]byte, 64<<10)
		for i := 0; i < 64; i++ {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("/announced", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(100<<20))
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("/to-other", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, h.other.URL+"/small", http.StatusFound)
	})
	mux.HandleFunc("/to-same", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/small", http.StatusFound)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	h.boot = httptest.NewServer(mux)
	t.Cleanup(h.boot.Close)
	return h
}

// source is a Source whose boot server is the test's 127.0.0.1.
func (h *hostileHTTP) source(hosts ...string) *Source {
	return &Source{TFTP: netip.MustParseAddrPort("127.0.0.1:69"), Hosts: hosts}
}

func TestSourceHTTPLimits(t *testing.T) {
	h := newHostileHTTP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		path, want string
	}{
		{"/endless", "over the limit of 1048576 bytes (--max-kernel-size=1MiB)"},
		{"/announced", "announced 104857600 bytes"},
	} {
		var c countWriter
		err := h.source().Fetch(ctx, h.boot.URL+tc.path, NewLimit(&c, 1<<20, "--max-kernel-size=1MiB"))
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("%s: err = %v, want ErrTooLarge naming the file and %q", tc.path, err, tc.want)
		}
		if c.n > 1<<20 {
			t.Errorf("%s: %d bytes written, over the limit", tc.path, c.n)
		}
		if ctx.Err() != nil {
			t.Fatalf("%s: the fetch ran until the test's deadline", tc.path)
		}
	}
}

func TestSourceHTTPHosts(t *testing.T) {
	h := newHostileHTTP(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		src     *Source
		url     string
		wantErr string // "": success
		hits    int32
	}{
		{"redirect to another host", h.source(), h.boot.URL + "/to-other", "redirect from " + h.boot.Listener.Addr().String() + " to another host", 0},
		{"URL on another host", h.source(), h.other.URL + "/small", "127.0.0.2 is not the boot server", 0},
		{"redirect loop", h.source(), h.boot.URL + "/loop", "more than 5 redirects", 0},
		{"redirect on the same host", h.source(), h.boot.URL + "/to-same", "", 0},
		{"other host allowed by address", h.source("127.0.0.2"), h.other.URL + "/small", "", 1},
		{"redirect to another host, even allowed", h.source("127.0.0.2"), h.boot.URL + "/to-other", "to another host", 0},
		{"any host", h.source("*"), h.other.URL + "/small", "", 1},
		{"allowed by name", h.source("LOCALHOST."), "http://localhost:" + port(h.boot.URL) + "/small", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.hits.Load()
			var c countWriter
			err := tc.src.Fetch(ctx, tc.url, &c)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tc.wantErr != "" && (err == nil || !errors.Is(err, ErrNotAllowed) && !strings.Contains(err.Error(), "redirects") || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if got := h.hits.Load() - before; got != tc.hits {
				t.Errorf("the other host got %d requests, want %d", got, tc.hits)
			}
		})
	}
}

func port(u string) string {
	p, _ := url.Parse(u)
	return p.Port()
}

// The environment's proxy is used only when asked for. (Go never proxies
// loopback, so the namespaced test in cmd/pxed replays this against a
// listener; here the transport is checked.)
func TestSourceProxy(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://192.0.2.9:3128")
	req, _ := http.NewRequest(http.MethodGet, "http://192.0.2.1/vmlinuz", nil)
	for _, proxy := range []bool{false, true} {
		s := &Source{Proxy: proxy}
		s.once.Do(s.init)
		var got *url.URL
		if p := s.client.Transport.(*http.Transport).Proxy; p != nil {
			got, _ = p(req)
		}
		if (got != nil) != proxy {
			t.Errorf("Proxy %v: the request goes through %v", proxy, got)
		}
	}
}

func TestCheckRedirectDowngrade(t *testing.T) {
	from, _ := http.NewRequest(http.MethodGet, "https://192.0.2.1/a", nil)
	to, _ := http.NewRequest(http.MethodGet, "http://192.0.2.1/b", nil)
	if err := checkRedirect(to, []*http.Request{from}); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("https to http: %v", err)
	}
}

// tftpStandIn serves one file on 127.0.0.1 in lock-step, 512-byte blocks,
// from its one port: size bytes, announced as tsize when tsize, or (size
// < 0) without end. It counts the DATA bytes it sends.
type tftpStandIn struct {
	conn *net.UDPConn
	sent atomic.Int64
}

func newTFTPStandIn(t *testing.T, size int64, tsize bool) *tftpStandIn {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &tftpStandIn{conn: conn}
	go func() {
		buf := make([]byte, 2048)
		var blk uint16
		var sent int64
		var last bool // the short block that ends the file went out
		data := func(to netip.AddrPort) {
			n := int64(512)
			if size >= 0 {
				n = min(512, size-sent)
			}
			last = n < 512
			blk++
			sent += n
			s.sent.Add(n)
			pkt := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 3), blk)
			conn.WriteToUDPAddrPort(append(pkt, make([]byte, n)...), to)
		}
		for {
			m, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil || m < 4 {
				return
			}
			switch binary.BigEndian.Uint16(buf) {
			case 1:
				blk, sent, last = 0, 0, false
				if tsize {
					conn.WriteToUDPAddrPort(append([]byte{0, 6}, fmt.Sprintf("tsize\x00%d\x00", size)...), from)
				} else {
					data(from)
				}
			case 4:
				if binary.BigEndian.Uint16(buf[2:]) == blk && !last {
					data(from)
				}
			}
		}
	}()
	return s
}

func (s *tftpStandIn) source() *Source {
	return &Source{TFTP: s.conn.LocalAddr().(*net.UDPAddr).AddrPort()}
}

func TestSourceTFTPLimits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Run("no end, no tsize", func(t *testing.T) {
		s := newTFTPStandIn(t, -1, false)
		var c countWriter
		err := s.source().Fetch(ctx, "vmlinuz", NewLimit(&c, 64<<10, "--max-kernel-size=64KiB"))
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "vmlinuz") || !strings.Contains(err.Error(), "--max-kernel-size=64KiB") {
			t.Fatalf("err = %v", err)
		}
		if c.n > 64<<10 {
			t.Errorf("%d bytes written, over the limit", c.n)
		}
	})
	t.Run("tsize over the limit", func(t *testing.T) {
		s := newTFTPStandIn(t, 100<<20, true)
		var c countWriter
		err := s.source().Fetch(ctx, "vmlinuz", NewLimit(&c, 64<<10, "--max-kernel-size=64KiB"))
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "--max-kernel-size=64KiB") {
			t.Fatalf("err = %v", err)
		}
		if c.n != 0 || s.sent.Load() != 0 {
			t.Errorf("%d bytes written, %d sent, before the refusal", c.n, s.sent.Load())
		}
	})
	t.Run("what is left of a limit", func(t *testing.T) {
		s := newTFTPStandIn(t, 40<<10, true)
		lim := NewLimit(&countWriter{}, 64<<10, "--max-initrd-size=64KiB")
		if err := s.source().Fetch(ctx, "i1", lim); err != nil {
			t.Fatal(err)
		}
		// The second initrd's tsize is over what the first left.
		err := s.source().Fetch(ctx, "i2", lim)
		if !errors.Is(err, ErrTooLarge) || lim.N != 24<<10 {
			t.Fatalf("err = %v, %d left", err, lim.N)
		}
	})
	t.Run("tftp URL on another host", func(t *testing.T) {
		s := newTFTPStandIn(t, 10, false)
		src := s.source()
		err := src.Fetch(ctx, "tftp://127.0.0.2/vmlinuz", &countWriter{})
		if !errors.Is(err, ErrNotAllowed) {
			t.Fatalf("err = %v", err)
		}
		if err := src.Fetch(ctx, "tftp:///vmlinuz", &countWriter{}); err != nil {
			t.Errorf("tftp URL without a host (the boot server): %v", err)
		}
	})
}

func TestLimit(t *testing.T) {
	var c countWriter
	l := NewLimit(&c, 10, "x")
	if n, err := l.Write(make([]byte, 6)); n != 6 || err != nil {
		t.Fatal(n, err)
	}
	if n, err := l.Write(make([]byte, 5)); n != 0 || !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "10 bytes (x)") {
		t.Fatal(n, err)
	}
	if n, err := l.Write(make([]byte, 4)); n != 4 || err != nil || c.n != 10 {
		t.Fatal(n, err, c.n)
	}
}

func TestBootHosts(t *testing.T) {
	l := &Lease{NextServer: netip.MustParseAddr("192.0.2.1"), TFTPServer: "boot.example",
		File:    "http://198.51.100.7:8080/pxe/pxelinux.0",
		Options: map[uint8][]byte{209: []byte("tftp://user@203.0.113.9:6969/cfg\x00"), 210: []byte("mirror.example::pxe/")}}
	got := strings.Join(l.BootHosts(), " ")
	if want := "192.0.2.1 boot.example 198.51.100.7 203.0.113.9 mirror.example"; got != want {
		t.Errorf("BootHosts = %q, want %q", got, want)
	}
	if got := (&Lease{NextServer: netip.MustParseAddr("192.0.2.1"), File: "bios/pxelinux.0"}).BootHosts(); len(got) != 1 {
		t.Errorf("plain boot file: %q", got)
	}
}
