package tftp

// Tests of Client: against pxed's own Server on 127.0.0.1, and against a fake
// server (plain UDP sockets in the test) for the edge cases a good server
// never produces.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func addrPort(a *net.UDPAddr) netip.AddrPort { return unmap(a.AddrPort()) }

// ---------------------------------------------------------------------------
// Against pxed's server.

func TestClientGet(t *testing.T) {
	t.Parallel()
	files := map[string][]byte{
		"empty.bin":  {},
		"512.bin":    randBytes(512, 1),
		"1468.bin":   randBytes(1468, 2),
		"8192.bin":   randBytes(8192, 3),
		"multi.bin":  randBytes(100_000, 4),
		"3mib.bin":   randBytes(3<<20, 5),
		"sub/f.cfg":  []byte("default linux\n"),
		"odd.bin":    randBytes(1468*16+7, 6),
		"window.bin": randBytes(1468*64, 7),
	}
	ts := startServer(t, writeTree(t, files), func(s *Server) { s.Logger = nil })
	server := addrPort(ts.addr)
	for _, bs := range []int{512, 1468, 8192} {
		for _, ws := range []int{1, 16, 64} {
			for name, want := range files {
				t.Run(fmt.Sprintf("blksize %d/windowsize %d/%s", bs, ws, name), func(t *testing.T) {
					t.Parallel()
					c := &Client{Blksize: bs, Windowsize: ws}
					var got bytes.Buffer
					n, err := c.Get(context.Background(), server, name, &got)
					if err != nil {
						t.Fatal(err)
					}
					if n != int64(len(want)) || !bytes.Equal(got.Bytes(), want) {
						t.Fatalf("got %d bytes (n=%d), want the %d of the file", got.Len(), n, len(want))
					}
				})
			}
		}
	}
	t.Run("zero value", func(t *testing.T) {
		t.Parallel()
		var got bytes.Buffer
		if _, err := new(Client).Get(context.Background(), server, "3mib.bin", &got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), files["3mib.bin"]) {
			t.Fatal("not byte-exact")
		}
	})
	t.Run("single-port server", func(t *testing.T) {
		t.Parallel()
		sp := startServer(t, ts.dir, func(s *Server) { s.Logger, s.SinglePort = nil, true })
		var got bytes.Buffer
		if _, err := new(Client).Get(context.Background(), addrPort(sp.addr), "multi.bin", &got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), files["multi.bin"]) {
			t.Fatal("not byte-exact")
		}
	})
}

func TestClientGetErrors(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string][]byte{"secret.bin": []byte("secret"), "big.bin": randBytes(10000, 8)})
	if err := os.Chmod(filepath.Join(dir, "secret.bin"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, dir, func(s *Server) { s.Logger = nil })
	server := addrPort(ts.addr)

	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		n, err := new(Client).Get(context.Background(), server, "no/such/file", io.Discard)
		if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			t.Fatalf("err = %v, want one that is fs.ErrNotExist", err)
		}
		var re *RemoteError
		if !errors.As(err, &re) || re.Code != ErrNotFound {
			t.Fatalf("err = %v, want a RemoteError with code 1", err)
		}
		if n != 0 {
			t.Errorf("n = %d", n)
		}
		want := fmt.Sprintf("tftp %s no/such/file: server says %q (code 1)", server, re.Msg)
		if err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
	})
	t.Run("not world-readable", func(t *testing.T) {
		t.Parallel()
		_, err := new(Client).Get(context.Background(), server, "secret.bin", io.Discard)
		if !errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v, want one that is fs.ErrPermission", err)
		}
		var re *RemoteError
		if !errors.As(err, &re) || re.Code != ErrAccess {
			t.Fatalf("err = %v, want a RemoteError with code 2", err)
		}
	})
	t.Run("tsize over MaxSize", func(t *testing.T) {
		t.Parallel()
		var got bytes.Buffer
		n, err := (&Client{MaxSize: 9999}).Get(context.Background(), server, "big.bin", &got)
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "larger than the limit of 9999") {
			t.Fatalf("err = %v, want the file refused as too large", err)
		}
		if n != 0 || got.Len() != 0 {
			t.Fatalf("%d bytes written before the refusal", got.Len())
		}
	})
	t.Run("exactly MaxSize", func(t *testing.T) {
		t.Parallel()
		n, err := (&Client{MaxSize: 10000}).Get(context.Background(), server, "big.bin", io.Discard)
		if err != nil || n != 10000 {
			t.Fatalf("n, err = %d, %v", n, err)
		}
	})
	t.Run("writer fails", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("disk on fire")
		_, err := (&Client{Blksize: 512, Windowsize: 1}).Get(context.Background(), server, "big.bin", failingWriter{err: boom})
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want the writer's error", err)
		}
	})
}

type failingWriter struct{ err error }

func (w failingWriter) Write(p []byte) (int, error) { return 0, w.err }

// hashWriter hashes what it is given, for files too large to keep.
type hashWriter struct {
	h hash.Hash
	n int64
}

func (w *hashWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return w.h.Write(p)
}

// TestClientRollover fetches a file of more than 65535 blocks of 512 bytes:
// block numbers wrap from 65535 to 0.
func TestClientRollover(t *testing.T) {
	t.Parallel()
	const size = 65536*512 + 1_000_000 // 33.6 MB: 67489 blocks
	data := randBytes(size, 9)
	want := sha256.Sum256(data)
	ts := startServer(t, writeTree(t, map[string][]byte{"big.img": data}), func(s *Server) { s.Logger = nil })
	data = nil
	for _, ws := range []int{64} {
		t.Run(fmt.Sprintf("windowsize %d", ws), func(t *testing.T) {
			w := &hashWriter{h: sha256.New()}
			n, err := (&Client{Blksize: 512, Windowsize: ws}).Get(context.Background(), addrPort(ts.addr), "big.img", w)
			if err != nil {
				t.Fatal(err)
			}
			if n != size || w.n != size || !bytes.Equal(w.h.Sum(nil), want[:]) {
				t.Fatalf("got %d bytes (n=%d), not the %d of the file", w.n, n, size)
			}
		})
	}
}

func TestRemoteError(t *testing.T) {
	for _, tc := range []struct {
		code           uint16
		notExist, perm bool
	}{{ErrNotFound, true, false}, {ErrAccess, false, true}, {ErrUndefined, false, false}, {ErrDiskFull, false, false}} {
		err := error(&RemoteError{Code: tc.code, Msg: "msg"})
		if errors.Is(err, fs.ErrNotExist) != tc.notExist || errors.Is(err, fs.ErrPermission) != tc.perm {
			t.Errorf("code %d: Is(ErrNotExist)=%v Is(ErrPermission)=%v", tc.code, errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission))
		}
		wrapped := &getError{server: netip.MustParseAddrPort("192.0.2.1:69"), name: "f", err: err}
		if errors.Is(wrapped, fs.ErrNotExist) != tc.notExist {
			t.Errorf("code %d: wrapped error lost Is", tc.code)
		}
	}
	if got, want := (&RemoteError{Code: 1, Msg: "file not found"}).Error(), `tftp: server says "file not found" (code 1)`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestClientConfigErrors(t *testing.T) {
	server := netip.MustParseAddrPort("127.0.0.1:69")
	for _, c := range []*Client{
		{Blksize: 7}, {Blksize: 65465}, {Blksize: -1}, {Windowsize: -1}, {Windowsize: 65536},
		{Timeout: -time.Second}, {Retries: -1}, {MaxSize: -1},
	} {
		if _, err := c.Get(context.Background(), server, "f", io.Discard); err == nil {
			t.Errorf("%+v: no error", *c)
		}
	}
	for _, tc := range []struct {
		server netip.AddrPort
		name   string
	}{{netip.AddrPort{}, "f"}, {netip.MustParseAddrPort("127.0.0.1:0"), "f"}, {server, ""}, {server, "a\x00b"}} {
		if _, err := new(Client).Get(context.Background(), tc.server, tc.name, io.Discard); err == nil {
			t.Errorf("Get(%v, %q): no error", tc.server, tc.name)
		}
	}
}

// ---------------------------------------------------------------------------
// A fake server: a listening socket for the request and a transfer socket
// (the server's TID) for the rest, driven step by step by the test.

type fakeServer struct {
	t      *testing.T
	listen *net.UDPConn
	tid    *net.UDPConn
	client *net.UDPAddr
	buf    []byte
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	f := &fakeServer{t: t, listen: listenLoopback(t), tid: listenLoopback(t), buf: make([]byte, 70000)}
	return f
}

func listenLoopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (f *fakeServer) addr() netip.AddrPort { return addrPort(f.listen.LocalAddr().(*net.UDPAddr)) }

// readFrom returns the next datagram on c, or errNoPacket after d.
func (f *fakeServer) readFrom(c *net.UDPConn, d time.Duration) ([]byte, *net.UDPAddr, error) {
	c.SetReadDeadline(time.Now().Add(d))
	n, from, err := c.ReadFromUDP(f.buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, nil, errNoPacket
		}
		return nil, nil, err
	}
	return bytes.Clone(f.buf[:n]), from, nil
}

// request waits for the client's RRQ on the listening socket.
func (f *fakeServer) request() *request {
	f.t.Helper()
	b, from, err := f.readFrom(f.listen, waitLong)
	if err != nil {
		f.t.Fatalf("waiting for the request: %v", err)
	}
	req, err := parseRequest(b)
	if err != nil || req.op != opRRQ || req.mode != "octet" {
		f.t.Fatalf("bad request %q: %v", b, err)
	}
	f.client = from
	return req
}

func (f *fakeServer) sendFrom(c *net.UDPConn, b []byte) {
	f.t.Helper()
	if _, err := c.WriteToUDP(b, f.client); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeServer) send(b []byte) { f.t.Helper(); f.sendFrom(f.tid, b) }

func (f *fakeServer) oack(opts ...string) {
	f.t.Helper()
	var o []option
	for i := 0; i+1 < len(opts); i += 2 {
		o = append(o, option{opts[i], opts[i+1]})
	}
	f.send(appendOACK(nil, o))
}

func dataPacket(block uint16, data []byte) []byte {
	b := make([]byte, 4+len(data))
	putDataHeader(b, block)
	copy(b[4:], data)
	return b
}

// next returns the next packet from the client on c.
func (f *fakeServer) nextOn(c *net.UDPConn) packet {
	f.t.Helper()
	b, from, err := f.readFrom(c, waitLong)
	if err != nil {
		f.t.Fatalf("waiting for a packet from the client: %v", err)
	}
	p, err := decodePacket(b)
	if err != nil {
		f.t.Fatalf("from the client: %v", err)
	}
	p.from = from
	return p
}

func (f *fakeServer) next() packet { f.t.Helper(); return f.nextOn(f.tid) }

func (f *fakeServer) expectAck(block uint16) {
	f.t.Helper()
	if p := f.next(); p.op != opACK || p.block != block {
		f.t.Fatalf("got %v, want ACK %d", p, block)
	}
}

func (f *fakeServer) expectError(code uint16) packet {
	f.t.Helper()
	p := f.next()
	if p.op != opERROR || p.code != code {
		f.t.Fatalf("got %v, want ERROR %d", p, code)
	}
	return p
}

type getResult struct {
	n    int64
	data []byte
	err  error
}

func startGet(ctx context.Context, c *Client, server netip.AddrPort, name string) <-chan getResult {
	ch := make(chan getResult, 1)
	go func() {
		var b bytes.Buffer
		n, err := c.Get(ctx, server, name, &b)
		ch <- getResult{n, b.Bytes(), err}
	}()
	return ch
}

func wait(t *testing.T, ch <-chan getResult) getResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitLong):
		t.Fatal("Get did not return")
		return getResult{}
	}
}

func reqOptions(r *request) map[string]string {
	m := map[string]string{}
	for _, o := range r.options {
		m[o.name] = o.value
	}
	return m
}

func TestClientRequestOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		c    Client
		want string
	}{
		{Client{}, "map[blksize:1468 timeout:1 tsize:0 windowsize:16]"},
		{Client{Blksize: 512, Windowsize: 1, Timeout: 1500 * time.Millisecond}, "map[timeout:2 tsize:0]"},
		{Client{Blksize: 8192, Windowsize: 64, Timeout: time.Hour}, "map[blksize:8192 timeout:255 tsize:0 windowsize:64]"},
		{Client{Timeout: time.Millisecond}, "map[blksize:1468 timeout:1 tsize:0 windowsize:16]"},
	} {
		f := newFakeServer(t)
		ch := startGet(context.Background(), &tc.c, f.addr(), "pxelinux.cfg/default")
		req := f.request()
		if req.filename != "pxelinux.cfg/default" {
			t.Errorf("file name %q", req.filename)
		}
		if got := fmt.Sprint(reqOptions(req)); got != tc.want {
			t.Errorf("%+v: options %s, want %s", tc.c, got, tc.want)
		}
		f.send(appendError(nil, ErrNotFound, "nope"))
		if r := wait(t, ch); !errors.Is(r.err, fs.ErrNotExist) {
			t.Errorf("err = %v", r.err)
		}
	}
}

// TestClientNoOACK: a server that ignores options sends DATA 1 at once; the
// client falls back to 512-byte blocks in lock-step.
func TestClientNoOACK(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	want := randBytes(512*2+100, 10)
	ch := startGet(context.Background(), new(Client), f.addr(), "f")
	f.request()
	for i := range 3 {
		f.send(dataPacket(uint16(i+1), want[i*512:min(len(want), (i+1)*512)]))
		f.expectAck(uint16(i + 1))
	}
	r := wait(t, ch)
	if r.err != nil || !bytes.Equal(r.data, want) || r.n != int64(len(want)) {
		t.Fatalf("n=%d err=%v, %d bytes", r.n, r.err, len(r.data))
	}
}

// TestClientOACKLowered: the server may lower every option; tsize is checked.
func TestClientOACKLowered(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	want := randBytes(600*2+1, 11)
	ch := startGet(context.Background(), new(Client), f.addr(), "f")
	f.request()
	f.oack("BLKSIZE", "600", "windowsize", "2", "timeout", "1", "tsize", fmt.Sprint(len(want)))
	f.expectAck(0)
	f.send(dataPacket(1, want[:600]))
	f.send(dataPacket(2, want[600:1200]))
	f.expectAck(2)
	f.send(dataPacket(3, want[1200:]))
	f.expectAck(3)
	r := wait(t, ch)
	if r.err != nil || !bytes.Equal(r.data, want) {
		t.Fatalf("n=%d err=%v", r.n, r.err)
	}
}

// TestClientOACKRefused: an OACK that raises an option or answers one not
// asked for gets ERROR 8, and Get fails.
func TestClientOACKRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		c    Client
		opts []string
	}{
		{"bigger blksize", Client{}, []string{"blksize", "1469"}},
		{"bigger windowsize", Client{}, []string{"windowsize", "17"}},
		{"bigger timeout", Client{}, []string{"timeout", "2"}},
		{"blksize not asked", Client{Blksize: 512}, []string{"blksize", "512"}},
		{"windowsize not asked", Client{Windowsize: 1}, []string{"windowsize", "1"}},
		{"unknown option", Client{}, []string{"multicast", "1"}},
		{"blksize too small", Client{}, []string{"blksize", "7"}},
		{"not a number", Client{}, []string{"blksize", "1k"}},
		{"bad tsize", Client{}, []string{"tsize", "-1"}},
		{"tsize over MaxSize", Client{MaxSize: 1000}, []string{"tsize", "1001"}},
		{"repeated", Client{}, []string{"blksize", "1000", "blksize", "1000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeServer(t)
			ch := startGet(context.Background(), &tc.c, f.addr(), "f")
			f.request()
			f.oack(tc.opts...)
			f.expectError(ErrOptionRefused)
			r := wait(t, ch)
			var re *RemoteError
			if r.err == nil || errors.As(r.err, &re) {
				t.Fatalf("err = %v, want a local refusal", r.err)
			}
			t.Log(r.err)
		})
	}
}

// TestClientForeignTID: packets from another port than the transfer's get
// ERROR 5 and change nothing.
func TestClientForeignTID(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	other := listenLoopback(t)
	want := randBytes(1468+10, 12)
	ch := startGet(context.Background(), &Client{Windowsize: 1}, f.addr(), "f")
	f.request()
	f.oack("blksize", "1468", "tsize", fmt.Sprint(len(want)))
	f.expectAck(0)
	// An intruder sends what the client waits for, and the listening port
	// (not the TID) chimes in too.
	f.sendFrom(other, dataPacket(1, bytes.Repeat([]byte("X"), 1468)))
	if p := f.nextOn(other); p.op != opERROR || p.code != ErrUnknownTID {
		t.Fatalf("intruder got %v, want ERROR 5", p)
	}
	f.sendFrom(f.listen, dataPacket(1, bytes.Repeat([]byte("Y"), 1468)))
	if p := f.nextOn(f.listen); p.op != opERROR || p.code != ErrUnknownTID {
		t.Fatalf("listening port got %v, want ERROR 5", p)
	}
	// An ERROR from a stranger is not answered and does not end the transfer.
	f.sendFrom(other, appendError(nil, ErrUndefined, "go away"))
	f.send(dataPacket(1, want[:1468]))
	f.expectAck(1)
	f.send(dataPacket(2, want[1468:]))
	f.expectAck(2)
	r := wait(t, ch)
	if r.err != nil || !bytes.Equal(r.data, want) {
		t.Fatalf("n=%d err=%v", r.n, r.err)
	}
	if b, _, err := f.readFrom(other, 0); err == nil {
		t.Fatalf("the stranger's ERROR was answered with %q", b)
	}
}

// TestClientLossAndDuplicates: a window with a lost block is acknowledged
// up to the gap, once; duplicates are ignored; the file comes out whole.
func TestClientLossAndDuplicates(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	const bs = 512
	want := randBytes(bs*10+33, 13)
	blk := func(i int) []byte { return dataPacket(uint16(i), want[(i-1)*bs:min(len(want), i*bs)]) }
	ch := startGet(context.Background(), &Client{Blksize: bs, Windowsize: 4, Timeout: 5 * time.Second}, f.addr(), "f")
	f.request()
	f.oack("windowsize", "4", "tsize", fmt.Sprint(len(want)))
	f.expectAck(0)
	// Window 1..4 loses 3: the client asks for 3 again with ACK 2, and
	// only once, whatever else of the window arrives.
	f.send(blk(1))
	f.send(blk(2))
	f.send(blk(4))
	f.send(blk(4))
	f.send(blk(2))
	f.expectAck(2)
	// The server resends from 3. Stale copies in between are ignored: had
	// the client answered them, their ACKs would come before ACK 6.
	f.send(blk(3))
	f.send(blk(1))
	f.send(blk(3))
	f.send(blk(4))
	f.send(blk(5))
	f.send(blk(2))
	f.send(blk(6))
	f.expectAck(6)
	for range 3 { // a duplicate storm of the whole window
		for i := 3; i <= 6; i++ {
			f.send(blk(i))
		}
	}
	for i := 7; i <= 10; i++ {
		f.send(blk(i))
	}
	f.expectAck(10)
	f.send(blk(11))
	f.send(blk(11))
	f.expectAck(11)
	r := wait(t, ch)
	if r.err != nil || !bytes.Equal(r.data, want) {
		t.Fatalf("n=%d err=%v", r.n, r.err)
	}
}

// TestClientRetransmits: with no reply the client resends its last packet
// after Timeout: the request, then its last ACK.
func TestClientRetransmits(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	want := randBytes(512+1, 14)
	ch := startGet(context.Background(), &Client{Blksize: 512, Windowsize: 1, Timeout: 50 * time.Millisecond, Retries: 100}, f.addr(), "f")
	first := f.request()
	second := f.request() // the RRQ again
	if fmt.Sprint(first) != fmt.Sprint(second) {
		t.Fatalf("retransmitted %+v, first sent %+v", second, first)
	}
	f.send(dataPacket(1, want[:512]))
	f.expectAck(1)
	f.expectAck(1) // again, after a timeout
	f.send(dataPacket(2, want[512:]))
	for {
		if p := f.next(); p.op != opACK || p.block != 2 {
			if p.op == opACK && p.block == 1 {
				continue // a timeout raced with DATA 2
			}
			t.Fatalf("got %v, want ACK 2", p)
		}
		break
	}
	r := wait(t, ch)
	if r.err != nil || !bytes.Equal(r.data, want) {
		t.Fatalf("n=%d err=%v", r.n, r.err)
	}
}

// TestClientNoAnswer: a silent server makes Get fail after Retries
// retransmissions, with an error that says where it got.
func TestClientNoAnswer(t *testing.T) {
	t.Parallel()
	t.Run("request", func(t *testing.T) {
		t.Parallel()
		f := newFakeServer(t)
		const timeout, retries = 50 * time.Millisecond, 3
		start := time.Now()
		ch := startGet(context.Background(), &Client{Timeout: timeout, Retries: retries}, f.addr(), "pxelinux.cfg/default")
		for range retries + 1 {
			f.request()
		}
		r := wait(t, ch)
		elapsed := time.Since(start)
		want := fmt.Sprintf("tftp %s pxelinux.cfg/default: no answer after 3 retries (block 0)", f.addr())
		if r.err == nil || r.err.Error() != want {
			t.Fatalf("err = %v, want %q", r.err, want)
		}
		if elapsed < (retries+1)*timeout {
			t.Errorf("gave up after %v, before %d timeouts of %v", elapsed, retries+1, timeout)
		}
		if b, _, err := f.readFrom(f.listen, 0); err == nil {
			t.Errorf("more than %d retransmissions: %q", retries, b)
		}
	})
	t.Run("mid-transfer", func(t *testing.T) {
		t.Parallel()
		f := newFakeServer(t)
		ch := startGet(context.Background(), &Client{Blksize: 512, Windowsize: 1, Timeout: 50 * time.Millisecond, Retries: 2}, f.addr(), "f")
		f.request()
		for i := 1; i <= 12; i++ {
			f.send(dataPacket(uint16(i), make([]byte, 512)))
			f.expectAck(uint16(i))
		}
		r := wait(t, ch)
		if r.err == nil || !strings.HasSuffix(r.err.Error(), ": no answer after 2 retries (block 12)") || r.n != 12*512 {
			t.Fatalf("n=%d err=%v", r.n, r.err)
		}
	})
}

// TestClientCancel: cancelling ctx ends Get at once, long before a timeout,
// and tells the server.
func TestClientCancel(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"cancel", "deadline"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			f := newFakeServer(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var want error = context.Canceled
			if how == "deadline" {
				ctx, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
				defer cancel()
				want = context.DeadlineExceeded
			}
			// Timeout and retries far beyond waitLong: only ctx can end it.
			ch := startGet(ctx, &Client{Timeout: time.Minute}, f.addr(), "f")
			f.request()
			f.oack("blksize", "1468")
			f.expectAck(0)
			if how == "cancel" {
				cancel()
			}
			r := wait(t, ch)
			if !errors.Is(r.err, want) {
				t.Fatalf("err = %v, want %v", r.err, want)
			}
			f.expectError(ErrUndefined)
		})
	}
	t.Run("before the request", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := new(Client).Get(ctx, netip.MustParseAddrPort("127.0.0.1:69"), "f", io.Discard); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestClientSizeChecks: MaxSize holds without tsize, and tsize must match.
func TestClientSizeChecks(t *testing.T) {
	t.Parallel()
	t.Run("MaxSize without tsize", func(t *testing.T) {
		t.Parallel()
		f := newFakeServer(t)
		ch := startGet(context.Background(), &Client{MaxSize: 1000}, f.addr(), "f")
		f.request()
		f.send(dataPacket(1, make([]byte, 512)))
		f.expectAck(1)
		f.send(dataPacket(2, make([]byte, 512)))
		f.expectError(ErrDiskFull)
		if r := wait(t, ch); r.err == nil || r.n != 512 {
			t.Fatalf("n=%d err=%v", r.n, r.err)
		}
	})
	t.Run("short of tsize", func(t *testing.T) {
		t.Parallel()
		f := newFakeServer(t)
		ch := startGet(context.Background(), new(Client), f.addr(), "f")
		f.request()
		f.oack("tsize", "100")
		f.expectAck(0)
		f.send(dataPacket(1, make([]byte, 50)))
		f.expectAck(1)
		if r := wait(t, ch); r.err == nil || !strings.Contains(r.err.Error(), "received 50 bytes, but the server announced 100") {
			t.Fatalf("err = %v", r.err)
		}
	})
	t.Run("beyond tsize", func(t *testing.T) {
		t.Parallel()
		f := newFakeServer(t)
		ch := startGet(context.Background(), new(Client), f.addr(), "f")
		f.request()
		f.oack("tsize", "100")
		f.expectAck(0)
		f.send(dataPacket(1, make([]byte, 512))) // no blksize in the OACK: 512
		f.expectError(ErrUndefined)
		if r := wait(t, ch); r.err == nil || r.n != 0 {
			t.Fatalf("n=%d err=%v", r.n, r.err)
		}
	})
	t.Run("oversized DATA", func(t *testing.T) {
		t.Parallel()
		f := newFakeServer(t)
		ch := startGet(context.Background(), new(Client), f.addr(), "f")
		f.request()
		f.send(dataPacket(1, make([]byte, 513))) // no OACK: blksize is 512
		f.expectError(ErrIllegalOp)
		if r := wait(t, ch); r.err == nil {
			t.Fatal("no error")
		}
	})
}

// TestClientRemoteErrorFromServer: an ERROR ends the transfer at any point.
func TestClientRemoteErrorFromServer(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	ch := startGet(context.Background(), &Client{Windowsize: 1}, f.addr(), "f")
	f.request()
	f.send(dataPacket(1, make([]byte, 512)))
	f.expectAck(1)
	f.send(appendError(nil, ErrAccess, "go away"))
	r := wait(t, ch)
	var re *RemoteError
	if !errors.As(r.err, &re) || re.Code != ErrAccess || re.Msg != "go away" || !errors.Is(r.err, fs.ErrPermission) || r.n != 512 {
		t.Fatalf("n=%d err=%v", r.n, r.err)
	}
	if b, _, err := f.readFrom(f.tid, 0); err == nil {
		t.Fatalf("the client answered the ERROR with %q", b)
	}
}

// FuzzClient feeds arbitrary packets, from the server, its transfer port or
// a stranger, and timeouts into the client's state machine. It must not
// panic, must answer each event with at most one well-formed packet (no
// storms), must send ACKs only to the transfer's peer, and must never write
// more than MaxSize or report success with a size other than the tsize
// announced.
//
// The input is a sequence of events: a byte whose low two bits pick the
// source (0: the server's request port, 1 and 2: its transfer port, 3: a
// stranger) and 0xff for a timeout, then a 2-byte length and the packet.
func FuzzClient(f *testing.F) {
	ev := func(src byte, pkt []byte) []byte {
		return append([]byte{src, byte(len(pkt) >> 8), byte(len(pkt))}, pkt...)
	}
	cat := func(evs ...[]byte) []byte { return bytes.Join(evs, nil) }
	full := bytes.Repeat([]byte("a"), 16)
	f.Add(cat(ev(1, dataPacket(1, full)), ev(1, dataPacket(2, []byte("end")))))
	f.Add(cat(ev(1, appendOACK(nil, []option{{"blksize", "16"}, {"windowsize", "4"}, {"tsize", "35"}})),
		ev(1, dataPacket(1, full)), ev(1, dataPacket(3, full)), ev(1, dataPacket(2, full)), ev(0xff, nil),
		ev(3, dataPacket(3, full)), ev(1, dataPacket(3, []byte("end")))))
	f.Add(cat(ev(1, appendOACK(nil, []option{{"blksize", "17"}}))))
	f.Add(cat(ev(0, appendError(nil, 1, "file not found"))))
	f.Add(cat(ev(0xff, nil), ev(2, []byte{0, 6}), ev(2, []byte{0, 3, 0})))
	f.Fuzz(func(t *testing.T, in []byte) {
		server := netip.MustParseAddrPort("192.0.2.1:69")
		tid := netip.MustParseAddrPort("192.0.2.1:40000")
		stranger := netip.MustParseAddrPort("192.0.2.1:40001")
		cfg := clientConfig{blksize: 16, windowsize: 4, timeout: time.Second, retries: 5, maxSize: 100}
		var w bytes.Buffer
		g := newGetter(cfg, server, &w)
		g.rrq = g.request("f")
		type sent struct {
			b  []byte
			to netip.AddrPort
		}
		var out []sent
		g.send = func(b []byte, to netip.AddrPort) error {
			out = append(out, sent{bytes.Clone(b), to})
			return nil
		}
		for len(in) >= 3 {
			src, n := in[0], int(in[1])<<8|int(in[2])
			in = in[3:]
			n = min(n, len(in))
			pkt := in[:n]
			in = in[n:]
			out = out[:0]
			var done bool
			var err error
			if src == 0xff {
				err = g.onTimeout()
			} else {
				from := [4]netip.AddrPort{server, tid, tid, stranger}[src&3]
				_, done, err = g.onPacket(pkt, from)
			}
			if len(out) > 1 {
				t.Fatalf("one event, %d packets sent", len(out))
			}
			for _, s := range out {
				if bytes.Equal(s.b, g.rrq) && s.to == server {
					continue
				}
				p, derr := decodePacket(s.b)
				if derr != nil {
					t.Fatalf("sent a malformed packet %q: %v", s.b, derr)
				}
				if p.op == opACK && (!g.locked || s.to != g.peer) {
					t.Fatalf("ACK sent to %v, peer %v (locked %v)", s.to, g.peer, g.locked)
				}
			}
			if int64(w.Len()) != g.n || g.n > cfg.maxSize {
				t.Fatalf("wrote %d bytes, counted %d, limit %d", w.Len(), g.n, cfg.maxSize)
			}
			if err != nil {
				return
			}
			if done {
				if g.tsize >= 0 && g.n != g.tsize {
					t.Fatalf("done with %d bytes, tsize %d", g.n, g.tsize)
				}
				return
			}
		}
	})
}
