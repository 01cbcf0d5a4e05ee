package isc

import (
	"fmt"
	"strconv"

	"pxed/internal/config"
)

type tokKind uint8

const (
	tEOF    tokKind = iota
	tWord           // keyword, name, number, address, colon hex: [A-Za-z0-9_.:-]+
	tString         // "quoted"; val holds the text with escapes resolved
	tPunct          // { } ; , = and any other single byte
)

type token struct {
	kind tokKind
	val  string
	pos  config.Pos
	// off and end delimit the token in its file's bytes.
	off, end int
}

// is reports whether t is the punctuation p.
func (t token) is(p string) bool { return t.kind == tPunct && t.val == p }

// describe names t for "got …" in messages.
func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of file"
	case tString:
		return "string " + quoteShort(t.val)
	default:
		return quoteShort(t.val)
	}
}

func quoteShort(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strconv.Quote(s)
}

// lexer splits a dhcpd.conf into tokens, tracking 1-based line and byte
// column.
type lexer struct {
	file      string
	data      []byte
	off       int
	line, col int
}

func newLexer(file string, data []byte) *lexer {
	return &lexer{file: file, data: data, line: 1, col: 1}
}

// lexError is a malformed token: an unterminated string.
type lexError struct {
	pos config.Pos
	msg string
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == ':'
}

func (l *lexer) advance() byte {
	c := l.data[l.off]
	l.off++
	if c == '\n' {
		l.line++
		l.col = 1
	} else {
		l.col++
	}
	return c
}

func (l *lexer) pos() config.Pos {
	return config.Pos{File: l.file, Line: l.line, Column: l.col}
}

// skipSpace skips white space and # comments.
func (l *lexer) skipSpace() {
	for l.off < len(l.data) {
		switch c := l.data[l.off]; {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v':
			l.advance()
		case c == '#':
			for l.off < len(l.data) && l.data[l.off] != '\n' {
				l.advance()
			}
		default:
			return
		}
	}
}

// next returns the next token, or a lexError.
func (l *lexer) next() (token, *lexError) {
	l.skipSpace()
	begin := l.off
	t, err := l.token()
	t.off, t.end = begin, l.off
	return t, err
}

func (l *lexer) token() (token, *lexError) {
	start := l.pos()
	if l.off >= len(l.data) {
		return token{kind: tEOF, pos: start}, nil
	}
	switch c := l.data[l.off]; {
	case c == '"':
		return l.str(start)
	case isWordByte(c):
		begin := l.off
		for l.off < len(l.data) && isWordByte(l.data[l.off]) {
			l.advance()
		}
		return token{kind: tWord, val: string(l.data[begin:l.off]), pos: start}, nil
	default:
		l.advance()
		return token{kind: tPunct, val: string(c), pos: start}, nil
	}
}

// str reads a quoted string with ISC's escapes: \t \r \n \b, \NNN octal,
// \xHH hex, and \c for any other c.
func (l *lexer) str(start config.Pos) (token, *lexError) {
	l.advance() // opening quote
	var b []byte
	for {
		if l.off >= len(l.data) {
			return token{}, &lexError{start, "unterminated string: no closing \" before the end of the file"}
		}
		c := l.advance()
		switch c {
		case '"':
			return token{kind: tString, val: string(b), pos: start}, nil
		case '\\':
			if l.off >= len(l.data) {
				continue // reported as unterminated on the next turn
			}
			e := l.advance()
			switch {
			case e == 't':
				b = append(b, '\t')
			case e == 'r':
				b = append(b, '\r')
			case e == 'n':
				b = append(b, '\n')
			case e == 'b':
				b = append(b, '\b')
			case e >= '0' && e <= '7':
				v := int(e - '0')
				for i := 0; i < 2 && l.off < len(l.data) && l.data[l.off] >= '0' && l.data[l.off] <= '7'; i++ {
					v = v*8 + int(l.advance()-'0')
				}
				if v > 255 {
					return token{}, &lexError{start, fmt.Sprintf("octal escape \\%o in string is more than one byte", v)}
				}
				b = append(b, byte(v))
			case e == 'x':
				v, n := 0, 0
				for ; n < 2 && l.off < len(l.data); n++ {
					d, ok := hexVal(l.data[l.off])
					if !ok {
						break
					}
					l.advance()
					v = v*16 + d
				}
				if n == 0 {
					b = append(b, 'x')
				} else {
					b = append(b, byte(v))
				}
			default:
				b = append(b, e)
			}
		default:
			b = append(b, c)
		}
	}
}

func hexVal(c byte) (int, bool) {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0'), true
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10, true
	}
	return 0, false
}
