package xen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// libxlResult re-implements libxl's parse_bootloader_result: items are
// NUL-terminated (the last may be unterminated); an item of 2*PATH_MAX-1
// bytes or more is skipped; an item is "<key><whitespace...><value>" with key
// kernel, ramdisk or args (the value starts after all the whitespace); empty
// items are ignored and anything else is logged as unexpected.
func libxlResult(data []byte) (res Result, unexpected []string) {
	const bufSize = 2 * 4096
	isSpace := func(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }
	command := func(item, key string) (string, bool) {
		if !strings.HasPrefix(item, key) {
			return "", false
		}
		rhs := item[len(key):]
		if rhs == "" || !isSpace(rhs[0]) {
			return "", false
		}
		for rhs != "" && isSpace(rhs[0]) {
			rhs = rhs[1:]
		}
		return rhs, true
	}
	for len(data) > 0 {
		item := data
		if i := bytes.IndexByte(data, 0); i >= 0 {
			item, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(item) >= bufSize-1 {
			unexpected = append(unexpected, "overly long item")
			continue
		}
		s := string(item)
		if v, ok := command(s, "kernel"); ok {
			res.Kernel = v
		} else if v, ok := command(s, "ramdisk"); ok {
			res.Ramdisk = v
		} else if v, ok := command(s, "args"); ok {
			res.Args = v
		} else if s != "" {
			unexpected = append(unexpected, s)
		}
	}
	return res, unexpected
}

// testImage makes deterministic binary content with NULs, newlines and all
// byte values.
func testImage(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// saveFile writes data into a new file made by CreateFile, as the
// bootloader fills the kernel and ramdisk, and returns its path.
func saveFile(t *testing.T, inv *Invocation, prefix string, data []byte) string {
	t.Helper()
	f, err := inv.CreateFile(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// TestLibxlHarness runs the bootloader's output side as libxl drives it.
func TestLibxlHarness(t *testing.T) {
	base := t.TempDir()
	outDir := filepath.Join(base, "bootloader.7.d")
	if err := os.Mkdir(outDir, 0o700); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(base, "bootloader.7.out")
	// libxl pre-creates the output file (O_CREAT|O_TRUNC, 0600); put stale
	// bytes in it to check the bootloader truncates.
	if err := os.WriteFile(out, bytes.Repeat([]byte("stale\x00"), 100), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--args=console=hvc0 quote=\"x\" back=\\y", "--runas=131079", "--quiet",
		"--output=" + out, "--output-format=simple0", "--output-directory=" + outDir,
		"mac=00:16:3e:72:79:e3,bridge=xenbr0", "/dev/xvdb"}
	inv, err := ParseArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	kernel, initrd := testImage(3<<20+17, 1), testImage(1<<20+3, 2)
	kpath := saveFile(t, inv, "kernel.", kernel)
	rpath := saveFile(t, inv, "ramdisk.", initrd)
	chosen := "initrd=ovm/initrd.img ks=http://192.0.2.1/ks.cfg?x=1&y=2 ip=dhcp"
	if err := inv.Deliver(Result{Kernel: kpath, Ramdisk: rpath, Args: chosen}); err != nil {
		t.Fatal(err)
	}

	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, unexpected := libxlResult(data)
	if len(unexpected) > 0 {
		t.Errorf("libxl would warn about %q", unexpected)
	}
	want := Result{Kernel: kpath, Ramdisk: rpath, Args: chosen + ` console=hvc0 quote="x" back=\y`}
	if got != want {
		t.Errorf("libxl reads %+v, want %+v (raw %q)", got, want, data)
	}
	for _, f := range []struct {
		path, prefix string
		data         []byte
	}{{got.Kernel, "kernel.", kernel}, {got.Ramdisk, "ramdisk.", initrd}} {
		if filepath.Dir(f.path) != outDir || !strings.HasPrefix(filepath.Base(f.path), f.prefix) {
			t.Errorf("%s is not %s* in %s", f.path, f.prefix, outDir)
		}
		st, err := os.Lstat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want regular 0600", f.path, st.Mode())
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, f.data) {
			t.Errorf("%s: %d bytes differ from the %d written", f.path, len(b), len(f.data))
		}
	}
	// Fail after a successful Deliver must not take the files away.
	_ = inv.Fail(errors.New("late"))
	if _, err := os.Stat(kpath); err != nil {
		t.Errorf("kernel removed after delivery: %v", err)
	}
}

func TestCreateFileUnique(t *testing.T) {
	inv := &Invocation{OutputDir: t.TempDir()}
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		p := saveFile(t, inv, "kernel.", []byte("k"))
		if seen[p] {
			t.Fatalf("duplicate name %s", p)
		}
		seen[p] = true
	}
	if err := inv.Fail(errors.New("x")); err == nil || err.Error() != "x" {
		t.Fatalf("Fail = %v", err)
	}
	if ents, _ := os.ReadDir(inv.OutputDir); len(ents) != 0 {
		t.Errorf("Fail left %d files", len(ents))
	}
}

func TestCreateFileErrors(t *testing.T) {
	dir := t.TempDir()
	inv := &Invocation{OutputDir: dir}
	if _, err := inv.CreateFile("../kernel."); err == nil {
		t.Error("CreateFile accepted a prefix with a slash")
	}
	inv.OutputDir = filepath.Join(dir, "missing")
	if _, err := inv.CreateFile("kernel."); err == nil {
		t.Error("CreateFile created a missing --output-directory")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("failed CreateFile left %d files", len(ents))
	}
}

// TestDiscard: a file the result does not name goes at once; the others
// stay until Fail.
func TestDiscard(t *testing.T) {
	dir := t.TempDir()
	inv := &Invocation{OutputDir: dir}
	k := saveFile(t, inv, "kernel.", []byte("k"))
	r := saveFile(t, inv, "ramdisk.", nil)
	inv.Discard(r)
	inv.Discard("/etc/passwd") // not one of its files: nothing happens
	if ents, _ := os.ReadDir(dir); len(ents) != 1 || filepath.Join(dir, ents[0].Name()) != k {
		t.Fatalf("after Discard: %v", ents)
	}
	inv.Fail(errors.New("x"))
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("Fail left %v", ents)
	}
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Fatal(err)
	}
}

// sxpParse is a reading of xend's sxp.Parser: whitespace separates, '#'
// starts a comment to end of line, '(' ')' make lists, a double or single quote starts a
// string with backslash escapes (named ones, \xHH, up to three octal digits;
// an unknown escape leaves a backslash and drops the character), and any
// other printable character starts an atom that ends at whitespace, '#' or
// one of {}()<>[]!; . It returns the top-level values.
func sxpParse(in string) ([]any, error) {
	p := &sxpParser{s: in}
	var vals []any
	for {
		v, ok, err := p.value()
		if err != nil {
			return nil, err
		}
		if !ok {
			return vals, nil
		}
		vals = append(vals, v)
	}
}

type sxpParser struct {
	s string
	i int
}

func (p *sxpParser) value() (any, bool, error) {
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case strings.IndexByte(" \t\n\v\f\r", c) >= 0:
			p.i++
		case c == '#':
			for p.i < len(p.s) && p.s[p.i] != '\n' {
				p.i++
			}
		case c == '(':
			p.i++
			var list []any
			for {
				p.skipSpace()
				if p.i >= len(p.s) {
					return nil, false, errors.New("unexpected EOF in list")
				}
				if p.s[p.i] == ')' {
					p.i++
					return list, true, nil
				}
				v, ok, err := p.value()
				if err != nil {
					return nil, false, err
				}
				if !ok {
					return nil, false, errors.New("unexpected EOF in list")
				}
				list = append(list, v)
			}
		case c == ')':
			return nil, false, errors.New("syntax error: )")
		case c == '"' || c == '\'':
			s, err := p.str(c)
			return s, err == nil, err
		case c >= 0x20 && c < 0x7f:
			start := p.i
			for p.i < len(p.s) && strings.IndexByte(" \t\n\v\f\r#{}()<>[]!;", p.s[p.i]) < 0 {
				p.i++
			}
			return p.s[start:p.i], true, nil
		default:
			return nil, false, fmt.Errorf("invalid character: code %d", c)
		}
	}
	return nil, false, nil
}

func (p *sxpParser) skipSpace() {
	for p.i < len(p.s) && strings.IndexByte(" \t\n\v\f\r", p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *sxpParser) str(delim byte) (string, error) {
	named := map[byte]byte{'a': '\a', 'b': '\b', 't': '\t', 'n': '\n', 'v': '\v', 'f': '\f', 'r': '\r',
		'\\': '\\', '\'': '\'', '"': '"'}
	var b strings.Builder
	p.i++
	for {
		if p.i >= len(p.s) {
			return "", errors.New("unexpected EOF in string")
		}
		c := p.s[p.i]
		p.i++
		switch {
		case c == delim:
			return b.String(), nil
		case c != '\\':
			b.WriteByte(c)
		default:
			if p.i >= len(p.s) {
				return "", errors.New("unexpected EOF in escape")
			}
			e := p.s[p.i]
			p.i++
			switch {
			case named[e] != 0:
				b.WriteByte(named[e])
			case e == 'x':
				if p.i+2 > len(p.s) {
					return "", errors.New("unexpected EOF in hex escape")
				}
				var v byte
				if _, err := fmt.Sscanf(p.s[p.i:p.i+2], "%02x", &v); err != nil {
					return "", err
				}
				p.i += 2
				b.WriteByte(v)
			case e >= '0' && e <= '7':
				v := int(e - '0')
				for n := 1; n < 3 && p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '7'; n++ {
					v = v*8 + int(p.s[p.i]-'0')
					p.i++
				}
				if v > 0xff {
					return "", errors.New("octal escape out of range")
				}
				b.WriteByte(byte(v))
			default:
				b.WriteByte('\\')
			}
		}
	}
}

// sxpResult extracts what xend takes from the bootloader's answer (the
// children of the linux element, by name).
func sxpResult(t *testing.T, data string) Result {
	t.Helper()
	vals, err := sxpParse(data)
	if err != nil {
		t.Fatalf("xend cannot parse %q: %v", data, err)
	}
	if len(vals) < 1 || vals[0] != "linux" {
		t.Fatalf("parsed %q as %#v, want linux first", data, vals)
	}
	var res Result
	for _, v := range vals[1:] {
		l, ok := v.([]any)
		if !ok || len(l) != 2 {
			t.Fatalf("unexpected element %#v in %q", v, data)
		}
		val, _ := l[1].(string)
		switch l[0] {
		case "kernel":
			res.Kernel = val
		case "ramdisk":
			res.Ramdisk = val
		case "args":
			res.Args = val
		default:
			t.Fatalf("unexpected element %#v in %q", v, data)
		}
	}
	return res
}

// readFIFO plays xend: open the FIFO for reading and read until EOF.
func readFIFO(path string) <-chan []byte {
	ch := make(chan []byte, 1)
	go func() {
		f, err := os.Open(path)
		if err != nil {
			ch <- []byte("open: " + err.Error())
			return
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		ch <- b
	}()
	return ch
}

func waitFIFO(t *testing.T, ch <-chan []byte) []byte {
	t.Helper()
	select {
	case b := <-ch:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("xend would hang: no EOF on the FIFO")
		return nil
	}
}

func xendSetup(t *testing.T, bootargs string, extra ...string) (*Invocation, string, string) {
	t.Helper()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "xenbl.4242")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	outDir := filepath.Join(dir, "boot")
	if err := os.Mkdir(outDir, 0o700); err != nil {
		t.Fatal(err)
	}
	args := append(extra, "-q", "--output="+fifo)
	args = append(args, strings.Fields(bootargs)...)
	args = append(args, "/share/vm/pxeboot/system.img")
	inv, err := ParseArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Toolstack != ToolstackXM || inv.Format != FormatSXP {
		t.Fatalf("toolstack %q format %q, want xm sxp", inv.Toolstack, inv.Format)
	}
	inv.OutputDir = outDir // DefaultOutputDir in real life
	return inv, fifo, outDir
}

// TestXendHarness runs the bootloader's output side as xend drives it.
func TestXendHarness(t *testing.T) {
	inv, fifo, outDir := xendSetup(t, "mac=00:16:3e:72:79:e3, bridge=xenbr0",
		`--args=quote="a b" back=C:\dir\ tab=	end`)
	kernel := testImage(200000, 3)
	kpath := saveFile(t, inv, "kernel.", kernel)
	rpath := saveFile(t, inv, "ramdisk.", nil)
	ch := readFIFO(fifo)
	chosen := `initrd=x.img ks="http://h/k s" \\ (paren) #hash 'single' ;!` + "\x01\x7f" + "7"
	if err := inv.Deliver(Result{Kernel: kpath, Ramdisk: rpath, Args: chosen}); err != nil {
		t.Fatal(err)
	}
	data := waitFIFO(t, ch)
	got := sxpResult(t, string(data))
	want := Result{Kernel: kpath, Ramdisk: rpath, Args: chosen + ` quote="a b" back=C:\dir\ tab=	end`}
	if got != want {
		t.Errorf("xend reads %+v\nwant %+v\nraw %s", got, want, data)
	}
	if !strings.HasPrefix(string(data), "linux (kernel "+outDir+"/kernel.") {
		t.Errorf("output %q does not start like pygrub's", data)
	}
	if b, _ := os.ReadFile(kpath); !bytes.Equal(b, kernel) {
		t.Error("kernel content differs")
	}
}

// TestXendFail checks that a failure still gives xend its EOF and removes
// the files saved so far.
func TestXendFail(t *testing.T) {
	inv, fifo, outDir := xendSetup(t, "mac=00:16:3e:72:79:e3,bridge=xenbr0")
	saveFile(t, inv, "kernel.", []byte("kernel"))
	ch := readFIFO(fifo)
	cause := errors.New("no DHCP offer for 00:16:3e:72:79:e3 on xenbr0 within 60s")
	start := time.Now()
	if err := inv.Fail(cause); !errors.Is(err, cause) {
		t.Errorf("Fail returned %v, want %v", err, cause)
	}
	if data := waitFIFO(t, ch); len(data) != 0 {
		t.Errorf("xend read %q, want nothing", data)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("EOF took %v", d)
	}
	if ents, _ := os.ReadDir(outDir); len(ents) != 0 {
		t.Errorf("Fail left %d files in the output directory", len(ents))
	}
}

// TestDeliverEncodeErrorClosesOutput: an unencodable result is a failure
// that still closes the FIFO and removes the files.
func TestDeliverEncodeErrorClosesOutput(t *testing.T) {
	inv, fifo, outDir := xendSetup(t, "mac=00:16:3e:72:79:e3")
	kpath := saveFile(t, inv, "kernel.", []byte("k"))
	ch := readFIFO(fifo)
	if err := inv.Deliver(Result{Kernel: kpath, Args: "a\x00b"}); err == nil {
		t.Error("Deliver accepted a NUL in args")
	}
	if data := waitFIFO(t, ch); len(data) != 0 {
		t.Errorf("xend read %q", data)
	}
	if ents, _ := os.ReadDir(outDir); len(ents) != 0 {
		t.Errorf("%d files left", len(ents))
	}
}

func TestDeliverMissingOutput(t *testing.T) {
	dir := t.TempDir()
	inv := &Invocation{Output: filepath.Join(dir, "nonexistent"), Format: FormatSimple0, OutputDir: dir}
	kpath := saveFile(t, inv, "kernel.", []byte("k"))
	if err := inv.Deliver(Result{Kernel: kpath}); err == nil {
		t.Error("Deliver created an output file the toolstack did not make")
	}
	if _, err := os.Stat(kpath); !os.IsNotExist(err) {
		t.Errorf("kernel not removed: %v", err)
	}
	if _, err := os.Stat(inv.Output); !os.IsNotExist(err) {
		t.Errorf("output created: %v", err)
	}
}

func TestEncode(t *testing.T) {
	res := Result{Kernel: "/var/lib/xen/bootloader.7.d/kernel.123", Ramdisk: "/var/lib/xen/bootloader.7.d/ramdisk.456",
		Args: `initrd=x ks="a b" c\d`}
	tests := []struct {
		name string
		f    Format
		res  Result
		want string
	}{
		{"simple0", FormatSimple0, res,
			"kernel /var/lib/xen/bootloader.7.d/kernel.123\x00ramdisk /var/lib/xen/bootloader.7.d/ramdisk.456\x00" +
				"args initrd=x ks=\"a b\" c\\d\x00\x00"},
		{"simple", FormatSimple, res,
			"kernel /var/lib/xen/bootloader.7.d/kernel.123\nramdisk /var/lib/xen/bootloader.7.d/ramdisk.456\n" +
				"args initrd=x ks=\"a b\" c\\d\n\n"},
		{"sxp", FormatSXP, res,
			`linux (kernel /var/lib/xen/bootloader.7.d/kernel.123)(ramdisk /var/lib/xen/bootloader.7.d/ramdisk.456)` +
				`(args "initrd=x ks=\"a b\" c\\d")`},
		{"kernel only simple0", FormatSimple0, Result{Kernel: "/k"}, "kernel /k\x00\x00"},
		{"kernel only sxp", FormatSXP, Result{Kernel: "/k"}, "linux (kernel /k)"},
		{"sxp path needing quotes", FormatSXP, Result{Kernel: "/run/my boot/(k)"}, `linux (kernel "/run/my boot/(k)")`},
		{"sxp control characters", FormatSXP, Result{Kernel: "/k", Args: "a\nb\tc\x1b[0m"},
			`linux (kernel /k)(args "a\nb\tc\033[0m")`},
		{"simple0 allows newline", FormatSimple0, Result{Kernel: "/k", Args: "a\nb"}, "kernel /k\x00args a\nb\x00\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := Encode(&b, tt.f, tt.res); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got  %q\nwant %q", b.String(), tt.want)
			}
			// Each format reads back as the toolstack reads it.
			var got Result
			switch tt.f {
			case FormatSimple0:
				var unexpected []string
				got, unexpected = libxlResult(b.Bytes())
				if len(unexpected) > 0 {
					t.Errorf("unexpected items %q", unexpected)
				}
			case FormatSimple:
				for _, line := range strings.Split(b.String(), "\n") {
					k, v, _ := strings.Cut(line, " ")
					switch k {
					case "kernel":
						got.Kernel = v
					case "ramdisk":
						got.Ramdisk = v
					case "args":
						got.Args = v
					}
				}
			case FormatSXP:
				got = sxpResult(t, b.String())
			}
			if got != tt.res {
				t.Errorf("reads back as %+v, want %+v", got, tt.res)
			}
		})
	}
}

func TestEncodeRejects(t *testing.T) {
	long := strings.Repeat("a", maxSimple0Item-len("args ")+1)
	tests := []struct {
		name string
		f    Format
		res  Result
		want string
	}{
		{"no kernel", FormatSimple0, Result{Args: "x"}, "no kernel"},
		{"NUL in args simple0", FormatSimple0, Result{Kernel: "/k", Args: "a\x00kernel /etc/shadow"}, "NUL"},
		{"NUL in args sxp", FormatSXP, Result{Kernel: "/k", Args: "a\x00b"}, "NUL"},
		{"NUL in kernel", FormatSimple, Result{Kernel: "/k\x00"}, "NUL"},
		{"newline in args simple", FormatSimple, Result{Kernel: "/k", Args: "a\nkernel /etc/shadow"}, "line break"},
		{"CR in args simple", FormatSimple, Result{Kernel: "/k", Args: "a\rb"}, "line break"},
		{"newline in ramdisk simple", FormatSimple, Result{Kernel: "/k", Ramdisk: "/r\nargs x"}, "line break"},
		{"leading space in path simple0", FormatSimple0, Result{Kernel: " /k"}, "white space"},
		{"too long for libxl", FormatSimple0, Result{Kernel: "/k", Args: long}, "longer than libxl"},
		{"unknown format", Format("json"), Result{Kernel: "/k"}, "unknown format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			err := Encode(&b, tt.f, tt.res)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Encode = %v, want error containing %q", err, tt.want)
			}
			if b.Len() != 0 {
				t.Errorf("wrote %q before failing", b.String())
			}
		})
	}
	// The longest item libxl accepts is accepted.
	ok := strings.Repeat("a", maxSimple0Item-len("args "))
	var b bytes.Buffer
	if err := Encode(&b, FormatSimple0, Result{Kernel: "/k", Args: ok}); err != nil {
		t.Fatal(err)
	}
	if got, _ := libxlResult(b.Bytes()); got.Args != ok {
		t.Error("libxl would drop the longest allowed args item")
	}
}

// TestSimpleHarness: format simple through a regular output file.
func TestSimpleHarness(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.WriteFile(out, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := ParseArgs([]string{"--output=" + out, "--output-format=simple", "--output-directory=" + dir,
		"--args=console=hvc0", "mac=00:16:3e:72:79:e3", "/d"})
	if err != nil {
		t.Fatal(err)
	}
	k := saveFile(t, inv, "kernel.", []byte("K"))
	if err := inv.Deliver(Result{Kernel: k, Args: "ks=x"}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(out)
	if want := "kernel " + k + "\nargs ks=x console=hvc0\n\n"; string(data) != want {
		t.Errorf("output %q, want %q", data, want)
	}
	// Injection through the guest config's --args is refused, and the
	// output is left empty with the files removed.
	inv2, err := ParseArgs([]string{"--output=" + out, "--output-format=simple", "--output-directory=" + dir,
		"--args=x\nkernel /etc/shadow", "mac=00:16:3e:72:79:e3", "/d"})
	if err != nil {
		t.Fatal(err)
	}
	k2 := saveFile(t, inv2, "kernel.", []byte("K"))
	if err := inv2.Deliver(Result{Kernel: k2}); err == nil {
		t.Fatal("Deliver accepted a newline in format simple")
	}
	if data, _ := os.ReadFile(out); len(data) != 0 {
		t.Errorf("output after failure: %q", data)
	}
	if _, err := os.Stat(k2); !os.IsNotExist(err) {
		t.Errorf("kernel not removed after failure: %v", err)
	}
}

func TestOneLine(t *testing.T) {
	if got := OneLine(errors.New("tftp: \"x\"\nfailed\t here ")); got != `tftp: "x" failed here` {
		t.Errorf("OneLine = %q", got)
	}
	if OneLine(nil) != "" {
		t.Error("OneLine(nil) not empty")
	}
}

// TestFailWhileSaving: a deadline hit during a transfer (Fail from another
// goroutine) leaves no file behind, no later CreateFile and no Deliver.
func TestFailWhileSaving(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.WriteFile(out, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	inv := &Invocation{OutputDir: dir, Output: out, Format: FormatSimple0}
	saveFile(t, inv, "ramdisk.", []byte("early"))
	f, err := inv.CreateFile("kernel.")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := inv.Fail(errors.New("deadline")); err.Error() != "deadline" {
		t.Errorf("Fail = %v", err)
	}
	if _, err := f.Write([]byte("late kernel")); err != nil {
		t.Fatal(err) // the writer may finish: the file is gone anyway
	}
	if _, err := inv.CreateFile("kernel."); err == nil {
		t.Error("CreateFile succeeded after Fail")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 || ents[0].Name() != "out" {
		t.Errorf("files left: %v", ents)
	}
	if err := inv.Deliver(Result{Kernel: "/k"}); err == nil {
		t.Error("Deliver after Fail succeeded")
	}
	if err := inv.Fail(errors.New("again")); err.Error() != "again" {
		t.Errorf("second Fail = %v", err)
	}
}
