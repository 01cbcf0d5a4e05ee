package tftp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Defaults for the zero values of Client's fields.
const (
	DefaultClientBlksize    = 1468
	DefaultClientWindowsize = 16
	DefaultClientMaxSize    = 1 << 30
)

// Client fetches files over TFTP (RFC 1350) with the option extensions of
// RFC 2347 (option negotiation), 2348 (blksize), 2349 (timeout, tsize) and
// 7440 (windowsize). The zero value works with the defaults. A Client holds
// no state between calls and may be used by several goroutines at once.
type Client struct {
	// Blksize is the requested block size (RFC 2348), 8..65464; 0 means
	// 1468. 512, the protocol default, sends no blksize option.
	Blksize int
	// Windowsize is the requested window (RFC 7440), 1..65535; 0 means 16.
	// 1, lock-step as in RFC 1350, sends no windowsize option.
	Windowsize int
	// Timeout is the per-packet retransmission timeout; 0 means 1s. It is
	// also sent as the RFC 2349 timeout option, in seconds rounded up and
	// clamped to 1..255.
	Timeout time.Duration
	// Retries is how many times a packet is retransmitted before Get gives
	// up; 0 means 5.
	Retries int
	// MaxSize is the largest file Get accepts, by the server's tsize
	// answer or by what actually arrives; 0 means 1 GiB.
	MaxSize int64
	// Listen, when set, opens the unbound-to-a-peer UDP socket a transfer
	// runs on (network "udp4" or "udp6"): another IP stack than the
	// host's, such as a guest's (internal/guestnet). Nil listens on an
	// ephemeral port of the host's stack.
	Listen func(network string) (net.PacketConn, error)
}

// ErrTooLarge is wrapped by Get's error when the file is over MaxSize, by
// the server's tsize answer or by what arrived.
var ErrTooLarge = errors.New("file too large")

// RemoteError is an ERROR packet from the server. errors.Is reports
// fs.ErrNotExist for code 1 (file not found) and fs.ErrPermission for code 2
// (access violation).
type RemoteError struct {
	Code uint16 // the TFTP error code, such as ErrNotFound
	Msg  string // the server's message
}

// Error returns a description such as
// `tftp: server says "file not found" (code 1)`.
func (e *RemoteError) Error() string { return "tftp: " + e.text() }

func (e *RemoteError) text() string {
	return fmt.Sprintf("server says %q (code %d)", e.Msg, e.Code)
}

// Is makes errors.Is(err, fs.ErrNotExist) true for code 1 and
// errors.Is(err, fs.ErrPermission) true for code 2.
func (e *RemoteError) Is(target error) bool {
	switch target {
	case fs.ErrNotExist:
		return e.Code == ErrNotFound
	case fs.ErrPermission:
		return e.Code == ErrAccess
	}
	return false
}

// getError is what Get returns on failure: the server, the file and why.
type getError struct {
	server netip.AddrPort
	name   string
	err    error
}

func (e *getError) Error() string {
	msg := e.err.Error()
	var re *RemoteError
	if errors.As(e.err, &re) && re == e.err {
		msg = re.text()
	}
	return fmt.Sprintf("tftp %s %s: %s", e.server, e.name, msg)
}

func (e *getError) Unwrap() error { return e.err }

// clientConfig is a Client with its defaults applied.
type clientConfig struct {
	blksize    int
	windowsize int
	timeout    time.Duration
	retries    int
	maxSize    int64
}

func (c *Client) config() (clientConfig, error) {
	cfg := clientConfig{
		blksize:    orDefault(c.Blksize, DefaultClientBlksize),
		windowsize: orDefault(c.Windowsize, DefaultClientWindowsize),
		timeout:    orDefault(c.Timeout, DefaultTimeout),
		retries:    orDefault(c.Retries, DefaultRetries),
		maxSize:    c.MaxSize,
	}
	if cfg.maxSize <= 0 {
		cfg.maxSize = DefaultClientMaxSize
	}
	switch {
	case c.Blksize < 0 || cfg.blksize < minBlksize || cfg.blksize > maxBlksize:
		return cfg, fmt.Errorf("tftp: Client.Blksize %d is outside %d..%d", c.Blksize, minBlksize, maxBlksize)
	case c.Windowsize < 0 || cfg.windowsize > maxWindowsize:
		return cfg, fmt.Errorf("tftp: Client.Windowsize %d is outside 1..%d", c.Windowsize, maxWindowsize)
	case c.Timeout < 0:
		return cfg, fmt.Errorf("tftp: negative Client.Timeout %v", c.Timeout)
	case c.Retries < 0:
		return cfg, fmt.Errorf("tftp: negative Client.Retries %d", c.Retries)
	case c.MaxSize < 0:
		return cfg, fmt.Errorf("tftp: negative Client.MaxSize %d", c.MaxSize)
	}
	return cfg, nil
}

// timeoutOption is the RFC 2349 timeout for d: seconds, rounded up, 1..255.
func timeoutOption(d time.Duration) int {
	s := (d + time.Second - 1) / time.Second
	return int(min(max(s, 1), 255))
}

// Get fetches name from server (octet mode) into w and returns the bytes
// written. Data is written to w as it arrives, in order; on error, what was
// written so far is counted in the result.
//
// Get asks for the options of the Client and for tsize (RFC 2349), and uses
// the server's tsize answer to refuse files over MaxSize before any data
// flows. It sends from its own ephemeral UDP port and locks onto the port
// the server's first reply comes from (the transfer ID); packets from any
// other port are answered with ERROR 5 and otherwise ignored.
//
// Errors name the server and the file. An ERROR packet from the server is
// returned as a *RemoteError (wrapped: use errors.As or errors.Is, e.g. with
// fs.ErrNotExist). Cancelling ctx ends the transfer promptly, telling the
// server, and returns ctx's error, wrapped.
func (c *Client) Get(ctx context.Context, server netip.AddrPort, name string, w io.Writer) (int64, error) {
	server = unmap(server)
	fail := func(err error) (int64, error) { return 0, &getError{server: server, name: name, err: err} }
	cfg, err := c.config()
	if err != nil {
		return 0, err
	}
	switch {
	case !server.IsValid() || server.Addr().IsUnspecified() || server.Port() == 0:
		return fail(errors.New("invalid server address"))
	case name == "" || strings.IndexByte(name, 0) >= 0:
		return fail(errors.New("invalid file name"))
	case len(name) > 4096:
		return fail(errors.New("file name too long"))
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	network := "udp4"
	if server.Addr().Is6() {
		network = "udp6"
	}
	var conn net.PacketConn
	if c.Listen != nil {
		conn, err = c.Listen(network)
	} else {
		conn, err = net.ListenUDP(network, nil)
	}
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	// Room for a whole window, so a burst is not dropped by the kernel
	// (capped by net.core.rmem_max; best effort).
	if uc, ok := conn.(*net.UDPConn); ok {
		if want := cfg.windowsize * (cfg.blksize + 64) * 2; want > 256<<10 {
			uc.SetReadBuffer(min(want, 8<<20))
		}
	}

	g := newGetter(cfg, server, w)
	g.send = func(b []byte, to netip.AddrPort) error {
		if uc, ok := conn.(*net.UDPConn); ok {
			_, err := uc.WriteToUDPAddrPort(b, to)
			return err
		}
		_, err := conn.WriteTo(b, net.UDPAddrFromAddrPort(to))
		return err
	}
	n, err := g.run(ctx, conn, name)
	if err != nil {
		return n, &getError{server: server, name: name, err: err}
	}
	return n, nil
}

// readFrom reads one datagram from conn: without an allocation from the
// host's stack, through net.Addr from another.
func readFrom(conn net.PacketConn, buf []byte) (int, netip.AddrPort, error) {
	if uc, ok := conn.(*net.UDPConn); ok {
		return uc.ReadFromUDPAddrPort(buf)
	}
	n, a, err := conn.ReadFrom(buf)
	ua, _ := a.(*net.UDPAddr)
	if err == nil && ua == nil {
		return n, netip.AddrPort{}, fmt.Errorf("tftp: datagram from %v, not a UDP address", a)
	}
	if ua == nil {
		return n, netip.AddrPort{}, err
	}
	return n, ua.AddrPort(), err
}

// getter is the receiving side of one transfer: a state machine fed packets
// by onPacket and timeouts by onTimeout. It does no I/O but through send
// and w, so tests can drive it directly.
type getter struct {
	cfg    clientConfig
	server netip.AddrPort
	w      io.Writer
	send   func(b []byte, to netip.AddrPort) error

	rrq    []byte
	peer   netip.AddrPort // the server's transfer ID, once locked
	locked bool

	// negotiated; RFC 1350 values until an OACK says otherwise
	blksize    int
	windowsize int
	tsize      int64 // -1: unknown

	next     int64 // next block expected, counted from 1 without wrapping
	inWindow int   // in-order blocks received since the last ACK sent
	nakAt    int64 // the block last acknowledged because of a gap; -1: none
	n        int64 // bytes written to w
	ack      [4]byte
	tidErr   []byte // ERROR 5, built on first use
}

func newGetter(cfg clientConfig, server netip.AddrPort, w io.Writer) *getter {
	return &getter{cfg: cfg, server: server, w: w, blksize: defaultBlksize, windowsize: 1, tsize: -1, next: 1, nakAt: -1}
}

// request builds the RRQ with the options to ask for.
func (g *getter) request(name string) []byte {
	opts := make([]option, 0, 4)
	if g.cfg.blksize != defaultBlksize {
		opts = append(opts, option{"blksize", itoa(g.cfg.blksize)})
	}
	if g.cfg.windowsize != 1 {
		opts = append(opts, option{"windowsize", itoa(g.cfg.windowsize)})
	}
	opts = append(opts, option{"timeout", itoa(timeoutOption(g.cfg.timeout))}, option{"tsize", "0"})
	return appendRequest(make([]byte, 0, len(name)+64), opRRQ, name, "octet", opts)
}

// run sends the request and drives the transfer from conn until it ends.
func (g *getter) run(ctx context.Context, conn net.PacketConn, name string) (int64, error) {
	// Wake a blocked read when ctx ends; every read error checks ctx.
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()

	g.rrq = g.request(name)
	if err := g.send(g.rrq, g.server); err != nil {
		return 0, fmt.Errorf("send request: %w", err)
	}
	buf := make([]byte, max(g.cfg.blksize, defaultBlksize)+5) // +1: spots oversized DATA
	timeout := g.cfg.timeout
	// deadline moves with every bit of progress; the socket's read deadline
	// is only re-armed when it fires early, not for every packet.
	deadline := time.Now().Add(timeout)
	conn.SetReadDeadline(deadline)
	retries := 0
	for {
		n, from, err := readFrom(conn, buf)
		if err != nil {
			if ctx.Err() != nil {
				g.abort(ErrUndefined, "transfer cancelled by the client")
				return g.n, fmt.Errorf("%w (block %d)", context.Cause(ctx), g.next-1)
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return g.n, err
			}
			now := time.Now()
			if now.Before(deadline) {
				conn.SetReadDeadline(deadline)
			} else {
				retries++
				if retries > g.cfg.retries {
					return g.n, fmt.Errorf("no answer after %d retries (block %d)", g.cfg.retries, g.next-1)
				}
				if err := g.onTimeout(); err != nil {
					return g.n, err
				}
				deadline = now.Add(timeout)
				conn.SetReadDeadline(deadline)
			}
			// The deadline just set may have overwritten the one ctx's
			// AfterFunc set: look again.
			if ctx.Err() != nil {
				g.abort(ErrUndefined, "transfer cancelled by the client")
				return g.n, fmt.Errorf("%w (block %d)", context.Cause(ctx), g.next-1)
			}
			continue
		}
		progress, done, err := g.onPacket(buf[:n], unmap(from))
		if err != nil || done {
			return g.n, err
		}
		if progress {
			retries = 0
			deadline = time.Now().Add(timeout)
		}
	}
}

// onTimeout retransmits: the request while the server has not answered,
// else an ACK of the last block received in order, which makes a windowed
// server resend from the block after it (RFC 7440).
func (g *getter) onTimeout() error {
	if !g.locked {
		if err := g.send(g.rrq, g.server); err != nil {
			return fmt.Errorf("resend request: %w", err)
		}
		return nil
	}
	return g.sendAck(g.next - 1)
}

func (g *getter) sendAck(block int64) error {
	binary.BigEndian.PutUint16(g.ack[:], opACK)
	binary.BigEndian.PutUint16(g.ack[2:], uint16(block))
	g.inWindow = 0
	if err := g.send(g.ack[:], g.peer); err != nil {
		return fmt.Errorf("send ACK %d: %w", block, err)
	}
	return nil
}

// abort tells the server the transfer is over, if it has a transfer.
func (g *getter) abort(code uint16, msg string) {
	if g.locked {
		g.send(appendError(nil, code, msg), g.peer)
	}
}

// refuse aborts with an ERROR and returns err.
func (g *getter) refuse(code uint16, err error) error {
	g.abort(code, err.Error())
	return err
}

// onPacket handles one datagram from from. It reports whether the transfer
// moved forward (which resets the retransmission timer), whether it is
// complete, and the error that ended it. Each packet causes at most one
// packet to be sent.
func (g *getter) onPacket(pkt []byte, from netip.AddrPort) (progress, done bool, err error) {
	if g.locked && from != g.peer || !g.locked && from.Addr() != g.server.Addr() {
		g.stranger(pkt, from)
		return false, false, nil
	}
	if len(pkt) < 4 {
		if g.locked {
			return false, false, g.refuse(ErrIllegalOp, fmt.Errorf("malformed %d-byte packet from %v", len(pkt), from))
		}
		return false, false, nil
	}
	switch op := binary.BigEndian.Uint16(pkt); op {
	case opERROR:
		pe := parseError(pkt)
		return false, false, &RemoteError{Code: pe.Code, Msg: pe.Message}
	case opOACK:
		if g.locked {
			// A retransmission: the server missed our ACK 0. Our own
			// timeout answers it, so a storm of copies gets one ACK.
			return false, false, nil
		}
		g.lock(from)
		if err := g.negotiate(pkt[2:]); err != nil {
			return false, false, g.refuse(ErrOptionRefused, err)
		}
		return true, false, g.sendAck(0)
	case opDATA:
		return g.onData(binary.BigEndian.Uint16(pkt[2:]), pkt[4:], from)
	default:
		if g.locked {
			return false, false, g.refuse(ErrIllegalOp, fmt.Errorf("unexpected opcode %d from the server", op))
		}
		return false, false, nil
	}
}

func (g *getter) lock(from netip.AddrPort) {
	g.peer, g.locked = from, true
}

// stranger answers a packet that is not from the transfer's peer with
// ERROR 5, as RFC 1350 says, unless it is itself an ERROR.
func (g *getter) stranger(pkt []byte, from netip.AddrPort) {
	if len(pkt) >= 2 && binary.BigEndian.Uint16(pkt) == opERROR {
		return
	}
	if g.tidErr == nil {
		g.tidErr = appendError(nil, ErrUnknownTID, "unknown transfer ID")
	}
	g.send(g.tidErr, from)
}

// negotiate applies an OACK's options (b follows the opcode). The server may
// lower what was asked, never raise it, nor answer an option not asked for.
func (g *getter) negotiate(b []byte) error {
	if len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	var fields []string
	if len(b) > 0 {
		fields = strings.Split(string(b), "\x00")
	}
	if len(fields)%2 != 0 {
		return fmt.Errorf("malformed OACK: option %q without a value", fields[len(fields)-1])
	}
	var seen [4]bool
	for i := 0; i < len(fields); i += 2 {
		name, value := strings.ToLower(fields[i]), fields[i+1]
		bad := func(why string) error {
			return fmt.Errorf("OACK option %s=%q refused: %s", name, value, why)
		}
		idx := -1
		switch name {
		case "blksize":
			idx = 0
		case "windowsize":
			idx = 1
		case "timeout":
			idx = 2
		case "tsize":
			idx = 3
		}
		if idx < 0 || (idx == 0 && g.cfg.blksize == defaultBlksize) || (idx == 1 && g.cfg.windowsize == 1) {
			return bad("not asked for")
		}
		if seen[idx] {
			return bad("repeated")
		}
		seen[idx] = true
		if idx == 3 {
			v, err := strconv.ParseInt(value, 10, 64)
			if err != nil || v < 0 {
				return bad("not a size")
			}
			if v > g.cfg.maxSize {
				return fmt.Errorf("%w: the file of %d bytes is larger than the limit of %d", ErrTooLarge, v, g.cfg.maxSize)
			}
			g.tsize = v
			continue
		}
		v, ok := atoiBounded(value)
		if !ok {
			return bad("not a number")
		}
		switch idx {
		case 0:
			if v < minBlksize || v > g.cfg.blksize {
				return bad(fmt.Sprintf("asked for %d", g.cfg.blksize))
			}
			g.blksize = v
		case 1:
			if v < 1 || v > g.cfg.windowsize {
				return bad(fmt.Sprintf("asked for %d", g.cfg.windowsize))
			}
			g.windowsize = v
		case 2:
			if asked := timeoutOption(g.cfg.timeout); v < 1 || v > asked {
				return bad(fmt.Sprintf("asked for %d", asked))
			}
		}
	}
	return nil
}

// onData handles a DATA packet with wire block number block.
func (g *getter) onData(block uint16, data []byte, from netip.AddrPort) (progress, done bool, err error) {
	if !g.locked {
		if block != 1 {
			return false, false, nil // not the start of a transfer of ours
		}
		// The server ignored the options: RFC 1350 block size, lock-step.
		g.lock(from)
	}
	if len(data) > g.blksize {
		return false, false, g.refuse(ErrIllegalOp, fmt.Errorf("DATA %d of %d bytes with a block size of %d", block, len(data), g.blksize))
	}
	if delta := block - uint16(g.next); delta != 0 {
		// Out of order. A block ahead of the one expected means the ones
		// between were lost: ACK the last one received in order so the
		// server resends from there (RFC 7440 section 4), once: the rest
		// of the window is past the gap too. Blocks behind are duplicates:
		// ignore them (a timeout re-ACKs).
		if delta < 0x8000 && g.nakAt != g.next-1 {
			g.nakAt = g.next - 1
			return false, false, g.sendAck(g.next - 1)
		}
		return false, false, nil
	}
	total := g.n + int64(len(data))
	if total > g.cfg.maxSize {
		return false, false, g.refuse(ErrDiskFull, fmt.Errorf("%w: the file is larger than the limit of %d bytes", ErrTooLarge, g.cfg.maxSize))
	}
	if g.tsize >= 0 && total > g.tsize {
		return false, false, g.refuse(ErrUndefined, fmt.Errorf("server sent more than the %d bytes it announced", g.tsize))
	}
	if len(data) > 0 {
		m, err := g.w.Write(data)
		g.n += int64(m)
		if err == nil && m < len(data) {
			err = io.ErrShortWrite
		}
		if err != nil {
			return false, false, g.refuse(ErrUndefined, fmt.Errorf("write block %d: %w", g.next, err))
		}
	}
	g.next++
	g.inWindow++
	if len(data) < g.blksize {
		if err := g.sendAck(g.next - 1); err != nil {
			return false, false, err
		}
		if g.tsize >= 0 && g.n != g.tsize {
			return false, false, fmt.Errorf("received %d bytes, but the server announced %d", g.n, g.tsize)
		}
		return true, true, nil
	}
	if g.inWindow >= g.windowsize {
		return true, false, g.sendAck(g.next - 1)
	}
	return true, false, nil
}
