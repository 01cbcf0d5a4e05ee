package pxelinux

import (
	"bytes"
	"io"
	"strings"
)

// Render returns the configuration in canonical form: keywords in upper
// case, one statement per line, label statements indented by two spaces
// and submenu bodies by two more per level. Comments, blank lines, TEXT
// blocks, unknown keywords and the order of everything are kept, so
// parsing the result yields the same Config (line numbers aside).
func (c *Config) Render() []byte {
	var b bytes.Buffer
	renderMenu(&b, &c.Root, 0)
	return b.Bytes()
}

// WriteTo writes the canonical rendering (see Render) to w.
func (c *Config) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(c.Render())
	return int64(n), err
}

func renderMenu(b *bytes.Buffer, m *Menu, depth int) {
	for _, n := range m.Body {
		switch n := n.(type) {
		case *Stmt:
			renderStmt(b, n, depth)
		case *Label:
			line(b, depth, "LABEL "+n.Name)
			for _, s := range n.Stmts {
				renderStmt(b, s, depth+1)
			}
		case *Menu:
			line(b, depth, join("MENU BEGIN", n.Tag))
			renderMenu(b, n, depth+1)
			line(b, depth, "MENU END")
		}
	}
}

func renderStmt(b *bytes.Buffer, s *Stmt, depth int) {
	switch s.Kind {
	case Blank:
		b.WriteByte('\n')
	case Comment:
		line(b, depth, "#"+s.Arg)
	case Text:
		line(b, depth, join("TEXT", s.Arg))
		for _, t := range s.Text {
			b.WriteString(t)
			b.WriteByte('\n')
		}
		if s.Closed {
			line(b, depth, "ENDTEXT")
		}
	case Keyword:
		if s.Keyword == "MENU" {
			line(b, depth, join(join("MENU", s.Sub), s.Arg))
			return
		}
		line(b, depth, join(s.Keyword, s.Arg))
	default:
		line(b, depth, join(s.Keyword, s.Arg))
	}
}

func join(a, b string) string {
	if b == "" {
		return a
	}
	return a + " " + b
}

func line(b *bytes.Buffer, depth int, s string) {
	b.WriteString(strings.Repeat("  ", depth))
	b.WriteString(s)
	b.WriteByte('\n')
}
