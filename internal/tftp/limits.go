package tftp

import (
	"log/slog"
	"net/netip"
	"time"

	"pxed/internal/lograte"
)

// What bounds the server's slots against clients that hold them without
// using them: a cap per client address, and a short life for transfers the
// client never acknowledges.
//
// Every transfer holds one of MaxTransfers slots until it ends. A client
// that asks and then stays silent (or an attacker who sends requests from a
// forged address, which never sees the answer) holds its slot until the
// transfer gives up: with the RFC 2349 timeout option at 255 seconds and 5
// retransmissions that was 25 minutes per request. Now:
//
//   - Until the client has acknowledged something (the OACK or the first
//     block), the server retransmits after its own timeout, whatever
//     timeout the client negotiated (transfer.nextDeadline), so the usual
//     Retries end a transfer nobody answers after (Retries+1) server
//     timeouts, 6 s by default, and a client whose OACK was lost hears it
//     again within a second. Once the client has acknowledged something,
//     the negotiated timeout governs, as RFC 2349 says.
//   - One client address (an IPv6 /64) holds at most MaxTransfersPerClient
//     transfers at once, and never more than half of MaxTransfers, so a
//     flood of requests from one address cannot lock out the others.
//
// Requests refused for either cap are logged at most once a second, with
// the number refused in between: a flood must not become one of log lines.

// DefaultMaxTransfersPerClient is MaxTransfersPerClient's default. A PXE
// ROM, iPXE or a boot loader fetch one file at a time; 16 leaves room for
// clients that overlap a few, and for a few machines behind one NAT.
const DefaultMaxTransfersPerClient = 16

// clientKey is the address a client is counted under: its IPv4 address, or
// the /64 of its IPv6 address (one host may use many addresses of it).
func clientKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is4() {
		return a
	}
	p, _ := a.Prefix(64)
	return p.Addr()
}

// perClientLimit is the number of transfers one client address may hold:
// MaxTransfersPerClient, at most half of MaxTransfers (at least 1).
func (s *Server) perClientLimit() int {
	half := max(orDefault(s.MaxTransfers, DefaultMaxTransfers)/2, 1)
	return min(orDefault(s.MaxTransfersPerClient, DefaultMaxTransfersPerClient), half)
}

// refusalLog logs a kind of refusal at most once a second, with how many
// more it refused since its previous line.
type refusalLog struct{ rate lograte.Limiter }

func (q *refusalLog) warn(log *slog.Logger, msg string, args ...any) {
	n, ok := q.rate.Tick(time.Now(), time.Second)
	if !ok {
		return
	}
	if n > 1 {
		args = append(args, "more_refused", n-1)
	}
	log.Warn(msg, args...)
}
