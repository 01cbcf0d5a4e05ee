// Command tftpload is a TFTP load generator for benchmarks: it downloads one
// file with n concurrent clients, each a goroutine with its own UDP socket,
// and prints one summary line.
//
// It has its own minimal client so that it depends on nothing but the
// standard library and never on the server under test: RRQ in octet mode with
// the blksize (RFC 2348), tsize (RFC 2349) and windowsize (RFC 7440) options;
// it accepts an OACK or, from servers that ignore options, plain DATA; it
// acknowledges once per window, follows the 16-bit block number as it wraps
// from 65535 to 0, and retransmits its last ACK (or the RRQ) after one second
// of silence, a bounded number of times.
//
//	go run ./bench/tftpload -server 127.0.0.2:69 -file big -n 200 -blksize 1468
//
// It exits 1 if any transfer failed and 2 on bad usage.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	opRRQ   = 1
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6

	errUnknownTID = 5
)

type config struct {
	server      netip.AddrPort
	file        string
	blksize     int
	windowsize  int
	tsize       bool
	expectSize  int64
	rexmit      time.Duration
	retries     int
	maxBadPeers int
}

type result struct {
	bytes int64
	err   error
}

func main() {
	server := flag.String("server", "127.0.0.1:69", "TFTP server `HOST:PORT`")
	file := flag.String("file", "", "remote file `name` to read (required)")
	n := flag.Int("n", 1, "number of concurrent transfers")
	blksize := flag.Int("blksize", 1468, "block size to ask for (0 = don't ask: 512)")
	windowsize := flag.Int("windowsize", 0, "RFC 7440 window size to ask for (0 = don't ask: 1)")
	tsize := flag.Bool("tsize", true, "ask for the transfer size (tsize option)")
	expect := flag.Int64("expect-size", -1, "fail a transfer that does not deliver exactly this many `bytes` (-1 = don't check)")
	timeout := flag.Duration("timeout", 5*time.Minute, "overall deadline for all transfers")
	rexmit := flag.Duration("rexmit", time.Second, "retransmission timeout")
	retries := flag.Int("retries", 5, "retransmissions of one packet before a transfer fails")
	showErrs := flag.Int("errors", 10, "print at most this many individual failures to stderr")
	flag.Parse()

	usage := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "tftpload: "+format+"\n", a...)
		os.Exit(2)
	}
	if flag.NArg() > 0 {
		usage("unexpected argument %q", flag.Arg(0))
	}
	if *file == "" {
		usage("-file is required")
	}
	if *n < 1 {
		usage("-n must be at least 1")
	}
	if *blksize != 0 && (*blksize < 8 || *blksize > 65464) {
		usage("-blksize must be 0 or 8..65464")
	}
	if *windowsize < 0 || *windowsize > 65535 {
		usage("-windowsize must be 0..65535")
	}
	ua, err := net.ResolveUDPAddr("udp", *server)
	if err != nil {
		usage("-server: %v", err)
	}
	ap := ua.AddrPort()
	cfg := &config{
		server:      netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()),
		file:        *file,
		blksize:     *blksize,
		windowsize:  *windowsize,
		tsize:       *tsize,
		expectSize:  *expect,
		rexmit:      *rexmit,
		retries:     *retries,
		maxBadPeers: 100,
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	results := make([]result, *n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range results {
		wg.Go(func() { results[i] = fetch(ctx, cfg) })
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()

	var total int64
	failures := 0
	for i, r := range results {
		total += r.bytes
		if r.err != nil {
			failures++
			if failures <= *showErrs {
				fmt.Fprintf(os.Stderr, "tftpload: client %d: %v (after %d bytes)\n", i, r.err, r.bytes)
			}
		}
	}
	if failures > *showErrs {
		fmt.Fprintf(os.Stderr, "tftpload: ... and %d more failures\n", failures-*showErrs)
	}
	mibs := 0.0
	if elapsed > 0 {
		mibs = float64(total) / (1 << 20) / elapsed
	}
	fmt.Printf("tftpload: clients=%d bytes=%d seconds=%.3f MiB/s=%.1f failures=%d\n",
		*n, total, elapsed, mibs, failures)
	if failures > 0 {
		os.Exit(1)
	}
}

// fetch runs one transfer on its own socket.
func fetch(ctx context.Context, cfg *config) result {
	network := "udp4"
	if cfg.server.Addr().Is6() {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, nil)
	if err != nil {
		return result{err: err}
	}
	defer conn.Close()
	// Once a deadline is set, blocked reads end when ctx is cancelled.
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	c := &client{cfg: cfg, conn: conn, ctx: ctx}
	err = c.run()
	return result{bytes: c.received, err: err}
}

type client struct {
	cfg  *config
	conn *net.UDPConn
	ctx  context.Context

	tid      netip.AddrPort // the server's transfer address, once known
	haveTID  bool
	blksize  int
	window   int
	tsize    int64 // -1 when the server did not say
	received int64
}

// run performs the transfer. Variables named like wire fields hold wire
// values: next is the 16-bit number of the block expected next.
func (c *client) run() error {
	cfg := c.cfg
	c.blksize, c.window, c.tsize = 512, 1, -1

	rrq := c.request()
	if _, err := c.conn.WriteToUDPAddrPort(rrq, cfg.server); err != nil {
		return fmt.Errorf("send RRQ: %w", err)
	}
	// One byte more than the largest DATA packet allowed, to spot oversize ones.
	buf := make([]byte, 4+max(cfg.blksize, 512)+1)
	var ack [4]byte
	binary.BigEndian.PutUint16(ack[:], opACK)
	sendAck := func(block uint16) error {
		binary.BigEndian.PutUint16(ack[2:], block)
		_, err := c.conn.WriteToUDPAddrPort(ack[:], c.tid)
		return err
	}

	var (
		next       uint16 = 1 // wire number of the block expected next
		sinceAck   int        // in-order blocks received since the last ACK
		nakSent    bool       // a gap in the window was already reported
		reacked    bool       // a duplicate block was already answered
		retries    int
		badPeers   int
		lastDeadln time.Time
	)
	for {
		// Setting a deadline costs a timer update; refresh it only when a
		// noticeable part of it has gone by. The timeout thus lies between
		// 0.9 and 1 times cfg.rexmit, which is all a benchmark client needs.
		now := time.Now()
		if now.Add(cfg.rexmit).Sub(lastDeadln) > cfg.rexmit/10 {
			lastDeadln = now.Add(cfg.rexmit)
			if d, ok := c.ctx.Deadline(); ok && d.Before(lastDeadln) {
				lastDeadln = d
			}
			c.conn.SetReadDeadline(lastDeadln)
		}
		n, from, err := c.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return fmt.Errorf("receive: %w", err)
			}
			if c.ctx.Err() != nil {
				return fmt.Errorf("overall deadline exceeded at block %d", next)
			}
			lastDeadln = time.Time{}
			retries++
			if retries > cfg.retries {
				if !c.haveTID {
					return fmt.Errorf("no answer to RRQ after %d retransmissions", cfg.retries)
				}
				return fmt.Errorf("no DATA after block %d after %d retransmissions", next-1, cfg.retries)
			}
			if !c.haveTID {
				_, err = c.conn.WriteToUDPAddrPort(rrq, cfg.server)
			} else {
				// Acknowledge what arrived in order; the server resends
				// from there (a whole window, with RFC 7440).
				err = sendAck(next - 1)
				sinceAck = 0
			}
			if err != nil {
				return fmt.Errorf("retransmit: %w", err)
			}
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if c.haveTID && from != c.tid {
			// RFC 1350: a packet from another port is not ours; tell its
			// sender (a duplicate transfer started by a retransmitted RRQ).
			badPeers++
			if badPeers > cfg.maxBadPeers {
				return errors.New("too many packets from unknown transfer IDs")
			}
			c.conn.WriteToUDPAddrPort(errorPacket(errUnknownTID, "unknown transfer ID"), from)
			continue
		}
		if n < 4 {
			return fmt.Errorf("short packet of %d bytes", n)
		}
		pkt := buf[:n]
		switch binary.BigEndian.Uint16(pkt) {
		case opOACK:
			if c.haveTID && (c.received > 0 || next != 1) {
				continue // stale
			}
			if !c.haveTID {
				if err := c.applyOACK(pkt[2:]); err != nil {
					c.conn.WriteToUDPAddrPort(errorPacket(8, err.Error()), from)
					return err
				}
				c.tid, c.haveTID = from, true
				if len(buf) < 4+c.blksize+1 {
					buf = make([]byte, 4+c.blksize+1)
				}
			}
			// First OACK, or the server resending it because our ACK 0 was lost.
			retries = 0
			if err := sendAck(0); err != nil {
				return fmt.Errorf("send ACK: %w", err)
			}
		case opDATA:
			if !c.haveTID {
				// The server ignored our options: plain RFC 1350 transfer.
				c.tid, c.haveTID = from, true
			}
			block := binary.BigEndian.Uint16(pkt[2:])
			payload := n - 4
			switch {
			case block == next:
				if payload > c.blksize {
					return fmt.Errorf("block %d carries %d bytes, more than blksize %d", block, payload, c.blksize)
				}
				c.received += int64(payload)
				retries, nakSent, reacked = 0, false, false
				sinceAck++
				last := payload < c.blksize
				if last || sinceAck >= c.window {
					if err := sendAck(block); err != nil {
						return fmt.Errorf("send ACK: %w", err)
					}
					sinceAck = 0
				}
				next++
				if last {
					return c.check()
				}
			case uint16(next-block) < 1<<15:
				// A duplicate: the server did not see our ACK. Answer once
				// per stall with the last block we have in order.
				if !reacked {
					reacked = true
					if err := sendAck(next - 1); err != nil {
						return fmt.Errorf("send ACK: %w", err)
					}
					sinceAck = 0
				}
			default:
				// A block beyond the one expected: one was lost within the
				// window. RFC 7440: acknowledge the last one in order, once.
				if !nakSent {
					nakSent = true
					if err := sendAck(next - 1); err != nil {
						return fmt.Errorf("send ACK: %w", err)
					}
					sinceAck = 0
				}
			}
		case opERROR:
			code := binary.BigEndian.Uint16(pkt[2:])
			msg, _, _ := strings.Cut(string(pkt[4:]), "\x00")
			return fmt.Errorf("server error %d: %s", code, msg)
		default:
			return fmt.Errorf("unexpected opcode %d", binary.BigEndian.Uint16(pkt))
		}
	}
}

// request builds the RRQ.
func (c *client) request() []byte {
	cfg := c.cfg
	b := binary.BigEndian.AppendUint16(nil, opRRQ)
	b = append(b, cfg.file...)
	b = append(b, 0)
	b = append(b, "octet\x00"...)
	opt := func(name string, v int64) {
		b = append(b, name...)
		b = append(b, 0)
		b = strconv.AppendInt(b, v, 10)
		b = append(b, 0)
	}
	if cfg.blksize > 0 {
		opt("blksize", int64(cfg.blksize))
	}
	if cfg.tsize {
		opt("tsize", 0)
	}
	if cfg.windowsize > 0 {
		opt("windowsize", int64(cfg.windowsize))
	}
	return b
}

// applyOACK takes the options the server acknowledged (RFC 2347).
func (c *client) applyOACK(b []byte) error {
	s := strings.TrimSuffix(string(b), "\x00")
	if s == "" {
		return nil // an OACK without options: nothing was granted
	}
	fields := strings.Split(s, "\x00")
	if len(fields)%2 != 0 {
		return fmt.Errorf("malformed OACK %q", b)
	}
	for i := 0; i < len(fields); i += 2 {
		name, value := strings.ToLower(fields[i]), fields[i+1]
		v, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return fmt.Errorf("OACK option %s=%q is not a number", name, value)
		}
		switch name {
		case "blksize":
			if c.cfg.blksize == 0 || v < 8 || v > int64(c.cfg.blksize) {
				return fmt.Errorf("OACK blksize %d not acceptable (asked for %d)", v, c.cfg.blksize)
			}
			c.blksize = int(v)
		case "windowsize":
			if c.cfg.windowsize == 0 || v < 1 || v > int64(c.cfg.windowsize) {
				return fmt.Errorf("OACK windowsize %d not acceptable (asked for %d)", v, c.cfg.windowsize)
			}
			c.window = int(v)
		case "tsize":
			if !c.cfg.tsize || v < 0 {
				return fmt.Errorf("OACK tsize %d not acceptable", v)
			}
			c.tsize = v
			if c.cfg.expectSize >= 0 && v != c.cfg.expectSize {
				return fmt.Errorf("server announces tsize %d, expected %d", v, c.cfg.expectSize)
			}
		default:
			return fmt.Errorf("OACK carries option %q that was not asked for", name)
		}
	}
	return nil
}

// check verifies the size of a completed transfer.
func (c *client) check() error {
	if c.tsize >= 0 && c.received != c.tsize {
		return fmt.Errorf("received %d bytes, server announced tsize %d", c.received, c.tsize)
	}
	if c.cfg.expectSize >= 0 && c.received != c.cfg.expectSize {
		return fmt.Errorf("received %d bytes, expected %d", c.received, c.cfg.expectSize)
	}
	return nil
}

func errorPacket(code uint16, msg string) []byte {
	b := binary.BigEndian.AppendUint16(nil, opERROR)
	b = binary.BigEndian.AppendUint16(b, code)
	b = append(b, msg...)
	return append(b, 0)
}
