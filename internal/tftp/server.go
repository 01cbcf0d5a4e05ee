package tftp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
)

// Defaults for the zero values of Server's fields.
const (
	DefaultTimeout       = time.Second
	DefaultRetries       = 5
	DefaultMaxWindowsize = 64
	DefaultMaxTransfers  = 10000
	DefaultGrace         = 5 * time.Second
	// timerTick is how often retransmission deadlines are checked. It bounds
	// how late a retransmission can be, not how early.
	timerTick = 10 * time.Millisecond
)

// Server serves read requests from an fs.FS. Its zero value is not usable: FS
// must be set. Fields must not change once Serve has been called.
//
// Each transfer is a small state machine (transfer.go). In the default
// mode one goroutine per transfer feeds it from the transfer's own socket;
// in single-port mode the listener feeds every transfer itself. A transfer
// holds no buffer while it waits for an ACK, so memory stays flat with
// thousands of clients.
type Server struct {
	// FS is the tree to serve. Names from requests are cleaned with
	// bootfs.CleanName before they reach it.
	FS fs.FS
	// Root is the on-disk path of FS, if any: an absolute request name that
	// starts with it is taken relative to it (tftp-hpa --secure compatibility).
	Root string
	// Logger receives one line per transfer and one per refused request.
	Logger *slog.Logger
	// Observer, when set, hears of each transfer (metrics).
	Observer Observer
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
	// negotiate one (default 1s): the wait before the first round trip of
	// a transfer is measured, and the longest wait after (see MinTimeout).
	Timeout time.Duration
	// MinTimeout is the floor of the adaptive retransmission timeout
	// (default 50ms). Without a negotiated timeout, a transfer retransmits
	// after a timeout computed from the round trips it measures (RFC 6298),
	// within [MinTimeout, Timeout]; MinTimeout >= Timeout turns that off
	// and every wait is Timeout.
	MinTimeout time.Duration
	// Retries is how many times a packet is retransmitted before the
	// transfer is abandoned (default 5).
	Retries int
	// MaxTransfers bounds concurrent transfers; requests beyond it get
	// "server busy" (default 10000).
	MaxTransfers int
	// MaxTransfersPerClient bounds the concurrent transfers of one client
	// address (an IPv6 /64), and is itself at most half of MaxTransfers
	// (default 16; see limits.go).
	MaxTransfersPerClient int
	// Grace is how long in-flight transfers may run after Serve's context
	// ends before they are aborted (default 5s).
	Grace time.Duration
	// NoRing drives each ephemeral-port transfer from a goroutine of its
	// own instead of io_uring workers. Without it, io_uring is used where
	// the kernel offers it (Linux 5.11 or later; refused by
	// some container seccomp policies, then the goroutines are used).
	NoRing bool
	// RingWorkers is how many io_uring workers run (default: one per two
	// CPUs the Go runtime uses, 1..4).
	RingWorkers int

	active   atomic.Int64 // transfers under way, for MaxTransfers
	ringUsed atomic.Bool  // an io_uring engine was started (tests look)
	mtuCache sync.Map     // interface index -> MTU
	bufPools [3]sync.Pool
}

// Observer hears of each transfer: TransferStarted once it is accepted,
// TransferDone when it ends. Calls come from the transfers' goroutines,
// concurrently: they must be quick.
type Observer interface {
	TransferStarted()
	TransferDone(TransferEnd)
}

// TransferEnd is a transfer that ended, as an Observer hears of it.
type TransferEnd struct {
	Client      netip.AddrPort
	File        string
	Bytes       int64 // acknowledged by the client
	Retransmits int
	Err         error // nil: complete
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
	l := &listener{srv: s, conn: conn, peers: map[netip.AddrPort]*transfer{}, clients: map[netip.Addr]int{}}
	l.localAddr, _ = netip.ParseAddrPort(conn.LocalAddr().String())
	l.p4 = ipv4.NewPacketConn(conn)
	if l.localAddr.Addr().IsUnspecified() {
		// Bound to every address: each packet says which address and
		// interface it came in on, so replies leave from the address the
		// client wrote to and blksize can be clamped to that interface.
		if err := l.p4.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true); err == nil {
			l.haveCM = true
		}
	} else {
		l.ifidx = interfaceOf(l.localAddr.Addr())
	}
	abortCtx, abort := context.WithCancel(context.Background())
	defer abort()
	l.abortCtx = abortCtx
	if !s.SinglePort {
		l.engine = s.startEngine(abortCtx)
		if l.engine != nil {
			defer l.engine.stop()
		}
	}

	readDone := make(chan error, 1)
	go func() { readDone <- l.readLoop(ctx) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-readDone:
		// The socket failed or was closed under us. Ephemeral transfers may
		// go on; single-port ones ended with the loop.
		readDone = nil
	}
	l.mu.Lock()
	l.closing.Store(true)
	l.mu.Unlock()

	done := make(chan struct{})
	go func() { l.transfers.Wait(); close(done) }()
	grace := orDefault(s.Grace, DefaultGrace)
	timer := time.NewTimer(grace)
	select {
	case <-done:
		timer.Stop()
	case <-timer.C:
		s.logger().Warn("tftp: grace period over, aborting transfers", "transfers", l.peerCount(), "grace", grace)
		abort()
		<-done
	}
	conn.Close()
	if readDone != nil {
		<-readDone
	}
	return err
}

// listener owns the listening socket. In single-port mode it also drives
// every transfer, since all their packets arrive on its socket.
type listener struct {
	srv       *Server
	conn      *net.UDPConn
	p4        *ipv4.PacketConn
	haveCM    bool
	localAddr netip.AddrPort
	ifidx     int // interface of localAddr when bound to one address
	abortCtx  context.Context
	closing   atomic.Bool
	engine    *ringEngine // ephemeral transfers on io_uring workers; nil: a goroutine each

	// peers maps client addresses to their transfer. In ephemeral mode it
	// only serves to recognise retransmitted requests, and transfers delete from
	// it; in single-port mode it is the demultiplexer.
	mu      sync.Mutex
	peers   map[netip.AddrPort]*transfer
	clients map[netip.Addr]int // transfers under way per clientKey

	busyLog, clientLog refusalLog // refusals for MaxTransfers, MaxTransfersPerClient

	transfers sync.WaitGroup // this listener's transfers, for Serve's grace period
}

func (l *listener) peerCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.peers)
}

// readLoop reads the listening socket: requests start transfers; in
// single-port mode everything else goes to the transfer it belongs to.
func (l *listener) readLoop(ctx context.Context) error {
	single := l.srv.SinglePort
	if !single {
		// Wake the blocked read when ctx ends.
		stop := context.AfterFunc(ctx, func() { l.conn.SetReadDeadline(time.Now()) })
		defer stop()
	}
	buf := make([]byte, maxRequestSize)
	var nextTick time.Time
	for {
		if single {
			now := time.Now()
			if !now.Before(nextTick) {
				l.tick(now)
				nextTick = now.Add(timerTick)
				l.conn.SetReadDeadline(nextTick)
			}
			if l.closing.Load() && len(l.peers) == 0 {
				return nil
			}
		}
		n, peer, local, ifidx, err := l.read(buf)
		if err != nil {
			var ne net.Error
			if single && errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if single {
				l.abortAll(errAborted)
			}
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) {
				return nil
			}
			return fmt.Errorf("tftp: read: %w", err)
		}
		if !peer.IsValid() {
			continue
		}
		pkt := buf[:n]

		l.mu.Lock()
		t := l.peers[peer]
		l.mu.Unlock()
		var op uint16
		if n >= 2 {
			op = binary.BigEndian.Uint16(pkt)
		}
		isRequest := op == opRRQ || op == opWRQ
		if t != nil {
			if single {
				t.out.(*creditSender).received(n)
			}
			if !isRequest {
				// Single-port: the packet belongs to this transfer. (In
				// ephemeral mode the client never writes here mid-transfer.)
				if single {
					t.onPacket(pkt, time.Now())
				}
				continue
			}
			if t.isRetransmission(pkt) {
				continue // that transfer answers it
			}
			// A new request from the same address and port: the client
			// has moved on (many PXE ROMs reuse their port for the next
			// file, sometimes before our last ACK is processed). The old
			// transfer is over; in ephemeral mode it ends on its own
			// socket, in single-port mode it must go now.
			if single {
				t.finish(errSuperseded)
			}
		}
		if op == opACK || op == opDATA || op == opERROR {
			// A late packet of a finished transfer. RFC 1350 answers
			// strangers with "unknown transfer ID"; never answer an ERROR.
			if op != opERROR {
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

// read reads one packet from the listening socket: who sent it, the local
// address it was sent to and the interface it came in on. Without control
// messages (a socket bound to one address) the local side is the bound one.
func (l *listener) read(buf []byte) (n int, peer netip.AddrPort, local netip.Addr, ifidx int, err error) {
	if !l.haveCM {
		n, peer, err = l.conn.ReadFromUDPAddrPort(buf)
		return n, unmap(peer), l.localAddr.Addr(), l.ifidx, err
	}
	n, cm, src, err := l.p4.ReadFrom(buf)
	if err != nil {
		return 0, peer, local, 0, err
	}
	if ua, ok := src.(*net.UDPAddr); ok {
		peer = unmap(ua.AddrPort())
	}
	if cm != nil {
		local, _ = netip.AddrFromSlice(cm.Dst)
		local = local.Unmap()
		ifidx = cm.IfIndex
	}
	if !local.IsValid() {
		local = l.localAddr.Addr()
	}
	return n, peer, local, ifidx, nil
}

// knownAddr returns a unmapped, or the invalid Addr when a says nothing
// (a wildcard address: the socket is bound to every address and no
// control message said which one the packet was sent to).
func knownAddr(a netip.Addr) netip.Addr {
	if !a.IsValid() || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a.Unmap()
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// tick runs single-port retransmission timers and the abort.
func (l *listener) tick(now time.Time) {
	if l.abortCtx.Err() != nil {
		l.abortAll(errAborted)
		return
	}
	for _, t := range l.peers {
		if !now.Before(t.deadline) {
			t.onTimer(now)
		}
	}
}

func (l *listener) abortAll(err error) {
	for _, t := range l.peers {
		t.fail(err)
	}
}

// remove forgets t, unless a newer transfer from the same peer has already
// taken its place.
func (l *listener) remove(t *transfer) {
	l.mu.Lock()
	if l.peers[t.peer] == t {
		delete(l.peers, t.peer)
	}
	key := clientKey(t.peer.Addr())
	if l.clients[key]--; l.clients[key] <= 0 {
		delete(l.clients, key)
	}
	l.mu.Unlock()
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

// listenerSender sends a single-port transfer's packets.
type listenerSender struct {
	l     *listener
	peer  netip.AddrPort
	local netip.Addr
}

func (s *listenerSender) send(b []byte) error { return s.l.sendTo(b, s.peer, s.local) }
func (s *listenerSender) close()              {}

func (l *listener) handleRequest(pkt []byte, peer netip.AddrPort, local netip.Addr, ifidx int) {
	s := l.srv
	log := s.logger()
	req, err := parseRequest(pkt)
	if err != nil {
		log.Warn("tftp: bad request", "client", peer.String(), "error", err)
		l.sendTo(appendError(nil, ErrIllegalOp, err.Error()), peer, local)
		return
	}
	if req.op == opWRQ {
		log.Warn("tftp: write refused", "client", peer.String(), "file", req.filename, "reason", "writes are disabled")
		l.sendTo(appendError(nil, ErrAccess, "writes are disabled on this server"), peer, local)
		return
	}
	if req.mode == "mail" {
		log.Warn("tftp: bad request", "client", peer.String(), "file", req.filename, "error", "mail mode")
		l.sendTo(appendError(nil, ErrIllegalOp, "mail mode is not supported"), peer, local)
		return
	}
	if max := orDefault(s.MaxTransfers, DefaultMaxTransfers); s.active.Load() >= int64(max) {
		l.busyLog.warn(log, "tftp: too many transfers, request refused", "client", peer.String(), "file", req.filename, "limit", max)
		l.sendTo(appendError(nil, ErrUndefined, "server busy, try again later"), peer, local)
		return
	}
	t := &transfer{srv: s, req: req, peer: peer, local: knownAddr(local), start: time.Now(), mtu: s.pathMTU(ifidx)}
	// Counted under mu, after a last look at closing: Serve sets closing
	// under mu before it waits, so no transfer is added once Wait has begun.
	l.mu.Lock()
	if l.closing.Load() {
		l.mu.Unlock()
		l.sendTo(appendError(nil, ErrUndefined, "server is shutting down"), peer, local)
		return
	}
	key := clientKey(peer.Addr())
	if n, max := l.clients[key], s.perClientLimit(); n >= max {
		l.mu.Unlock()
		l.clientLog.warn(log, "tftp: too many transfers from one client, request refused", "client", peer.String(), "file", req.filename, "limit", max)
		l.sendTo(appendError(nil, ErrUndefined, "too many transfers from your address, try again later"), peer, local)
		return
	}
	l.clients[key]++
	s.active.Add(1)
	l.transfers.Add(1)
	l.peers[peer] = t
	l.mu.Unlock()
	if s.Observer != nil {
		s.Observer.TransferStarted()
	}
	t.onDone = func() {
		l.remove(t)
		s.active.Add(-1)
		l.transfers.Done()
	}

	if s.SinglePort {
		// Everything for this transfer happens on this goroutine: the file
		// is opened here (local disk, fast) and the first packet sent.
		t.out = newCreditSender(l, peer, local, len(pkt))
		t.begin(time.Now())
		return
	}
	// Ephemeral: the transfer's own socket, from the address the client
	// wrote to, opened with the file on a goroutine of its own (the disk
	// may be slow); then an io_uring worker drives it, or that goroutine.
	go func() {
		var out sender
		var err error
		if l.engine != nil {
			out, err = newRingSender(local, peer)
		} else {
			out, err = newConnSender(local, peer)
		}
		if err != nil {
			log.Error("tftp: cannot open transfer socket", "client", peer.String(), "file", req.filename, "error", err)
			t.out = &listenerSender{l: l, peer: peer, local: local}
			t.fail(&transferError{code: ErrUndefined, msg: "server cannot open a socket", err: err})
			return
		}
		t.out = out
		if l.engine == nil {
			t.runConn(l.abortCtx)
			return
		}
		oack, err := t.open()
		if err != nil {
			t.fail(err)
			return
		}
		l.engine.adopt(t, oack)
	}()
}

// interfaceOf returns the index of the interface that holds addr, or 0.
func interfaceOf(addr netip.Addr) int {
	ifs, err := net.Interfaces()
	if err != nil {
		return 0
	}
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == addr.Unmap() {
				return ifi.Index
			}
		}
	}
	return 0
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

// Buffers come from three pools by size, so a thousand transfers hold no
// buffer at all while they wait for ACKs.
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

// defaultRingWorkers is one io_uring worker per two CPUs, at least one and
// at most four. One worker serves about 170,000 blocks a second on one of
// this project's 2-vCPU machines (2 Gbit/s at blksize 1468); the other CPUs
// are for the kernel's side of every packet, DHCP, HTTP and whatever else
// runs there. Measured on 2 CPUs: a second worker made a 200-client storm
// slower (both CPUs contended), not faster.
func defaultRingWorkers(cpus int) int { return min(max(cpus/2, 1), 4) }

// startEngine starts the io_uring workers for ephemeral transfers, or
// returns nil (logged) when io_uring is not there
// or is turned off, and transfers then run a goroutine each.
func (s *Server) startEngine(abortCtx context.Context) *ringEngine {
	if s.NoRing {
		return nil
	}
	n := s.RingWorkers
	if n <= 0 {
		n = defaultRingWorkers(runtime.GOMAXPROCS(0))
	}
	e, err := newRingEngine(s, n, abortCtx)
	if err != nil {
		s.logger().Info("tftp: io_uring not available; one goroutine per transfer", "reason", err)
		return nil
	}
	s.ringUsed.Store(true)
	s.logger().Info("tftp: transfers driven by io_uring", "workers", n)
	return e
}
