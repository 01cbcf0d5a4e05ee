package tftp

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// requestSeeds are requests as real clients send them.
var requestSeeds = [][]byte{
	// curl: tsize, blksize, timeout.
	[]byte("\x00\x01pxelinux.0\x00octet\x00tsize\x000\x00blksize\x001468\x00timeout\x006\x00"),
	// tftp-hpa: no options.
	[]byte("\x00\x01boot/vmlinuz\x00octet\x00"),
	[]byte("\x00\x01README\x00netascii\x00"),
	// atftp with a window.
	[]byte("\x00\x01grub/grub.cfg\x00octet\x00blksize\x001468\x00windowsize\x008\x00"),
	// PXE ROM style: no NUL after the last option value.
	[]byte("\x00\x01pxelinux.0\x00octet\x00tsize\x000\x00blksize\x001456"),
	[]byte("\x00\x01/pxelinux.cfg/01-52-54-00-12-34-56\x00OCTET\x00BLKSIZE\x001408"),
	// UEFI: size probe, then the download.
	[]byte("\x00\x01\\EFI\\BOOT\\bootx64.efi\x00octet\x00tsize\x000\x00blksize\x001468\x00"),
	// A write request, mail mode, junk.
	[]byte("\x00\x02upload.bin\x00octet\x00tsize\x0012345\x00"),
	[]byte("\x00\x01file\x00mail\x00"),
	[]byte("\x00\x01file\x00octet\x00blksize\x00"),
	[]byte("\x00\x01file\x00octet\x00\x00value\x00multicast\x00\x00"),
	[]byte("\x00\x01\x00octet\x00"),
	[]byte("\x00\x01file"),
	[]byte("\x00\x04\x00\x01"),
	[]byte{0, 1},
}

// FuzzParseRequest: parseRequest never panics, fails only with errMalformed,
// and what it accepts survives a round trip through appendRequest.
func FuzzParseRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRequest(b)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v does not wrap errMalformed", err)
			}
			if r != nil {
				t.Fatalf("request %+v returned with error %v", r, err)
			}
			return
		}
		if r.op != opRRQ && r.op != opWRQ {
			t.Fatalf("opcode %d accepted", r.op)
		}
		if r.filename == "" || strings.IndexByte(r.filename, 0) >= 0 {
			t.Fatalf("file name %q accepted", r.filename)
		}
		switch r.mode {
		case "octet", "netascii", "mail":
		default:
			t.Fatalf("mode %q accepted", r.mode)
		}
		for _, o := range r.options {
			if o.name == "" || strings.IndexByte(o.name, 0) >= 0 || strings.IndexByte(o.value, 0) >= 0 {
				t.Fatalf("option %q=%q accepted", o.name, o.value)
			}
			if o.name != strings.ToLower(o.name) {
				t.Fatalf("option name %q not lower-cased", o.name)
			}
		}
		enc := appendRequest(nil, r.op, r.filename, r.mode, r.options)
		r2, err := parseRequest(enc)
		if err != nil {
			t.Fatalf("re-encoded request %q does not parse: %v", enc, err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip changed the request:\n%+v\n%+v", r, r2)
		}
		if enc2 := appendRequest(nil, r2.op, r2.filename, r2.mode, r2.options); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable: %q, then %q", enc, enc2)
		}
	})
}

// FuzzServerPacket sends arbitrary datagrams to running servers, one per
// engine (io_uring, goroutines, single-port): whatever they answer must be
// a well-formed TFTP packet, and they must go on serving.
func FuzzServerPacket(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add(s)
	}
	f.Add([]byte("\x00\x01hello\x00octet\x00blksize\x008\x00windowsize\x00999999\x00"))
	f.Add([]byte("\x00\x01hello\x00netascii\x00tsize\x000\x00timeout\x00255\x00"))
	f.Add([]byte("\x00\x01hello\x00netascii\x00blksize\x008\x00windowsize\x004\x00"))
	f.Add([]byte("\x00\x01hello\x00octet\x00blksize\x0065464\x00windowsize\x0064\x00tsize\x000\x00"))
	f.Add([]byte("\x00\x03\x00\x01data"))
	f.Add([]byte("\x00\x04\x00\x00"))
	f.Add([]byte("\x00\x05\x00\x01oops\x00"))
	f.Add([]byte{})
	hello := []byte("hello, world\n")
	dir := writeTree(f, map[string][]byte{"hello": hello, "sub/x": hello})
	// Each server has one checking client that keeps its port, so every
	// check asks for the same file from the same port as the one before,
	// at once (that found a new request taken for a retransmission of the
	// transfer its final ACK was about to end: TestSamePortSameFileAgain),
	// and no input's client can get that port. The short timeout ends
	// within 300ms the transfers an input started but did not end (their
	// answer came after the 20ms the harness waits).
	var servers []*testServer
	var checkers []*tclient
	for _, m := range modes {
		ts := startServer(f, dir, m.with(func(s *Server) {
			s.Logger = nil
			s.Timeout, s.MinTimeout, s.Retries = 150*time.Millisecond, 150*time.Millisecond, 1
			s.Grace = 100 * time.Millisecond
			s.MaxTransfersPerClient = 1 << 20 // every input comes from 127.0.0.1
		}))
		servers = append(servers, ts)
		checkers = append(checkers, newClient(f, ts.addr))
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		for i, ts := range servers {
			c := newClient(t, ts.addr)
			c.send(pkt)
			p, err := c.read(20 * time.Millisecond)
			switch {
			case errors.Is(err, errNoPacket):
			case err != nil:
				t.Fatalf("answer to %q: %v", pkt, err)
			case p.op == opDATA || p.op == opOACK:
				// A transfer started: end it, or fuzzing would pile up
				// transfers that wait out a negotiated timeout.
				c.sendTo(p.from, appendError(nil, ErrUndefined, "fuzz client done"))
			case p.op != opERROR:
				t.Fatalf("answer to %q: %v", pkt, p)
			}
			c.conn.Close()
			check := checkers[i]
			check.peer = nil
			r, err := check.getErr("hello", "octet")
			if err != nil || r.err != nil || !bytes.Equal(r.data, hello) {
				t.Fatalf("after %q the server no longer serves: %v, %v", pkt, err, r)
			}
		}
	})
}
