package tftp

import "time"

// DefaultMinTimeout is the smallest adaptive retransmission timeout: the
// floor under the estimate when round trips are short and steady. Below a
// few tens of milliseconds a client that pauses now and then (an emulated
// NIC, a loaded hypervisor, a server busy with a boot storm) would see
// spurious retransmissions; above it, every loss on a lossy segment costs
// more waiting than it needs.
const DefaultMinTimeout = 50 * time.Millisecond

// rto is a transfer's retransmission timeout, adapted to the round trips it
// measures the way TCP's is (RFC 6298): a smoothed round-trip time and its
// variation give the timeout, kept within [floor, ceil]; each timeout
// doubles it (exponential backoff, up to ceil) until a new measurement
// replaces it. Only packets sent once are measured (Karn's rule): the ACK of
// a retransmitted packet may answer either copy. Before the first
// measurement the timeout is ceil.
//
// A fixed rto (floor == ceil, as for a client that negotiated RFC 2349's
// timeout option) always waits ceil: no measurement or backoff changes it.
type rto struct {
	floor, ceil  time.Duration
	srtt, rttvar time.Duration
	cur          time.Duration // the timeout in force, backed off
	sampled      bool
}

// rtoGranularity is the G of RFC 6298: how late a timer may fire (the
// timer tick of the io_uring workers and of single-port mode).
const rtoGranularity = timerTick

// newRTO returns an adaptive timeout within [floor, ceil], or a fixed one of
// ceil when floor is not below it.
func newRTO(floor, ceil time.Duration) rto {
	return rto{floor: min(floor, ceil), ceil: ceil, cur: ceil}
}

// fixedRTO returns a timeout that always waits d.
func fixedRTO(d time.Duration) rto { return newRTO(d, d) }

// timeout is how long to wait for an ACK of what was just sent.
func (r *rto) timeout() time.Duration { return r.cur }

// roundTrip is how long an answer to what was just sent may take to come
// back: the measured round trip and its variation, neither floored nor
// backed off (before any measurement, the timeout).
func (r *rto) roundTrip() time.Duration {
	if !r.sampled {
		return r.cur
	}
	return r.srtt + max(rtoGranularity, 4*r.rttvar)
}

// adaptive reports whether measurements change the timeout.
func (r *rto) adaptive() bool { return r.floor < r.ceil }

// sample takes the round trip of a packet sent once and acknowledged.
func (r *rto) sample(rtt time.Duration) {
	if !r.adaptive() {
		return
	}
	rtt = max(rtt, 0)
	if !r.sampled {
		r.srtt, r.rttvar, r.sampled = rtt, rtt/2, true
	} else {
		r.rttvar = (3*r.rttvar + (r.srtt - rtt).Abs()) / 4
		r.srtt = (7*r.srtt + rtt) / 8
	}
	r.cur = min(max(r.srtt+max(rtoGranularity, 4*r.rttvar), r.floor), r.ceil)
}

// backoff doubles the timeout after a retransmission, up to ceil.
func (r *rto) backoff() {
	r.cur = min(2*r.cur, r.ceil)
}
