package tftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"pxed/internal/bootfs"
)

// sender carries a transfer's packets to its client.
type sender interface {
	send(b []byte) error
	close()
}

// batchSender is a sender that can send several packets in one system call.
type batchSender interface {
	sendBatch(pkts [][]byte) error
}

// batchBytes is the buffer a batched window is built in: 44 blocks of 1468.
const batchBytes = 65536

// transfer is one read request being served: a state machine driven by
// begin, onPacket and onTimer, each returning true once the transfer is over
// (logged, file closed, socket released). Exactly one goroutine drives a
// transfer at a time.
type transfer struct {
	srv    *Server
	req    *request
	peer   netip.AddrPort
	local  netip.Addr // the server address the request was sent to; invalid if unknown
	mtu    int
	start  time.Time
	out    sender
	onDone func() // releases the transfer's place in its listener and server

	file io.Closer
	ra   io.ReaderAt
	size int64     // bytes on the wire; unknownSize for netascii until its last block is produced
	na   *netascii // the netascii form being produced; nil in octet mode

	// negotiated
	blksize    int
	windowsize int
	timeout    time.Duration

	// progress
	oack     []byte // the OACK while it awaits ACK 0, else nil
	base     int64  // first block not yet acknowledged (blocks count from 1, unwrapped)
	end      int64  // last block of the window in flight
	last     int64  // the final block (short, possibly empty)
	deadline time.Time
	retries  int       // consecutive timeouts
	rto      rto       // how long to wait for an ACK (rto.go)
	sentAt   time.Time // when the OACK or window in flight was last sent
	fresh    int64     // the first block in flight sent only once (the OACK is block 0)
	sentMax  int64     // the highest block sent so far
	nacked   bool      // an ACK of base-1 already caused a resend of this window
	// echoUntil: blocks were just sent again; until then (one round
	// trip), an ACK of base-1 may be the client's answer to one of those
	// duplicates — UEFI firmware (EDK2) answers each block it did not
	// expect with an ACK — not a loss at the start of the window.
	echoUntil time.Time
	pkts      [][]byte // reused by sendWindow; points into a pooled buffer only while sending

	bytes       int64
	retransmits int
	done        bool

	// answered is set once the client has acknowledged anything, lastSent
	// once the final block has been sent: from then on a request from the
	// same address and port is a new request, not a retransmission (the
	// client may have the whole file, and its final ACK may arrive after
	// its next request). Read by the listener, hence atomic.
	answered atomic.Bool
	lastSent atomic.Bool
}

// isRetransmission reports whether pkt, a request from this transfer's
// peer, repeats the request that started it: the client has not heard from
// us yet and asks again for the same file.
func (t *transfer) isRetransmission(pkt []byte) bool {
	if t.answered.Load() || t.lastSent.Load() {
		return false
	}
	req, err := parseRequest(pkt)
	return err == nil && req.op == t.req.op && req.filename == t.req.filename
}

var (
	errTimeout    = errors.New("timed out")
	errAborted    = errors.New("aborted: server shutting down")
	errSuperseded = errors.New("superseded by a new request from the same client port")
)

// transferError is a failure that is reported to the client with a code.
type transferError struct {
	code uint16
	msg  string
	err  error // for the log; msg when nil
}

func (e *transferError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return e.msg
}

// begin opens the file, negotiates options and sends the OACK or the first
// window.
func (t *transfer) begin(now time.Time) bool {
	oack, err := t.open()
	if err != nil {
		return t.fail(err)
	}
	return t.launch(oack, now)
}

// launch sends the OACK for the options open negotiated, or the first window
// when there are none.
func (t *transfer) launch(oack []option, now time.Time) bool {
	if len(oack) > 0 {
		t.oack = appendOACK(make([]byte, 0, 64), oack)
		return t.sendOACK(now)
	}
	return t.startData(now)
}

func (t *transfer) open() ([]option, error) {
	s := t.srv
	name, err := bootfs.CleanName(t.req.filename, s.Root)
	if err != nil {
		return nil, &transferError{code: ErrAccess, msg: "access violation", err: err}
	}
	f, err := bootfs.OpenFor(s.FS, bootfs.Client{Addr: t.peer.Addr().Unmap(), Local: t.local, Proto: "tftp"}, name)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, &transferError{code: ErrNotFound, msg: "file not found", err: err}
		case errors.Is(err, fs.ErrPermission):
			return nil, &transferError{code: ErrAccess, msg: "access violation", err: err}
		default:
			return nil, &transferError{code: ErrUndefined, msg: "cannot open file", err: err}
		}
	}
	t.file = f
	fi, err := f.Stat()
	if err != nil {
		return nil, &transferError{code: ErrUndefined, msg: "cannot open file", err: err}
	}
	if fi.IsDir() {
		return nil, &transferError{code: ErrNotFound, msg: "file not found", err: fmt.Errorf("%s is a directory", name)}
	}
	// Blocks are read from the file as they are sent, never the whole
	// file at once: files that cannot be read at an offset are refused
	// (every file of a bootfs tree can).
	r, ok := f.(io.ReaderAt)
	if !ok {
		return nil, &transferError{code: ErrUndefined, msg: "cannot read file", err: fmt.Errorf("%s: %T has no ReadAt", name, f)}
	}
	t.ra, t.size = r, fi.Size()
	oack, err := t.negotiate()
	if err != nil {
		return nil, err
	}
	if s.SinglePort {
		t.limitAmplification(oack)
	}
	if t.req.mode == "netascii" {
		t.na, t.size = newNetascii(r, t.size, t.windowsize), unknownSize
	}
	return oack, nil
}

// negotiate applies the request's options (RFC 2347) and returns the ones to
// acknowledge, in the client's order.
func (t *transfer) negotiate() ([]option, error) {
	s := t.srv
	t.blksize = defaultBlksize
	t.windowsize = 1
	t.timeout = orDefault(s.Timeout, DefaultTimeout)
	var oack []option
	refuse := func(o option, why string) error {
		return &transferError{code: ErrOptionRefused, msg: fmt.Sprintf("option %s=%q refused: %s", o.name, o.value, why)}
	}
	seen := map[string]bool{}
	for _, o := range t.req.options {
		if seen[o.name] {
			continue // the first of a repeated option wins
		}
		seen[o.name] = true
		switch o.name {
		case "blksize":
			v, ok := atoiBounded(o.value)
			if !ok || v < minBlksize {
				return nil, refuse(o, "block size must be 8..65464")
			}
			v = min(v, maxBlksize, orDefault(s.MaxBlksize, maxBlksize))
			if t.mtu > 0 {
				// IPv4 header (20) + UDP header (8) + TFTP header (4).
				v = min(v, max(t.mtu-32, minBlksize))
			}
			t.blksize = v
			oack = append(oack, option{o.name, itoa(v)})
		case "windowsize":
			v, ok := atoiBounded(o.value)
			if !ok || v < 1 {
				return nil, refuse(o, "window size must be 1..65535")
			}
			v = min(v, maxWindowsize, orDefault(s.MaxWindowsize, DefaultMaxWindowsize))
			t.windowsize = v
			oack = append(oack, option{o.name, itoa(v)})
		case "timeout":
			v, ok := atoiBounded(o.value)
			if !ok || v < 1 || v > 255 {
				return nil, refuse(o, "timeout must be 1..255 seconds")
			}
			t.timeout = time.Duration(v) * time.Second
			oack = append(oack, option{o.name, itoa(v)})
		case "tsize":
			if _, ok := atoiBounded(o.value); !ok {
				return nil, refuse(o, "transfer size must be a number")
			}
			if t.size == 0 || t.req.mode == "netascii" {
				// RFC 2349 lets a server leave tsize out. curl (7.88)
				// aborts on "tsize 0" in an OACK, and an empty file
				// needs no size to be received. The size of the
				// netascii form is not known before it is sent
				// (netascii.go).
				continue
			}
			oack = append(oack, option{o.name, itoa64(t.size)})
		}
		// Unknown options are ignored, as RFC 2347 says.
	}
	if seen["timeout"] {
		t.rto = fixedRTO(t.timeout) // RFC 2349: the client's timeout, as it asked
	} else {
		t.rto = newRTO(orDefault(s.MinTimeout, DefaultMinTimeout), t.timeout)
	}
	return oack, nil
}

func (t *transfer) sendOACK(now time.Time) bool {
	if err := t.out.send(t.oack); err != nil {
		return t.fail(fmt.Errorf("send OACK: %w", err))
	}
	t.fresh = 0
	if !t.sentAt.IsZero() {
		t.fresh = 1 // a retransmission: ACK 0 measures nothing
	}
	t.sentAt = now
	t.deadline = t.nextDeadline(now)
	return false
}

func (t *transfer) startData(now time.Time) bool {
	t.oack = nil
	t.retries = 0
	t.last = unknownSize // netascii: found when the encoder reaches the end of the file
	if t.na == nil {
		t.last = t.size/int64(t.blksize) + 1
	}
	t.base = 1
	return t.sendWindow(now)
}

// sendWindow sends blocks base..end. Internally blocks are numbered from 1
// without limit; on the wire the number wraps from 65535 to 0, as tftp-hpa,
// curl and PXE ROMs expect for files of more than 65535 blocks.
//
// Blocks are read into one pooled buffer that is released before the
// transfer waits for an ACK. When the sender can batch (a transfer's own
// socket), a window goes out in as few sendmmsg(2) calls as the 64 KiB
// buffer allows instead of one write per block.
func (t *transfer) sendWindow(now time.Time) bool {
	t.end = min(t.base+int64(t.windowsize)-1, t.last)
	t.nacked = false
	if t.base <= t.sentMax {
		t.echoUntil = now.Add(t.rto.roundTrip())
	}
	bs := int64(t.blksize)
	batcher, _ := t.out.(batchSender)
	bufSize := t.blksize + 4
	if batcher != nil && t.end > t.base {
		bufSize = max(bufSize, batchBytes)
	}
	bp := t.srv.getBuf(bufSize)
	defer t.srv.putBuf(bp)
	buf := *bp
	pkts := t.pkts[:0]
	used := 0
	flush := func() error {
		var err error
		if batcher != nil && len(pkts) > 1 {
			err = batcher.sendBatch(pkts)
		} else {
			for _, p := range pkts {
				if err = t.out.send(p); err != nil {
					break
				}
			}
		}
		clear(pkts) // no references into the pooled buffer outlive the send
		pkts, used = pkts[:0], 0
		return err
	}
	for b := t.base; b <= t.end; b++ {
		want := bs
		if t.na == nil {
			want = min(bs, t.size-(b-1)*bs)
		}
		if used+4+int(want) > len(buf) {
			if err := flush(); err != nil {
				return t.fail(fmt.Errorf("send before block %d: %w", b, err))
			}
		}
		pkt := buf[used : used+4+int(want)]
		putDataHeader(pkt, uint16(b))
		n, err := t.readBlock(pkt[4:], b)
		if err != nil {
			return t.fail(&transferError{code: ErrUndefined, msg: "read error", err: fmt.Errorf("read block %d: %w", b, err)})
		}
		pkt = pkt[:4+n]
		pkts = append(pkts, pkt)
		used += len(pkt)
	}
	if t.end == t.last {
		t.lastSent.Store(true) // before the client can have it
	}
	if err := flush(); err != nil {
		return t.fail(fmt.Errorf("send up to block %d: %w", t.end, err))
	}
	t.pkts = pkts
	t.fresh = max(t.base, t.sentMax+1)
	t.sentMax = max(t.sentMax, t.end)
	t.sentAt = now
	t.deadline = t.nextDeadline(now)
	return false
}

// nextDeadline is when to retransmit what was just sent: after the
// transfer's retransmission timeout. With an adaptive timeout, the last
// wait before the transfer is abandoned (after Retries retransmissions
// without progress) lasts (Retries+1) times the longest wait, so that giving
// up never comes sooner than with a fixed timeout, and a client gets a quiet
// spell in which its own timer can fire: atftp answers only the first
// duplicate of a block and re-sends its ACK 5 s after the last packet it
// received, so when that one ACK is lost as well, the server's quick
// retransmissions only hold its timer back.
//
// Until the client has acknowledged something, no wait is longer than the
// server's own timeout, whatever timeout the client negotiated: a client
// that lost the OACK (or the first block) hears it again within a second,
// and one that never answers, or a forged request, holds its slot for
// (Retries+1) server timeouts, not (Retries+1) x 255 s (limits.go).
func (t *transfer) nextDeadline(now time.Time) time.Time {
	wait := t.rto.timeout()
	if n := orDefault(t.srv.Retries, DefaultRetries); t.retries >= n && t.rto.adaptive() {
		wait = time.Duration(n+1) * t.rto.ceil
	}
	if !t.answered.Load() {
		wait = min(wait, orDefault(t.srv.Timeout, DefaultTimeout))
	}
	return now.Add(wait)
}

// retryLimit is how many retransmissions in a row end the transfer:
// Retries, and with an adaptive timeout one more once the client has
// answered, so that the long last wait (nextDeadline) comes twice. A client
// that recovers only by its own timer (atftp answers just the first
// duplicate of a block, then re-sends its ACK 5 s after the last packet it
// received) gets two chances instead of one: on a link that drops 3 % of
// packets each way, the one chance was lost for about one block in 37,000
// (its ACK, its answer to the duplicate and its timer's ACK all lost),
// which ended about one 5 MiB atftp transfer in ten. A client that never
// answered gets no extra round (limits.go).
func (t *transfer) retryLimit() int {
	n := orDefault(t.srv.Retries, DefaultRetries)
	if t.rto.adaptive() && t.answered.Load() {
		n++
	}
	return n
}

// progress notes an ACK of block acked, in flight: a round trip to measure
// unless that block was sent more than once (Karn's rule: the ACK may answer
// either copy). In a window resent from a lost block on, the blocks past
// those sent before are new, and their ACK measures the round trip.
func (t *transfer) progress(acked int64, now time.Time) {
	if acked >= t.fresh {
		t.rto.sample(now.Sub(t.sentAt))
	}
}

// onPacket handles a packet from the client.
//
// Duplicate and stale ACKs are ignored so that they never trigger sends of
// their own (the Sorcerer's Apprentice bug, RFC 1123 4.2.3.1). Only a
// timeout resends, or, with a window, the first ACK of the block before it:
// the client saying it lost the start of the window (RFC 7440) — unless
// it comes within a round trip of blocks sent again, when it answers one
// of those: taking it for a loss resends the window, whose duplicates
// draw more such ACKs, and EDK2 firmware then gets every block twice to
// the end of the file (seen fetching shim's grubx64.efi under OVMF).
func (t *transfer) onPacket(pkt []byte, now time.Time) bool {
	if t.done {
		return true
	}
	if len(pkt) >= 2 && pkt[0] == 0 && (pkt[1] == byte(opRRQ) || pkt[1] == byte(opWRQ)) {
		// The client retransmitted its request before our first packet
		// reached it (single-port mode sees these): this transfer answers.
		return false
	}
	block, perr, err := parseAck(pkt)
	if err != nil {
		return t.fail(&transferError{code: ErrIllegalOp, msg: "expected ACK", err: err})
	}
	if perr != nil {
		return t.fail(perr)
	}
	t.answered.Store(true)
	if t.oack != nil {
		if block != 0 {
			return false // stale: keep waiting for ACK 0
		}
		t.progress(0, now)
		return t.startData(now)
	}
	// Map the 16-bit number onto [base-1, end].
	delta := int64(uint16(block - uint16(t.base-1)))
	if delta > t.end-(t.base-1) {
		return false // stale, from an earlier window or a wrapped number
	}
	acked := t.base - 1 + delta
	if acked == t.base-1 {
		if t.windowsize > 1 && !t.nacked && !now.Before(t.echoUntil) {
			t.retransmits++
			t.sendWindow(now)
			t.nacked = true
		}
		return t.done
	}
	t.progress(acked, now)
	t.retries = 0
	t.bytes = min(acked*int64(t.blksize), t.size)
	if acked == t.last {
		return t.finish(nil)
	}
	if t.na != nil {
		t.na.advance(int(acked + 1 - t.base))
	}
	t.base = acked + 1
	return t.sendWindow(now)
}

// onTimer is called when the deadline has passed without progress.
func (t *transfer) onTimer(now time.Time) bool {
	if t.done {
		return true
	}
	if now.Before(t.deadline) {
		return false
	}
	t.retries++
	if t.retries > t.retryLimit() {
		what := fmt.Sprintf("block %d", t.base)
		if t.oack != nil {
			what = "OACK"
		}
		return t.fail(fmt.Errorf("no ACK for %s after %d retransmissions: %w", what, t.retries-1, errTimeout))
	}
	t.retransmits++
	t.rto.backoff()
	if t.oack != nil {
		return t.sendOACK(now)
	}
	return t.sendWindow(now)
}

// fail ends the transfer with err, telling the client when it should know.
func (t *transfer) fail(err error) bool {
	if t.done {
		return true
	}
	var te *transferError
	var pe *PeerError
	switch {
	case errors.As(err, &te):
		t.out.send(appendError(nil, te.code, te.msg))
	case errors.As(err, &pe), errors.Is(err, errTimeout), errors.Is(err, errUnreachable):
		// The client gave up, went silent or went away: nothing to tell it.
	default:
		t.out.send(appendError(nil, ErrUndefined, "transfer aborted"))
	}
	return t.finish(err)
}

// finish logs the transfer and releases everything it holds.
func (t *transfer) finish(err error) bool {
	if t.done {
		return true
	}
	t.done = true
	if t.file != nil {
		t.file.Close()
	}
	t.out.close()
	result, level := "ok", slog.LevelInfo
	if err != nil {
		result, level = err.Error(), slog.LevelWarn
	}
	attrs := []any{
		"client", t.peer.String(),
		"file", t.req.filename,
		"mode", t.req.mode,
		"bytes", t.bytes,
		"duration", time.Since(t.start).Round(time.Microsecond),
		"blksize", t.blksize,
		"windowsize", t.windowsize,
	}
	if cs, ok := t.out.(*creditSender); ok && cs.withheld > 0 {
		attrs = append(attrs, "withheld", cs.withheld) // singleport.go
	}
	attrs = append(attrs, "retransmits", t.retransmits, "result", result)
	t.srv.logger().Log(context.Background(), level, "tftp transfer", attrs...)
	if o := t.srv.Observer; o != nil {
		o.TransferDone(TransferEnd{Client: t.peer, File: t.req.filename, Bytes: t.bytes, Retransmits: t.retransmits, Err: err})
	}
	t.onDone()
	return true
}
