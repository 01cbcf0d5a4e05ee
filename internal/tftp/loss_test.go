package tftp

// Transfers through a lossy path: a UDP proxy on loopback between a client
// and the server drops a deterministic share of the packets each way. The
// client never retransmits on its own, so every loss is recovered by the
// server's retransmission timer, and the transfer's time shows how long the
// server waited each time.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pxed/internal/testutil"
)

// lossyPath forwards packets between one client and a server, dropping the
// ones drop chooses. The client talks to front; back talks to the server's
// listening port (requests) and to the transfer's port, learnt from the
// server's replies (everything else).
type lossyPath struct {
	front, back *net.UDPConn
	server      *net.UDPAddr
	// drop says whether to drop the n-th (from 1) packet of op going
	// toServer or not; block is its block number (DATA, ACK).
	drop func(toServer bool, n int, op, block uint16) bool

	mu     sync.Mutex
	client *net.UDPAddr
	tid    *net.UDPAddr
	counts map[[2]uint16]int // {toServer, op} -> packets seen
	drops  atomic.Int64
	wg     sync.WaitGroup
}

func newLossyPath(t *testing.T, server *net.UDPAddr, drop func(toServer bool, n int, op, block uint16) bool) *lossyPath {
	t.Helper()
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	p := &lossyPath{front: listen(), back: listen(), server: server, drop: drop, counts: map[[2]uint16]int{}}
	p.wg.Add(2)
	go p.forward(p.front, true)
	go p.forward(p.back, false)
	t.Cleanup(func() {
		p.front.Close()
		p.back.Close()
		p.wg.Wait()
	})
	return p
}

func (p *lossyPath) addr() *net.UDPAddr { return p.front.LocalAddr().(*net.UDPAddr) }

func (p *lossyPath) forward(from *net.UDPConn, toServer bool) {
	defer p.wg.Done()
	buf := make([]byte, 1<<16)
	for {
		n, src, err := from.ReadFromUDP(buf)
		if err != nil {
			return
		}
		pkt := buf[:n]
		var op, block uint16
		if n >= 2 {
			op = binary.BigEndian.Uint16(pkt)
		}
		if n >= 4 {
			block = binary.BigEndian.Uint16(pkt[2:])
		}
		p.mu.Lock()
		var dst *net.UDPAddr
		out := p.back
		if toServer {
			p.client = src
			dst = p.tid
			if op == opRRQ || dst == nil {
				dst = p.server
			}
		} else {
			p.tid = src
			dst, out = p.client, p.front
		}
		k := [2]uint16{op, 0}
		if toServer {
			k[1] = 1
		}
		p.counts[k]++
		drop := p.drop(toServer, p.counts[k], op, block)
		p.mu.Unlock()
		if drop {
			p.drops.Add(1)
			continue
		}
		if dst != nil {
			out.WriteToUDP(pkt, dst)
		}
	}
}

// lossGet fetches name from server as a plain receiver with window
// (1: lock-step, RFC 1350; more: RFC 7440) that never retransmits on a timer
// of its own: it acknowledges each window's last block, the final block,
// the first duplicate after new data (the server resent: our ACK was lost)
// and the first block after a gap (one was lost inside a window).
func lossGet(server *net.UDPAddr, name string, window, size int, deadline time.Time) ([]byte, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var opts []string
	if window > 1 {
		opts = []string{"windowsize", strconv.Itoa(window)}
	}
	if _, err := conn.WriteToUDP(rrqPacket(name, "octet", opts...), server); err != nil {
		return nil, err
	}
	conn.SetReadDeadline(deadline)
	data := make([]byte, 0, size)
	buf := make([]byte, 2048)
	next, inWindow, answered := uint16(1), 0, false
	ack := func(to *net.UDPAddr, b uint16) error {
		_, err := conn.WriteToUDP(ackPacket(b), to)
		return err
	}
	for {
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			return data, fmt.Errorf("waiting for DATA %d (%d of %d bytes): %w", next, len(data), size, err)
		}
		p, err := decodePacket(buf[:n])
		if err != nil {
			return data, err
		}
		switch {
		case p.op == opOACK && next == 1:
			for _, o := range p.opts {
				if v, err := strconv.Atoi(o.value); o.name == "windowsize" && err == nil {
					window = v // the server may grant less (single-port mode does)
				}
			}
			if err := ack(from, 0); err != nil {
				return data, err
			}
		case p.op == opDATA && p.block == next:
			data = append(data, p.data...)
			next++
			inWindow++
			answered = false
			if len(p.data) < defaultBlksize {
				return data, ack(from, p.block)
			}
			if inWindow == window {
				inWindow = 0
				if err := ack(from, p.block); err != nil {
					return data, err
				}
			}
		case p.op == opDATA:
			if !answered {
				answered, inWindow = true, 0
				if err := ack(from, next-1); err != nil {
					return data, err
				}
			}
		default:
			return data, fmt.Errorf("got %v", p)
		}
	}
}

var retransmitsRE = regexp.MustCompile(`msg="tftp transfer" .*retransmits=(\d+) result=(\S+)`)

// transferLog returns the retransmission count and result the server logged
// for its one transfer, waiting for the line up to waitLong.
func transferLog(t *testing.T, log *testutil.SyncBuffer) (int, string) {
	t.Helper()
	end := time.Now().Add(waitLong)
	for time.Now().Before(end) {
		if m := retransmitsRE.FindStringSubmatch(log.String()); m != nil {
			n, _ := strconv.Atoi(m[1])
			return n, m[2]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no transfer line in the server's log:\n%s", log.String())
	return 0, ""
}

// TestLossyPathAdaptive replays issue 13's lossy segment on loopback: about
// one packet in twelve dropped each way, a client that leaves every
// recovery to the server, the server at its defaults (timeout 1s, no
// timeout option from the client). Each loss used to cost the full second;
// with the adaptive timeout it costs about the round trip's floor (50ms),
// so the transfer must finish far below one second per loss.
func TestLossyPathAdaptive(t *testing.T) {
	forModes(t, modes, func(t *testing.T, m mode) {
		for _, window := range []int{1, 8} {
			t.Run(fmt.Sprintf("windowsize %d", window), func(t *testing.T) { testLossyPath(t, m, window) })
		}
	})
}

func testLossyPath(t *testing.T, m mode, window int) {
	const blocks = 128
	data := randBytes(blocks*defaultBlksize+100, 13)
	last := uint16(blocks + 1)
	log := &testutil.SyncBuffer{}
	ts := startServer(t, writeTree(t, map[string][]byte{"f": data}), m.with(func(s *Server) {
		s.Logger = slog.New(slog.NewTextHandler(log, nil))
		s.Timeout, s.MinTimeout = 0, 0 // the defaults: 1s, adaptive from 50ms
	}))
	// One DATA in 13 and one ACK in 11. A window has one ACK where
	// lock-step has eight, and a window's DATA lost in its middle is
	// recovered by the client's ACK of the gap, not by a timer: there one
	// ACK in 3 is dropped, so that timers still recover most losses.
	ackEvery := 11
	if window > 1 {
		ackEvery = 3
	}
	path := newLossyPath(t, ts.addr, func(toServer bool, n int, op, block uint16) bool {
		switch {
		case !toServer && op == opDATA:
			return n%13 == 6
		case toServer && op == opACK && block != last:
			// Not the final ACK: the client stops listening once
			// it has sent it, as tftp-hpa's does.
			return n%ackEvery == 1
		}
		return false
	})
	start := time.Now()
	got, err := lossGet(path.addr(), "f", window, len(data), start.Add(60*time.Second))
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("after %v and %d drops: %v", elapsed, path.drops.Load(), err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes that differ from the file's %d", len(got), len(data))
	}
	drops := path.drops.Load()
	retransmits, result := transferLog(t, log)
	t.Logf("%d blocks, windowsize %d: %d packets dropped, %d retransmissions, %v", blocks+1, window, drops, retransmits, elapsed)
	if result != "ok" {
		t.Fatalf("server logged result %q", result)
	}
	if drops < 8 {
		t.Fatalf("only %d packets dropped: the path is not lossy enough to measure anything", drops)
	}
	if retransmits < 1 {
		t.Fatalf("%d packets dropped but the server logged no retransmission", drops)
	}
	if window == 1 && int64(retransmits) < drops {
		// Lock-step and a client without a timer: only the server's
		// timer recovers a loss, one timeout per lost packet.
		t.Fatalf("%d packets dropped but only %d retransmissions", drops, retransmits)
	}
	// A fixed 1s timeout needs at least a second per loss (a timer never
	// fires early). The adaptive one needs 50-150ms, even on a loaded
	// machine: half a second per loss tells them apart with room to spare.
	if bound := time.Duration(drops) * time.Second / 2; elapsed > bound {
		t.Fatalf("%d losses took %v (over %v): the server waited about a second per loss, not an adaptive timeout", drops, elapsed, bound)
	}
}

// TestNegotiatedTimeoutKept checks RFC 2349: a client that asked for a
// timeout gets exactly that wait before every retransmission, however short
// the measured round trips, and no backoff; a client that did not gets the
// adaptive one, far shorter here.
func TestNegotiatedTimeoutKept(t *testing.T) {
	forModes(t, modes, func(t *testing.T, m mode) {
		data := randBytes(20*defaultBlksize, 14)
		ts := startServer(t, writeTree(t, map[string][]byte{"f": data}), m.with(func(s *Server) {
			s.Timeout, s.MinTimeout, s.Retries = 5*time.Second, 0, 3
		}))
		// gaps runs a transfer, acknowledges blocks 1..5 at once (round
		// trips of microseconds), then withholds the ACK of block 6 and
		// returns when each of its n retransmissions arrived, counted from
		// just before the ACK of block 5 was sent (so before block 6 was
		// first sent: a loaded machine can only make these times longer).
		gaps := func(n int, opts ...string) []time.Duration {
			c := newClient(t, ts.addr)
			c.rrq("f", "octet", opts...)
			if len(opts) > 0 {
				if p := c.next(); p.op != opOACK {
					t.Fatalf("got %v, want OACK", p)
				}
				c.ack(0)
			}
			var start time.Time
			for b := uint16(1); b <= 5; b++ {
				c.expectData(b)
				start = time.Now()
				c.ack(b)
			}
			c.expectData(6)
			var gs []time.Duration
			for range n {
				c.expectData(6)
				gs = append(gs, time.Since(start))
			}
			c.sendTo(c.peer, appendError(nil, ErrUndefined, "enough"))
			return gs
		}
		negotiated := gaps(3, "timeout", "1")
		t.Logf("timeout=1 negotiated: retransmissions after %v", negotiated)
		for i, g := range negotiated {
			// A timer fires late, never early: the k-th
			// retransmission comes k negotiated seconds or more
			// after the first sending.
			if want := time.Duration(i+1) * time.Second; g < want {
				t.Errorf("retransmission %d came %v after the first sending, before %v", i+1, g, want)
			}
		}
		// Backoff would make it 1+2+4 = 7s.
		if g := negotiated[len(negotiated)-1]; g > 5*time.Second {
			t.Errorf("3 retransmissions took %v: the negotiated timeout was backed off (fixed 1s makes 3s)", g)
		}
		adaptive := gaps(1)
		t.Logf("no timeout option: retransmission after %v (server timeout 5s)", adaptive)
		if adaptive[0] >= time.Second {
			t.Errorf("without a timeout option the first retransmission came after %v, want the adaptive timeout (about 50ms; the fixed one was 5s)", adaptive[0])
		}
	})
}

// TestAdaptiveGivesUpNoSooner checks that quick adaptive retransmissions do
// not shorten how long a silent client is given: Retries quick
// retransmissions and one after the first long wait (retryLimit), and the
// transfer ends no sooner than (Retries+1) timeouts after the last ACK, as
// with the fixed timeout.
func TestAdaptiveGivesUpNoSooner(t *testing.T) {
	forModes(t, modes, func(t *testing.T, m mode) {
		const retries = 3
		timeout := 300 * time.Millisecond
		log := &testutil.SyncBuffer{}
		ts := startServer(t, writeTree(t, map[string][]byte{"f": randBytes(20*defaultBlksize, 15)}), m.with(func(s *Server) {
			s.Logger = slog.New(slog.NewTextHandler(log, nil))
			s.Timeout, s.MinTimeout, s.Retries = timeout, 10*time.Millisecond, retries
		}))
		c := newClient(t, ts.addr)
		c.rrq("f", "octet")
		for b := uint16(1); b <= 5; b++ {
			c.expectData(b)
			c.ack(b)
		}
		lastAck := time.Now()
		c.expectData(6)
		for i := range retries + 1 {
			c.expectData(6)
			if i == 0 && time.Since(lastAck) >= timeout {
				t.Errorf("first retransmission %v after the last ACK: not adaptive (timeout %v)", time.Since(lastAck), timeout)
			}
		}
		_, result := transferLog(t, log)
		ended := time.Since(lastAck)
		if !regexp.MustCompile(`no ACK for block 6 after 4 retransmissions`).MatchString(log.String()) {
			t.Fatalf("transfer ended with %q, want no ACK after %d retransmissions; log:\n%s", result, retries+1, log.String())
		}
		if want := time.Duration(retries+1) * timeout; ended < want-20*time.Millisecond {
			t.Errorf("a silent client was given up %v after its last ACK, sooner than (retries+1) x timeout = %v", ended, want)
		}
		if ps := c.collect(quiet); len(ps) > 0 {
			t.Errorf("%d packets after the transfer ended; first %v", len(ps), ps[0])
		}
	})
}

// TestLostOACKLongTimeout replays a defect of issue 13's first cap on
// silent transfers: a client that negotiated a long timeout and lost the
// OACK never heard it again, because the server waited the negotiated
// timeout before retransmitting and abandoned the transfer first. Until the
// client answers, the server retransmits after its own timeout: the test
// client hears the OACK again and gets its file, and so does curl (which
// asks for a timeout of its own) when the path drops its first OACK.
func TestLostOACKLongTimeout(t *testing.T) {
	data := randBytes(10*defaultBlksize+7, 41)
	forModes(t, modes, func(t *testing.T, m mode) {
		log := &testutil.SyncBuffer{}
		ts := startServer(t, writeTree(t, map[string][]byte{"f": data}), m.with(func(s *Server) {
			s.Logger = slog.New(slog.NewTextHandler(log, nil))
			s.Timeout = 300 * time.Millisecond
		}))
		c := newClient(t, ts.addr)
		c.rrq("f", "octet", "timeout", "6", "blksize", "1024")
		if p := c.next(); p.op != opOACK {
			t.Fatalf("got %v, want an OACK", p)
		}
		// The OACK is lost: the client does not answer, and waits.
		p, err := c.read(3 * time.Second)
		if err != nil || p.op != opOACK {
			t.Fatalf("after a lost OACK with timeout=6 negotiated: got %v, %v; want the OACK again after the server's 300ms", p, err)
		}
		r := c.finish(p)
		if !bytes.Equal(r.data, data) {
			t.Fatalf("received %d bytes that differ from the file's %d", len(r.data), len(data))
		}
		if n, result := transferLog(t, log); result != "ok" || n != 1 {
			t.Fatalf("server logged %d retransmissions, result %q; want 1 (the OACK) and ok", n, result)
		}

		curl, err := lookTool(t, "curl")
		if err != nil {
			return
		}
		path := newLossyPath(t, ts.addr, func(toServer bool, n int, op, _ uint16) bool {
			return !toServer && op == opOACK && n == 1
		})
		work := t.TempDir()
		out := filepath.Join(work, "out")
		url := fmt.Sprintf("tftp://%s/f", path.addr())
		if msg, err := runTool(t, work, curl, "--silent", "--show-error", "--max-time", "30", "--tftp-blksize", "1024", "--output", out, url); err != nil {
			t.Fatalf("curl with its first OACK lost: %v\n%s\nserver log:\n%s", err, msg, log.String())
		}
		if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("curl with its first OACK lost: %d bytes, %v", len(got), err)
		}
		if path.drops.Load() != 1 {
			t.Fatalf("the path dropped %d packets, want the first OACK", path.drops.Load())
		}
	})
}

// TestTimerOnlyClient replays atftp on a lossy link, the way its transfers
// were abandoned in bench/tftploss: the client's ACK of a block is lost; it
// answers only the first duplicate of that block (lost too) and ignores the
// rest; its own timer re-sends the ACK a fixed time after the last packet
// it received, and that one is lost as well. Only its second timer's ACK
// gets through. The server's last wait must come twice for that: once it
// gave up after the first, with the client's ACK on its way.
func TestTimerOnlyClient(t *testing.T) {
	forModes(t, modes, func(t *testing.T, m mode) {
		const retries = 3
		timeout := 400 * time.Millisecond // the long wait: (3+1) x 400ms = 1.6s
		clientTimer := time.Second        // under the long wait, as atftp's 5 s is under 6 s
		data := randBytes(8*defaultBlksize+1, 16)
		log := &testutil.SyncBuffer{}
		ts := startServer(t, writeTree(t, map[string][]byte{"f": data}), m.with(func(s *Server) {
			s.Logger = slog.New(slog.NewTextHandler(log, nil))
			s.Timeout, s.MinTimeout, s.Retries = timeout, 10*time.Millisecond, retries
		}))
		c := newClient(t, ts.addr)
		c.rrq("f", "octet")
		var got []byte
		for b := uint16(1); b <= 3; b++ {
			got = append(got, c.expectData(b).data...)
			c.ack(b)
		}
		got = append(got, c.expectData(4).data...)
		// ACK 4 lost. The first duplicate's answer is lost; the rest are
		// ignored; the timer's first ACK is lost; its second is sent.
		dups, timers := 0, 0
		last := time.Now()
		for timers < 2 {
			p, err := c.read(time.Until(last.Add(clientTimer)))
			switch {
			case err == errNoPacket:
				timers++
				last = time.Now()
				if timers == 2 {
					c.ack(4)
				}
			case err != nil:
				t.Fatal(err)
			case p.op == opDATA && p.block == 4:
				dups++
				last = time.Now()
			case p.op == opERROR:
				t.Fatalf("after %d duplicates and %d client timers the server gave up: %v; log:\n%s", dups, timers, p, log.String())
			default:
				t.Fatalf("got %v while block 4 was unacknowledged", p)
			}
		}
		// The ACK went out: the transfer goes on (a duplicate of 4 may
		// still be on its way).
		for b := uint16(5); ; b++ {
			p := c.expectDataSkipping(b)
			got = append(got, p.data...)
			c.ack(b)
			if len(p.data) < defaultBlksize {
				break
			}
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("received %d bytes that differ from the file's %d", len(got), len(data))
		}
		if _, result := transferLog(t, log); result != "ok" {
			t.Fatalf("server logged result %q after %d duplicates; log:\n%s", result, dups, log.String())
		}
		t.Logf("%d duplicates of block 4 before the client's second timer", dups)
	})
}
