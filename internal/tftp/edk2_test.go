package tftp

import (
	"bytes"
	"testing"
	"time"
)

// edk2Get downloads name as UEFI firmware does (EDK2's Mtftp4, which OVMF
// and most PC firmware run): with a window, it ACKs each time windowsize
// new blocks have arrived since its last ACK — whatever ACK that was — and
// answers every block it did not expect (a duplicate, or one past a gap)
// with an immediate ACK of the last block it has in order. stallFirst
// holds back its ACK of the first window, as a loaded machine does, so the
// server's timer resends that window; the first copy of block lose is
// dropped, as a network drops it. It returns the file and how many DATA
// packets arrived.
func edk2Get(t *testing.T, c *tclient, name string, ws int, stallFirst time.Duration, lose uint16) ([]byte, int) {
	t.Helper()
	c.rrq(name, "octet", "blksize", "512", "windowsize", itoa(ws))
	if p := c.next(); p.op != opOACK {
		t.Fatalf("got %v, want OACK", p)
	}
	c.ack(0)
	var got bytes.Buffer
	expected, total, acked, packets := uint16(1), 0, 0, 0
	ack := func(b uint16) { c.ack(b); acked = total }
	for {
		p, err := c.read(5 * time.Second)
		if err != nil {
			t.Fatalf("after %d blocks: %v", total, err)
		}
		if p.op != opDATA {
			t.Fatalf("got %v, want DATA", p)
		}
		packets++
		if p.block == lose {
			lose = 0
			continue
		}
		if p.block != expected {
			ack(expected - 1)
			continue
		}
		got.Write(p.data)
		total++
		expected++
		if len(p.data) < 512 {
			ack(p.block)
			return got.Bytes(), packets
		}
		if total-acked == ws {
			if total == ws && stallFirst > 0 {
				time.Sleep(stallFirst)
			}
			ack(expected - 1)
		}
	}
}

// UEFI firmware after one late ACK: the server's timer resends the first
// window, the firmware answers each duplicate with an ACK, and a server
// that takes those ACKs for losses (resending the window, or the rest of
// a window an ACK lands in) keeps the firmware answering duplicates to
// the end — every block sent twice, which OVMF showed fetching shim's
// grubx64.efi on a busy host. Duplicate and in-window ACKs that arrive
// right after the server sent duplicates are the client's answers to them,
// not losses.
func TestEDK2WindowAfterLateACK(t *testing.T) {
	forModes(t, ephemeralModes, testEDK2WindowAfterLateACK)
}

func testEDK2WindowAfterLateACK(t *testing.T, m mode) {
	t.Parallel()
	const blocks = 400
	data := randBytes(blocks*512+100, 11)
	ts := startServer(t, writeTree(t, map[string][]byte{"f": data}), m.with(func(s *Server) {
		s.Timeout = 150 * time.Millisecond
		s.MinTimeout = 150 * time.Millisecond
	}))
	for _, tc := range []struct {
		name  string
		stall time.Duration
		lose  uint16
	}{
		{"one late ACK", 400 * time.Millisecond, 0},
		{"one block lost mid-window", 0, 102},
		{"both", 400 * time.Millisecond, 203},
	} {
		got, packets := edk2Get(t, newClient(t, ts.addr), "f", 4, tc.stall, tc.lose)
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: got %d bytes, not the file", tc.name, len(got))
		}
		t.Logf("%s: %d DATA packets for %d blocks", tc.name, packets, blocks+1)
		if extra := packets - (blocks + 1); extra > 4*4 {
			t.Errorf("%s: %d DATA packets for %d blocks: %d sent again (a window or two is expected)", tc.name, packets, blocks+1, extra)
		}
	}
}
