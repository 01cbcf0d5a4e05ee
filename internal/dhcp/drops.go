package dhcp

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Datagrams dropped before any decision (oversized or malformed) are
// logged at debug level each, and summarised at info level at most once a
// minute: a flood of junk must not become a flood of log lines.
type dropReport struct {
	every                everyMinute
	oversized, malformed atomic.Uint64
}

// drop counts one dropped datagram and, once a minute at most, logs the
// counts since the last report.
func (s *Server) drop(port *Port, src netip.AddrPort, oversized bool, err error) {
	if lg := s.log(); lg.Enabled(context.Background(), slog.LevelDebug) {
		lg.Debug("dhcp: dropped datagram", "iface", port.Name, "from", src.String(), "error", err)
	}
	d := &s.drops
	if oversized {
		d.oversized.Add(1)
	} else {
		d.malformed.Add(1)
	}
	if _, ok := d.every.tick(time.Now()); ok {
		s.log().Info("dhcp: dropped datagrams that are not valid DHCP messages (at most one such line a minute)",
			"iface", port.Name, "oversized", d.oversized.Swap(0), "malformed", d.malformed.Swap(0),
			"max-bytes", MaxMessageLen, "last-from", src.String())
	}
}

// everyMinute counts events and lets one log line a minute report them.
type everyMinute struct {
	mu   sync.Mutex
	n    uint64
	next time.Time
}

// tick counts one event; when a line may be logged it returns the count
// since the last one, and true.
func (e *everyMinute) tick(now time.Time) (uint64, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if now.Before(e.next) {
		return 0, false
	}
	n := e.n
	e.n, e.next = 0, now.Add(time.Minute)
	return n, true
}
