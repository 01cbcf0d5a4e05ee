package tftp

import "strconv"

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
