package httpboot

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"pxed/internal/testutil"
)

// smallSendBuffer hands out connections with a small send buffer, so that a
// test's file does not vanish into the kernel's socket buffers.
type smallSendBuffer struct{ *net.TCPListener }

func (l smallSendBuffer) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	c.SetWriteBuffer(16 << 10)
	return c, nil
}

// startLimited serves f's handler on 127.0.0.1 behind lim, as pxed serve
// does, and returns its address.
func (f *fixture) startLimited(t *testing.T, lim Limits) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(f.h, slog.New(slog.DiscardHandler))
	go srv.Serve(lim.Listener(smallSendBuffer{ln.(*net.TCPListener)}))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// dialFrom connects from src (127.0.0.x) with a small receive buffer.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)},
		Timeout:   5 * time.Second,
		Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
			})
		},
	}
	c, err := d.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// bigFile writes a file of size bytes into the fixture's tree.
func (f *fixture) bigFile(t *testing.T, name string, size int) []byte {
	t.Helper()
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	path := filepath.Join(f.dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	return data
}

// keepAliveGet sends GET path on c and reads the whole answer, leaving
// the connection open.
func keepAliveGet(t *testing.T, c net.Conn, br *bufio.Reader, path string) int {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: boot\r\n\r\n", path)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", path, c.LocalAddr(), err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// The caps: one address holds at most MaxConnsPerIP connections, all
// together at most MaxConns; the others get a 503 at once, and a slot that
// frees is taken again.
func TestConnectionCaps(t *testing.T) {
	f := newFixture(t)
	var log testutil.SyncBuffer
	addr := f.startLimited(t, Limits{MaxConns: 4, MaxConnsPerIP: 2, MinRate: 1 << 20,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	type client struct {
		c  net.Conn
		br *bufio.Reader
	}
	get := func(src string) (client, int) {
		c := dialFrom(t, src, addr)
		cl := client{c, bufio.NewReader(c)}
		return cl, keepAliveGet(t, c, cl.br, "/vmlinuz")
	}
	var kept []client
	for _, step := range []struct {
		src  string
		want int
	}{
		{"127.0.0.1", 200}, {"127.0.0.1", 200}, {"127.0.0.1", 503}, // per address
		{"127.0.0.2", 200}, {"127.0.0.2", 200}, {"127.0.0.3", 503}, // all together
	} {
		cl, code := get(step.src)
		if code != step.want {
			t.Fatalf("connection %d from %s: status %d, want %d", len(kept)+1, step.src, code, step.want)
		}
		kept = append(kept, cl)
	}
	// The connections admitted are still served (kept alive).
	if code := keepAliveGet(t, kept[0].c, kept[0].br, "/vmlinuz"); code != 200 {
		t.Fatalf("second request on an admitted connection: %d", code)
	}
	kept[0].c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, code := get("127.0.0.3")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a freed slot is never taken again")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(log.String(), "connections refused over the caps") {
		t.Errorf("no log line about refused connections:\n%s", log.String())
	}
}

// A client that asks for a big file and reads nothing is dropped once the
// socket buffers are full and at most two Windows have passed; before the
// rate floor the server waited for it forever (the test then read the
// whole file).
func TestStalledClientDropped(t *testing.T) {
	f := newFixture(t)
	data := f.bigFile(t, "initrd.img", 8<<20)
	addr := f.startLimited(t, Limits{MaxConns: 10, MaxConnsPerIP: 10, MinRate: 64 << 10, Window: 500 * time.Millisecond})
	c := dialFrom(t, "127.0.0.1", addr)
	fmt.Fprintf(c, "GET /initrd.img HTTP/1.1\r\nHost: boot\r\n\r\n")
	time.Sleep(3 * time.Second) // the window is 500 ms
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("after %d bytes the server still holds the connection", n)
	}
	if n >= int64(len(data)) {
		t.Fatalf("read %d bytes: the whole file was sent to a client that read nothing for 3 s", n)
	}
	if f.log.Count("client too slow (under the rate floor)") != 1 {
		t.Errorf("the drop is not logged:\n%s", f.log.String())
	}
	t.Logf("a client that read nothing for 3 s was dropped after %d of %d bytes (%v)", n, len(data), err)
}

// A slow but live client, well above the floor, gets the whole file
// however long it takes: the floor is a rate, not a deadline.
func TestSlowClientCompletes(t *testing.T) {
	f := newFixture(t)
	data := f.bigFile(t, "initrd.img", 512<<10)
	window := 500 * time.Millisecond
	addr := f.startLimited(t, Limits{MaxConns: 10, MaxConnsPerIP: 10, MinRate: 8 << 10, Window: window})
	c := dialFrom(t, "127.0.0.1", addr)
	fmt.Fprintf(c, "GET /initrd.img HTTP/1.1\r\nHost: boot\r\nConnection: close\r\n\r\n")
	// Read 4 KiB every 10 ms: at most 400 KiB/s, several windows long.
	start := time.Now()
	var got bytes.Buffer
	buf := make([]byte, 4<<10)
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	for {
		n, err := c.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.ReadResponse(bufio.NewReader(&got), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(body, data) {
		t.Fatalf("slow client got %d of %d bytes (%v)", len(body), len(data), err)
	}
	if took := time.Since(start); took > window {
		t.Logf("slow client took %v (%.0f KiB/s) for %d bytes, longer than the %v window", took.Round(time.Millisecond), float64(len(data))/1024/took.Seconds(), len(data), window)
	}
}

// A GET with a body that never comes is answered and closed at once:
// net/http would otherwise wait for the body before sending the headers.
func TestBodyRefused(t *testing.T) {
	f := newFixture(t)
	addr := f.startLimited(t, Limits{MaxConns: 10, MaxConnsPerIP: 10, MinRate: 1 << 20})
	c := dialFrom(t, "127.0.0.1", addr)
	fmt.Fprintf(c, "GET /vmlinuz HTTP/1.1\r\nHost: boot\r\nContent-Length: 100\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second)) // the fix answers in a millisecond
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET with a body that never comes: %v", err)
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Fatalf("status %d, close %v; want 413 and Connection: close", resp.StatusCode, resp.Close)
	}
}

func TestClientKey(t *testing.T) {
	for _, tt := range []struct{ addr, want string }{
		{"192.0.2.7:1234", "192.0.2.7/32"},
		{"[::ffff:192.0.2.7]:1234", "192.0.2.7/32"},
		{"[2001:db8:1:2:aaaa::1]:80", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::9]:80", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:80", "fe80::/64"},
	} {
		ap := netip.MustParseAddrPort(tt.addr)
		if got := clientKey(net.TCPAddrFromAddrPort(ap)).String(); got != tt.want {
			t.Errorf("clientKey(%s) = %s, want %s", tt.addr, got, tt.want)
		}
	}
	if got := clientKey(&net.UnixAddr{Name: "@"}); got.IsValid() {
		t.Errorf("clientKey(unix) = %s, want the shared invalid key", got)
	}
}
