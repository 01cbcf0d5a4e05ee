package dhcp

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"log/slog"
	"pxed/internal/config"
	"pxed/internal/testutil"
)

// blockingPinger holds every probe until released and records how many
// ran at once.
type blockingPinger struct {
	release      chan struct{}
	now, highest atomic.Int32
	calls        atomic.Int32
}

func (p *blockingPinger) InUse(ctx context.Context, _ netip.Addr) bool {
	p.calls.Add(1)
	n := p.now.Add(1)
	defer p.now.Add(-1)
	for {
		h := p.highest.Load()
		if n <= h || p.highest.CompareAndSwap(h, n) {
			break
		}
	}
	select {
	case <-p.release:
	case <-ctx.Done():
	}
	return false
}

// TestPingCheckFloodBounded: with ping-check on, a flood of DISCOVERs from
// new MACs started one goroutine and one raw socket per DISCOVER, without
// bound. Now at most maxProbes probes run at once; the other DISCOVERs are
// offered an address without a probe, and a line says so.
func TestPingCheckFloodBounded(t *testing.T) {
	n := seedNetwork()
	n.PingCheck = true
	n.Subnets[0].Network = "198.18.0.0/16"
	n.Subnets[0].Pools[0].Ranges[0] = config.Range{Start: "198.18.1.0", End: "198.18.255.254"}
	n.Hosts = nil
	r := newRig(t, n)
	r.port.Addrs = []netip.Prefix{netip.MustParsePrefix("198.18.0.1/16")}
	log := &testutil.SyncBuffer{}
	r.srv.Logger = slog.New(slog.NewTextHandler(log, nil))
	p := &blockingPinger{release: make(chan struct{})}
	r.srv.Pinger = p
	var answered atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range r.conn.notify {
			if answered.Add(1) == 2000 {
				return
			}
		}
	}()
	const flood = 2000
	for i := range flood {
		r.send(msg{t: msgDiscover, mac: fmt.Sprintf("02:00:00:01:%02x:%02x", i>>8, i&0xff)})
	}
	if h := p.highest.Load(); h > maxProbes {
		t.Errorf("%d probes ran at once, want at most %d", h, maxProbes)
	}
	deadline := time.Now().Add(10 * time.Second)
	for answered.Load() < flood-maxProbes && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := answered.Load(); got < flood-maxProbes {
		t.Fatalf("%d of the %d DISCOVERs beyond the probe limit were answered", got, flood-maxProbes)
	}
	close(p.release)
	wg.Wait()
	if c := p.calls.Load(); c != maxProbes {
		t.Errorf("%d probes, want %d", c, maxProbes)
	}
	if got := strings.Count(log.String(), "ping-check saturated"); got != 1 {
		t.Errorf("%d saturation lines, want one:\n%s", got, log.String())
	}
}

// TestICMPPingerSharesOneSocket probes the loopback from many goroutines
// at once: every probe sees its reply, and the process opens no socket per
// probe. Needs a raw socket (root).
func TestICMPPingerSharesOneSocket(t *testing.T) {
	p, err := NewICMPPinger()
	if err != nil {
		if os.Getenv("PXED_E2E") == "1" {
			t.Fatalf("raw ICMP socket: %v (PXED_E2E=1 requires it)", err)
		}
		t.Skipf("raw ICMP socket: %v", err)
	}
	defer p.Close()
	fds := func() int { d, _ := os.ReadDir("/proc/self/fd"); return len(d) }
	before := fds()
	var wg sync.WaitGroup
	var yes atomic.Int32
	highest := before
	var mu sync.Mutex
	for i := range 200 {
		wg.Go(func() {
			a := netip.AddrFrom4([4]byte{127, 0, byte(i >> 8), byte(i + 1)})
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if p.InUse(ctx, a) {
				yes.Add(1)
			}
			mu.Lock()
			highest = max(highest, fds())
			mu.Unlock()
		})
	}
	wg.Wait()
	if yes.Load() != 200 {
		t.Errorf("%d of 200 loopback probes saw their reply", yes.Load())
	}
	if highest > before+8 {
		t.Errorf("descriptors went from %d to %d during 200 probes", before, highest)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if p.InUse(ctx, netip.MustParseAddr("127.0.0.1")) {
		t.Error("a probe whose context has ended reported in use")
	}

}
