package tftp

// Issue 13's attacks on the TFTP server, replayed against a real Server on
// loopback: unacknowledged netascii requests for a big file (memory), blind
// ACKs in single-port mode (amplification), silent requests with the
// longest timeout and a flood from one address (slots).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pxed/internal/testutil"
)

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestNetasciiUnackedMemory replays finding 2: ten netascii requests for a
// 20 MB file that are never acknowledged. Each transfer used to hold the
// whole file converted in memory (460 MB for ten); now it holds a position
// per block of its window. Not parallel: it measures the process's heap.
func TestNetasciiUnackedMemory(t *testing.T) {
	const size, n = 20 << 20, 10
	text := bytes.Repeat([]byte("a line of text\r\nand a bare CR\r, a bare LF\n"), size/42+1)[:size]
	dir := writeTree(t, map[string][]byte{"big.txt": text})
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ts := startServer(t, dir, m.with(func(s *Server) { s.Logger = nil }))
			before := heapInUse()
			for i := range n {
				c := newClient(t, ts.addr)
				opts := []string{"blksize", "1468", "windowsize", "16"}
				if i%2 == 0 {
					opts = nil
				}
				c.rrq("big.txt", "netascii", opts...)
				if p := c.next(); p.op != opDATA && p.op != opOACK {
					t.Fatalf("request %d: got %v", i, p)
				}
				// Never acknowledged: the transfer waits, holding what it holds.
			}
			if a := ts.srv.active.Load(); a != n {
				t.Fatalf("%d transfers under way, want %d", a, n)
			}
			after := heapInUse()
			grew := int64(after) - int64(before)
			t.Logf("%d unacknowledged netascii transfers of a %d MB file: heap %d -> %d KB (%+d KB)", n, size>>20, before>>10, after>>10, grew>>10)
			// Before the fix: more than 2 x 20 MB per transfer.
			if grew > 8<<20 {
				t.Fatalf("the heap grew by %d MB for %d transfers: netascii is buffered", grew>>20, n)
			}
		})
	}
}

// denseText is text whose netascii form has CR LF and CR NUL pairs split
// across many block boundaries, ending with a bare CR.
func denseText(n int, seed uint64) []byte {
	b := randBytes(n, seed)
	for i := range b {
		b[i] = "ab\r\n"[b[i]%4]
	}
	return append(b, '\r')
}

// TestNetasciiInterop fetches text files in netascii mode with tftp-hpa's
// tftp (lock-step) and atftp (windowsize 8, one DATA packet lost on the
// way, so the window is resent from inside); both convert back to the local
// form, which must be the file, byte for byte.
func TestNetasciiInterop(t *testing.T) {
	t.Parallel()
	tftp := requireTool(t, "tftp")
	atftp := requireTool(t, "atftp")
	files := map[string][]byte{
		"dense.txt": denseText(60_000, 1),
		"lf511.txt": append(bytes.Repeat([]byte("x"), 511), "\nnext\n"...), // CR LF split by block 1's end
		"cr511.txt": append(bytes.Repeat([]byte("x"), 511), "\rnext\r"...), // CR NUL split
		"crlf.txt":  append(bytes.Repeat([]byte("y"), 510), "\r\n\r\n"...), // CR NUL CR LF across the boundary
		"exact.txt": append(bytes.Repeat([]byte("z"), 510), '\n'),          // exactly one block: an empty block follows
		"empty.txt": {},
	}
	dir := writeTree(t, files)
	for _, m := range modes {
		// Lock-step losses (single-port mode is lock-step) wait for the
		// server's timeout: not the tests' usual 5 s.
		ts := startServer(t, dir, m.with(func(s *Server) { s.Timeout, s.MinTimeout = 300*time.Millisecond, 300*time.Millisecond }))
		for name, want := range files {
			t.Run(m.name+"/tftp-hpa/"+name, func(t *testing.T) {
				t.Parallel()
				work := t.TempDir()
				out := filepath.Join(work, "out")
				msg, err := runTool(t, work, tftp, "-m", "netascii", "127.0.0.1", strconv.Itoa(ts.addr.Port), "-c", "get", name, out)
				if err != nil || strings.Contains(msg, "Error") || strings.Contains(msg, "timed out") {
					t.Fatalf("tftp: %v\n%s", err, msg)
				}
				checkDownload(t, out, want)
			})
			t.Run(m.name+"/atftp-window-8-lossy/"+name, func(t *testing.T) {
				t.Parallel()
				// The third DATA packet towards the client is lost once.
				path := newLossyPath(t, ts.addr, func(toServer bool, n int, op, _ uint16) bool {
					return !toServer && op == opDATA && n == 3
				})
				work := t.TempDir()
				out := filepath.Join(work, "out")
				cmds := fmt.Sprintf("mode netascii\noption windowsize 8\ntimeout 1\nget %s %s\nquit\n", name, out)
				msg, err := runInput(t, work, cmds, atftp, "--tftp-timeout", "1", "127.0.0.1", strconv.Itoa(path.addr().Port))
				if err != nil {
					t.Fatalf("atftp: %v\n%s", err, msg)
				}
				checkDownload(t, out, want)
				if len(want) > 3*512 && path.drops.Load() != 1 {
					t.Fatalf("%d packets dropped, want 1", path.drops.Load())
				}
			})
		}
	}
}

// runInput runs an interactive client with commands on its standard input.
func runInput(t *testing.T, dir, input, tool string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within 60s; output:\n%s", filepath.Base(tool), out)
	}
	return string(out), err
}

// blindAttack plays a spoofer from victim's address: it sends pkts, one
// every gap, never reading anything, while victim counts what arrives until
// listen after the last one. It returns the bytes sent and received with
// their IPv4 and UDP headers, as on the wire.
func blindAttack(t *testing.T, server *net.UDPAddr, pkts [][]byte, gap, listen time.Duration) (sent, got int) {
	t.Helper()
	victim, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 1<<16)
		for {
			n, _, err := victim.ReadFromUDP(buf)
			if err != nil {
				return
			}
			got += n + 28
		}
	})
	for _, p := range pkts {
		if _, err := victim.WriteToUDP(p, server); err != nil {
			t.Fatal(err)
		}
		sent += len(p) + 28
		time.Sleep(gap)
	}
	victim.SetReadDeadline(time.Now().Add(listen))
	wg.Wait()
	return sent, got
}

// TestAmplification replays finding 3 in every mode and reports the
// factors: a bare RRQ for a boot file from a forged address, then the
// issue's attack: an RRQ asking for the largest blocks and window, then
// blind ACKs (ACK 0 for the OACK, then every block number in turn, which
// covers whatever window was granted). In the default mode the replies go
// to a port the attacker never sees, so its ACKs go nowhere; in single-port
// mode they reached the transfer, and 103 bytes pulled 576 KB.
func TestAmplification(t *testing.T) {
	dir := writeTree(t, map[string][]byte{"pxelinux.0": randBytes(4<<20, 31)})
	forModes(t, modes, func(t *testing.T, m mode) {
		t.Parallel()
		ts := startServer(t, dir, m.with(func(s *Server) {
			s.Timeout = 100 * time.Millisecond // a silent victim's transfer ends after 600ms
			s.MinTimeout = 100 * time.Millisecond
		}))
		// What the server sends for one forged request: its first packet
		// and the retransmissions before it gives up.
		settle := ts.srv.Timeout*time.Duration(DefaultRetries+1) + time.Second
		sent, got := blindAttack(t, ts.addr, [][]byte{rrqPacket("pxelinux.0", "octet")}, 0, settle)
		bare := float64(got) / float64(sent)
		t.Logf("%s: bare RRQ: %d bytes sent, %d bytes to the victim: %.0fx", m.name, sent, got, bare)

		pkts := [][]byte{rrqPacket("pxelinux.0", "octet", "blksize", "65464", "windowsize", "64", "tsize", "0")}
		for b := range 300 {
			pkts = append(pkts, ackPacket(uint16(b)))
		}
		sent, got = blindAttack(t, ts.addr, pkts, time.Millisecond, settle)
		blind := float64(got) / float64(sent)
		t.Logf("%s: RRQ + 300 blind ACKs: %d bytes sent, %d bytes to the victim: %.0fx", m.name, sent, got, blind)
		// The factor of a bare RRQ in the default mode (the first block
		// and its 5 retransmissions) is what tftp-hpa gives too; no mode
		// may give a spoofer more, and single-port mode's credit bounds
		// it by construction. Before: 1839x with blind ACKs.
		limit := 100.0
		if m.name == "single-port" {
			limit = amplification
		}
		if bare > limit || blind > limit {
			t.Fatalf("amplification %.0fx (bare RRQ) and %.0fx (blind ACKs), want at most %.0fx", bare, blind, limit)
		}
	})
}

// TestSilentClientWithLongestTimeout replays the first half of finding 4:
// a request with timeout=255 whose client never answers. It held its slot
// for (5+1) x 255 s; a transfer never acknowledged now ends after the
// server's own (Retries+1) timeouts.
func TestSilentClientWithLongestTimeout(t *testing.T) {
	dir := writeTree(t, map[string][]byte{"f": randBytes(10_000, 32)})
	forModes(t, modes, func(t *testing.T, m mode) {
		t.Parallel()
		ts := startServer(t, dir, m.with(func(s *Server) { s.Timeout = 200 * time.Millisecond }))
		for _, opts := range [][]string{{"timeout", "255"}, {"timeout", "255", "blksize", "1468"}} {
			c := newClient(t, ts.addr)
			c.rrq("f", "octet", opts...)
			if p := c.next(); p.op != opOACK {
				t.Fatalf("got %v, want an OACK", p)
			}
		}
		start := time.Now()
		for ts.srv.active.Load() != 0 {
			if time.Since(start) > waitLong {
				t.Fatalf("%d silent transfers still hold their slots after %v (they asked for 255 s)", ts.srv.active.Load(), waitLong)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("silent transfers with timeout=255 released after %v", time.Since(start).Round(time.Millisecond))
	})
}

// TestFloodFromOneAddress replays the second half of finding 4: with
// max-transfers 20, silent requests from one address (127.0.0.2, a
// loopback alias) took every slot and real clients were told "busy". Now
// one address holds at most half the slots, and a real client from
// another address (curl, and the test client) gets its file at once.
func TestFloodFromOneAddress(t *testing.T) {
	want := randBytes(100_000, 33)
	dir := writeTree(t, map[string][]byte{"f": want})
	forModes(t, modes, func(t *testing.T, m mode) {
		t.Parallel()
		log := &testutil.SyncBuffer{}
		ts := startServer(t, dir, m.with(func(s *Server) {
			s.MaxTransfers = 20
			s.Timeout = 5 * time.Second // the flood holds its slots for the whole test
			s.Logger = slog.New(slog.NewTextHandler(log, nil))
		}))
		const flood = 60
		busy := 0
		for i := range flood {
			c := floodClient(t, ts.addr)
			c.rrq("f", "octet", "timeout", "255")
			p := c.next()
			if p.op == opERROR {
				busy++
			}
			if i == flood-1 && p.op != opERROR {
				t.Fatalf("request %d from the flooding address: got %v, want ERROR (too many transfers)", i, p)
			}
		}
		held := ts.srv.active.Load()
		t.Logf("%d silent requests from 127.0.0.2: %d hold slots, %d refused", flood, held, busy)
		if held > 10 {
			t.Fatalf("one address holds %d of 20 slots, want at most half", held)
		}
		// Refusals are logged once a second, not once a request.
		if lines := strings.Count(log.String(), "too many transfers from one client"); lines < 1 || lines > 3 {
			t.Errorf("%d refusals logged in %d lines, want a line a second:\n%s", busy, lines, log.String())
		}
		r := newClient(t, ts.addr).get("f", "octet", "blksize", "1468")
		if r.err != nil || !bytes.Equal(r.data, want) {
			t.Fatalf("a client from 127.0.0.1 during the flood: error %v, %d bytes", r.err, len(r.data))
		}
		if curl, err := lookTool(t, "curl"); err == nil {
			work := t.TempDir()
			out := filepath.Join(work, "out")
			url := fmt.Sprintf("tftp://127.0.0.1:%d/f", ts.addr.Port)
			msg, err := runTool(t, work, curl, "--silent", "--show-error", "--max-time", "10", "--tftp-blksize", "1468", "--output", out, url)
			if err != nil {
				t.Fatalf("curl during the flood: %v\n%s", err, msg)
			}
			checkDownload(t, out, want)
		}
	})
}

// floodClient is a test client on 127.0.0.2.
func floodClient(t *testing.T, server *net.UDPAddr) *tclient {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &tclient{t: t, conn: conn, server: server, buf: make([]byte, 1<<17)}
}

// lookTool is requireTool for a test that has more to check without it.
func lookTool(t *testing.T, name string) (string, error) {
	if os.Getenv("PXED_E2E") == "1" {
		return requireTool(t, name), nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Logf("%s is not installed: that part is skipped", name)
		return "", errors.New("no " + name)
	}
	return p, nil
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"::ffff:192.0.2.7":     "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::",
		"2001:db8:1:3::1":      "2001:db8:1:3::",
		"fe80::1%eth0":         "fe80::",
	} {
		if got := clientKey(netip.MustParseAddr(in)); got.String() != want {
			t.Errorf("clientKey(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestPerClientLimit(t *testing.T) {
	tests := []struct{ max, perClient, want int }{
		{0, 0, DefaultMaxTransfersPerClient}, // the defaults: 10000 and 16
		{10000, 100, 100},
		{20, 0, 10}, // half of max-transfers
		{20, 4, 4},
		{3, 16, 1},
		{1, 16, 1},
	}
	for _, tc := range tests {
		s := &Server{MaxTransfers: tc.max, MaxTransfersPerClient: tc.perClient}
		if got := s.perClientLimit(); got != tc.want {
			t.Errorf("MaxTransfers %d, MaxTransfersPerClient %d: limit %d, want %d", tc.max, tc.perClient, got, tc.want)
		}
	}
}

// TestSamePortSameFileAgain: a client that has the whole file (a single
// block here) asks for the same file again from the same port, and its new
// request reaches the server before its final ACK does (as it may: the ACK
// goes to the transfer's port, the request to the listening port). The
// request must start a new transfer, not pass for a retransmission of the
// old one, which is about to end: that left the client waiting for
// nothing. Found by FuzzServerPacket.
func TestSamePortSameFileAgain(t *testing.T) {
	data := randBytes(300, 34)
	dir := writeTree(t, map[string][]byte{"f": data})
	forModes(t, modes, func(t *testing.T, m mode) {
		t.Parallel()
		ts := startServer(t, dir, m.set) // a 5 s timeout: a lost request would show
		for _, opts := range [][]string{nil, {"blksize", "1468", "windowsize", "4"}} {
			c := newClient(t, ts.addr)
			c.rrq("f", "octet", opts...)
			p := c.next()
			if p.op == opOACK {
				c.ack(0)
				p = c.next()
			}
			if p.op != opDATA || p.block != 1 || !bytes.Equal(p.data, data) {
				t.Fatalf("options %v: got %v, want the whole file in DATA 1", opts, p)
			}
			old := c.peer
			c.rrq("f", "octet", opts...) // the next request first,
			c.sendTo(old, ackPacket(1))  // then the final ACK of the first
			c.peer = nil
			p, err := c.read(time.Second)
			if err != nil {
				t.Fatalf("options %v: the second request got no answer within 1s: %v", opts, err)
			}
			if m.name != "single-port" && p.from.AddrPort() == old.AddrPort() {
				t.Fatalf("options %v: answered by the finished transfer's port", opts)
			}
			r := c.finish(p)
			if r.err != nil || !bytes.Equal(r.data, data) {
				t.Fatalf("options %v: second transfer: %v, %d bytes", opts, r.err, len(r.data))
			}
		}
	})
}
