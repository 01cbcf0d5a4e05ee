package httpboot

import (
	"cmp"
	"fmt"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
)

// MaxRanges is the most parts a multi-range request may ask for. Boot
// clients ask for one range at a time; many tiny parts cost a part header
// each (a request of 4 bytes a part could make the server send 30 times
// what it received).
const MaxRanges = 16

// span is a satisfiable byte range [start, end) of a file.
type span struct{ start, end int64 }

// checkRanges says why the Range header h of a request for a file of size
// bytes is refused ("" to let http.ServeContent answer it): more than
// MaxRanges parts, or parts that overlap (RFC 9110 §14.2 lets a server
// reject both), or an empty suffix "-0" (unsatisfiable, RFC 9110 §14.1.1,
// which ServeContent would answer with a 206 of "bytes 64-63/64"). A
// header ServeContent would find malformed or unsatisfiable is left to it.
func checkRanges(h string, size int64) string {
	rest, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return ""
	}
	var spans [MaxRanges]span
	n, parts := 0, 0
	for part := range strings.SplitSeq(rest, ",") {
		part = textproto.TrimString(part)
		if part == "" {
			continue
		}
		if parts++; parts > MaxRanges {
			return fmt.Sprintf("more than %d ranges", MaxRanges)
		}
		s, ok := parseSpan(part, size)
		if !ok {
			return "" // malformed: ServeContent answers 416
		}
		if s.start == size && part[0] == '-' {
			return "empty suffix range"
		}
		if s.end > s.start {
			spans[n] = s
			n++
		}
	}
	if n < 2 {
		return ""
	}
	sp := spans[:n]
	slices.SortFunc(sp, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	for i := 1; i < len(sp); i++ {
		if sp[i].start < sp[i-1].end {
			return "overlapping ranges"
		}
	}
	return ""
}

// parseSpan reads one "first-last", "first-" or "-suffix" part against a
// file of size bytes; a part starting past the end is empty; ok is false
// for a malformed part.
func parseSpan(part string, size int64) (span, bool) {
	first, last, ok := strings.Cut(part, "-")
	if !ok {
		return span{}, false
	}
	first, last = textproto.TrimString(first), textproto.TrimString(last)
	if first == "" {
		if last == "" || last[0] == '-' {
			return span{}, false
		}
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return span{}, false
		}
		return span{start: size - min(n, size), end: size}, true
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil || start < 0 {
		return span{}, false
	}
	if start >= size {
		return span{}, true
	}
	if last == "" {
		return span{start: start, end: size}, true
	}
	end, err := strconv.ParseInt(last, 10, 64)
	if err != nil || end < start {
		return span{}, false
	}
	return span{start: start, end: min(end, size-1) + 1}, true
}
