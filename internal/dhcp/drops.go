package dhcp

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// dropReport counts datagrams dropped before any decision (oversized or
// malformed) and reports them at most once per interval: each is logged at
// debug level, and a flood of junk makes one info line a minute, not one
// line per datagram.
type dropReport struct {
	mu        sync.Mutex
	oversized uint64
	malformed uint64
	last      netip.AddrPort // the latest sender, for the report
	next      time.Time      // when the next report may be written
}

const dropReportEvery = time.Minute

// drop counts one dropped datagram and, when the interval has passed,
// logs the counts since the last report.
func (s *Server) drop(port *Port, src netip.AddrPort, oversized bool, err error) {
	if lg := s.log(); lg.Enabled(context.Background(), slog.LevelDebug) {
		lg.Debug("dhcp: dropped datagram", "iface", port.Name, "from", src.String(), "error", err)
	}
	d := &s.drops
	d.mu.Lock()
	if oversized {
		d.oversized++
	} else {
		d.malformed++
	}
	d.last = src
	now := time.Now()
	if now.Before(d.next) {
		d.mu.Unlock()
		return
	}
	over, bad, last := d.oversized, d.malformed, d.last
	d.oversized, d.malformed, d.next = 0, 0, now.Add(dropReportEvery)
	d.mu.Unlock()
	s.log().Info("dhcp: dropped datagrams that are not valid DHCP messages (at most one such line a minute)",
		"iface", port.Name, "oversized", over, "malformed", bad, "max-bytes", MaxMessageLen, "last-from", last.String())
}
