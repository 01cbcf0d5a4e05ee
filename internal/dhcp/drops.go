package dhcp

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"pxed/internal/lograte"
)

// Datagrams dropped before any decision (oversized or malformed) are
// logged at debug level each, and summarised at info level at most once a
// minute: a flood of junk must not become a flood of log lines.
type dropReport struct {
	every                lograte.Limiter
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
	if _, ok := d.every.Tick(time.Now(), time.Minute); ok {
		s.log().Info("dhcp: dropped datagrams that are not valid DHCP messages (at most one such line a minute)",
			"iface", port.Name, "oversized", d.oversized.Swap(0), "malformed", d.malformed.Swap(0),
			"max-bytes", MaxMessageLen, "last-from", src.String())
	}
}
