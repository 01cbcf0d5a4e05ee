package pxelinux

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
)

// MaxConfigSize bounds the size of one configuration file read by Parse.
const MaxConfigSize = 4 << 20

// Parse reads a PXELINUX configuration file. name is used in error
// messages ("name:line: ..."). INCLUDE statements are recorded, not
// followed; see ParseWithIncludes.
func Parse(name string, r io.Reader) (*Config, error) {
	p := newParser(name, nil, 0)
	if err := p.file(name, r, 0); err != nil {
		return nil, err
	}
	return p.finish()
}

// ParseWithIncludes parses the file name, opened with open, and inlines
// every INCLUDE statement in place, as syslinux does: the included text
// continues the current label or menu. Included files may include others
// up to maxDepth levels (maxDepth <= 0 means 8); deeper nesting and include
// cycles are errors, as is a file that cannot be opened. The INCLUDE
// statements themselves are dropped and the included names recorded in
// Config.Includes, so the rendered result is self-contained.
func ParseWithIncludes(name string, open func(path string) (io.ReadCloser, error), maxDepth int) (*Config, error) {
	if maxDepth <= 0 {
		maxDepth = 8
	}
	p := newParser(name, open, maxDepth)
	rc, err := open(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p.stack = []string{path.Clean(name)}
	err = p.file(name, rc, 0)
	if cerr := rc.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("%s: %w", name, cerr)
	}
	if err != nil {
		return nil, err
	}
	return p.finish()
}

type openMenu struct {
	m    *Menu
	file string
}

type parser struct {
	cfg      *Config
	open     func(string) (io.ReadCloser, error)
	maxDepth int
	stack    []string // include chain, cleaned names
	menus    []openMenu
	cur      *Label
}

func newParser(name string, open func(string) (io.ReadCloser, error), maxDepth int) *parser {
	c := &Config{Name: name}
	return &parser{cfg: c, open: open, maxDepth: maxDepth, menus: []openMenu{{m: &c.Root}}}
}

func (p *parser) finish() (*Config, error) {
	if len(p.menus) > 1 {
		om := p.menus[len(p.menus)-1]
		return nil, &ParseError{om.file, om.m.Line, "MENU BEGIN without matching MENU END"}
	}
	return p.cfg, nil
}

func (p *parser) add(s *Stmt) {
	if p.cur != nil {
		p.cur.Stmts = append(p.cur.Stmts, s)
		return
	}
	m := p.menus[len(p.menus)-1].m
	m.Body = append(m.Body, s)
}

func isSpace(c byte) bool { return c <= ' ' } // as syslinux: any control char or space

func trimSpace(s string) string {
	i, j := 0, len(s)
	for i < j && isSpace(s[i]) {
		i++
	}
	for j > i && isSpace(s[j-1]) {
		j--
	}
	return s[i:j]
}

// cut splits s (already trimmed) into its first word and the trimmed rest.
func cut(s string) (word, rest string) {
	i := 0
	for i < len(s) && !isSpace(s[i]) {
		i++
	}
	return s[:i], trimSpace(s[i:])
}

// isNumeric reports whether kw takes a number; LOCALBOOT may be negative.
func isNumeric(kw string) bool {
	switch kw {
	case "TIMEOUT", "TOTALTIMEOUT", "PROMPT", "IPAPPEND", "SYSAPPEND", "LOCALBOOT":
		return true
	}
	return false
}

// needArg says what a keyword that cannot be empty needs, or "".
func needArg(kw string) string {
	switch kw {
	case "DEFAULT":
		return "a label or command line"
	case "UI":
		return "a module name"
	case "LABEL":
		return "a name"
	case "KERNEL", "LINUX", "BOOT", "BSS", "PXE", "FDIMAGE", "COMBOOT", "COM32", "CONFIG",
		"INCLUDE", "INITRD", "DISPLAY":
		return "a file name"
	case "ONTIMEOUT", "ONERROR":
		return "a command line"
	}
	return ""
}

// isPlain reports whether kw is a known keyword with a free-form argument.
func isPlain(kw string) bool {
	switch kw {
	case "DEFAULT", "UI", "KERNEL", "LINUX", "BOOT", "BSS", "PXE", "FDIMAGE", "COMBOOT", "COM32",
		"CONFIG", "APPEND", "INITRD", "ONTIMEOUT", "ONERROR", "SAY", "DISPLAY", "INCLUDE",
		"SERIAL", "CONSOLE", "FONT", "KBDMAP", "NOESCAPE", "NOCOMPLETE", "NOHALT",
		"ALLOWOPTIONS", "IMPLICIT", "PATH",
		"F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F9", "F10", "F11", "F12":
		return true
	}
	return false
}

// isMenuSub reports whether sub (upper case) is a MENU sub-command with
// its own meaning here; the others are kept as written.
func isMenuSub(sub string) bool {
	switch sub {
	case "LABEL", "DEFAULT", "HIDE", "TITLE", "BEGIN", "END":
		return true
	}
	return false
}

func parseNum(kw, arg string) (int, error) {
	if arg == "" {
		return 0, fmt.Errorf("%s needs a number", kw)
	}
	if strings.Contains(arg, "_") {
		return 0, fmt.Errorf("%s: %q is not a number", kw, arg)
	}
	n, err := strconv.ParseInt(arg, 0, 32)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%s: %s is out of range", kw, arg)
		}
		return 0, fmt.Errorf("%s: %q is not a number", kw, arg)
	}
	if n < 0 && kw != "LOCALBOOT" {
		return 0, fmt.Errorf("%s: %s is negative", kw, arg)
	}
	return int(n), nil
}

func (p *parser) file(name string, r io.Reader, depth int) error {
	data, err := io.ReadAll(io.LimitReader(r, MaxConfigSize+1))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > MaxConfigSize {
		return fmt.Errorf("%s: larger than %d bytes", name, MaxConfigSize)
	}
	lines := strings.Split(string(data), "\n")
	if n := len(lines); n > 0 && lines[n-1] == "" {
		lines = lines[:n-1] // final newline
	}
	var text *Stmt
	for i, raw := range lines {
		ln := i + 1
		line := trimSpace(raw)
		if text != nil {
			if w, _ := cut(line); lower(w) == "endtext" {
				text.Closed = true
				text = nil
			} else {
				text.Text = append(text.Text, strings.TrimRight(raw, "\r"))
			}
			continue
		}
		perr := func(format string, a ...any) error {
			return &ParseError{name, ln, fmt.Sprintf(format, a...)}
		}
		switch {
		case line == "":
			p.add(&Stmt{Line: ln, Kind: Blank})
			continue
		case line[0] == '#':
			p.add(&Stmt{Line: ln, Kind: Comment, Arg: line[1:]})
			continue
		}
		word, arg := cut(line)
		kw := upper(word)
		if what := needArg(kw); what != "" && arg == "" {
			return perr("%s needs %s", kw, what)
		}
		switch {
		case kw == "LABEL":
			l := &Label{Line: ln, Name: arg}
			m := p.menus[len(p.menus)-1].m
			m.Body = append(m.Body, l)
			p.cur = l
		case kw == "TEXT":
			if upper(arg) == "HELP" {
				arg = "HELP"
			}
			text = &Stmt{Line: ln, Kind: Text, Keyword: "TEXT", Arg: arg}
			p.add(text)
		case kw == "MENU":
			sub, rest := cut(arg)
			s := &Stmt{Line: ln, Kind: Keyword, Keyword: "MENU", Sub: sub, Arg: rest}
			if us := upper(sub); isMenuSub(us) {
				s.Sub = us
			}
			switch s.Sub {
			case "BEGIN":
				m := &Menu{Line: ln, Tag: rest}
				parent := p.menus[len(p.menus)-1].m
				parent.Body = append(parent.Body, m)
				p.menus = append(p.menus, openMenu{m, name})
				p.cur = nil
			case "END":
				if len(p.menus) == 1 {
					return perr("MENU END without MENU BEGIN")
				}
				if rest != "" {
					return perr("MENU END takes no argument")
				}
				p.menus[len(p.menus)-1].m.EndLine = ln
				p.menus = p.menus[:len(p.menus)-1]
				p.cur = nil
			default:
				p.add(s)
			}
		case kw == "INCLUDE" && p.open != nil:
			if err := p.include(name, ln, arg, depth); err != nil {
				return err
			}
		case isNumeric(kw):
			n, err := parseNum(kw, arg)
			if err != nil {
				return perr("%v", err)
			}
			p.add(&Stmt{Line: ln, Kind: Keyword, Keyword: kw, Arg: arg, Num: n})
		case isPlain(kw):
			p.add(&Stmt{Line: ln, Kind: Keyword, Keyword: kw, Arg: arg})
		default:
			p.add(&Stmt{Line: ln, Kind: Unknown, Keyword: word, Arg: arg})
		}
	}
	if text != nil && depth > 0 {
		// The block ends with its file; say so explicitly so that the
		// inlined rendering does not swallow the including file's lines.
		text.Closed = true
	}
	return nil
}

func (p *parser) include(name string, ln int, arg string, depth int) error {
	file, _ := cut(arg)
	if depth+1 > p.maxDepth {
		return &ParseError{name, ln, fmt.Sprintf("INCLUDE %s: nested deeper than %d levels", file, p.maxDepth)}
	}
	clean := path.Clean(file)
	for i, s := range p.stack {
		if s == clean {
			chain := append(append([]string(nil), p.stack[i:]...), clean)
			return &ParseError{name, ln, "INCLUDE cycle: " + strings.Join(chain, " -> ")}
		}
	}
	rc, err := p.open(file)
	if err != nil {
		return &ParseError{name, ln, fmt.Sprintf("INCLUDE %s: %v", file, err)}
	}
	defer rc.Close()
	p.cfg.Includes = append(p.cfg.Includes, file)
	p.stack = append(p.stack, clean)
	err = p.file(file, rc, depth+1)
	p.stack = p.stack[:len(p.stack)-1]
	return err
}
