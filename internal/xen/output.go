package xen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Result is what the bootloader hands to the toolstack.
type Result struct {
	// Kernel and Ramdisk are paths of files already written (made by
	// CreateFile).
	// Kernel is required; Ramdisk may be empty.
	Kernel, Ramdisk string
	// Args is the kernel command line; may be empty.
	Args string
}

// JoinArgs appends the guest config's extra arguments to the chosen command
// line with a space, as pygrub does with --args=. An empty chosen line gives
// extra alone (pygrub would leave a leading space, which libxl strips).
func JoinArgs(chosen, extra string) string {
	switch {
	case extra == "":
		return chosen
	case chosen == "":
		return extra
	}
	return chosen + " " + extra
}

// CreateFile creates a new empty file in OutputDir with mode 0600 and a
// unique name starting with prefix (such as "kernel." or "ramdisk."), and
// returns it open for writing. Fail removes it, unless Deliver handed it to
// the toolstack; Discard removes it earlier. When OutputDir is
// DefaultOutputDir it is created (mode 0700) if missing, as xend does; a
// directory given with --output-directory must exist. After Fail it
// fails.
func (inv *Invocation) CreateFile(prefix string) (*os.File, error) {
	if strings.ContainsRune(prefix, '/') {
		return nil, fmt.Errorf("create file: prefix %q contains a slash", prefix)
	}
	dir := inv.OutputDir
	if dir == "" {
		dir = DefaultOutputDir
	}
	if dir == DefaultOutputDir {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create file: %v", err)
		}
	}
	f, err := os.CreateTemp(dir, prefix+"*")
	if err != nil {
		return nil, fmt.Errorf("create file: %v", err)
	}
	inv.mu.Lock()
	failed := inv.failed
	if !failed {
		inv.saved = append(inv.saved, f.Name())
	}
	inv.mu.Unlock()
	err = f.Chmod(0o600)
	if err == nil && failed {
		err = errors.New("the run has already failed")
	}
	if err != nil {
		inv.Discard(f.Name())
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("create %s: %v", f.Name(), err)
	}
	return f, nil
}

// Discard removes a file CreateFile made that the result will not name (an
// unused ramdisk, say).
func (inv *Invocation) Discard(path string) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for i, p := range inv.saved {
		if p == path {
			inv.saved = append(inv.saved[:i], inv.saved[i+1:]...)
			os.Remove(path)
			return
		}
	}
}

// isFailed reports whether Fail has run.
func (inv *Invocation) isFailed() bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.failed
}

// removeSaved removes the files CreateFile made, unless Deliver handed them
// to the toolstack.
func (inv *Invocation) removeSaved() {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.delivered {
		return
	}
	for _, p := range inv.saved {
		os.Remove(p)
	}
	inv.saved = nil
}

// abandon marks the run failed and removes the saved files, without
// touching Output.
func (inv *Invocation) abandon() {
	inv.mu.Lock()
	inv.failed = true
	inv.mu.Unlock()
	inv.removeSaved()
}

// openOutput opens Output for writing. It does not create it: libxl
// pre-creates the file and xend makes a FIFO (opening a FIFO blocks until
// xend opens its end, which it does right after starting the bootloader).
// A regular file is truncated.
func (inv *Invocation) openOutput() (io.WriteCloser, error) {
	if inv.Output == "" || inv.Output == "-" {
		return nopCloser{os.Stdout}, nil
	}
	f, err := os.OpenFile(inv.Output, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return nil, fmt.Errorf("open output: %v", err)
	}
	return f, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// Deliver writes res to Output in the requested Format and closes it. The
// guest config's Args are appended to res.Args first (JoinArgs), so a
// caller passing on a result that already has them must clear inv.Args.
// On any error the saved files are removed, Output is still opened and
// closed where possible, and the error is returned.
func (inv *Invocation) Deliver(res Result) error {
	if inv.isFailed() {
		// Output is closed; xend has seen EOF and nobody reads a FIFO again.
		return errors.New("deliver: the run has already failed")
	}
	res.Args = JoinArgs(res.Args, inv.Args)
	var buf bytes.Buffer
	if err := Encode(&buf, inv.Format, res); err != nil {
		return inv.Fail(err)
	}
	w, err := inv.openOutput()
	if err != nil {
		inv.abandon()
		return err
	}
	_, err = w.Write(buf.Bytes())
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		inv.abandon()
		return fmt.Errorf("write output: %v", err)
	}
	inv.mu.Lock()
	inv.delivered = true
	inv.mu.Unlock()
	return nil
}

// Fail ends a failed run: it removes the files saved so far, opens and
// closes Output without writing (xend waits on its FIFO until EOF), and
// returns err for the caller to print on stderr (see OneLine) before
// exiting non-zero. It may be called from another goroutine (on a
// deadline, say): a later CreateFile or Deliver fails. After a successful Deliver, or a first
// Fail, it only returns err.
func (inv *Invocation) Fail(err error) error {
	if err == nil {
		err = errors.New("bootloader failed")
	}
	inv.mu.Lock()
	done := inv.delivered || inv.failed
	inv.failed = true
	inv.mu.Unlock()
	if done {
		return err
	}
	inv.removeSaved()
	w, oerr := inv.openOutput()
	if oerr == nil {
		oerr = w.Close()
	}
	if oerr != nil {
		return fmt.Errorf("%w (also: %v)", err, oerr)
	}
	return err
}

// OneLine formats err as a single line for stderr.
func OneLine(err error) string {
	if err == nil {
		return ""
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// Encode writes res in format f: for FormatSimple0 and FormatSimple the
// items "kernel <path>", "ramdisk <path>" (if any) and "args <cmdline>" (if
// any), each ended by NUL or newline, then an empty item, as pygrub writes
// them; for FormatSXP the S-expression
// linux (kernel <path>)(ramdisk <path>)(args "<cmdline>") quoted so that
// xend's sxp parser reads the values back exactly. A value that the format
// cannot carry is an error: NUL anywhere (kernel command lines and paths are
// C strings), a newline in FormatSimple, a path starting with whitespace in
// the simple formats (libxl skips whitespace after the key), an item longer
// than libxl's 8190-byte limit in FormatSimple0.
func Encode(w io.Writer, f Format, res Result) error {
	if res.Kernel == "" {
		return errors.New("encode: no kernel")
	}
	fields := []struct{ key, val string }{
		{"kernel", res.Kernel}, {"ramdisk", res.Ramdisk}, {"args", res.Args},
	}
	for _, fl := range fields {
		if strings.IndexByte(fl.val, 0) >= 0 {
			return fmt.Errorf("encode: %s contains a NUL byte", fl.key)
		}
	}
	var b strings.Builder
	switch f {
	case FormatSimple0, FormatSimple:
		sep := "\x00"
		if f == FormatSimple {
			sep = "\n"
		}
		for _, fl := range fields {
			if fl.val == "" {
				continue
			}
			if f == FormatSimple && strings.ContainsAny(fl.val, "\r\n") {
				return fmt.Errorf("encode: %s contains a line break (not allowed in format simple)", fl.key)
			}
			if fl.key != "args" && isCSpace(fl.val[0]) {
				return fmt.Errorf("encode: %s path %q starts with white space", fl.key, fl.val)
			}
			item := fl.key + " " + fl.val
			if f == FormatSimple0 && len(item) > maxSimple0Item {
				return fmt.Errorf("encode: %s is %d bytes, longer than libxl accepts", fl.key, len(fl.val))
			}
			b.WriteString(item)
			b.WriteString(sep)
		}
		b.WriteString(sep)
	case FormatSXP:
		b.WriteString("linux (kernel ")
		b.WriteString(sxpValue(res.Kernel))
		b.WriteString(")")
		if res.Ramdisk != "" {
			b.WriteString("(ramdisk ")
			b.WriteString(sxpValue(res.Ramdisk))
			b.WriteString(")")
		}
		if res.Args != "" {
			b.WriteString("(args ")
			b.WriteString(sxpQuote(res.Args))
			b.WriteString(")")
		}
	default:
		return fmt.Errorf("encode: unknown format %q", f)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// isCSpace is C's isspace in the C locale.
func isCSpace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r')
}

// sxpValue writes a path as a bare atom, as pygrub does, when xend's parser
// reads it back unchanged, and as a quoted string otherwise.
func sxpValue(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("._-/:~+=,@%", c) >= 0:
		default:
			return sxpQuote(s)
		}
	}
	return s
}

// sxpQuote quotes s as an xend sxp string: backslash and double quote are
// escaped, control characters use xend's named escapes or three-digit octal
// (xend's parser ends an octal escape after three digits).
func sxpQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\', '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\a':
			b.WriteString(`\a`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\v':
			b.WriteString(`\v`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if c < 0x20 || c == 0x7f {
				fmt.Fprintf(&b, `\%03o`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
