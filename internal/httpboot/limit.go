package httpboot

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"pxed/internal/lograte"
)

// Limits bound what HTTP clients can hold: connections, all clients together
// and per client address, and the time a response may take. Every byte of a
// request is hostile; a boot client needs one or two connections at a time.
type Limits struct {
	// MaxConns is the most connections open at once, all clients together
	// (positive).
	MaxConns int
	// MaxConnsPerIP is the most connections one client may hold: one IPv4
	// address, or one IPv6 /64 (what one machine can easily spread over).
	MaxConnsPerIP int
	// MinRate (bytes per second) is the rate floor of a response: the
	// client must take what is sent at MinRate on average, with Window of
	// slack, or the connection is closed. A slow but live client goes on as
	// long as it likes; one that reads nothing is gone within two Windows
	// once the socket buffers are full. Must be positive.
	MinRate int64
	// Window is the period MinRate is measured over (0: DefaultWindow).
	Window time.Duration
	// Logger gets a summary of refused connections at most every
	// logEvery; nil discards.
	Logger *slog.Logger
}

const (
	// DefaultWindow is Limits.Window when unset.
	DefaultWindow = 30 * time.Second
	// HeaderTimeout bounds reading a request's headers.
	HeaderTimeout = 10 * time.Second
	// IdleTimeout closes a kept-alive connection that sends no request.
	IdleTimeout = 60 * time.Second
	// MaxHeaderBytes bounds a request's headers; boot clients send a few
	// hundred bytes.
	MaxHeaderBytes = 16 << 10
	// logEvery spaces the log lines about refused connections.
	logEvery = 10 * time.Second
	// refuseTimeout bounds the write of the refusal (a fresh socket's
	// buffer takes it at once).
	refuseTimeout = 100 * time.Millisecond
)

// refusal is what a connection over a cap gets before it is closed.
const refusal = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nRetry-After: 5\r\nContent-Length: 34\r\n\r\ntoo many connections, retry later\n"

// NewServer is an http.Server for h with pxed's timeouts: headers within
// HeaderTimeout, idle connections closed after IdleTimeout, headers bounded.
// No WriteTimeout: a response's time is bounded by the rate floor of the
// connections a Limits listener hands out, so a slow link still finishes
// a big file. Requests with bodies are the handlers' to bound.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: HeaderTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Listener wraps ln: a connection over MaxConns or MaxConnsPerIP gets a 503
// and is closed at once, and every connection handed out enforces the rate
// floor on what is written to it.
func (l Limits) Listener(ln net.Listener) net.Listener {
	if l.Window <= 0 {
		l.Window = DefaultWindow
	}
	if l.Logger == nil {
		l.Logger = slog.New(slog.DiscardHandler)
	}
	chunk := max(l.MinRate*l.Window.Milliseconds()/1000, 1)
	return &listener{Listener: ln, l: l, chunk: chunk, per: map[netip.Prefix]int{}}
}

type listener struct {
	net.Listener
	l Limits
	// chunk is the most written under one deadline: MinRate × Window.
	chunk int64

	mu   sync.Mutex
	open int
	per  map[netip.Prefix]int
	// refused counts connections refused since the last log line.
	refusedIP, refusedAll int
	lastRefused           netip.Prefix
	logRate               lograte.Limiter
}

// Accept returns the next connection within the caps; the ones over them
// are answered and closed here.
func (ln *listener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := clientKey(c.RemoteAddr())
		if ln.admit(key) {
			return &conn{Conn: c, ln: ln, key: key}, nil
		}
		c.SetWriteDeadline(time.Now().Add(refuseTimeout))
		io.WriteString(c, refusal)
		c.Close()
	}
}

// admit counts a new connection from key in, or refuses it.
func (ln *listener) admit(key netip.Prefix) bool {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	switch {
	case ln.open >= ln.l.MaxConns:
		ln.refusedAll++
	case ln.per[key] >= ln.l.MaxConnsPerIP:
		ln.refusedIP++
	default:
		ln.open++
		ln.per[key]++
		return true
	}
	ln.lastRefused = key
	if _, ok := ln.logRate.Tick(time.Now(), logEvery); ok {
		ln.l.Logger.Warn("http: connections refused over the caps",
			"per-address", ln.refusedIP, "max-conns-per-ip", ln.l.MaxConnsPerIP,
			"all", ln.refusedAll, "max-conns", ln.l.MaxConns, "last", ln.lastRefused.String())
		ln.refusedIP, ln.refusedAll = 0, 0
	}
	return false
}

func (ln *listener) release(key netip.Prefix) {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	ln.open--
	if ln.per[key]--; ln.per[key] <= 0 {
		delete(ln.per, key)
	}
}

// clientKey is what the per-client cap counts by: an IPv4 address, an IPv6
// /64. Other addresses (a Unix socket's) share one key.
func clientKey(a net.Addr) netip.Prefix {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}
	}
	ip := ta.AddrPort().Addr().Unmap().WithZone("")
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// conn is an admitted connection. Its writes run under the rate floor: the
// write deadline moves forward by the time MinRate takes for each piece
// written, from at most Window ahead of now, so a client keeping up with
// MinRate never meets it, and one that takes nothing meets it within two
// Windows (a piece is at most chunk = MinRate × Window bytes). Credit
// earned by a fast client is capped at Window.
type conn struct {
	net.Conn
	ln       *listener
	key      netip.Prefix
	once     sync.Once
	deadline time.Time
}

func (c *conn) Close() error {
	c.once.Do(func() { c.ln.release(c.key) })
	return c.Conn.Close()
}

// reserve sets the write deadline for the next k bytes (k <= chunk).
func (c *conn) reserve(k int64) {
	now := time.Now()
	base := now.Add(c.ln.l.Window)
	if c.deadline.After(now) && c.deadline.Before(base) {
		base = c.deadline // behind: no fresh slack
	}
	c.deadline = base.Add(time.Duration(k * int64(time.Second) / c.ln.l.MinRate))
	c.Conn.SetWriteDeadline(c.deadline)
}

func (c *conn) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(c.ln.chunk, int64(len(p)))
		c.reserve(k)
		m, err := c.Conn.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// ReadFrom keeps sendfile(2): the TCP connection is handed the file itself
// (in an io.LimitedReader, the only wrapper it looks through), a chunk at
// a time.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := c.Conn.(io.ReaderFrom)
	if !ok {
		return io.Copy(writerOnly{c}, r)
	}
	src, limit := r, int64(-1)
	if lr, ok := r.(*io.LimitedReader); ok {
		if lr.N <= 0 {
			return 0, nil
		}
		src, limit = lr.R, lr.N
		defer func() { lr.N = limit }()
	}
	var total int64
	for limit != 0 {
		k := c.ln.chunk
		if limit > 0 {
			k = min(k, limit)
		}
		c.reserve(k)
		n, err := rf.ReadFrom(&io.LimitedReader{R: src, N: k})
		total += n
		if limit > 0 {
			limit -= n
		}
		if err != nil || n < k {
			return total, err // an error, or the end of src
		}
	}
	return total, nil
}

// writerOnly hides conn's ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }
