package tftp

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
)

// atoiBounded parses a non-negative decimal option value. Values beyond what
// an int32 holds are clamped (the callers clamp further), so "99999999999"
// asks for "as much as you allow" rather than failing.
func atoiBounded(s string) (int, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	v := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if v < 1<<31 {
			v = v*10 + int(c-'0')
		}
	}
	return min(v, 1<<31), true
}

func itoa(v int) string     { return strconv.Itoa(v) }
func itoa64(v int64) string { return strconv.FormatInt(v, 10) }

// readNetascii reads r whole and converts it to NetASCII (RFC 764, as used by
// RFC 1350): LF becomes CR LF and a bare CR becomes CR NUL. It refuses files
// larger than limit: netascii is for small text files.
func readNetascii(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("file larger than %d bytes cannot be sent in netascii mode", limit)
	}
	return toNetascii(data), nil
}

func toNetascii(data []byte) []byte {
	extra := bytes.Count(data, []byte{'\n'}) + bytes.Count(data, []byte{'\r'})
	if extra == 0 {
		return data
	}
	out := make([]byte, 0, len(data)+extra)
	for _, c := range data {
		switch c {
		case '\n':
			out = append(out, '\r', '\n')
		case '\r':
			out = append(out, '\r', 0)
		default:
			out = append(out, c)
		}
	}
	return out
}

// bytesReaderAt serves an in-memory file.
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
