package tftp

import (
	"testing"
	"time"
)

const ms = time.Millisecond

// TestRTO checks the estimator against RFC 6298's arithmetic: samples give
// SRTT and RTTVAR, the timeout is SRTT + max(G, 4 RTTVAR) within
// [floor, ceil], backoff doubles it up to ceil, and a fixed one never moves.
func TestRTO(t *testing.T) {
	type step struct {
		sample  time.Duration // taken when backoff is false
		times   int           // how many times the sample is taken (0: once)
		backoff bool
		want    time.Duration // the timeout after the step
	}
	for _, tc := range []struct {
		name        string
		floor, ceil time.Duration
		steps       []step
	}{
		{name: "before any sample: the ceiling", floor: 50 * ms, ceil: time.Second,
			steps: []step{{backoff: true, want: time.Second}}},
		{name: "first sample: srtt + 4*(rtt/2), above the floor", floor: 10 * ms, ceil: time.Second,
			steps: []step{{sample: 40 * ms, want: 40*ms + 4*20*ms}}},
		{name: "a short steady round trip sits on the floor", floor: 50 * ms, ceil: time.Second,
			steps: []step{
				{sample: 200 * time.Microsecond, want: 50 * ms},
				{sample: 200 * time.Microsecond, want: 50 * ms},
				{sample: 300 * time.Microsecond, want: 50 * ms},
			}},
		{name: "steady samples: the variation decays to srtt + G", floor: time.Millisecond, ceil: time.Second,
			steps: []step{
				{sample: 100 * ms, want: 100*ms + 4*50*ms},
				// rttvar = (3*50 + 0)/4 = 37.5ms, srtt 100ms
				{sample: 100 * ms, want: 100*ms + 4*37500*time.Microsecond},
				// after 28 more, 4*rttvar is below G (the 10ms tick)
				{sample: 100 * ms, times: 28, want: 100*ms + rtoGranularity},
			}},
		{name: "smoothing: rttvar and srtt of RFC 6298 2.3", floor: time.Millisecond, ceil: 10 * time.Second,
			steps: []step{
				{sample: 80 * ms, want: 80*ms + 4*40*ms},
				// rttvar = (3*40 + |80-160|)/4 = 50; srtt = (7*80 + 160)/8 = 90
				{sample: 160 * ms, want: 90*ms + 4*50*ms},
			}},
		{name: "a long round trip is capped at the ceiling", floor: 50 * ms, ceil: time.Second,
			steps: []step{{sample: 3 * time.Second, want: time.Second}}},
		{name: "backoff doubles up to the ceiling, a sample recomputes", floor: 50 * ms, ceil: time.Second,
			steps: []step{
				{sample: time.Millisecond, want: 50 * ms},
				{backoff: true, want: 100 * ms},
				{backoff: true, want: 200 * ms},
				{backoff: true, want: 400 * ms},
				{backoff: true, want: 800 * ms},
				{backoff: true, want: time.Second},
				{backoff: true, want: time.Second},
				{sample: time.Millisecond, want: 50 * ms},
			}},
		{name: "fixed (floor not below ceil): samples and backoff change nothing", floor: 2 * time.Second, ceil: time.Second,
			steps: []step{
				{sample: time.Millisecond, want: time.Second},
				{backoff: true, want: time.Second},
				{sample: 5 * time.Second, want: time.Second},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRTO(tc.floor, tc.ceil)
			for i, s := range tc.steps {
				if s.backoff {
					r.backoff()
				} else {
					for range max(s.times, 1) {
						r.sample(s.sample)
					}
				}
				if got := r.timeout(); got != s.want {
					t.Fatalf("step %d (%+v): timeout %v, want %v", i, s, got, s.want)
				}
			}
		})
	}
}

// recordSender keeps what a transfer sends.
type recordSender struct{ pkts [][]byte }

func (s *recordSender) send(b []byte) error {
	s.pkts = append(s.pkts, append([]byte(nil), b...))
	return nil
}
func (s *recordSender) close() {}

// newTestTransfer is a lock-step transfer of data in 512-byte blocks, driven
// by hand with made-up times.
func newTestTransfer(data []byte, r rto) *transfer {
	return &transfer{
		srv: &Server{}, req: &request{filename: "f", mode: "octet"}, out: &recordSender{},
		ra: bytesReaderAt(data), size: int64(len(data)), blksize: 512, windowsize: 1,
		timeout: r.ceil, rto: r, onDone: func() {},
	}
}

// TestTransferKarn checks that the ACK of a retransmitted block is no
// round-trip sample, that the next block sent once is, and that a timeout
// backs the wait off until then.
func TestTransferKarn(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tr := newTestTransfer(make([]byte, 4*512), newRTO(10*ms, time.Second))
	tr.launch(nil, t0) // DATA 1
	if got := tr.deadline.Sub(t0); got != time.Second {
		t.Fatalf("first wait %v, want the ceiling (1s) before any sample", got)
	}
	tr.onPacket(ackPacket(1), t0.Add(20*ms)) // sample 20ms; DATA 2
	want := 20*ms + 4*10*ms
	if got := tr.rto.timeout(); got != want {
		t.Fatalf("after one sample: timeout %v, want %v", got, want)
	}
	t1 := t0.Add(20 * ms)
	if got := tr.deadline.Sub(t1); got != want {
		t.Fatalf("DATA 2 waits %v, want %v", got, want)
	}
	tr.onTimer(tr.deadline) // DATA 2 again, backed off
	if got := tr.rto.timeout(); got != 2*want {
		t.Fatalf("after a timeout: timeout %v, want %v (doubled)", got, 2*want)
	}
	srtt := tr.rto.srtt
	tr.onPacket(ackPacket(2), tr.deadline.Add(-time.Millisecond)) // the ACK of a retransmission
	if tr.rto.srtt != srtt || tr.rto.timeout() != 2*want {
		t.Fatalf("the ACK of a retransmitted block changed the estimate (srtt %v -> %v, timeout %v)", srtt, tr.rto.srtt, tr.rto.timeout())
	}
	t2 := tr.sentAt // DATA 3, sent once
	tr.onPacket(ackPacket(3), t2.Add(20*ms))
	if tr.rto.srtt != 20*ms || tr.rto.timeout() >= 2*want {
		t.Fatalf("the ACK of a block sent once: srtt %v, timeout %v; want srtt 20ms and the backoff gone", tr.rto.srtt, tr.rto.timeout())
	}
	if n := len(tr.out.(*recordSender).pkts); n != 5 { // DATA 1, 2, 2, 3, 4
		t.Fatalf("%d packets sent, want 5", n)
	}
}

// TestTransferPatience checks that quick adaptive retransmissions do not
// make a transfer give up sooner: after the Retries quick ones, the wait
// lasts (Retries+1) ceilings, twice (one more retransmission between), so
// that a client whose own timer is its only recovery gets two chances.
func TestTransferPatience(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tr := newTestTransfer(make([]byte, 4*512), newRTO(10*ms, time.Second))
	tr.srv.Retries = 3
	tr.launch(nil, t0)
	tr.onPacket(ackPacket(1), t0.Add(time.Millisecond)) // sample 1ms: timeout at the 10ms floor
	last := t0.Add(time.Millisecond)
	for i := 1; i <= 3; i++ {
		now := tr.deadline
		if now.Sub(last) >= time.Second {
			t.Fatalf("retransmission %d due %v after the last ACK: not adaptive", i, now.Sub(last))
		}
		if tr.onTimer(now) {
			t.Fatalf("abandoned at retransmission %d", i)
		}
	}
	for i := 4; i <= 5; i++ {
		if got := tr.deadline.Sub(tr.sentAt); got != 4*time.Second {
			t.Fatalf("before timer %d the transfer waits %v, want (Retries+1) x 1s", i, got)
		}
		if i == 5 {
			break
		}
		if tr.onTimer(tr.deadline) {
			t.Fatal("abandoned after the first long wait: a client's timer gets one chance only")
		}
	}
	if !tr.onTimer(tr.deadline) {
		t.Fatal("not abandoned after Retries+1 retransmissions and two long waits")
	}
	if n := len(tr.out.(*recordSender).pkts); n != 2+4 { // DATA 1, DATA 2, then 4 retransmissions of DATA 2
		t.Fatalf("%d packets sent, want 6", n)
	}
}

// TestTransferPatienceFixedAndSilent: a fixed timeout (negotiated) keeps
// exactly Retries retransmissions, and so does a transfer whose client has
// never answered.
func TestTransferPatienceFixedAndSilent(t *testing.T) {
	t0 := time.Unix(1000, 0)
	fixed := newTestTransfer(make([]byte, 4*512), fixedRTO(time.Second))
	fixed.srv.Retries = 3
	fixed.launch(nil, t0)
	fixed.onPacket(ackPacket(1), t0.Add(time.Millisecond))
	silent := newTestTransfer(make([]byte, 4*512), newRTO(10*ms, time.Second))
	silent.srv.Retries = 3
	silent.launch(nil, t0)
	for name, tr := range map[string]*transfer{"fixed timeout": fixed, "never answered": silent} {
		for i := 1; i <= 3; i++ {
			if tr.onTimer(tr.deadline) {
				t.Fatalf("%s: abandoned at retransmission %d", name, i)
			}
		}
		if !tr.onTimer(tr.deadline) {
			t.Fatalf("%s: not abandoned after Retries retransmissions", name)
		}
	}
}
