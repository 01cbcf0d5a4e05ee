package dhcpopt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Encode turns a value in canonical text (see the package documentation)
// into its wire bytes for type t.
func (t Type) Encode(value string) ([]byte, error) {
	switch t.Kind {
	case KindText:
		return []byte(value), nil
	case KindString:
		if b, ok := ParseHex(value); ok {
			return b, nil
		}
		return []byte(value), nil
	case KindDomainList:
		return encodeDomainList(value)
	case KindIP, KindBool, KindInt:
	default:
		return nil, fmt.Errorf("invalid option type")
	}
	elems := []string{value}
	if t.Array {
		var err error
		if elems, err = splitList(value); err != nil {
			return nil, err
		}
	}
	b := make([]byte, 0, len(elems)*t.size())
	for _, e := range elems {
		var err error
		if b, err = t.appendScalar(b, strings.TrimSpace(e)); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// AppendValue appends to b the wire bytes of one value as a configuration
// file's tokens give it: for an array or a domain-list, one element of the
// list (the caller has split the list at its commas, so an element is taken
// whole and never split again); otherwise the whole value. quoted says the
// value was written as a quoted string: a string (data string) type then
// takes its bytes as they are, while an unquoted string value must be colon
// hex ("01:02:0a"). Text takes the value's bytes either way. Nothing goes
// through the canonical text form, so no value can be mistaken for another
// on the way.
func (t Type) AppendValue(b []byte, value string, quoted bool) ([]byte, error) {
	switch t.Kind {
	case KindText:
		return append(b, value...), nil
	case KindString:
		if quoted {
			return append(b, value...), nil
		}
		h, ok := ParseHex(value)
		if !ok {
			return nil, fmt.Errorf("%q is neither a quoted string nor colon-separated hex bytes (like 01:02:ab)", value)
		}
		return append(b, h...), nil
	case KindDomainList:
		return appendDomainName(b, value)
	case KindIP, KindBool, KindInt:
		return t.appendScalar(b, value)
	}
	return nil, errors.New("invalid option type")
}

// splitList splits "a, b, c" into its trimmed elements; an empty list or an
// empty element is an error.
func splitList(value string) ([]string, error) {
	if strings.TrimSpace(value) == "" {
		return nil, errors.New("empty value: expected one or more values separated by commas")
	}
	elems := strings.Split(value, ",")
	for i, e := range elems {
		elems[i] = strings.TrimSpace(e)
		if elems[i] == "" {
			return nil, fmt.Errorf("empty element %d in list %q", i+1, value)
		}
	}
	return elems, nil
}

func (t Type) appendScalar(b []byte, s string) ([]byte, error) {
	switch t.Kind {
	case KindIP:
		a, err := ParseIPv4(s)
		if err != nil {
			return nil, err
		}
		v := a.As4()
		return append(b, v[:]...), nil
	case KindBool:
		switch {
		case strings.EqualFold(s, "true"), strings.EqualFold(s, "on"):
			return append(b, 1), nil
		case strings.EqualFold(s, "false"), strings.EqualFold(s, "off"):
			return append(b, 0), nil
		}
		return nil, fmt.Errorf("%q is not a boolean: expected true, false, on or off", s)
	case KindInt:
		v, err := t.parseInt(s)
		if err != nil {
			return nil, err
		}
		switch t.Bits {
		case 8:
			return append(b, byte(v)), nil
		case 16:
			return binary.BigEndian.AppendUint16(b, uint16(v)), nil
		default:
			return binary.BigEndian.AppendUint32(b, uint32(v)), nil
		}
	}
	return nil, fmt.Errorf("invalid option type")
}

// ParseIPv4 reads a dotted-quad IPv4 address. A host name gets an error that
// says pxed does not resolve names.
func ParseIPv4(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err == nil && a.Is4() {
		return a, nil
	}
	if err == nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address", s)
	}
	if s == "" {
		return netip.Addr{}, errors.New("empty value: expected an IPv4 address")
	}
	if looksLikeHostName(s) {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address (pxed does not resolve host names here; write the address)", s)
	}
	return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address", s)
}

// looksLikeHostName reports whether s is made of host name characters and
// has a letter, so it is a name rather than a mistyped address.
func looksLikeHostName(s string) bool {
	letter := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			letter = true
		case c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		default:
			return false
		}
	}
	return letter
}

// parseInt reads a decimal (or 0x hex) integer in t's range; signed types
// also take values up to the unsigned maximum.
func (t Type) parseInt(s string) (int64, error) {
	digits, neg := s, false
	if strings.HasPrefix(digits, "-") {
		digits, neg = digits[1:], true
	} else {
		digits = strings.TrimPrefix(digits, "+")
	}
	base := 10
	if len(digits) > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X') {
		digits, base = digits[2:], 16
	}
	if digits == "" || digits[0] == '+' || digits[0] == '-' {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	u, err := strconv.ParseUint(digits, base, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	var lo, hi int64
	if t.Signed {
		// ISC dhcpd takes values up to the unsigned maximum for signed types
		// too (with a warning), and configurations rely on it: the common
		// `code 121 = array of integer 8` carries octets up to 255. They are
		// stored in two's complement, so Format shows them negative.
		lo, hi = -(1 << (t.Bits - 1)), 1<<t.Bits-1
	} else {
		lo, hi = 0, 1<<t.Bits-1
	}
	if err != nil || u > 1<<33 {
		return 0, fmt.Errorf("%s is outside %d..%d (%s)", s, lo, hi, t.elem())
	}
	v := int64(u)
	if neg {
		v = -v
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("%s is outside %d..%d (%s)", s, lo, hi, t.elem())
	}
	return v, nil
}

// elem is t without "array of".
func (t Type) elem() Type {
	t.Array = false
	return t
}

// Decode turns wire bytes of type t into canonical text. It fails when data
// is not a valid value of t (wrong length, a boolean other than 0 or 1, a
// malformed domain name); Encode(Decode(data)) reproduces data otherwise,
// except that compressed domain lists come back uncompressed.
func (t Type) Decode(data []byte) (string, error) {
	switch t.Kind {
	case KindText:
		return string(data), nil
	case KindString:
		return DataString(data), nil
	case KindDomainList:
		names, err := decodeDomainList(data)
		if err != nil {
			return "", err
		}
		return strings.Join(names, ", "), nil
	case KindIP, KindBool, KindInt:
	default:
		return "", errors.New("invalid option type")
	}
	n := t.size()
	if len(data) == 0 || len(data)%n != 0 || !t.Array && len(data) != n {
		return "", fmt.Errorf("%d bytes is not a valid length for %s", len(data), t)
	}
	var sb strings.Builder
	for i := 0; i < len(data); i += n {
		if i > 0 {
			sb.WriteString(", ")
		}
		e := data[i : i+n]
		switch t.Kind {
		case KindIP:
			sb.WriteString(netip.AddrFrom4([4]byte(e)).String())
		case KindBool:
			switch e[0] {
			case 0:
				sb.WriteString("false")
			case 1:
				sb.WriteString("true")
			default:
				return "", fmt.Errorf("boolean byte %d is not 0 or 1", e[0])
			}
		case KindInt:
			var u uint32
			switch n {
			case 1:
				u = uint32(e[0])
			case 2:
				u = uint32(binary.BigEndian.Uint16(e))
			default:
				u = binary.BigEndian.Uint32(e)
			}
			if t.Signed {
				sb.WriteString(strconv.FormatInt(int64(signExtend(u, t.Bits)), 10))
			} else {
				sb.WriteString(strconv.FormatUint(uint64(u), 10))
			}
		}
	}
	return sb.String(), nil
}

func signExtend(u uint32, bits int) int32 {
	shift := 32 - bits
	return int32(u<<shift) >> shift
}

// IsHex reports whether s is colon-separated hex: one or more groups of one
// or two hex digits separated by single colons ("1:2:ab", "0a").
func IsHex(s string) bool {
	_, ok := ParseHex(s)
	return ok
}

// ParseHex reads colon-separated hex ("01:2:ab") into bytes.
func ParseHex(s string) ([]byte, bool) {
	if s == "" {
		return nil, false
	}
	b := make([]byte, 0, (len(s)+1)/3)
	for g := range strings.SplitSeq(s, ":") {
		if len(g) < 1 || len(g) > 2 {
			return nil, false
		}
		v := byte(0)
		for i := 0; i < len(g); i++ {
			d, ok := hexDigit(g[i])
			if !ok {
				return nil, false
			}
			v = v<<4 | d
		}
		b = append(b, v)
	}
	return b, true
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// HexString writes b as lower-case colon hex, "01:02:0a"; empty for no bytes.
func HexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, len(b)*3)
	for i, c := range b {
		if i > 0 {
			out = append(out, ':')
		}
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// DataString is the canonical text of a data string: the bytes as text when
// they are printable ASCII, do not start or end with a space and cannot be
// mistaken for colon hex; colon hex otherwise. Encode of a string-typed
// option reads either back to the same bytes.
func DataString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if b[0] == ' ' || b[len(b)-1] == ' ' {
		return HexString(b)
	}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return HexString(b)
		}
	}
	if IsHex(string(b)) {
		return HexString(b)
	}
	return string(b)
}

// encodeDomainList writes "a.example, b.example" as RFC 1035 names, one
// after the other, without compression.
func encodeDomainList(value string) ([]byte, error) {
	names, err := splitList(value)
	if err != nil {
		return nil, err
	}
	var b []byte
	for _, name := range names {
		if b, err = appendDomainName(b, name); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// appendDomainName appends one RFC 1035 name, uncompressed; a trailing dot
// is allowed.
func appendDomainName(b []byte, name string) ([]byte, error) {
	n := strings.TrimSuffix(name, ".")
	if n == "" {
		return nil, fmt.Errorf("%q is not a domain name", name)
	}
	start := len(b)
	for label := range strings.SplitSeq(n, ".") {
		if err := checkLabel(label); err != nil {
			return nil, fmt.Errorf("domain name %q: %v", name, err)
		}
		b = append(b, byte(len(label)))
		b = append(b, label...)
	}
	b = append(b, 0)
	if len(b)-start > 255 {
		return nil, fmt.Errorf("domain name %q is longer than 255 bytes encoded", name)
	}
	return b, nil
}

// checkLabel accepts a label of 1..63 printable ASCII bytes other than the
// separators of the canonical form (dot, comma, backslash, quote, space).
func checkLabel(l string) error {
	if l == "" {
		return errors.New("empty label")
	}
	if len(l) > 63 {
		return fmt.Errorf("label %q is longer than 63 bytes", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if c <= 0x20 || c > 0x7e || c == '.' || c == ',' || c == '\\' || c == '"' {
			return fmt.Errorf("label %q has the character %q", l, c)
		}
	}
	return nil
}

// decodeDomainList reads a list of RFC 1035 names, following compression
// pointers (RFC 3397 allows them, relative to the start of the option).
func decodeDomainList(b []byte) ([]string, error) {
	var names []string
	for off := 0; off < len(b); {
		name, next, err := readName(b, off)
		if err != nil {
			return nil, err
		}
		names = append(names, name)
		off = next
	}
	if len(names) == 0 {
		return nil, errors.New("empty domain list")
	}
	return names, nil
}

func readName(b []byte, off int) (name string, next int, err error) {
	var sb strings.Builder
	pos, next, hops, length := off, -1, 0, 1
	for {
		if pos >= len(b) {
			return "", 0, errors.New("domain name runs past the end of the option")
		}
		l := int(b[pos])
		switch l & 0xc0 {
		case 0:
			if l == 0 {
				if next < 0 {
					next = pos + 1
				}
				if sb.Len() == 0 {
					return "", 0, errors.New("empty domain name")
				}
				return sb.String(), next, nil
			}
			if pos+1+l > len(b) {
				return "", 0, errors.New("domain name label runs past the end of the option")
			}
			label := string(b[pos+1 : pos+1+l])
			if err := checkLabel(label); err != nil {
				return "", 0, err
			}
			length += 1 + l
			if length > 255 {
				return "", 0, errors.New("domain name longer than 255 bytes")
			}
			if sb.Len() > 0 {
				sb.WriteByte('.')
			}
			sb.WriteString(label)
			pos += 1 + l
		case 0xc0:
			if pos+1 >= len(b) {
				return "", 0, errors.New("compression pointer runs past the end of the option")
			}
			ptr := (l&0x3f)<<8 | int(b[pos+1])
			if ptr >= pos {
				return "", 0, errors.New("compression pointer does not point backwards")
			}
			if hops++; hops > 127 {
				return "", 0, errors.New("compression pointer loop")
			}
			if next < 0 {
				next = pos + 2
			}
			pos = ptr
		default:
			return "", 0, fmt.Errorf("reserved label type 0x%02x", l&0xc0)
		}
	}
}

// Canonical checks value as Encode does and returns it in canonical text:
// addresses in dotted quad, booleans as true or false, integers in decimal
// as written (so 192 stays 192 for a signed 8-bit type, where Format would
// show -56), domain names without the trailing dot, colon hex in lower case
// with two digits a byte, list elements separated by ", ". Text and data
// strings that are not hex are returned unchanged. Encode(Canonical(v))
// equals Encode(v).
func (t Type) Canonical(value string) (string, error) {
	switch t.Kind {
	case KindText:
		return value, nil
	case KindString:
		if b, ok := ParseHex(value); ok {
			return HexString(b), nil
		}
		return value, nil
	case KindDomainList:
		b, err := encodeDomainList(value)
		if err != nil {
			return "", err
		}
		return t.Decode(b)
	case KindIP, KindBool, KindInt:
	default:
		return "", errors.New("invalid option type")
	}
	elems := []string{value}
	if t.Array {
		var err error
		if elems, err = splitList(value); err != nil {
			return "", err
		}
	}
	e := t.elem()
	for i, s := range elems {
		s = strings.TrimSpace(s)
		if e.Kind == KindInt {
			v, err := e.parseInt(s)
			if err != nil {
				return "", err
			}
			elems[i] = strconv.FormatInt(v, 10)
			continue
		}
		b, err := e.appendScalar(nil, s)
		if err != nil {
			return "", err
		}
		if elems[i], err = e.Decode(b); err != nil {
			return "", err
		}
	}
	return strings.Join(elems, ", "), nil
}
