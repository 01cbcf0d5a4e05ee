package pxelinux

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	c, err := Parse("test.cfg", strings.NewReader(src))
	if err != nil {
		t.Fatalf("Parse: %v\ninput:\n%s", err, src)
	}
	return c
}

// top returns the root-level statements that are not blank lines.
func top(c *Config) []*Stmt {
	var out []*Stmt
	for _, n := range c.Root.Body {
		if s, ok := n.(*Stmt); ok && s.Kind != Blank {
			out = append(out, s)
		}
	}
	return out
}

func TestParseEveryKeyword(t *testing.T) {
	tests := []struct {
		line        string
		kind        StmtKind
		kw, sub     string
		arg         string
		num         int
		inLabelOnly bool
	}{
		{line: "DEFAULT linux", kind: Keyword, kw: "DEFAULT", arg: "linux"},
		{line: "ui menu.c32", kind: Keyword, kw: "UI", arg: "menu.c32"},
		{line: "Kernel vmlinuz ro", kind: Keyword, kw: "KERNEL", arg: "vmlinuz ro"},
		{line: "linux bzImage", kind: Keyword, kw: "LINUX", arg: "bzImage"},
		{line: "com32 hdt.c32", kind: Keyword, kw: "COM32", arg: "hdt.c32"},
		{line: "boot bootsect.bin", kind: Keyword, kw: "BOOT", arg: "bootsect.bin"},
		{line: "bss x.bss", kind: Keyword, kw: "BSS", arg: "x.bss"},
		{line: "pxe gpxe.0", kind: Keyword, kw: "PXE", arg: "gpxe.0"},
		{line: "fdimage fd.img", kind: Keyword, kw: "FDIMAGE", arg: "fd.img"},
		{line: "comboot x.com", kind: Keyword, kw: "COMBOOT", arg: "x.com"},
		{line: "config other.cfg /dir/", kind: Keyword, kw: "CONFIG", arg: "other.cfg /dir/"},
		{line: "APPEND initrd=a.img  ro   quiet  ", kind: Keyword, kw: "APPEND", arg: "initrd=a.img  ro   quiet"},
		{line: "append -", kind: Keyword, kw: "APPEND", arg: "-"},
		{line: "append", kind: Keyword, kw: "APPEND"},
		{line: "initrd a.img,b.img", kind: Keyword, kw: "INITRD", arg: "a.img,b.img"},
		{line: "ipappend 3", kind: Keyword, kw: "IPAPPEND", arg: "3", num: 3},
		{line: "sysappend 0x7", kind: Keyword, kw: "SYSAPPEND", arg: "0x7", num: 7},
		{line: "localboot 0x80", kind: Keyword, kw: "LOCALBOOT", arg: "0x80", num: 0x80},
		{line: "localboot -1", kind: Keyword, kw: "LOCALBOOT", arg: "-1", num: -1},
		{line: "prompt 1", kind: Keyword, kw: "PROMPT", arg: "1", num: 1},
		{line: "TIMEOUT 120", kind: Keyword, kw: "TIMEOUT", arg: "120", num: 120},
		{line: "totaltimeout 9000", kind: Keyword, kw: "TOTALTIMEOUT", arg: "9000", num: 9000},
		{line: "ontimeout local", kind: Keyword, kw: "ONTIMEOUT", arg: "local"},
		{line: "onerror rescue", kind: Keyword, kw: "ONERROR", arg: "rescue"},
		{line: "say Hello,   world  ", kind: Keyword, kw: "SAY", arg: "Hello,   world"},
		{line: "say", kind: Keyword, kw: "SAY"},
		{line: "display boot.msg", kind: Keyword, kw: "DISPLAY", arg: "boot.msg"},
		{line: "f1 help.txt", kind: Keyword, kw: "F1", arg: "help.txt"},
		{line: "F12 f12.txt bg.png", kind: Keyword, kw: "F12", arg: "f12.txt bg.png"},
		{line: "include common.cfg", kind: Keyword, kw: "INCLUDE", arg: "common.cfg"},
		{line: "serial 0 115200", kind: Keyword, kw: "SERIAL", arg: "0 115200"},
		{line: "menu title Boot menu", kind: Keyword, kw: "MENU", sub: "TITLE", arg: "Boot menu"},
		{line: "menu label ^Linux", kind: Keyword, kw: "MENU", sub: "LABEL", arg: "^Linux"},
		{line: "menu default", kind: Keyword, kw: "MENU", sub: "DEFAULT"},
		{line: "Menu Hide", kind: Keyword, kw: "MENU", sub: "HIDE"},
		{line: "menu color border 30;44 #40ffffff", kind: Keyword, kw: "MENU", sub: "color", arg: "border 30;44 #40ffffff"},
		{line: "# a comment ", kind: Comment, arg: " a comment"},
		{line: "   #indented", kind: Comment, arg: "indented"},
		{line: "frobnicate 1 2", kind: Unknown, kw: "frobnicate", arg: "1 2"},
		{line: "F13 x", kind: Unknown, kw: "F13", arg: "x"},
	}
	for _, tc := range tests {
		for _, scope := range []string{"global", "label"} {
			src := tc.line + "\n"
			if scope == "label" {
				src = "label x\n" + src
			}
			c := mustParse(t, src)
			var s *Stmt
			if scope == "global" {
				if got := top(c); len(got) == 1 {
					s = got[0]
				}
			} else if ls := c.Labels(); len(ls) == 1 && len(ls[0].Stmts) == 1 {
				s = ls[0].Stmts[0]
			}
			if s == nil {
				t.Errorf("%q (%s): not parsed into exactly one statement", tc.line, scope)
				continue
			}
			want := Stmt{Line: 1, Kind: tc.kind, Keyword: tc.kw, Sub: tc.sub, Arg: tc.arg, Num: tc.num}
			if scope == "label" {
				want.Line = 2
			}
			if !reflect.DeepEqual(*s, want) {
				t.Errorf("%q (%s):\n got %+v\nwant %+v", tc.line, scope, *s, want)
			}
		}
	}
}

func TestParseScopes(t *testing.T) {
	c := mustParse(t, `# header
DEFAULT b
APPEND global=1
label a
  kernel ka
  TIMEOUT 50
label b
  kernel kb
  append -
`)
	if got := len(top(c)); got != 3 {
		t.Fatalf("top-level statements = %d, want 3 (comment, DEFAULT, APPEND)", got)
	}
	ls := c.Labels()
	if len(ls) != 2 || ls[0].Name != "a" || ls[1].Name != "b" {
		t.Fatalf("labels = %v", ls)
	}
	if k := ls[0].Get("kernel"); k == nil || k.Arg != "ka" {
		t.Errorf("label a kernel = %+v", k)
	}
	if len(ls[0].Stmts) != 2 {
		t.Errorf("label a has %d statements, want 2", len(ls[0].Stmts))
	}
	// TIMEOUT after a LABEL still is global (syslinux semantics); APPEND
	// there is not.
	if s := c.Global("timeout"); s == nil || s.Num != 50 {
		t.Errorf("Global(TIMEOUT) = %+v", s)
	}
	if s := c.Global("APPEND"); s == nil || s.Arg != "global=1" {
		t.Errorf("Global(APPEND) = %+v", s)
	}
	if c.Label("B") != nil || c.Label("b") == nil {
		t.Error("label lookup must be case-sensitive")
	}
}

func TestParseTextHelp(t *testing.T) {
	c := mustParse(t, "label a\n  text help\n  line one\n\n\t# not a comment\n  EndText  \nkernel k\n")
	l := c.Label("a")
	if l == nil || len(l.Stmts) != 2 {
		t.Fatalf("label = %+v", l)
	}
	s := l.Stmts[0]
	want := []string{"  line one", "", "\t# not a comment"}
	if s.Kind != Text || s.Arg != "HELP" || !s.Closed || !reflect.DeepEqual(s.Text, want) {
		t.Errorf("text block = %+v", s)
	}
	if l.Stmts[1].Keyword != "KERNEL" || l.Stmts[1].Line != 7 {
		t.Errorf("after ENDTEXT: %+v", l.Stmts[1])
	}
	// An unterminated block runs to the end of the file.
	c = mustParse(t, "TEXT HELP\nabc\r\n")
	if s := top(c)[0]; s.Closed || !reflect.DeepEqual(s.Text, []string{"abc"}) {
		t.Errorf("unterminated block = %+v", s)
	}
}

func TestParseMenuNesting(t *testing.T) {
	c := mustParse(t, `MENU TITLE root
label a
MENU BEGIN one
  MENU TITLE One
  label b
  MENU BEGIN two
    label c
  MENU END
  MENU SEPARATOR
  label d
MENU END
TIMEOUT 10
label e
`)
	var names []string
	for _, l := range c.Labels() {
		names = append(names, l.Name)
	}
	if got := strings.Join(names, ","); got != "a,b,c,d,e" {
		t.Errorf("labels = %s", got)
	}
	one, ok := c.Root.Body[2].(*Menu)
	if !ok || one.Tag != "one" || one.Line != 3 || one.EndLine != 11 {
		t.Fatalf("menu one = %+v", c.Root.Body[2])
	}
	if s, ok := one.Body[0].(*Stmt); !ok || s.Sub != "TITLE" || s.Arg != "One" {
		t.Errorf("menu one title = %+v", one.Body[0])
	}
	two, ok := one.Body[2].(*Menu)
	if !ok || two.Tag != "two" || len(two.Body) != 1 {
		t.Fatalf("menu two = %+v", one.Body[2])
	}
	// MENU END closes label c; MENU SEPARATOR belongs to menu one.
	if s, ok := one.Body[3].(*Stmt); !ok || s.Sub != "SEPARATOR" {
		t.Errorf("after MENU END = %+v", one.Body[3])
	}
	// TIMEOUT after the outer MENU END is at the top level again.
	if s, ok := c.Root.Body[3].(*Stmt); !ok || s.Keyword != "TIMEOUT" {
		t.Errorf("after outer MENU END = %+v", c.Root.Body[3])
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"prompt 1\nTIMEOUT soon\n", "test.cfg:2: TIMEOUT: \"soon\" is not a number"},
		{"timeout\n", "test.cfg:1: TIMEOUT needs a number"},
		{"timeout -5\n", "test.cfg:1: TIMEOUT: -5 is negative"},
		{"timeout 99999999999\n", "test.cfg:1: TIMEOUT: 99999999999 is out of range"},
		{"timeout 1_0\n", "test.cfg:1: TIMEOUT: \"1_0\" is not a number"},
		{"label a\n  ipappend two\n", "test.cfg:2: IPAPPEND: \"two\" is not a number"},
		{"label a\nlocalboot\n", "test.cfg:2: LOCALBOOT needs a number"},
		{"#c\n\nlabel\n", "test.cfg:3: LABEL needs a name"},
		{"label a\n kernel   \n", "test.cfg:2: KERNEL needs a file name"},
		{"default\n", "test.cfg:1: DEFAULT needs a label or command line"},
		{"include\n", "test.cfg:1: INCLUDE needs a file name"},
		{"label a\nmenu end\n", "test.cfg:2: MENU END without MENU BEGIN"},
		{"menu begin x\nlabel a\nmenu end now\n", "test.cfg:3: MENU END takes no argument"},
		{"menu begin x\nmenu begin y\nmenu end\n", "test.cfg:1: MENU BEGIN without matching MENU END"},
	}
	for _, tc := range tests {
		_, err := Parse("test.cfg", strings.NewReader(tc.src))
		var pe *ParseError
		if err == nil || err.Error() != tc.want || !errors.As(err, &pe) {
			t.Errorf("Parse(%q) error = %v, want %s", tc.src, err, tc.want)
		}
	}
}

func TestParseTooLarge(t *testing.T) {
	_, err := Parse("big", strings.NewReader(strings.Repeat("#\n", MaxConfigSize)))
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("err = %v", err)
	}
}

func TestCaseInsensitiveKeywords(t *testing.T) {
	a := mustParse(t, "DEFAULT x\nLABEL x\nKERNEL k\nMENU LABEL X\nTEXT HELP\nh\nENDTEXT\n")
	b := mustParse(t, "default x\nlabel x\nkernel k\nmenu label X\ntext help\nh\nendtext\n")
	c := mustParse(t, "dEfAuLt x\nLaBeL x\nkErNeL k\nmEnU lAbEl X\nTeXt help\nh\nEnDtExT\n")
	if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(a, c) {
		t.Errorf("case changes the parse:\n%s\n%s\n%s", a.Render(), b.Render(), c.Render())
	}
	// Only ASCII case folds: the Kelvin sign is not a K.
	d := mustParse(t, "\u212aERNEL k\n")
	if s := top(d)[0]; s.Kind != Unknown {
		t.Errorf("Kelvin-sign keyword parsed as %+v", s)
	}
}

// roundTrip checks Parse(Render(c)) == c and returns the rendering.
func roundTrip(t *testing.T, name string, c *Config) []byte {
	t.Helper()
	out := c.Render()
	c2, err := Parse(c.Name, strings.NewReader(string(out)))
	if err != nil {
		t.Fatalf("%s: re-parse of rendering failed: %v\n%s", name, err, out)
	}
	if !reflect.DeepEqual(c, c2) {
		t.Fatalf("%s: round trip changed the config\nrendered:\n%s", name, out)
	}
	return out
}

func TestGoldenRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.cfg")
	if len(files) < 5 {
		t.Fatalf("only %d testdata configs", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(filepath.Base(f), strings.NewReader(string(src)))
			if err != nil {
				t.Fatal(err)
			}
			out := roundTrip(t, f, c)
			golden := f + ".golden"
			if *update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if string(out) != string(want) {
				t.Errorf("rendering differs from %s:\n%s", golden, out)
			}
			// Rendering keeps one line per input line.
			if got, want := strings.Count(string(out), "\n"), strings.Count(strings.TrimSuffix(string(src), "\n")+"\n", "\n"); got != want {
				t.Errorf("rendered %d lines, input has %d", got, want)
			}
			var sb strings.Builder
			if n, err := c.WriteTo(&sb); err != nil || n != int64(len(out)) || sb.String() != string(out) {
				t.Errorf("WriteTo = %d, %v", n, err)
			}
		})
	}
}

func TestRenderCanonical(t *testing.T) {
	c := mustParse(t, "default a\r\n\tlabel a\r\nkernel   k  x\r\n\r\nmenu begin\r\nlabel b\r\nmenu end\r\n")
	want := "DEFAULT a\nLABEL a\n  KERNEL k  x\n\nMENU BEGIN\n  LABEL b\nMENU END\n"
	if got := string(roundTrip(t, "crlf", c)); got != want {
		t.Errorf("got:\n%q\nwant:\n%q", got, want)
	}
}
