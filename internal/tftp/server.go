package tftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"

	"pxed/internal/bootfs"
)

// Defaults for the zero values of Server's fields.
const (
	DefaultTimeout       = time.Second
	DefaultRetries       = 5
	DefaultMaxWindowsize = 64
	DefaultMaxTransfers  = 10000
	DefaultGrace         = 5 * time.Second
	maxNetasciiSize      = 32 << 20
)

// Server serves read requests from an fs.FS. Its zero value is not usable: FS
// must be set. Fields must not change once Serve has been called.
type Server struct {
	// FS is the tree to serve. Names from requests are cleaned with
	// bootfs.CleanName before they reach it.
	FS fs.FS
	// Root is the on-disk path of FS, if any: an absolute request name that
	// starts with it is taken relative to it (tftp-hpa --secure compatibility).
	Root string
	// Logger receives one line per transfer and one per refused request.
	Logger *slog.Logger
	// SinglePort sends every transfer from the listening port and tells
	// transfers apart by client address, for NAT, containers and firewalls
	// that only pass the TFTP port. By default each transfer gets its own
	// ephemeral port, as RFC 1350 describes.
	SinglePort bool
	// MaxBlksize caps the negotiated block size (default and ceiling: 65464).
	MaxBlksize int
	// NoMTUClamp turns off clamping blksize to the MTU of the interface the
	// request arrived on. Clamping avoids IP fragmentation, which many
	// networks and some PXE ROMs handle badly.
	NoMTUClamp bool
	// MaxWindowsize caps the negotiated RFC 7440 window (default 64).
	MaxWindowsize int
	// Timeout is the retransmission timeout when the client does not
	// negotiate one (default 1s).
	Timeout time.Duration
	// Retries is how many times a packet is retransmitted before the
	// transfer is abandoned (default 5).
	Retries int
	// MaxTransfers bounds concurrent transfers; requests beyond it get
	// "server busy" (default 10000).
	MaxTransfers int
	// Grace is how long in-flight transfers may run after Serve's context
	// ends before they are aborted (default 5s).
	Grace time.Duration

	active    atomic.Int64
	mtuCache  sync.Map // interface index -> MTU
	bufPools  [3]sync.Pool
	transfers sync.WaitGroup
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Serve answers requests arriving on conn until ctx ends, then stops taking
// new requests, lets in-flight transfers finish for up to Grace, aborts the
// rest and returns. It closes conn before returning.
func (s *Server) Serve(ctx context.Context, conn *net.UDPConn) error {
	if s.FS == nil {
		return errors.New("tftp: Server.FS is nil")
	}
	l := &listener{srv: s, conn: conn, transfers: map[netip.AddrPort]*transfer{}}
	l.localAddr, _ = netip.ParseAddrPort(conn.LocalAddr().String())
	l.p4 = ipv4.NewPacketConn(conn)
	if err := l.p4.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true); err == nil {
		l.haveCM = true
	}

	// abort ends transfers that outlive the grace period.
	abortCtx, abort := context.WithCancel(context.Background())
	defer abort()
	l.abortCtx = abortCtx

	readDone := make(chan error, 1)
	go func() { readDone <- l.readLoop(ctx) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-readDone:
		// The socket failed or was closed under us: nothing more can be sent
		// on it in single-port mode, but ephemeral transfers may go on.
	}
	l.closing.Store(true)

	done := make(chan struct{})
	go func() { s.transfers.Wait(); close(done) }()
	grace := orDefault(s.Grace, DefaultGrace)
	timer := time.NewTimer(grace)
	select {
	case <-done:
		timer.Stop()
	case <-timer.C:
		n := s.active.Load()
		s.logger().Warn("tftp: grace period over, aborting transfers", "transfers", n, "grace", grace)
		abort()
		<-done
	}
	conn.Close()
	if err == nil {
		<-readDone
	}
	return err
}

// listener owns the listening socket.
type listener struct {
	srv       *Server
	conn      *net.UDPConn
	p4        *ipv4.PacketConn
	haveCM    bool
	localAddr netip.AddrPort
	abortCtx  context.Context
	closing   atomic.Bool

	mu        sync.Mutex
	transfers map[netip.AddrPort]*transfer // active, by client address
}

// readLoop reads the listening socket: requests start transfers; in
// single-port mode everything else is routed to the transfer it belongs to.
func (l *listener) readLoop(ctx context.Context) error {
	// Stop reading when ctx ends, unless single-port transfers still need the
	// socket: then it stays open until Serve closes it.
	go func() {
		<-ctx.Done()
		if !l.srv.SinglePort {
			l.conn.SetReadDeadline(time.Now())
		}
	}()
	buf := make([]byte, maxRequestSize)
	for {
		var (
			n     int
			src   net.Addr
			cm    *ipv4.ControlMessage
			err   error
			local netip.Addr
			ifidx int
		)
		if l.haveCM {
			n, cm, src, err = l.p4.ReadFrom(buf)
		} else {
			n, src, err = l.conn.ReadFrom(buf)
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			return fmt.Errorf("tftp: read: %w", err)
		}
		ua, ok := src.(*net.UDPAddr)
		if !ok {
			continue
		}
		peer := ua.AddrPort()
		peer = netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())
		if cm != nil {
			local, _ = netip.AddrFromSlice(cm.Dst)
			local = local.Unmap()
			ifidx = cm.IfIndex
		}
		if !local.IsValid() {
			local = l.localAddr.Addr()
		}
		pkt := buf[:n]

		l.mu.Lock()
		t := l.transfers[peer]
		l.mu.Unlock()
		if t != nil {
			if t.inbox != nil { // single-port: hand the packet to its transfer
				t.deliver(pkt)
			}
			// Otherwise a retransmitted request for a transfer already under
			// way on its own port: ignore it, that transfer answers.
			continue
		}
		if len(pkt) >= 2 && (pkt[1] == byte(opACK) || pkt[1] == byte(opERROR) || pkt[1] == byte(opDATA)) && pkt[0] == 0 {
			// A late packet of a finished transfer: RFC 1350 answers strangers
			// with "unknown transfer ID"; for an ERROR, stay silent.
			if pkt[1] != byte(opERROR) {
				l.sendTo(appendError(nil, ErrUnknownTID, "unknown transfer ID"), peer, local)
			}
			continue
		}
		if l.closing.Load() || ctx.Err() != nil {
			l.sendTo(appendError(nil, ErrUndefined, "server is shutting down"), peer, local)
			continue
		}
		l.handleRequest(pkt, peer, local, ifidx)
	}
}

// sendTo sends b from the listening socket, from the local address the
// client wrote to when the socket is bound to a wildcard address.
func (l *listener) sendTo(b []byte, peer netip.AddrPort, local netip.Addr) error {
	if l.haveCM && l.localAddr.Addr().IsUnspecified() && local.IsValid() && local.Is4() {
		_, err := l.p4.WriteTo(b, &ipv4.ControlMessage{Src: local.AsSlice()}, net.UDPAddrFromAddrPort(peer))
		return err
	}
	_, err := l.conn.WriteToUDPAddrPort(b, peer)
	return err
}

func (l *listener) handleRequest(pkt []byte, peer netip.AddrPort, local netip.Addr, ifidx int) {
	s := l.srv
	log := s.logger()
	req, err := parseRequest(pkt)
	if err != nil {
		log.Warn("tftp: bad request", "client", peer, "error", err)
		l.sendTo(appendError(nil, ErrIllegalOp, err.Error()), peer, local)
		return
	}
	if req.op == opWRQ {
		log.Warn("tftp: write refused", "client", peer, "file", req.filename, "reason", "writes are disabled")
		l.sendTo(appendError(nil, ErrAccess, "writes are disabled on this server"), peer, local)
		return
	}
	if req.mode == "mail" {
		l.sendTo(appendError(nil, ErrIllegalOp, "mail mode is not supported"), peer, local)
		return
	}
	if max := orDefault(s.MaxTransfers, DefaultMaxTransfers); s.active.Load() >= int64(max) {
		log.Warn("tftp: too many transfers, request refused", "client", peer, "file", req.filename, "limit", max)
		l.sendTo(appendError(nil, ErrUndefined, "server busy, try again later"), peer, local)
		return
	}

	t := &transfer{srv: s, l: l, req: req, peer: peer, local: local, start: time.Now()}
	if s.SinglePort {
		t.inbox = make(chan inPacket, 4)
	} else {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), net.UDPAddrFromAddrPort(peer))
		if err != nil {
			log.Error("tftp: cannot open transfer socket", "client", peer, "file", req.filename, "error", err)
			l.sendTo(appendError(nil, ErrUndefined, "server cannot open a socket"), peer, local)
			return
		}
		t.conn = c
	}
	t.mtu = s.pathMTU(ifidx)
	l.mu.Lock()
	l.transfers[peer] = t
	l.mu.Unlock()
	s.active.Add(1)
	s.transfers.Add(1)
	go t.run()
}

// pathMTU returns the MTU of interface ifidx, or 0 when unknown.
func (s *Server) pathMTU(ifidx int) int {
	if s.NoMTUClamp || ifidx <= 0 {
		return 0
	}
	if v, ok := s.mtuCache.Load(ifidx); ok {
		return v.(int)
	}
	ifi, err := net.InterfaceByIndex(ifidx)
	if err != nil {
		return 0
	}
	s.mtuCache.Store(ifidx, ifi.MTU)
	return ifi.MTU
}

// Buffers come from three pools by size, so a thousand transfers hold a
// thousand small buffers at most while they wait, never a window each.
var bufClasses = [3]int{2048, 16384, 65536}

func (s *Server) getBuf(n int) *[]byte {
	for i, c := range bufClasses {
		if n <= c {
			if b, ok := s.bufPools[i].Get().(*[]byte); ok {
				return b
			}
			b := make([]byte, c)
			return &b
		}
	}
	b := make([]byte, n)
	return &b
}

func (s *Server) putBuf(b *[]byte) {
	for i, c := range bufClasses {
		if cap(*b) == c {
			s.bufPools[i].Put(b)
			return
		}
	}
}

// inPacket is a packet routed to a single-port transfer. ACKs are four bytes
// and errors are only read for their code and a short message, so a fixed
// array avoids an allocation per packet.
type inPacket struct {
	n int
	b [128]byte
}

// transfer is one read request being served.
type transfer struct {
	srv   *Server
	l     *listener
	req   *request
	peer  netip.AddrPort
	local netip.Addr
	mtu   int
	start time.Time

	conn  *net.UDPConn  // ephemeral mode
	inbox chan inPacket // single-port mode
	timer *time.Timer   // single-port mode

	// negotiated
	blksize    int
	windowsize int
	timeout    time.Duration

	bytes       int64
	retransmits int
}

func (t *transfer) deliver(pkt []byte) {
	var p inPacket
	p.n = copy(p.b[:], pkt)
	select {
	case t.inbox <- p:
	default: // the transfer is not keeping up; the client will retransmit
	}
}

func (t *transfer) send(b []byte) error {
	if t.conn != nil {
		_, err := t.conn.Write(b)
		return err
	}
	return t.l.sendTo(b, t.peer, t.local)
}

var errTimeout = errors.New("timed out")

// recv waits for the next packet from the client until deadline. It returns
// the packet in buf.
func (t *transfer) recv(buf []byte, deadline time.Time) (int, error) {
	if t.conn != nil {
		t.conn.SetReadDeadline(deadline)
		n, err := t.conn.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if t.l.abortCtx.Err() != nil {
					return 0, errAborted
				}
				return 0, errTimeout
			}
			return 0, fmt.Errorf("client unreachable: %w", err)
		}
		return n, nil
	}
	d := time.Until(deadline)
	if t.timer == nil {
		t.timer = time.NewTimer(d)
	} else {
		t.timer.Reset(d)
	}
	select {
	case p := <-t.inbox:
		t.timer.Stop()
		return copy(buf, p.b[:p.n]), nil
	case <-t.timer.C:
		return 0, errTimeout
	case <-t.l.abortCtx.Done():
		return 0, errAborted
	}
}

var errAborted = errors.New("aborted: server shutting down")

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

func (t *transfer) run() {
	s := t.srv
	defer func() {
		t.l.mu.Lock()
		delete(t.l.transfers, t.peer)
		t.l.mu.Unlock()
		if t.conn != nil {
			t.conn.Close()
			// Abort: in ephemeral mode the read deadline is how a blocked
			// transfer notices; see recv.
		}
		s.active.Add(-1)
		s.transfers.Done()
	}()
	if t.conn != nil {
		// Wake a transfer blocked in Read when the server aborts.
		stop := context.AfterFunc(t.l.abortCtx, func() { t.conn.SetReadDeadline(time.Now()) })
		defer stop()
	}

	err := t.serveRead()
	result := "ok"
	level := slog.LevelInfo
	if err != nil {
		result = err.Error()
		level = slog.LevelWarn
		var te *transferError
		var pe *PeerError
		switch {
		case errors.As(err, &te):
			t.send(appendError(nil, te.code, te.msg))
		case errors.As(err, &pe), errors.Is(err, errTimeout):
			// The client gave up or went silent: nothing to tell it.
		default:
			t.send(appendError(nil, ErrUndefined, "transfer aborted"))
		}
	}
	s.logger().Log(context.Background(), level, "tftp transfer",
		"client", t.peer.String(),
		"file", t.req.filename,
		"mode", t.req.mode,
		"bytes", t.bytes,
		"duration", time.Since(t.start).Round(time.Microsecond),
		"blksize", t.blksize,
		"windowsize", t.windowsize,
		"retransmits", t.retransmits,
		"result", result)
}

// serveRead opens the file, negotiates and sends it.
func (t *transfer) serveRead() error {
	s := t.srv
	name, err := bootfs.CleanName(t.req.filename, s.Root)
	if err != nil {
		return &transferError{code: ErrAccess, msg: "access violation", err: err}
	}
	f, err := s.FS.Open(name)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return &transferError{code: ErrNotFound, msg: "file not found", err: err}
		case errors.Is(err, fs.ErrPermission):
			return &transferError{code: ErrAccess, msg: "access violation", err: err}
		default:
			return &transferError{code: ErrUndefined, msg: "cannot open file", err: err}
		}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return &transferError{code: ErrUndefined, msg: "cannot open file", err: err}
	}
	if fi.IsDir() {
		return &transferError{code: ErrNotFound, msg: "file not found", err: fmt.Errorf("%s is a directory", name)}
	}
	size := fi.Size()
	var ra io.ReaderAt
	if t.req.mode == "netascii" {
		data, err := readNetascii(f, maxNetasciiSize)
		if err != nil {
			return &transferError{code: ErrUndefined, msg: "cannot read file", err: err}
		}
		ra, size = bytesReaderAt(data), int64(len(data))
	} else if r, ok := f.(io.ReaderAt); ok {
		ra = r
	} else {
		data, err := io.ReadAll(io.LimitReader(f, size+1))
		if err != nil {
			return &transferError{code: ErrUndefined, msg: "cannot read file", err: err}
		}
		ra, size = bytesReaderAt(data), int64(len(data))
	}

	oack, terr := t.negotiate(size)
	if terr != nil {
		return terr
	}
	if len(oack) > 0 {
		if err := t.sendOACK(oack); err != nil {
			return err
		}
	}
	return t.sendData(ra, size)
}

// negotiate applies the request's options (RFC 2347) and returns the ones to
// acknowledge, in the client's order.
func (t *transfer) negotiate(size int64) ([]option, error) {
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
			oack = append(oack, option{o.name, o.value})
		case "tsize":
			if _, ok := atoiBounded(o.value); !ok {
				return nil, refuse(o, "transfer size must be a number")
			}
			oack = append(oack, option{o.name, itoa64(size)})
		}
		// Unknown options are ignored, as RFC 2347 says.
	}
	return oack, nil
}

// sendOACK sends the OACK and waits for the client's ACK of block 0.
func (t *transfer) sendOACK(opts []option) error {
	s := t.srv
	pkt := appendOACK(make([]byte, 0, 128), opts)
	var buf [512]byte
	for try := 0; ; try++ {
		if try > 0 {
			t.retransmits++
		}
		if err := t.send(pkt); err != nil {
			return fmt.Errorf("send OACK: %w", err)
		}
		deadline := time.Now().Add(t.timeout)
		for {
			n, err := t.recv(buf[:], deadline)
			if errors.Is(err, errTimeout) {
				break
			}
			if err != nil {
				return err
			}
			block, perr, err := parseAck(buf[:n])
			if err != nil {
				return &transferError{code: ErrIllegalOp, msg: "expected ACK", err: err}
			}
			if perr != nil {
				return perr
			}
			if block == 0 {
				return nil
			}
			// Any other block number is stale: keep waiting.
		}
		if try >= orDefault(s.Retries, DefaultRetries) {
			return fmt.Errorf("no ACK for OACK after %d tries: %w", try+1, errTimeout)
		}
	}
}

// sendData sends the file in blocks of t.blksize, t.windowsize blocks at a
// time, and returns when the last block has been acknowledged. Internally
// blocks are numbered from 1 without limit; on the wire the number wraps from
// 65535 to 0, as tftp-hpa, curl and PXE ROMs expect for files larger than
// 65535 blocks.
func (t *transfer) sendData(ra io.ReaderAt, size int64) error {
	s := t.srv
	bs := int64(t.blksize)
	last := size/bs + 1 // the last block is short, possibly empty
	maxRetries := orDefault(s.Retries, DefaultRetries)
	var rbuf [512]byte

	base := int64(1) // first block not yet acknowledged
	retries := 0
	for {
		end := min(base+int64(t.windowsize)-1, last)
		if err := t.sendWindow(ra, size, base, end); err != nil {
			return err
		}
		// Wait for an ACK that moves the window. Duplicate and stale ACKs
		// are ignored so that they never trigger sends of their own (the
		// Sorcerer's Apprentice bug, RFC 1123 4.2.3.1); only a timeout, or,
		// with a window, one ACK of the block before it (the client saying
		// it lost the start of the window, RFC 7440), resends.
		deadline := time.Now().Add(t.timeout)
		nacked := false
	wait:
		for {
			n, err := t.recv(rbuf[:], deadline)
			if errors.Is(err, errTimeout) {
				retries++
				if retries > maxRetries {
					return fmt.Errorf("no ACK for block %d after %d retransmissions: %w", base, maxRetries, errTimeout)
				}
				t.retransmits++
				break wait
			}
			if err != nil {
				return err
			}
			block, perr, err := parseAck(rbuf[:n])
			if err != nil {
				return &transferError{code: ErrIllegalOp, msg: "expected ACK", err: err}
			}
			if perr != nil {
				return perr
			}
			// Map the 16-bit number onto [base-1, end].
			delta := int64(uint16(block - uint16(base-1)))
			if delta > end-(base-1) {
				continue // stale, from an earlier window or a wrapped number
			}
			acked := base - 1 + delta
			if acked == base-1 {
				if t.windowsize > 1 && !nacked {
					nacked = true
					t.retransmits++
					break wait
				}
				continue
			}
			retries = 0
			t.bytes = min(acked*bs, size)
			if acked == last {
				return nil
			}
			base = acked + 1
			break wait
		}
	}
}

// sendWindow sends blocks first..last, reading each from ra into one pooled
// buffer that is released before the transfer waits for an ACK.
func (t *transfer) sendWindow(ra io.ReaderAt, size int64, first, last int64) error {
	bs := int64(t.blksize)
	bp := t.srv.getBuf(t.blksize + 4)
	defer t.srv.putBuf(bp)
	buf := *bp
	for b := first; b <= last; b++ {
		off := (b - 1) * bs
		want := min(bs, size-off)
		pkt := buf[:4+want]
		putDataHeader(pkt, uint16(b))
		if want > 0 {
			n, err := ra.ReadAt(pkt[4:], off)
			if int64(n) < want {
				if err == nil || err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return &transferError{code: ErrUndefined, msg: "read error", err: fmt.Errorf("read block %d: %w (file changed during transfer?)", b, err)}
			}
		}
		if err := t.send(pkt); err != nil {
			return fmt.Errorf("send block %d: %w", b, err)
		}
	}
	return nil
}
