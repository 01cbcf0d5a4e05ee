package tftp

// Black-box tests of the TFTP server: a Server runs on 127.0.0.1:0 and a small
// raw-UDP client in this file speaks the protocol to it. Only the public API of
// Server and the codec in packet.go/util.go are used, never the internals of
// server.go.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pxed/internal/bootfs"
)

// waitLong bounds how long the client waits for a packet that must come. It is
// a test deadline, not a performance threshold.
const waitLong = 10 * time.Second

// quiet is how long the client listens to make sure that nothing comes. Where
// it matters, it is well under the server's retransmission timeout.
const quiet = 200 * time.Millisecond

// ---------------------------------------------------------------------------
// Test fixtures: boot trees and servers.

// writeTree creates a boot tree in a temporary directory. Every file is made
// world-readable (0644), as the server only serves such files.
func writeTree(t testing.TB, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o644); err != nil { // whatever the umask
			t.Fatal(err)
		}
	}
	return dir
}

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	rand.NewChaCha8(s).Read(b)
	return b
}

type testServer struct {
	srv    *Server
	addr   *net.UDPAddr // the listening socket
	dir    string
	cancel context.CancelFunc
	done   chan struct{} // closed when Serve has returned
	err    error         // what Serve returned; read after done
}

// startServer serves dir (through a bootfs.Tree, as pxed does) on a fresh
// 127.0.0.1 port. configure may adjust the Server before Serve is called. The
// server is stopped, and must return, when the test ends.
func startServer(t testing.TB, dir string, configure func(*Server)) *testServer {
	t.Helper()
	tree, err := bootfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tree.Close() })
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		FS:     tree,
		Root:   tree.Dir(),
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		// Long enough that a slow, loaded test machine never sees a
		// retransmission it did not ask for; tests of retransmission set
		// their own. MinTimeout as long turns the adaptive timeout off
		// (a Timeout a test sets is then its fixed timeout); the tests of
		// the adaptive timeout (loss_test.go) lower it.
		Timeout:    5 * time.Second,
		MinTimeout: 5 * time.Second,
		Grace:      2 * time.Second,
	}
	if configure != nil {
		configure(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{srv: s, addr: conn.LocalAddr().(*net.UDPAddr), dir: tree.Dir(), cancel: cancel, done: make(chan struct{})}
	go func() {
		ts.err = s.Serve(ctx, conn)
		close(ts.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-ts.done:
		case <-time.After(s.Grace + 10*time.Second):
			t.Errorf("Serve did not return after its context was cancelled")
		}
		if !s.SinglePort && !s.NoRing && !s.ringUsed.Load() {
			// The kernel (or a seccomp policy) has no io_uring: the
			// goroutine engine ran instead. CI's kernel has io_uring.
			if os.Getenv("PXED_E2E") == "1" {
				t.Errorf("io_uring engine not used (PXED_E2E=1 requires it; see the server log)")
			} else {
				t.Logf("io_uring engine not used: the goroutine engine ran instead")
			}
		}
	})
	return ts
}

// mode is one way a Server drives transfers. The black-box tests run in
// each: io_uring workers (the default where the kernel has io_uring), one
// goroutine per transfer, and single-port mode.
type mode struct {
	name string
	set  func(*Server)
}

var (
	modes = []mode{
		{"io_uring", func(*Server) {}},
		{"goroutines", func(s *Server) { s.NoRing = true }},
		{"single-port", func(s *Server) { s.SinglePort = true }},
	}
	ephemeralModes = modes[:2]
)

// with returns a configure function that sets m, then runs configure.
func (m mode) with(configure func(*Server)) func(*Server) {
	return func(s *Server) {
		m.set(s)
		configure(s)
	}
}

// forModes runs test once in every mode of ms, as parallel subtests.
func forModes(t *testing.T, ms []mode, test func(*testing.T, mode)) {
	t.Parallel()
	for _, m := range ms {
		t.Run(m.name, func(t *testing.T) { test(t, m) })
	}
}

// waitServe waits up to d for Serve to return and reports whether it did.
func (ts *testServer) waitServe(d time.Duration) bool {
	select {
	case <-ts.done:
		return true
	case <-time.After(d):
		return false
	}
}

// ---------------------------------------------------------------------------
// Packets.

type packet struct {
	op    uint16
	block uint16   // DATA, ACK
	data  []byte   // DATA payload (a copy)
	code  uint16   // ERROR
	msg   string   // ERROR
	opts  []option // OACK, in wire order
	from  *net.UDPAddr
}

func (p packet) String() string {
	switch p.op {
	case opDATA:
		return fmt.Sprintf("DATA %d (%d bytes)", p.block, len(p.data))
	case opACK:
		return fmt.Sprintf("ACK %d", p.block)
	case opERROR:
		return fmt.Sprintf("ERROR %d %q", p.code, p.msg)
	case opOACK:
		return fmt.Sprintf("OACK %v", p.opts)
	}
	return fmt.Sprintf("opcode %d", p.op)
}

// decodePacket decodes what a server may send, strictly.
func decodePacket(b []byte) (packet, error) {
	if len(b) < 2 {
		return packet{}, fmt.Errorf("%d-byte packet", len(b))
	}
	p := packet{op: binary.BigEndian.Uint16(b)}
	switch p.op {
	case opDATA:
		if len(b) < 4 {
			return p, fmt.Errorf("short DATA packet %q", b)
		}
		p.block = binary.BigEndian.Uint16(b[2:])
		p.data = bytes.Clone(b[4:])
		if p.data == nil {
			p.data = []byte{}
		}
	case opERROR:
		if len(b) < 5 || b[len(b)-1] != 0 {
			return p, fmt.Errorf("ERROR packet not NUL-terminated: %q", b)
		}
		p.code = binary.BigEndian.Uint16(b[2:])
		p.msg = string(b[4 : len(b)-1])
		if strings.IndexByte(p.msg, 0) >= 0 {
			return p, fmt.Errorf("ERROR message with a NUL inside: %q", b)
		}
	case opOACK:
		if len(b) < 3 || b[len(b)-1] != 0 {
			return p, fmt.Errorf("empty or unterminated OACK: %q", b)
		}
		f := bytes.Split(b[2:len(b)-1], []byte{0})
		if len(f)%2 != 0 {
			return p, fmt.Errorf("OACK with an odd number of fields: %q", b)
		}
		for i := 0; i < len(f); i += 2 {
			p.opts = append(p.opts, option{string(f[i]), string(f[i+1])})
		}
	case opACK:
		if len(b) != 4 {
			return p, fmt.Errorf("bad ACK %q", b)
		}
		p.block = binary.BigEndian.Uint16(b[2:])
	default:
		return p, fmt.Errorf("unexpected opcode %d in %q", p.op, b)
	}
	return p, nil
}

// rrqPacket encodes an RRQ; opts are name, value pairs.
func rrqPacket(name, mode string, opts ...string) []byte {
	return requestPacket(opRRQ, name, mode, opts...)
}

func requestPacket(op uint16, name, mode string, opts ...string) []byte {
	if len(opts)%2 != 0 {
		panic("options must come in name, value pairs")
	}
	var o []option
	for i := 0; i < len(opts); i += 2 {
		o = append(o, option{opts[i], opts[i+1]})
	}
	return appendRequest(nil, op, name, mode, o)
}

func ackPacket(block uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, opACK), block)
}

// ---------------------------------------------------------------------------
// The test client.

type tclient struct {
	t      testing.TB
	conn   *net.UDPConn
	server *net.UDPAddr // the server's listening address
	peer   *net.UDPAddr // the transfer's address (TID), from the first reply
	buf    []byte
	// sizeHint, when set, preallocates a transfer's data (big files).
	sizeHint int
}

var errNoPacket = errors.New("no packet before the deadline")

func newClient(t testing.TB, server *net.UDPAddr) *tclient {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &tclient{t: t, conn: conn, server: server, buf: make([]byte, 1<<17)}
}

func (c *tclient) sendTo(addr *net.UDPAddr, b []byte) error {
	_, err := c.conn.WriteToUDP(b, addr)
	return err
}

// send sends b to the listening port.
func (c *tclient) send(b []byte) {
	c.t.Helper()
	if err := c.sendTo(c.server, b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *tclient) rrq(name, mode string, opts ...string) {
	c.t.Helper()
	c.send(rrqPacket(name, mode, opts...))
}

func (c *tclient) ackErr(block uint16) error {
	if c.peer == nil {
		return errors.New("ACK before the server answered")
	}
	return c.sendTo(c.peer, ackPacket(block))
}

// ack acknowledges block to the transfer's address.
func (c *tclient) ack(block uint16) {
	c.t.Helper()
	if err := c.ackErr(block); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next packet, or errNoPacket after d. The first packet
// received sets the transfer's address.
func (c *tclient) read(d time.Duration) (packet, error) {
	c.conn.SetReadDeadline(time.Now().Add(d))
	n, from, err := c.conn.ReadFromUDP(c.buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return packet{}, errNoPacket
		}
		return packet{}, err
	}
	p, err := decodePacket(c.buf[:n])
	p.from = from
	if err != nil {
		return p, err
	}
	if c.peer == nil {
		c.peer = from
	}
	return p, nil
}

// next returns the next packet and fails the test if none comes in waitLong.
func (c *tclient) next() packet {
	c.t.Helper()
	p, err := c.read(waitLong)
	if err != nil {
		c.t.Fatalf("waiting for a packet: %v", err)
	}
	return p
}

func (c *tclient) expectData(block uint16) packet {
	c.t.Helper()
	p := c.next()
	if p.op != opDATA || p.block != block {
		c.t.Fatalf("got %v, want DATA %d", p, block)
	}
	return p
}

// expectDataSkipping waits for DATA block, skipping retransmissions of
// earlier blocks (which a slow client may see when the server times out).
func (c *tclient) expectDataSkipping(block uint16) packet {
	c.t.Helper()
	for {
		p := c.next()
		if p.op == opDATA && p.block < block {
			continue
		}
		if p.op != opDATA || p.block != block {
			c.t.Fatalf("got %v, want DATA %d", p, block)
		}
		return p
	}
}

// expectNone fails the test if a packet arrives within d.
func (c *tclient) expectNone(d time.Duration, why string) {
	c.t.Helper()
	p, err := c.read(d)
	if err == nil {
		c.t.Fatalf("%s: got %v from %v, want no packet within %v", why, p, p.from, d)
	}
	if !errors.Is(err, errNoPacket) {
		c.t.Fatal(err)
	}
}

// collect returns every packet that arrives within d.
func (c *tclient) collect(d time.Duration) []packet {
	c.t.Helper()
	var ps []packet
	end := time.Now().Add(d)
	for {
		left := time.Until(end)
		if left <= 0 {
			return ps
		}
		p, err := c.read(left)
		if errors.Is(err, errNoPacket) {
			return ps
		}
		if err != nil {
			c.t.Fatal(err)
		}
		ps = append(ps, p)
	}
}

// result is the outcome of a transfer as the client saw it.
type result struct {
	oack   []option     // nil when the server sent no OACK
	data   []byte       // the payload, concatenated
	blocks []uint16     // wire numbers of the DATA blocks taken, in order
	from   *net.UDPAddr // where the DATA came from
	maxLen int          // the largest DATA payload
	err    *PeerError   // the ERROR that ended the transfer, if any
}

// get sends an RRQ and runs the transfer to its end.
func (c *tclient) get(name, mode string, opts ...string) *result {
	c.t.Helper()
	c.rrq(name, mode, opts...)
	return c.finish(c.next())
}

func (c *tclient) finish(first packet) *result {
	c.t.Helper()
	r, err := c.finishErr(first)
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

func (c *tclient) getErr(name, mode string, opts ...string) (*result, error) {
	if err := c.sendTo(c.server, rrqPacket(name, mode, opts...)); err != nil {
		return nil, err
	}
	p, err := c.read(waitLong)
	if err != nil {
		return nil, err
	}
	return c.finishErr(p)
}

// finishErr runs a transfer whose first reply was p: it acknowledges an OACK
// and then takes DATA blocks in order, acknowledging the last block of each
// window (RFC 7440) and the final short block. It never fails the test itself,
// so it may run in other goroutines.
func (c *tclient) finishErr(p packet) (*result, error) {
	r := &result{data: make([]byte, 0, c.sizeHint)}
	blksize, window := defaultBlksize, 1
	switch p.op {
	case opERROR:
		r.err = &PeerError{Code: p.code, Message: p.msg}
		return r, nil
	case opOACK:
		r.oack = p.opts
		for _, o := range p.opts {
			v, err := strconv.Atoi(o.value)
			switch strings.ToLower(o.name) {
			case "blksize":
				if err != nil || v < minBlksize || v > maxBlksize {
					return r, fmt.Errorf("OACK with blksize %q", o.value)
				}
				blksize = v
			case "windowsize":
				if err != nil || v < 1 || v > maxWindowsize {
					return r, fmt.Errorf("OACK with windowsize %q", o.value)
				}
				window = v
			}
		}
		if err := c.ackErr(0); err != nil {
			return r, err
		}
		var err error
		if p, err = c.read(waitLong); err != nil {
			return r, fmt.Errorf("after OACK: %w", err)
		}
	}
	next := uint16(1)
	inWindow := 0
	for {
		switch p.op {
		case opERROR:
			r.err = &PeerError{Code: p.code, Message: p.msg}
			return r, nil
		case opDATA:
		case opOACK:
			if r.oack != nil && next == 1 {
				// A retransmission, sent before our ACK 0 arrived.
				var err error
				if p, err = c.read(waitLong); err != nil {
					return r, fmt.Errorf("after OACK: %w", err)
				}
				continue
			}
			return r, fmt.Errorf("got %v during the transfer", p)
		default:
			return r, fmt.Errorf("got %v during the transfer", p)
		}
		if r.from == nil {
			r.from = p.from
		} else if p.from.AddrPort() != r.from.AddrPort() {
			return r, fmt.Errorf("DATA from %v, earlier DATA from %v", p.from, r.from)
		}
		if len(p.data) > blksize {
			return r, fmt.Errorf("DATA %d has %d bytes, blksize is %d", p.block, len(p.data), blksize)
		}
		if p.block == next {
			r.data = append(r.data, p.data...)
			r.blocks = append(r.blocks, p.block)
			r.maxLen = max(r.maxLen, len(p.data))
			next++
			inWindow++
			if len(p.data) < blksize {
				return r, c.ackErr(p.block)
			}
			if inWindow == window {
				inWindow = 0
				if err := c.ackErr(p.block); err != nil {
					return r, err
				}
			}
		} else if p.block != next-1 || window > 1 {
			// Out of order (a loss): tell the server where we are.
			inWindow = 0
			if err := c.ackErr(next - 1); err != nil {
				return r, err
			}
		}
		var err error
		if p, err = c.read(waitLong); err != nil {
			return r, fmt.Errorf("waiting for DATA %d: %w", next, err)
		}
	}
}

// optionsEqual compares an OACK with name, value pairs (names case-blind).
func optionsEqual(got []option, want []string) bool {
	if len(got)*2 != len(want) {
		return false
	}
	for i, o := range got {
		if !strings.EqualFold(o.name, want[2*i]) || o.value != want[2*i+1] {
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------------------
// Option negotiation.

func TestOptionNegotiation(t *testing.T) { forModes(t, ephemeralModes, testOptionNegotiation) }

func testOptionNegotiation(t *testing.T, m mode) {
	t.Parallel()
	small := randBytes(3000, 1)
	big := randBytes(200_000, 2)
	text := []byte("one\ntwo\r\nthree\rfour\n")
	textWire := []byte("one\r\ntwo\r\x00\r\nthree\r\x00four\r\n")
	dir := writeTree(t, map[string][]byte{"small": small, "big": big, "text.txt": text, "empty": nil})
	plain := startServer(t, dir, m.set)
	capped := startServer(t, dir, m.with(func(s *Server) { s.MaxBlksize = 1024; s.MaxWindowsize = 16 }))

	tests := []struct {
		name    string
		capped  bool     // use the server with MaxBlksize 1024, MaxWindowsize 16
		file    string   // default "big"
		mode    string   // default "octet"
		opts    []string // name, value pairs
		raw     []byte   // sent instead of an RRQ built from file, mode and opts
		refused bool     // want ERROR 8
		oack    []string // want this OACK (nil: want no OACK)
		blksize int      // want DATA of this size (0: 512)
	}{
		{name: "no options", oack: nil},
		{name: "blksize 8", file: "small", opts: []string{"blksize", "8"}, oack: []string{"blksize", "8"}, blksize: 8},
		{name: "blksize 512", opts: []string{"blksize", "512"}, oack: []string{"blksize", "512"}},
		{name: "blksize 1468", opts: []string{"blksize", "1468"}, oack: []string{"blksize", "1468"}, blksize: 1468},
		{name: "blksize 65464", opts: []string{"blksize", "65464"}, oack: []string{"blksize", "65464"}, blksize: 65464},
		{name: "blksize 65465 clamped to 65464", opts: []string{"blksize", "65465"}, oack: []string{"blksize", "65464"}, blksize: 65464},
		{name: "huge blksize clamped to 65464", opts: []string{"blksize", "99999999999999999999"}, oack: []string{"blksize", "65464"}, blksize: 65464},
		{name: "blksize clamped by MaxBlksize", capped: true, opts: []string{"blksize", "1468"}, oack: []string{"blksize", "1024"}, blksize: 1024},
		{name: "blksize under MaxBlksize kept", capped: true, opts: []string{"blksize", "1000"}, oack: []string{"blksize", "1000"}, blksize: 1000},
		{name: "blksize abc", opts: []string{"blksize", "abc"}, refused: true},
		{name: "blksize 4", opts: []string{"blksize", "4"}, refused: true},
		{name: "blksize 7", opts: []string{"blksize", "7"}, refused: true},
		{name: "blksize empty", opts: []string{"blksize", ""}, refused: true},
		{name: "blksize negative", opts: []string{"blksize", "-512"}, refused: true},
		{name: "tsize", opts: []string{"tsize", "0"}, oack: []string{"tsize", "200000"}},
		{name: "tsize of small file", file: "small", opts: []string{"tsize", "0"}, oack: []string{"tsize", "3000"}},
		{name: "tsize left out in netascii (size on the wire unknown)", file: "text.txt", mode: "netascii", opts: []string{"tsize", "0"}, oack: nil},
		{name: "tsize left out in netascii, blksize kept", file: "text.txt", mode: "netascii", opts: []string{"tsize", "0", "blksize", "1024"}, oack: []string{"blksize", "1024"}, blksize: 1024},
		{name: "tsize of an empty file is left out", file: "empty", opts: []string{"tsize", "0"}, oack: nil},
		{name: "tsize of an empty file left out, blksize kept", file: "empty", opts: []string{"tsize", "0", "blksize", "1024"}, oack: []string{"blksize", "1024"}, blksize: 1024},
		{name: "tsize abc", opts: []string{"tsize", "abc"}, refused: true},
		{name: "timeout 1", opts: []string{"timeout", "1"}, oack: []string{"timeout", "1"}},
		{name: "timeout 255", opts: []string{"timeout", "255"}, oack: []string{"timeout", "255"}},
		{name: "timeout 0", opts: []string{"timeout", "0"}, refused: true},
		{name: "timeout 256", opts: []string{"timeout", "256"}, refused: true},
		{name: "timeout abc", opts: []string{"timeout", "abc"}, refused: true},
		{name: "windowsize 1", opts: []string{"windowsize", "1"}, oack: []string{"windowsize", "1"}},
		{name: "windowsize 8", opts: []string{"windowsize", "8"}, oack: []string{"windowsize", "8"}},
		{name: "windowsize 64", opts: []string{"windowsize", "64"}, oack: []string{"windowsize", "64"}},
		{name: "windowsize 65535 clamped to default max", opts: []string{"windowsize", "65535"}, oack: []string{"windowsize", "64"}},
		{name: "windowsize clamped by MaxWindowsize", capped: true, opts: []string{"windowsize", "65535"}, oack: []string{"windowsize", "16"}},
		{name: "windowsize 0", opts: []string{"windowsize", "0"}, refused: true},
		{name: "windowsize abc", opts: []string{"windowsize", "abc"}, refused: true},
		{name: "unknown options only", opts: []string{"foo", "bar", "multicast", "", "rollover", "0"}, oack: nil},
		{name: "unknown options ignored", opts: []string{"foo", "bar", "blksize", "1024", "utimeout", "5000"}, oack: []string{"blksize", "1024"}, blksize: 1024},
		{name: "names case-insensitive", opts: []string{"BLKSIZE", "1024", "TSize", "0", "WindowSize", "4", "TimeOut", "2"},
			oack: []string{"blksize", "1024", "tsize", "200000", "windowsize", "4", "timeout", "2"}, blksize: 1024},
		{name: "options acknowledged in client order", opts: []string{"tsize", "0", "timeout", "3", "windowsize", "8", "blksize", "1468"},
			oack: []string{"tsize", "200000", "timeout", "3", "windowsize", "8", "blksize", "1468"}, blksize: 1468},
		{name: "first of a repeated option wins", opts: []string{"blksize", "1024", "blksize", "2048"}, oack: []string{"blksize", "1024"}, blksize: 1024},
		{name: "mode case-insensitive", mode: "OcTeT", opts: []string{"blksize", "1024"}, oack: []string{"blksize", "1024"}, blksize: 1024},
		{name: "PXE ROM style, no final NUL", raw: []byte("\x00\x01big\x00octet\x00tsize\x000\x00blksize\x001456"),
			oack: []string{"tsize", "200000", "blksize", "1456"}, blksize: 1456},
		{name: "dangling option name dropped", raw: []byte("\x00\x01big\x00octet\x00blksize\x001024\x00tsize\x00"),
			oack: []string{"blksize", "1024"}, blksize: 1024},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := plain
			if tc.capped {
				ts = capped
			}
			file, mode := cmpOr(tc.file, "big"), cmpOr(tc.mode, "octet")
			c := newClient(t, ts.addr)
			if tc.raw != nil {
				c.send(tc.raw)
			} else {
				c.rrq(file, mode, tc.opts...)
			}
			r := c.finish(c.next())
			if tc.refused {
				if r.err == nil || r.err.Code != ErrOptionRefused {
					t.Fatalf("got OACK %v, error %v; want ERROR %d", r.oack, r.err, ErrOptionRefused)
				}
				return
			}
			if r.err != nil {
				t.Fatalf("transfer failed: %v", r.err)
			}
			if tc.oack == nil && r.oack != nil {
				t.Errorf("got OACK %v, want none (DATA straight away)", r.oack)
			}
			if tc.oack != nil && !optionsEqual(r.oack, tc.oack) {
				t.Errorf("got OACK %v, want %q", r.oack, tc.oack)
			}
			want := map[string][]byte{"big": big, "small": small, "text.txt": text}[file]
			if strings.EqualFold(mode, "netascii") {
				want = textWire
			}
			if !bytes.Equal(r.data, want) {
				t.Errorf("got %d bytes, want %d bytes of %s", len(r.data), len(want), file)
			}
			if wantBS := cmpOr(tc.blksize, defaultBlksize); r.maxLen != min(wantBS, len(want)) {
				t.Errorf("DATA payloads of %d bytes, want %d", r.maxLen, min(wantBS, len(want)))
			}
		})
	}
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// TestTimeoutOption checks that a negotiated timeout replaces the server's
// once the client has answered; before that, the server's own governs
// (TestLostOACKLongTimeout).
func TestTimeoutOption(t *testing.T) { forModes(t, ephemeralModes, testTimeoutOption) }

func testTimeoutOption(t *testing.T, m mode) {
	t.Parallel()
	data := randBytes(2000, 3)
	ts := startServer(t, writeTree(t, map[string][]byte{"f": data}), m.with(func(s *Server) {
		s.Timeout = 100 * time.Millisecond
	}))
	c := newClient(t, ts.addr)
	c.rrq("f", "octet", "timeout", "1")
	p := c.next()
	if p.op != opOACK || !optionsEqual(p.opts, []string{"timeout", "1"}) {
		t.Fatalf("got %v, want OACK timeout=1", p)
	}
	c.ack(0)
	c.expectData(1)
	start := time.Now()
	// DATA 1 not acknowledged: the server's own 100ms timeout must not apply.
	c.expectNone(600*time.Millisecond, "DATA 1 retransmitted before the negotiated 1s timeout")
	p = c.expectData(1)
	if el := time.Since(start); el < 800*time.Millisecond {
		t.Errorf("DATA 1 resent after %v, want about 1s", el)
	}
	r := c.finish(p)
	if r.err != nil || !bytes.Equal(r.data, data) {
		t.Fatalf("transfer after the retransmitted DATA 1: err %v, %d bytes", r.err, len(r.data))
	}
}

// ---------------------------------------------------------------------------
// Errors and names.

func TestErrorPackets(t *testing.T) { forModes(t, ephemeralModes, testErrorPackets) }

func testErrorPackets(t *testing.T, m mode) {
	t.Parallel()
	dir := writeTree(t, map[string][]byte{"file": []byte("hello\n"), "secret": []byte("s3cret\n"), "sub/deep": []byte("deep\n")})
	if err := os.Chmod(filepath.Join(dir, "secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	outside := writeTree(t, map[string][]byte{"outside": []byte("outside the root\n")})
	if err := os.Symlink(filepath.Join(outside, "outside"), filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(filepath.Join(dir, "sub"), filepath.Join(outside, "outside"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rel, filepath.Join(dir, "sub", "escape-rel")); err != nil { // ../../…/outside
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "escape-dir")); err != nil {
		t.Fatal(err)
	}
	// Every request at once, all from 127.0.0.1.
	ts := startServer(t, dir, m.with(func(s *Server) { s.MaxTransfersPerClient = 100 }))

	tests := []struct {
		name string
		req  []byte
		code uint16
	}{
		{"missing file", rrqPacket("nope", "octet"), ErrNotFound},
		{"missing file in a directory", rrqPacket("sub/nope", "octet"), ErrNotFound},
		{"missing directory", rrqPacket("nodir/file", "octet"), ErrNotFound},
		{"directory", rrqPacket("sub", "octet"), ErrNotFound},
		{"path through a file", rrqPacket("file/x", "octet"), ErrNotFound},
		{"not world-readable", rrqPacket("secret", "octet"), ErrAccess},
		{"not world-readable with options", rrqPacket("secret", "octet", "blksize", "1024"), ErrAccess},
		{"WRQ of an existing file", requestPacket(opWRQ, "file", "octet"), ErrAccess},
		{"WRQ of a new file", requestPacket(opWRQ, "new", "octet"), ErrAccess},
		{"two-byte request", []byte{0, 1}, ErrIllegalOp},
		{"no mode", []byte("\x00\x01file\x00"), ErrIllegalOp},
		{"no mode, no NUL", []byte("\x00\x01file"), ErrIllegalOp},
		{"empty file name", []byte("\x00\x01\x00octet\x00"), ErrIllegalOp},
		{"unknown mode", rrqPacket("file", "binary"), ErrIllegalOp},
		{"mail mode", rrqPacket("file", "mail"), ErrIllegalOp},
		{"MAIL mode", rrqPacket("file", "MAIL"), ErrIllegalOp},
		{"unknown opcode", []byte("\x00\x09file\x00octet\x00"), ErrIllegalOp},
		{"OACK to the server", []byte("\x00\x06blksize\x00512\x00"), ErrIllegalOp},
		{"stray DATA", []byte("\x00\x03\x00\x01hello"), ErrUnknownTID},
		{"stray ACK", ackPacket(1), ErrUnknownTID},
		{"dot-dot", rrqPacket("../etc/passwd", "octet"), ErrAccess},
		{"dot-dot after a leading slash", rrqPacket("/../etc/passwd", "octet"), ErrAccess},
		{"dot-dot inside", rrqPacket("sub/../../etc/passwd", "octet"), ErrAccess},
		{"dot-dot that stays inside", rrqPacket("sub/../file", "octet"), ErrAccess},
		{"dot-dot with backslashes", rrqPacket(`..\..\etc\passwd`, "octet"), ErrAccess},
		{"control byte in the name", rrqPacket("fi\x01le", "octet"), ErrAccess},
		{"absolute symlink out of the root", rrqPacket("escape", "octet"), ErrAccess},
		{"relative symlink out of the root", rrqPacket("sub/escape-rel", "octet"), ErrAccess},
		{"through a symlinked directory out of the root", rrqPacket("escape-dir/outside", "octet"), ErrAccess},
		{"absolute name outside the root", rrqPacket(filepath.Join(outside, "outside"), "octet"), ErrNotFound},
	}
	// Every request from its own client at once, so that one quiet period
	// covers them all.
	clients := make([]*tclient, len(tests))
	for i, tc := range tests {
		clients[i] = newClient(t, ts.addr)
		clients[i].send(tc.req)
	}
	stray := newClient(t, ts.addr)
	stray.send(appendError(nil, ErrUndefined, "bye"))
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clients[i].t = t
			p := clients[i].next()
			if p.op != opERROR || p.code != tc.code {
				t.Fatalf("got %v, want ERROR %d", p, tc.code)
			}
		})
	}
	time.Sleep(quiet)
	for i, tc := range tests {
		if p, err := clients[i].read(time.Millisecond); err == nil {
			t.Errorf("%s: got %v after the ERROR", tc.name, p)
		}
	}
	// A stray ERROR is not answered (no error storms between two servers).
	if p, err := stray.read(time.Millisecond); err == nil {
		t.Errorf("stray ERROR answered with %v", p)
	}
}

func TestAcceptedNames(t *testing.T) { forModes(t, ephemeralModes, testAcceptedNames) }

func testAcceptedNames(t *testing.T, m mode) {
	t.Parallel()
	file := []byte("the file\n")
	deep := []byte("a deeper file\n")
	dir := writeTree(t, map[string][]byte{"file": file, "sub/deep": deep, "boot/x.c32": deep})
	if err := os.Symlink("file", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, dir, m.set)
	tests := []struct {
		req  string
		want []byte
	}{
		{"file", file},
		{"/file", file},
		{"//file", file},
		{`\file`, file},
		{"./file", file},
		{"sub/deep", deep},
		{"/sub/deep", deep},
		{`\sub\deep`, deep},
		{`sub\deep`, deep},
		{"sub//deep", deep},
		{`\boot\x.c32`, deep},
		{ts.dir + "/file", file},
		{ts.dir + "/sub/deep", deep},
		{"link", file},
	}
	for _, tc := range tests {
		t.Run(tc.req, func(t *testing.T) {
			t.Parallel()
			r := newClient(t, ts.addr).get(tc.req, "octet")
			if r.err != nil {
				t.Fatalf("refused: %v", r.err)
			}
			if !bytes.Equal(r.data, tc.want) {
				t.Fatalf("got %q, want %q", r.data, tc.want)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Transfers.

func TestOctetTransfer(t *testing.T) { forModes(t, ephemeralModes, testOctetTransfer) }

func testOctetTransfer(t *testing.T, m mode) {
	t.Parallel()
	sizes := []int{0, 1, 511, 512, 513, 1024, 1025, 8*512 + 7, 300_000}
	files := map[string][]byte{}
	for i, n := range sizes {
		files[fmt.Sprintf("f%d", n)] = randBytes(n, uint64(100+i))
	}
	ts := startServer(t, writeTree(t, files), m.set)
	for _, n := range sizes {
		for _, bs := range []int{0, 1468} {
			t.Run(fmt.Sprintf("%d bytes blksize %d", n, cmpOr(bs, 512)), func(t *testing.T) {
				t.Parallel()
				name := fmt.Sprintf("f%d", n)
				var opts []string
				if bs != 0 {
					opts = []string{"blksize", strconv.Itoa(bs)}
				}
				r := newClient(t, ts.addr).get(name, "octet", opts...)
				if r.err != nil {
					t.Fatal(r.err)
				}
				if !bytes.Equal(r.data, files[name]) {
					t.Fatalf("got %d bytes, not the %d of the file", len(r.data), n)
				}
				// The last block is always short, so a multiple of the block
				// size ends with an empty block.
				bsize := cmpOr(bs, 512)
				if want := n/bsize + 1; len(r.blocks) != want {
					t.Errorf("got %d DATA packets, want %d", len(r.blocks), want)
				}
				for i, b := range r.blocks {
					if b != uint16(i+1) {
						t.Fatalf("DATA packet %d has block number %d", i, b)
					}
				}
			})
		}
	}
}

// TestExactBlockHasEmptyFinalPacket looks at the wire for a file of exactly one
// block: DATA 1 of 512 bytes, then DATA 2 with no payload.
func TestExactBlockHasEmptyFinalPacket(t *testing.T) {
	forModes(t, ephemeralModes, testExactBlockHasEmptyFinalPacket)
}

func testExactBlockHasEmptyFinalPacket(t *testing.T, m mode) {
	t.Parallel()
	data := randBytes(512, 7)
	ts := startServer(t, writeTree(t, map[string][]byte{"one": data, "zero": nil}), m.set)
	c := newClient(t, ts.addr)
	c.rrq("one", "octet")
	if p := c.expectData(1); !bytes.Equal(p.data, data) {
		t.Fatalf("DATA 1 carries %d bytes, want the 512 of the file", len(p.data))
	}
	c.ack(1)
	if p := c.expectData(2); len(p.data) != 0 {
		t.Fatalf("DATA 2 carries %d bytes, want 0", len(p.data))
	}
	c.ack(2)
	c.expectNone(quiet, "after the final ACK")

	c = newClient(t, ts.addr)
	c.rrq("zero", "octet")
	if p := c.expectData(1); len(p.data) != 0 {
		t.Fatalf("empty file: DATA 1 carries %d bytes", len(p.data))
	}
	c.ack(1)
	c.expectNone(quiet, "after the final ACK")
}

func TestNetasciiTransfer(t *testing.T) { forModes(t, ephemeralModes, testNetasciiTransfer) }

func testNetasciiTransfer(t *testing.T, m mode) {
	t.Parallel()
	// The expected wire form, computed independently of netasciiEncode.
	conv := strings.NewReplacer("\r", "\r\x00", "\n", "\r\n")
	straddle := strings.Repeat("x", 511) + "\nnext line\n" // CR LF split across blocks 1 and 2
	var long strings.Builder
	for i := range 500 {
		fmt.Fprintf(&long, "line %d\n", i)
		if i%7 == 0 {
			long.WriteString("bare\rcr\n")
		}
	}
	tests := map[string]string{
		"empty":      "",
		"no-newline": "plain text",
		"lf":         "a\nb\n",
		"cr":         "a\rb",
		"crlf":       "dos\r\nline\r\n",
		"lf-only":    "\n",
		"cr-only":    "\r",
		"nul":        "a\x00b\n",
		"straddle":   straddle,
		"long":       long.String(),
	}
	files := map[string][]byte{}
	for name, s := range tests {
		files[name] = []byte(s)
	}
	ts := startServer(t, writeTree(t, files), m.set)
	for name, s := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want := []byte(conv.Replace(s))
			r := newClient(t, ts.addr).get(name, "netascii")
			if r.err != nil {
				t.Fatal(r.err)
			}
			if !bytes.Equal(r.data, want) {
				t.Fatalf("got %q, want %q", trunc(r.data), trunc(want))
			}
			if n := len(want)/512 + 1; len(r.blocks) != n {
				t.Errorf("got %d blocks, want %d", len(r.blocks), n)
			}
		})
	}
}

func trunc(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// TestBlockNumberRollover sends a file of more than 65535 blocks of 512 bytes:
// block numbers on the wire go 65535, 0, 1.
func TestBlockNumberRollover(t *testing.T) { forModes(t, ephemeralModes, testBlockNumberRollover) }

func testBlockNumberRollover(t *testing.T, m mode) {
	t.Parallel()
	const size = 65536*512 + 300 // 65537 blocks: ..., 65535, 0, 1
	data := randBytes(size, 42)
	ts := startServer(t, writeTree(t, map[string][]byte{"big.img": data}), m.set)
	for _, window := range []int{1, 16} {
		t.Run(fmt.Sprintf("windowsize %d", window), func(t *testing.T) {
			t.Parallel()
			var opts []string
			if window > 1 {
				opts = []string{"windowsize", strconv.Itoa(window)}
			}
			c := newClient(t, ts.addr)
			c.sizeHint = size
			r := c.get("big.img", "octet", opts...)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if len(r.blocks) != 65537 {
				t.Fatalf("got %d blocks, want 65537", len(r.blocks))
			}
			if got := r.blocks[65533:]; got[0] != 65534 || got[1] != 65535 || got[2] != 0 || got[3] != 1 {
				t.Fatalf("last block numbers %v, want [65534 65535 0 1]", got)
			}
			if !bytes.Equal(r.data, data) {
				i := 0
				for i < min(len(r.data), len(data)) && r.data[i] == data[i] {
					i++
				}
				t.Fatalf("got %d bytes, want %d; first difference at offset %d (block %d)", len(r.data), len(data), i, i/512+1)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Retransmission.

func TestRetransmitOnTimeout(t *testing.T) { forModes(t, ephemeralModes, testRetransmitOnTimeout) }

func testRetransmitOnTimeout(t *testing.T, m mode) {
	t.Parallel()
	data := randBytes(3*512+100, 5)
	ts := startServer(t, writeTree(t, map[string][]byte{"f": data}), m.with(func(s *Server) { s.Timeout = 100 * time.Millisecond }))

	t.Run("DATA", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, ts.addr)
		c.rrq("f", "octet")
		p1 := c.expectData(1)
		c.ack(1)
		p2 := c.expectData(2)
		start := time.Now()
		// DATA 2 not acknowledged: it must come again, after the timeout.
		again := c.expectData(2)
		if el := time.Since(start); el < 50*time.Millisecond {
			t.Errorf("DATA 2 resent after %v, before the 100ms timeout", el)
		}
		if !bytes.Equal(again.data, p2.data) || !bytes.Equal(p1.data, data[:512]) {
			t.Fatalf("retransmitted DATA differs")
		}
		got := append(p1.data, again.data...)
		for n := uint16(2); ; n++ {
			c.ack(n)
			if n == 4 {
				break
			}
			got = append(got, c.expectDataSkipping(n+1).data...)
		}
		c.expectNone(quiet, "after the final ACK")
		if !bytes.Equal(got, data) {
			t.Fatalf("got %d bytes, want the %d of the file", len(got), len(data))
		}
	})
	t.Run("OACK", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, ts.addr)
		c.rrq("f", "octet", "blksize", "1024", "tsize", "0")
		first := c.next()
		if first.op != opOACK {
			t.Fatalf("got %v, want OACK", first)
		}
		start := time.Now()
		again := c.next()
		if again.op != opOACK || fmt.Sprint(again.opts) != fmt.Sprint(first.opts) {
			t.Fatalf("got %v, want %v again", again, first)
		}
		if el := time.Since(start); el < 50*time.Millisecond {
			t.Errorf("OACK resent after %v, before the 100ms timeout", el)
		}
		r := c.finish(again)
		if r.err != nil || !bytes.Equal(r.data, data) {
			t.Fatalf("err %v, got %d bytes, want %d", r.err, len(r.data), len(data))
		}
	})
}

func TestRetriesExhausted(t *testing.T) { forModes(t, ephemeralModes, testRetriesExhausted) }

func testRetriesExhausted(t *testing.T, m mode) {
	t.Parallel()
	data := randBytes(4000, 6)
	const retries = 2
	ts := startServer(t, writeTree(t, map[string][]byte{"f": data}), m.with(func(s *Server) {
		s.Timeout = 100 * time.Millisecond
		s.Retries = retries
	}))
	tests := []struct {
		name string
		opts []string
		want uint16 // the opcode sent again and again
	}{
		{"DATA", nil, opDATA},
		{"OACK", []string{"blksize", "1024"}, opOACK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, ts.addr)
			c.rrq("f", "octet", tc.opts...)
			// The first send and Retries retransmissions, then silence.
			for i := range retries + 1 {
				p := c.next()
				if p.op != tc.want || (p.op == opDATA && p.block != 1) {
					t.Fatalf("packet %d: got %v", i, p)
				}
			}
			c.expectNone(5*100*time.Millisecond, fmt.Sprintf("after %d retransmissions", retries))
			// The server has forgotten the transfer: the same client port
			// can start a new one.
			c.peer = nil
			r := c.get("f", "octet", "timeout", "5")
			if r.err != nil || !bytes.Equal(r.data, data) {
				t.Fatalf("new transfer from the same port: err %v, %d bytes", r.err, len(r.data))
			}
		})
	}
}

func TestClientErrorEndsTransfer(t *testing.T) {
	forModes(t, ephemeralModes, testClientErrorEndsTransfer)
}

func testClientErrorEndsTransfer(t *testing.T, m mode) {
	t.Parallel()
	// A server that ignored the ERROR would go on retransmitting every
	// 100ms for 5s.
	ts := startServer(t, writeTree(t, map[string][]byte{"f": randBytes(5000, 8)}), m.with(func(s *Server) {
		s.Timeout = 100 * time.Millisecond
		s.Retries = 50
	}))
	c := newClient(t, ts.addr)
	c.rrq("f", "octet")
	c.expectData(1)
	if err := c.sendTo(c.peer, appendError(nil, ErrUndefined, "user cancelled")); err != nil {
		t.Fatal(err)
	}
	c.collect(300 * time.Millisecond) // retransmissions sent before the ERROR arrived
	c.expectNone(5*100*time.Millisecond, "after the client's ERROR")
}

// TestDuplicateACK guards against the Sorcerer's Apprentice bug (RFC 1123
// 4.2.3.1): a duplicate ACK must not make the server send the next block again.
func TestDuplicateACK(t *testing.T) { forModes(t, ephemeralModes, testDuplicateACK) }

func testDuplicateACK(t *testing.T, m mode) {
	t.Parallel()
	data := randBytes(6*512+10, 9)
	ts := startServer(t, writeTree(t, map[string][]byte{"f": data}), m.set)
	c := newClient(t, ts.addr)
	c.rrq("f", "octet")
	got := c.expectData(1).data
	for block := uint16(1); block <= 3; block++ {
		// The same ACK two or three times in a row.
		for range 2 + int(block%2) {
			c.ack(block)
		}
		ps := c.collect(quiet) // well under the 5s timeout
		if len(ps) != 1 || ps[0].op != opDATA || ps[0].block != block+1 {
			t.Fatalf("after duplicate ACKs of block %d got %v, want DATA %d exactly once", block, ps, block+1)
		}
		got = append(got, ps[0].data...)
	}
	// A stale ACK of an earlier block is ignored too.
	c.ack(2)
	c.expectNone(quiet, "after a stale ACK")
	for n := uint16(4); n <= 6; n++ {
		c.ack(n)
		c.ack(n)
		got = append(got, c.expectData(n+1).data...)
	}
	c.ack(7)
	c.ack(7)
	c.expectNone(quiet, "after the final ACK")
	if !bytes.Equal(got, data) {
		t.Fatalf("data differs")
	}
}

// ---------------------------------------------------------------------------
// Windowsize (RFC 7440).

func TestWindowsize(t *testing.T) { forModes(t, ephemeralModes, testWindowsize) }

func testWindowsize(t *testing.T, m mode) {
	t.Parallel()
	data := randBytes(9*512+100, 10) // 10 blocks
	ts := startServer(t, writeTree(t, map[string][]byte{"f": data}), m.set)
	block := func(n int) []byte { return data[(n-1)*512 : min(n*512, len(data))] }
	start := func(t *testing.T) *tclient {
		c := newClient(t, ts.addr)
		c.rrq("f", "octet", "windowsize", "4")
		if p := c.next(); p.op != opOACK || !optionsEqual(p.opts, []string{"windowsize", "4"}) {
			t.Fatalf("got %v, want OACK windowsize=4", p)
		}
		c.ack(0)
		return c
	}
	window := func(t *testing.T, c *tclient, first, last int) {
		t.Helper()
		for n := first; n <= last; n++ {
			if p := c.expectData(uint16(n)); !bytes.Equal(p.data, block(n)) {
				t.Fatalf("DATA %d carries the wrong bytes", n)
			}
		}
	}

	t.Run("four blocks per ACK", func(t *testing.T) {
		t.Parallel()
		c := start(t)
		window(t, c, 1, 4)
		c.expectNone(quiet, "more than 4 blocks before an ACK")
		c.ack(4)
		window(t, c, 5, 8)
		c.expectNone(quiet, "more than 4 blocks before an ACK")
		c.ack(8)
		window(t, c, 9, 10)
		c.ack(10)
		c.expectNone(quiet, "after the final ACK")
	})
	t.Run("ACK inside the window resends from the next block", func(t *testing.T) {
		t.Parallel()
		c := start(t)
		window(t, c, 1, 4)
		c.ack(2) // blocks 3 and 4 were lost
		window(t, c, 3, 6)
		c.expectNone(quiet, "more than 4 blocks before an ACK")
		c.ack(6)
		window(t, c, 7, 10)
		c.ack(10)
		c.expectNone(quiet, "after the final ACK")
	})
	t.Run("duplicate ACK of the block before the window resends it once", func(t *testing.T) {
		t.Parallel()
		c := start(t)
		window(t, c, 1, 4)
		// The client lost the whole window and says so twice (or the network
		// duplicated its ACK): one resend of the window, not one per ACK.
		c.ack(0)
		c.ack(0)
		ps := c.collect(quiet)
		var blocks []uint16
		for _, p := range ps {
			blocks = append(blocks, p.block)
		}
		if fmt.Sprint(blocks) != "[1 2 3 4]" {
			t.Errorf("after two ACKs of block 0 got blocks %v, want [1 2 3 4] once", blocks)
		}
		c.ack(4)
		window(t, c, 5, 8)
		c.ack(8)
		window(t, c, 9, 10)
		c.ack(10)
	})
	t.Run("timeout resends the window", func(t *testing.T) {
		t.Parallel()
		fast := startServer(t, ts.dir, m.with(func(s *Server) { s.Timeout = 300 * time.Millisecond }))
		c := newClient(t, fast.addr)
		c.rrq("f", "octet", "windowsize", "4")
		if p := c.next(); p.op != opOACK {
			t.Fatalf("got %v, want OACK", p)
		}
		c.ack(0)
		window(t, c, 1, 4)
		window(t, c, 1, 4) // again after 300ms without an ACK
		c.ack(4)
		// From here on a slow client may see more resends of the window.
		for n := uint16(5); n <= 10; n++ {
			c.expectDataSkipping(n)
			if n%4 == 0 || n == 10 {
				c.ack(n)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// Ports.

func TestSinglePort(t *testing.T) {
	t.Parallel()
	files := map[string][]byte{}
	for i := range 8 {
		files[fmt.Sprintf("f%d", i)] = randBytes(20*512+i*37, uint64(200+i))
	}
	ts := startServer(t, writeTree(t, files), func(s *Server) { s.SinglePort = true })

	t.Run("DATA from the listening port", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, ts.addr)
		for _, opts := range [][]string{nil, {"blksize", "1024", "windowsize", "4"}} {
			c.peer = nil
			r := c.get("f0", "octet", opts...)
			if r.err != nil || !bytes.Equal(r.data, files["f0"]) {
				t.Fatalf("options %v: err %v, %d bytes", opts, r.err, len(r.data))
			}
			if r.from.Port != ts.addr.Port {
				t.Errorf("options %v: DATA from port %d, want the listening port %d", opts, r.from.Port, ts.addr.Port)
			}
		}
	})
	t.Run("two interleaved clients", func(t *testing.T) {
		t.Parallel()
		a, b := newClient(t, ts.addr), newClient(t, ts.addr)
		a.rrq("f1", "octet")
		b.rrq("f2", "octet")
		var gotA, gotB []byte
		for n := uint16(1); ; n++ {
			pa, pb := a.expectData(n), b.expectData(n)
			if pa.from.Port != ts.addr.Port || pb.from.Port != ts.addr.Port {
				t.Fatalf("DATA from ports %d and %d, want %d", pa.from.Port, pb.from.Port, ts.addr.Port)
			}
			gotA, gotB = append(gotA, pa.data...), append(gotB, pb.data...)
			// Acknowledge in alternating order.
			if n%2 == 0 {
				a.ack(n)
				b.ack(n)
			} else {
				b.ack(n)
				a.ack(n)
			}
			if len(pa.data) < 512 && len(pb.data) < 512 {
				break
			}
			if len(pa.data) < 512 || len(pb.data) < 512 {
				t.Fatalf("files of the same block count ended at different blocks")
			}
		}
		if !bytes.Equal(gotA, files["f1"]) || !bytes.Equal(gotB, files["f2"]) {
			t.Fatalf("clients got the wrong bytes (%d and %d bytes)", len(gotA), len(gotB))
		}
	})
	t.Run("concurrent clients", func(t *testing.T) {
		t.Parallel()
		testConcurrent(t, ts, files)
	})
}

// testConcurrent runs one client per file at the same time.
func testConcurrent(t *testing.T, ts *testServer, files map[string][]byte) map[string]*net.UDPAddr {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		from = map[string]*net.UDPAddr{}
	)
	for name, want := range files {
		c := newClient(t, ts.addr)
		wg.Go(func() {
			opts := []string{"blksize", "1024", "windowsize", "2"}
			if name[len(name)-1]%2 == 0 {
				opts = nil // half the clients without options
			}
			r, err := c.getErr(name, "octet", opts...)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			case r.err != nil:
				errs = append(errs, fmt.Errorf("%s: %w", name, r.err))
			case !bytes.Equal(r.data, want):
				errs = append(errs, fmt.Errorf("%s: got %d bytes, not the %d of the file", name, len(r.data), len(want)))
			default:
				from[name] = r.from
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	return from
}

func TestEphemeralPort(t *testing.T) { forModes(t, ephemeralModes, testEphemeralPort) }

func testEphemeralPort(t *testing.T, m mode) {
	t.Parallel()
	files := map[string][]byte{}
	for i := range 6 {
		files[fmt.Sprintf("file%d", i)] = randBytes(10*512+i, uint64(300+i))
	}
	ts := startServer(t, writeTree(t, files), m.set)
	from := testConcurrent(t, ts, files)
	seen := map[int]string{}
	for name, addr := range from {
		if addr.Port == ts.addr.Port {
			t.Errorf("%s: DATA from the listening port %d, want an ephemeral port", name, addr.Port)
		}
		if other, ok := seen[addr.Port]; ok {
			t.Errorf("%s and %s were served from the same port %d", name, other, addr.Port)
		}
		seen[addr.Port] = name
	}
}

// TestDuplicateRequest: a client whose first answer was lost sends its RRQ
// again. The transfer under way must go on (RFC 1350 clients retransmit
// requests), in both port modes.
func TestDuplicateRequest(t *testing.T) {
	t.Parallel()
	data := randBytes(5000, 11)
	for _, m := range modes {
		ts := startServer(t, writeTree(t, map[string][]byte{"f": data}), m.with(func(s *Server) {
			s.Timeout = 500 * time.Millisecond
		}))
		for _, opts := range [][]string{nil, {"blksize", "1024"}} {
			t.Run(fmt.Sprintf("%s/options=%v", m.name, opts), func(t *testing.T) {
				t.Parallel()
				c := newClient(t, ts.addr)
				c.rrq("f", "octet", opts...)
				first := c.next()
				if first.op == opERROR {
					t.Fatalf("got %v", first)
				}
				c.rrq("f", "octet", opts...) // as if the answer had been lost
				p := c.next()                // the answer again (now or after the timeout)
				if p.op == opERROR {
					t.Fatalf("a retransmitted RRQ ended the transfer with %v", p)
				}
				if p.op != first.op || p.block != first.block {
					t.Fatalf("got %v, want %v again", p, first)
				}
				r := c.finish(p)
				if r.err != nil || !bytes.Equal(r.data, data) {
					t.Fatalf("err %v, got %d bytes, want %d", r.err, len(r.data), len(data))
				}
			})
		}
	}
}

// TestSamePortNextRequest: a client that reuses its source port for the next
// file (as many PXE ROMs do) before the server has processed its last ACK
// gets the next file, in both port modes. The old transfer is still waiting
// for the final ACK, which this client never sends.
func TestSamePortNextRequest(t *testing.T) {
	t.Parallel()
	a, b := randBytes(3000, 21), randBytes(2000, 22)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, writeTree(t, map[string][]byte{"a": a, "b": b}), m.set)
			c := newClient(t, ts.addr)
			c.rrq("a", "octet")
			var got []byte
			for blk := uint16(1); ; blk++ {
				p := c.expectData(blk)
				got = append(got, p.data...)
				if len(p.data) < defaultBlksize {
					break // the final block: not acknowledged
				}
				c.ack(blk)
			}
			if !bytes.Equal(got, a) {
				t.Fatalf("first file: got %d bytes, want %d", len(got), len(a))
			}
			c.peer = nil
			c.rrq("b", "octet")
			r := c.finish(c.next())
			if r.err != nil || !bytes.Equal(r.data, b) {
				t.Fatalf("second file from the same port: err %v, got %d bytes, want %d", r.err, len(r.data), len(b))
			}
		})
	}
}

func TestMaxTransfers(t *testing.T) { forModes(t, ephemeralModes, testMaxTransfers) }

func testMaxTransfers(t *testing.T, m mode) {
	t.Parallel()
	data := randBytes(3000, 12)
	ts := startServer(t, writeTree(t, map[string][]byte{"f": data}), m.with(func(s *Server) {
		s.MaxTransfers = 1
		s.Timeout = 5 * time.Second
	}))
	a := newClient(t, ts.addr)
	a.rrq("f", "octet")
	first := a.expectData(1)
	b := newClient(t, ts.addr)
	b.rrq("f", "octet")
	if p := b.next(); p.op != opERROR || p.code != ErrUndefined {
		t.Fatalf("second transfer: got %v, want ERROR 0 (busy)", p)
	}
	r := a.finish(first)
	if r.err != nil || !bytes.Equal(r.data, data) {
		t.Fatalf("first transfer: err %v, %d bytes", r.err, len(r.data))
	}
	// Once the first transfer has ended, the slot is free again.
	deadline := time.Now().Add(waitLong)
	for {
		c := newClient(t, ts.addr)
		r := c.get("f", "octet")
		if r.err == nil {
			if !bytes.Equal(r.data, data) {
				t.Fatalf("got %d bytes", len(r.data))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still refused after the first transfer ended: %v", r.err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// Shutdown.

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	data := randBytes(20*512+33, 13)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, writeTree(t, map[string][]byte{"f": data}), m.with(func(s *Server) {
				s.Grace = 20 * time.Second
			}))
			c := newClient(t, ts.addr)
			c.rrq("f", "octet")
			var got []byte
			for n := uint16(1); n <= 5; n++ {
				got = append(got, c.expectData(n).data...)
				c.ack(n)
			}
			ts.cancel()
			// New requests are refused, or not read at all.
			late := newClient(t, ts.addr)
			late.rrq("f", "octet")
			if p, err := late.read(500 * time.Millisecond); err == nil && p.op != opERROR {
				t.Errorf("RRQ after shutdown answered with %v", p)
			} else if err != nil && !errors.Is(err, errNoPacket) {
				t.Error(err)
			}
			// The transfer under way completes.
			for n := uint16(6); ; n++ {
				p := c.expectData(n)
				got = append(got, p.data...)
				c.ack(n)
				if len(p.data) < 512 {
					break
				}
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("got %d bytes, want %d", len(got), len(data))
			}
			// Serve returns once the transfer is over, well before Grace.
			if !ts.waitServe(waitLong) {
				t.Fatalf("Serve still running %v after its last transfer ended", waitLong)
			}
			if ts.err != nil {
				t.Errorf("Serve returned %v", ts.err)
			}
		})
	}
}

func TestGraceExpired(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, writeTree(t, map[string][]byte{"f": randBytes(5000, 14)}), m.with(func(s *Server) {
				s.Grace = 300 * time.Millisecond
				s.Timeout = 30 * time.Second // no retransmission during the test
			}))
			c := newClient(t, ts.addr)
			c.rrq("f", "octet")
			c.expectData(1)
			start := time.Now()
			ts.cancel() // and never ACK
			p := c.next()
			if p.op != opERROR {
				t.Fatalf("got %v, want an ERROR when the grace period ends", p)
			}
			if el := time.Since(start); el < 200*time.Millisecond {
				t.Errorf("transfer aborted %v after cancel, before the 300ms grace period", el)
			}
			if !ts.waitServe(waitLong) {
				t.Fatal("Serve did not return after the grace period")
			}
			if ts.err != nil {
				t.Errorf("Serve returned %v", ts.err)
			}
		})
	}
}

func TestServeWithoutFS(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := (&Server{}).Serve(context.Background(), conn); err == nil {
		t.Fatal("Serve without FS returned nil")
	}
}

// TestServeConnClosedUnderIt: when the listening socket is closed by someone
// else, Serve must still return (once its context ends at the latest).
func TestServeConnClosedUnderIt(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			tree, err := bootfs.Open(writeTree(t, map[string][]byte{"f": []byte("x")}))
			if err != nil {
				t.Fatal(err)
			}
			defer tree.Close()
			conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			s := &Server{FS: tree, Grace: 100 * time.Millisecond}
			m.set(s)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Serve(ctx, conn) }()
			// Let Serve start reading, then pull the socket from under it.
			c := newClient(t, conn.LocalAddr().(*net.UDPAddr))
			if r := c.get("f", "octet"); r.err != nil {
				t.Fatal(r.err)
			}
			conn.Close()
			time.Sleep(100 * time.Millisecond)
			cancel()
			select {
			case <-done:
			case <-time.After(waitLong):
				t.Fatalf("Serve did not return after its socket was closed and its context cancelled")
			}
		})
	}
}

// TestStoppingServersLeavesOtherSocketsAlone stops server after server while
// another server's transfers run in the same process. A stopped server must
// not touch file descriptors it has closed: their numbers are soon reused
// (by other servers' transfer sockets here; by HTTP connections or log files
// in pxed), and a stray write into one corrupts someone else's stream.
func TestStoppingServersLeavesOtherSocketsAlone(t *testing.T) {
	data := randBytes(4000, 15)
	dir := writeTree(t, map[string][]byte{"f": data})
	victim := startServer(t, dir, func(s *Server) { s.Logger = nil })
	tree, err := bootfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()

	var (
		stop      atomic.Bool
		wg        sync.WaitGroup
		mu        sync.Mutex
		failures  []string
		transfers atomic.Int64
	)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
				if err != nil {
					continue
				}
				c := &tclient{t: t, conn: conn, server: victim.addr, buf: make([]byte, 1<<16)}
				r, err := c.getErr("f", "octet")
				conn.Close()
				transfers.Add(1)
				if err != nil || r.err != nil || !bytes.Equal(r.data, data) {
					msg := fmt.Sprint(err)
					if r != nil {
						msg = fmt.Sprintf("%v, server error %v, %d bytes", err, r.err, len(r.data))
					}
					mu.Lock()
					failures = append(failures, msg)
					mu.Unlock()
					stop.Store(true)
				}
			}
		})
	}
	deadline := time.Now().Add(4 * time.Second)
	restarts := 0
	for ; restarts < 3000 && time.Now().Before(deadline) && !stop.Load(); restarts++ {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		s := &Server{FS: tree}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Serve(ctx, conn); close(done) }()
		cancel()
		select {
		case <-done:
		case <-time.After(waitLong):
			t.Fatal("Serve did not return")
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d servers started and stopped during %d transfers of another server", restarts, transfers.Load())
	for _, f := range failures {
		t.Errorf("transfer from the other server broken: %s", f)
	}
}

// TestMixedClients runs many transfers at once whose clients behave in
// every way a transfer can end: to completion (with and without options and
// windows), with an ERROR of their own mid-way, by going silent, by closing
// their port, and by asking for a missing file. Every complete transfer is
// byte-exact and from one TID; the others end without a stray packet; and
// the server holds no transfer afterwards.
func TestMixedClients(t *testing.T) {
	several := mode{"io_uring-3-workers", func(s *Server) { s.RingWorkers = 3 }}
	forModes(t, append([]mode{several}, modes...), testMixedClients)
}

func testMixedClients(t *testing.T, m mode) {
	const n = 60
	files := map[string][]byte{}
	for i := range 4 {
		files[fmt.Sprintf("f%d", i)] = randBytes(40_000+i*9_000, uint64(700+i))
	}
	ts := startServer(t, writeTree(t, files), m.with(func(s *Server) {
		s.Timeout = 150 * time.Millisecond
		s.Retries = 2
		s.MaxTransfersPerClient = n // every client is 127.0.0.1
	}))
	optSets := [][]string{nil, {"blksize", "1468"}, {"blksize", "8192", "windowsize", "4"}, {"blksize", "1024", "windowsize", "16", "tsize", "0"}}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		name := fmt.Sprintf("f%d", i%4)
		c := newClient(t, ts.addr)
		wg.Go(func() {
			if err := mixedClient(c, i%5, name, files[name], optSets[i%len(optSets)]); err != nil {
				errs <- fmt.Errorf("client %d (behaviour %d, %s): %w", i, i%5, name, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	deadline := time.Now().Add(waitLong)
	for ts.srv.active.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if a := ts.srv.active.Load(); a != 0 {
		t.Errorf("%d transfers still held after every client is done", a)
	}
}

// mixedClient plays one behaviour; it never fails the test itself.
func mixedClient(c *tclient, behaviour int, name string, want []byte, opts []string) error {
	switch behaviour {
	case 0: // to the end
		r, err := c.getErr(name, "octet", opts...)
		switch {
		case err != nil:
			return err
		case r.err != nil:
			return r.err
		case !bytes.Equal(r.data, want):
			return fmt.Errorf("got %d bytes, want %d", len(r.data), len(want))
		}
		return nil
	case 1, 2: // an ERROR after block 3, or silence after block 2
		if err := c.sendTo(c.server, rrqPacket(name, "octet")); err != nil {
			return err
		}
		stop := uint16(3)
		if behaviour == 2 {
			stop = 2
		}
		for blk := uint16(1); blk <= stop; {
			p, err := c.read(waitLong)
			if err != nil {
				return fmt.Errorf("waiting for DATA %d: %w", blk, err)
			}
			if p.op != opDATA || p.block > blk {
				return fmt.Errorf("got %v, want DATA %d", p, blk)
			}
			if p.block < blk {
				continue // a retransmission
			}
			if blk < stop {
				if err := c.ackErr(blk); err != nil {
					return err
				}
			}
			blk++
		}
		if behaviour == 1 {
			if err := c.sendTo(c.peer, appendError(nil, ErrUndefined, "client gives up")); err != nil {
				return err
			}
			// Nothing more may come; a retransmission already on its way
			// when our ERROR arrived is all there can be.
			var late []packet
			for {
				p, err := c.read(600 * time.Millisecond)
				if errors.Is(err, errNoPacket) {
					break
				}
				if err != nil {
					return err
				}
				late = append(late, p)
				if len(late) > 1 || p.op != opDATA || p.block != stop {
					return fmt.Errorf("after the client's ERROR: %v", late)
				}
			}
			return nil
		}
		// Silent: the server retransmits block 2 at most Retries (2)
		// times, then gives up without an ERROR (the client went away).
		resent := 0
		for {
			p, err := c.read(time.Second)
			if errors.Is(err, errNoPacket) {
				break
			}
			if err != nil {
				return err
			}
			if p.op != opDATA || p.block != stop {
				return fmt.Errorf("to a silent client: %v", p)
			}
			resent++
		}
		if resent < 1 || resent > 2 {
			return fmt.Errorf("block %d retransmitted %d times to a silent client, want 1..2", stop, resent)
		}
		return nil
	case 3: // a missing file
		r, err := c.getErr(name+".missing", "octet", opts...)
		if err != nil {
			return err
		}
		if r.err == nil || r.err.Code != ErrNotFound {
			return fmt.Errorf("missing file: %+v, want ERROR %d", r.err, ErrNotFound)
		}
		return nil
	default: // the client's port closes after the first DATA
		if err := c.sendTo(c.server, rrqPacket(name, "octet")); err != nil {
			return err
		}
		p, err := c.read(waitLong)
		if err != nil {
			return err
		}
		if p.op != opDATA || p.block != 1 {
			return fmt.Errorf("got %v, want DATA 1", p)
		}
		return c.conn.Close()
	}
}

func TestDefaultRingWorkers(t *testing.T) {
	for cpus, want := range map[int]int{1: 1, 2: 1, 3: 1, 4: 2, 8: 4, 64: 4} {
		if got := defaultRingWorkers(cpus); got != want {
			t.Errorf("defaultRingWorkers(%d) = %d, want %d", cpus, got, want)
		}
	}
}
