package dhcp

import "strings"

// Strings a client sends are hostile: pxed keeps them bounded and
// printable wherever they outlive the request (the lease database, `pxed
// leases`, logs).

// MaxStoredString bounds a client-supplied string that pxed keeps (the host
// name recorded in a lease), after escaping.
const MaxStoredString = 255

// maxClientID bounds option 61: a DUID-based identifier (RFC 4361) takes
// at most 133 bytes, a single option instance 255. A longer one would make
// a lease key of any size; the request is dropped.
const maxClientID = 255

// printable returns b as printable ASCII: bytes outside 0x20..0x7e become
// \xNN and the backslash \\, so that a terminal or a log never sees control
// characters and the text reads back unambiguously. The result is cut, at
// an escape's boundary, to MaxStoredString bytes.
func printable(b []byte) string {
	clean := len(b) <= MaxStoredString
	for _, c := range b {
		if c < 0x20 || c > 0x7e || c == '\\' {
			clean = false
			break
		}
	}
	if clean {
		return string(b)
	}
	const hex = "0123456789abcdef"
	var sb strings.Builder
	sb.Grow(min(len(b), MaxStoredString))
	for _, c := range b {
		var esc [4]byte
		e := esc[:0]
		switch {
		case c == '\\':
			e = append(e, '\\', '\\')
		case c < 0x20 || c > 0x7e:
			e = append(e, '\\', 'x', hex[c>>4], hex[c&15])
		default:
			e = append(e, c)
		}
		if sb.Len()+len(e) > MaxStoredString {
			break
		}
		sb.Write(e)
	}
	return sb.String()
}
