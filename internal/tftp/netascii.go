package tftp

import (
	"errors"
	"fmt"
	"io"
	"math"
)

// Netascii (RFC 764, as RFC 1350 uses it) is produced block by block as the
// transfer sends, never for the whole file: LF becomes CR LF and a bare CR
// becomes CR NUL, so a block's bytes depend on where in the file it starts
// and on whether the block before ended in the middle of such a pair. That
// position is a naPos; a transfer keeps one for each block boundary of the
// window in flight, so that a retransmission or a resend from inside the
// window produces exactly the bytes sent the first time, from the file, with
// no copy of it. Memory per transfer is one naPos per block of the window.
//
// The size on the wire is not known before the last block is produced, so a
// netascii transfer leaves tsize out of its OACK, as RFC 2349 allows and as
// tftp-hpa does: counting it would mean reading the whole file for every
// request, which a stream of spoofed requests could turn against the disk.

// unknownSize is the wire size of a netascii transfer until its last block
// has been produced.
const unknownSize = math.MaxInt64

// naPos is where a block of the netascii form of a file begins.
type naPos struct {
	off   int64 // the next file byte to convert
	carry byte  // the file byte ('\n' or '\r') whose two-byte form the previous block split; 0 if none
}

// netasciiEncode writes the netascii form of src into dst, starting with the
// second half of the pair carry split (0: none). It returns the bytes it
// wrote, the bytes of src it consumed, and the byte of src whose pair it had
// to split at the end of dst (0 if none). It stops when dst is full or src
// is consumed.
func netasciiEncode(dst, src []byte, carry byte) (n, used int, split byte) {
	if carry != 0 {
		if len(dst) == 0 {
			return 0, 0, carry
		}
		dst[0] = pairSecond(carry)
		n = 1
	}
	for used < len(src) && n < len(dst) {
		c := src[used]
		used++
		if c != '\n' && c != '\r' {
			dst[n] = c
			n++
			continue
		}
		dst[n] = '\r'
		n++
		if n == len(dst) {
			return n, used, c
		}
		dst[n] = pairSecond(c)
		n++
	}
	return n, used, 0
}

// pairSecond is the byte after CR in the netascii form of c: LF for LF,
// NUL for a bare CR.
func pairSecond(c byte) byte {
	if c == '\n' {
		return '\n'
	}
	return 0
}

// netascii is the netascii form of a file being sent.
type netascii struct {
	ra   io.ReaderAt
	size int64   // of the file, from its Stat when it was opened: never read beyond
	pos  []naPos // pos[i]: where block base+i starts; pos[0] is always known
}

func newNetascii(ra io.ReaderAt, size int64, windowsize int) *netascii {
	pos := make([]naPos, 1, min(windowsize, 64)+1)
	return &netascii{ra: ra, size: size, pos: pos}
}

// block produces block number i of the window (0: its first) into dst, whose
// length is the block size, reading the file through scratch (as long as
// dst). It returns the payload's length: shorter than dst for the last
// block. Block i-1 must have been produced (or i be 0).
func (na *netascii) block(dst, scratch []byte, i int) (int, error) {
	at := na.pos[i]
	// Every file byte yields one or two bytes: a block never needs more
	// than len(dst) of them. (at.off never passes size.)
	want := min(int64(len(dst)), na.size-at.off)
	if want > 0 {
		if n, err := na.ra.ReadAt(scratch[:want], at.off); int64(n) < want {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("read at %d: %w (file changed during transfer?)", at.off, err)
		}
	}
	n, used, split := netasciiEncode(dst, scratch[:want], at.carry)
	next := naPos{off: at.off + int64(used), carry: split}
	if i+1 < len(na.pos) {
		na.pos[i+1] = next
	} else {
		na.pos = append(na.pos, next)
	}
	return n, nil
}

// advance makes block k of the window (k >= 1, produced) the first: the
// client acknowledged the k blocks before it.
func (na *netascii) advance(k int) {
	na.pos = na.pos[:copy(na.pos, na.pos[k:])]
}

// readBlock reads the payload of block b into dst and returns its length.
// In octet mode dst is exactly the block's length; in netascii mode it is
// blksize long, and the first block that comes out shorter is the last: it
// sets last and size and ends the window there.
func (t *transfer) readBlock(dst []byte, b int64) (int, error) {
	if t.na == nil {
		if len(dst) == 0 {
			return 0, nil
		}
		n, err := t.ra.ReadAt(dst, (b-1)*int64(t.blksize))
		if n < len(dst) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("%w (file changed during transfer?)", err)
		}
		return n, nil
	}
	scratch := t.srv.getBuf(len(dst))
	defer t.srv.putBuf(scratch)
	n, err := t.na.block(dst, (*scratch)[:len(dst)], int(b-t.base))
	if err != nil {
		return 0, err
	}
	short := n < len(dst)
	switch {
	case t.last == unknownSize && short:
		t.last, t.end = b, b
		t.size = (b-1)*int64(t.blksize) + int64(n)
	case (b == t.last) != short:
		// A rewind produced a block of another length than the first time.
		return 0, errors.New("file changed during transfer")
	}
	return n, nil
}
