// Package pxelinux parses, renders and interprets PXELINUX (syslinux)
// configuration files, and computes the configuration file names a
// PXELINUX client tries.
//
// The parser keeps every line (comments, blank lines and unknown keywords
// included), so a parsed Config renders back to an equivalent file. The
// resolver applies syslinux semantics to decide what a client would boot.
package pxelinux

import "fmt"

// StmtKind classifies a Stmt.
type StmtKind int

const (
	// Blank is an empty (or whitespace-only) line.
	Blank StmtKind = iota
	// Comment is a line starting with '#'; Arg holds the text after '#'.
	Comment
	// Keyword is a recognised keyword; Keyword holds its upper-case name.
	Keyword
	// Unknown is an unrecognised keyword, kept verbatim for rendering.
	Unknown
	// Text is a TEXT ... ENDTEXT block (normally TEXT HELP); its lines are
	// in Text.
	Text
)

// Stmt is one statement of a configuration file.
type Stmt struct {
	// Line is the 1-based line number the statement starts on.
	Line int
	// Kind says how to read the other fields.
	Kind StmtKind
	// Keyword is the canonical upper-case keyword ("KERNEL", "MENU",
	// "F1", "TEXT"), or the word exactly as written for Unknown.
	Keyword string
	// Sub is the MENU sub-command: upper case for the known ones (LABEL,
	// DEFAULT, HIDE, TITLE, BEGIN, END), as written otherwise.
	Sub string
	// Arg is the rest of the line with surrounding white space removed.
	// For a TEXT block it is what follows TEXT ("HELP", in any case, is
	// stored upper case).
	Arg string
	// Num is the value of a numeric statement (TIMEOUT, TOTALTIMEOUT,
	// PROMPT, IPAPPEND, SYSAPPEND, LOCALBOOT).
	Num int
	// Text holds the lines of a TEXT block, verbatim.
	Text []string
	// Closed reports whether a TEXT block was ended by ENDTEXT (a block
	// left open runs to the end of its file).
	Closed bool
}

// Label is a LABEL and the statements that follow it up to the next
// LABEL, MENU BEGIN or MENU END.
type Label struct {
	// Line is the line of the LABEL statement.
	Line int
	// Name is the label name.
	Name string
	// Stmts are the label's statements in file order.
	Stmts []*Stmt
}

// Menu is a MENU BEGIN ... MENU END block (a submenu); the root of a
// Config is a Menu too, with Line 0.
type Menu struct {
	// Line is the line of MENU BEGIN, EndLine that of MENU END.
	Line, EndLine int
	// Tag is the argument of MENU BEGIN (may be empty).
	Tag string
	// Body holds *Stmt (menu-scope statements), *Label and *Menu nodes
	// in file order.
	Body []Node
}

// Node is an element of a Menu body: a *Stmt, *Label or *Menu.
type Node interface{ node() }

func (*Stmt) node()  {}
func (*Label) node() {}
func (*Menu) node()  {}

// Config is a parsed configuration file.
type Config struct {
	// Name is the file name given to Parse.
	Name string
	// Root holds the top-level statements, labels and submenus.
	Root Menu
	// Includes lists, in order, the files inlined by ParseWithIncludes.
	Includes []string
}

// ParseError reports a malformed line.
type ParseError struct {
	File string
	Line int
	Msg  string
}

// Error formats the error as "file:line: message".
func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// labelScoped reports whether keyword (upper case) belongs to the current
// label when it appears after a LABEL; all other keywords are global in
// syslinux wherever they appear.
func labelScoped(kw string) bool {
	switch kw {
	case "KERNEL", "LINUX", "BOOT", "BSS", "PXE", "FDIMAGE", "COMBOOT", "COM32", "CONFIG",
		"APPEND", "INITRD", "IPAPPEND", "SYSAPPEND", "LOCALBOOT", "TEXT", "MENU":
		return true
	}
	return false
}

// Labels returns every label, submenus included, in file order.
func (c *Config) Labels() []*Label {
	var out []*Label
	var walk func(m *Menu)
	walk = func(m *Menu) {
		for _, n := range m.Body {
			switch n := n.(type) {
			case *Label:
				out = append(out, n)
			case *Menu:
				walk(n)
			}
		}
	}
	walk(&c.Root)
	return out
}

// Label returns the first label named name (names are case-sensitive), or
// nil.
func (c *Config) Label(name string) *Label {
	for _, l := range c.Labels() {
		if l.Name == name {
			return l
		}
	}
	return nil
}

// Global returns the last statement with the given keyword (any case) that
// applies globally, or nil. A statement applies globally when it is at the
// top level outside any label, or when its keyword is not label-scoped
// (DEFAULT, TIMEOUT, PROMPT, ONTIMEOUT, UI, ... are global even when written
// after a LABEL, as in syslinux). APPEND, IPAPPEND and friends count only at
// the top level, where they set the default for every label.
func (c *Config) Global(keyword string) *Stmt {
	kw := upper(keyword)
	var last *Stmt
	var walk func(m *Menu, top bool)
	consider := func(s *Stmt, top bool) {
		if s.Kind == Keyword && s.Keyword == kw && (top || !labelScoped(kw)) {
			last = s
		}
	}
	walk = func(m *Menu, top bool) {
		for _, n := range m.Body {
			switch n := n.(type) {
			case *Stmt:
				consider(n, top)
			case *Label:
				for _, s := range n.Stmts {
					consider(s, false)
				}
			case *Menu:
				walk(n, false)
			}
		}
	}
	walk(&c.Root, true)
	return last
}

// Get returns the last statement with the given keyword (any case) among
// the label's statements, or nil.
func (l *Label) Get(keyword string) *Stmt {
	kw := upper(keyword)
	var last *Stmt
	for _, s := range l.Stmts {
		if s.Kind == Keyword && s.Keyword == kw {
			last = s
		}
	}
	return last
}

// Menu returns the label's last MENU statement with the given sub-command
// (any case, e.g. "LABEL", "HIDE"), or nil.
func (l *Label) Menu(sub string) *Stmt {
	sub = upper(sub)
	var last *Stmt
	for _, s := range l.Stmts {
		if s.Kind == Keyword && s.Keyword == "MENU" && upper(s.Sub) == sub {
			last = s
		}
	}
	return last
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
