package tftp

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

// bytesReaderAt serves an in-memory file (tests build transfers on it).
type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset")
	}
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// netasciiRef is the netascii form of data, written the obvious way.
func netasciiRef(data []byte) []byte {
	return []byte(strings.NewReplacer("\r", "\r\x00", "\n", "\r\n").Replace(string(data)))
}

// fromNetascii decodes the netascii form back (CR LF -> LF, CR NUL -> CR).
func fromNetascii(wire []byte) ([]byte, error) {
	var out []byte
	for i := 0; i < len(wire); i++ {
		c := wire[i]
		if c != '\r' {
			out = append(out, c)
			continue
		}
		if i+1 == len(wire) {
			return nil, fmt.Errorf("CR at the end")
		}
		switch wire[i+1] {
		case '\n':
			out = append(out, '\n')
		case 0:
			out = append(out, '\r')
		default:
			return nil, fmt.Errorf("CR followed by %q at %d", wire[i+1], i)
		}
		i++
	}
	return out, nil
}

// netasciiBlocks produces the blocks of data's netascii form in windows of
// window blocks of blksize bytes, resending each window from every one of
// its block boundaries before moving on (as ACKs inside the window and
// timeouts make a transfer do), and checks that every resend is identical.
// It returns the blocks, in order, once each.
func netasciiBlocks(t testing.TB, data []byte, blksize, window int) [][]byte {
	na := newNetascii(bytesReaderAt(data), int64(len(data)), window)
	scratch := make([]byte, blksize)
	var blocks [][]byte
	produce := func(from int) (got [][]byte, last bool) {
		for i := from; i < window; i++ {
			b := make([]byte, blksize)
			n, err := na.block(b, scratch, i)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, b[:n])
			if n < blksize {
				return got, true
			}
		}
		return got, false
	}
	for {
		first, last := produce(0)
		// Resend from each boundary inside the window: the same bytes.
		for k := range first {
			again, _ := produce(k)
			for j, b := range again {
				if !bytes.Equal(b, first[k+j]) {
					t.Fatalf("block %d of a window resent from block %d differs: %q, first %q", len(blocks)+k+j+1, k, b, first[k+j])
				}
			}
		}
		blocks = append(blocks, first...)
		if last {
			return blocks
		}
		na.advance(len(first))
		if len(na.pos) != 1 {
			t.Fatalf("%d positions kept after the window, want 1", len(na.pos))
		}
	}
}

func TestNetasciiEncode(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		blksize int
		window  int
	}{
		{"empty", "", 8, 1},
		{"no specials", "abcdefghijklmnop", 8, 1},
		{"exactly one block", "abcdefgh", 8, 1},
		{"LF at a boundary", "abcdefg\nxyz", 8, 1},
		{"CR at a boundary", "abcdefg\rxyz", 8, 1},
		{"CR LF at a boundary", "abcdef\r\nxyz", 8, 1},
		{"CR LF split", "abcdefg\r\nxyz", 8, 1},
		{"LF last, split", "abcdefg\n", 8, 1},
		{"CR last, split", "abcdefg\r", 8, 1},
		{"full block then nothing", "abc\ndef", 8, 1},
		{"only LFs", "\n\n\n\n\n\n\n\n\n", 8, 3},
		{"only CRs", "\r\r\r\r\r\r\r\r\r", 8, 3},
		{"NUL is plain", "\x00\x00\r\x00\n\x00", 8, 2},
		{"mixed, window 4", "line one\nline two\r\nbare\rcr\n\n\r\rend", 8, 4},
		{"long, window 64", strings.Repeat("x\r\n\ry\n", 500), 512, 64},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			blocks := netasciiBlocks(t, []byte(tc.data), tc.blksize, tc.window)
			want := netasciiRef([]byte(tc.data))
			if got := bytes.Join(blocks, nil); !bytes.Equal(got, want) {
				t.Fatalf("got %q, want %q", got, want)
			}
			if n := len(want)/tc.blksize + 1; len(blocks) != n {
				t.Fatalf("%d blocks, want %d", len(blocks), n)
			}
			for i, b := range blocks[:len(blocks)-1] {
				if len(b) != tc.blksize {
					t.Fatalf("block %d has %d bytes, not the block size %d", i+1, len(b), tc.blksize)
				}
			}
		})
	}
}

// FuzzNetascii: the netascii form produced block by block, windows resent
// from every boundary, is the simple conversion of the file, and decodes
// back to it.
func FuzzNetascii(f *testing.F) {
	f.Add([]byte("a\nb\r\nc\rd"), uint16(8), uint8(1))
	f.Add([]byte("\r\r\n\n\r\x00\n"), uint16(9), uint8(3))
	f.Add([]byte(strings.Repeat("text line\r\n", 200)), uint16(512), uint8(8))
	f.Fuzz(func(t *testing.T, data []byte, blksize uint16, window uint8) {
		bs := max(int(blksize)%1024, minBlksize)
		w := max(int(window)%17, 1)
		blocks := netasciiBlocks(t, data, bs, w)
		wire := bytes.Join(blocks, nil)
		if want := netasciiRef(data); !bytes.Equal(wire, want) {
			t.Fatalf("got %q, want %q", wire, want)
		}
		back, err := fromNetascii(wire)
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("decoded back to %q (%v), want %q", back, err, data)
		}
	})
}
