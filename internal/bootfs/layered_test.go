package bootfs

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"pxed/internal/testutil"
)

var genMod = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// call is one Generate call as a recordingGen saw it.
type call struct {
	c    Client
	name string
}

// recordingGen serves files from a map and records every call, so tests can
// check what reached the generator. "{addr}" in a file's content is replaced
// by the client's address, for content that depends on the client.
type recordingGen struct {
	files map[string]string

	mu    sync.Mutex
	calls []call
}

func (g *recordingGen) Generate(c Client, name string) ([]byte, time.Time, bool) {
	g.mu.Lock()
	g.calls = append(g.calls, call{c, name})
	g.mu.Unlock()
	s, ok := g.files[name]
	if !ok {
		return nil, time.Time{}, false
	}
	return []byte(strings.ReplaceAll(s, "{addr}", c.Addr.String())), genMod, true
}

func (g *recordingGen) recorded() []call {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]call(nil), g.calls...)
}

func (g *recordingGen) reset() {
	g.mu.Lock()
	g.calls = nil
	g.mu.Unlock()
}

// owningGen is a recordingGen that also says which names it owns.
type owningGen struct {
	*recordingGen
	owns func(string) bool
}

func (g owningGen) Owns(name string) bool { return g.owns(name) }

// newLayered makes a tree with the given world-readable files, a Layered over
// it logging into the returned buffer, and a recordingGen serving gen, set as
// its generator.
func newLayered(t *testing.T, disk map[string]string, gen map[string]string) (*Layered, *recordingGen, *testutil.SyncBuffer, string) {
	t.Helper()
	tree, dir := newTree(t)
	for name, data := range disk {
		writeFile(t, filepath.Join(dir, filepath.FromSlash(name)), data, 0o644)
	}
	log := &testutil.SyncBuffer{}
	l := NewLayered(tree, slog.New(slog.NewTextHandler(log, nil)))
	g := &recordingGen{files: gen}
	l.SetGenerator(g)
	return l, g, log, dir
}

func readFile(t *testing.T, f fs.File) string {
	t.Helper()
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func TestLayeredDiskAndGenerated(t *testing.T) {
	l, _, _, dir := newLayered(t,
		map[string]string{
			"pxelinux.0":           "pxe binary",
			"pxelinux.cfg/default": "DEFAULT disk\n",
			"ipxe/existing-dir/x":  "x",
		},
		map[string]string{
			"pxelinux.cfg/default":               "DEFAULT generated\n",
			"pxelinux.cfg/01-aa-bb-cc-dd-ee-ff":  "DEFAULT host for {addr}\n",
			"boot.ipxe":                          "#!ipxe\n",
			"empty.cfg":                          "",
			"ipxe/existing-dir":                  "a generated file where the disk has a directory\n",
			"ks/host1.ks":                        "text\n",
			"pxelinux.0/under-a-disk-file":       "unreachable on a real tree, but not a jail violation\n",
			"deep/er/than/the/disk/has/file.cfg": "deep\n",
		})
	client := Client{Addr: netip.MustParseAddr("192.0.2.10"), Proto: "tftp"}
	tests := []struct {
		name     string // as requested
		want     string // content; "" with wantErr
		wantSrc  string
		shadowed bool
		wantErr  error
	}{
		{name: "pxelinux.0", want: "pxe binary", wantSrc: "disk"},
		{name: "/pxelinux.0", want: "pxe binary", wantSrc: "disk"},
		{name: "pxelinux.cfg/default", want: "DEFAULT disk\n", wantSrc: "disk", shadowed: true},
		{name: "pxelinux.cfg/01-aa-bb-cc-dd-ee-ff", want: "DEFAULT host for 192.0.2.10\n", wantSrc: "generated"},
		{name: `\pxelinux.cfg\01-aa-bb-cc-dd-ee-ff`, want: "DEFAULT host for 192.0.2.10\n", wantSrc: "generated"},
		{name: dir + "/pxelinux.cfg/01-aa-bb-cc-dd-ee-ff", want: "DEFAULT host for 192.0.2.10\n", wantSrc: "generated"},
		{name: "boot.ipxe", want: "#!ipxe\n", wantSrc: "generated"},
		{name: "empty.cfg", want: "", wantSrc: "generated"},
		{name: "ipxe/existing-dir", want: "a generated file where the disk has a directory\n", wantSrc: "generated"},
		{name: "ks/host1.ks", want: "text\n", wantSrc: "generated"},
		{name: "deep/er/than/the/disk/has/file.cfg", want: "deep\n", wantSrc: "generated"},
		{name: "pxelinux.0/under-a-disk-file", want: "unreachable on a real tree, but not a jail violation\n", wantSrc: "generated"},
		{name: "no-such-file", wantErr: fs.ErrNotExist},
		{name: "pxelinux.cfg/01-00-00-00-00-00-00", wantErr: fs.ErrNotExist},
		{name: "/", wantErr: fs.ErrNotExist},
		{name: "ipxe", wantErr: fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := l.OpenFor(client, tt.name)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("OpenFor: error %v, want %v", err, tt.wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("OpenFor: %v", err)
				}
				if got := readFile(t, f); got != tt.want {
					t.Errorf("OpenFor: read %q, want %q", got, tt.want)
				}
				_, onDisk := f.(*os.File)
				if onDisk != (tt.wantSrc == "disk") {
					t.Errorf("OpenFor: file is %T, want it from %s", f, tt.wantSrc)
				}
			}
			src, shadowed := l.Source(client, tt.name)
			if src != tt.wantSrc || shadowed != tt.shadowed {
				t.Errorf("Source = %q, %v; want %q, %v", src, shadowed, tt.wantSrc, tt.shadowed)
			}
			fi, err := l.Stat(tt.name)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("Stat: error %v, want %v", err, tt.wantErr)
				}
			case err != nil:
				t.Errorf("Stat: %v", err)
			case tt.wantSrc == "disk" && fi.Size() != int64(len(tt.want)):
				t.Errorf("Stat: size %d, want %d", fi.Size(), len(tt.want))
			case tt.wantSrc == "generated" && !strings.Contains(tt.want, "192.0.2.10") && fi.Size() != int64(len(tt.want)):
				// Stat asks for Client{}: only client-independent sizes compare.
				t.Errorf("Stat: size %d, want %d", fi.Size(), len(tt.want))
			}
		})
	}
	// Open is OpenFor for an unknown client.
	f, err := l.Open("pxelinux.cfg/01-aa-bb-cc-dd-ee-ff")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := readFile(t, f), "DEFAULT host for invalid IP\n"; got != want {
		t.Errorf("Open: read %q, want %q", got, want)
	}
	if l.Dir() != dir {
		t.Errorf("Dir() = %q, want %q", l.Dir(), dir)
	}
}

func TestLayeredNoGenerator(t *testing.T) {
	tree, dir := newTree(t)
	writeFile(t, filepath.Join(dir, "pxelinux.0"), "pxe", 0o644)
	for _, l := range []*Layered{NewLayered(tree, nil), func() *Layered {
		l := NewLayered(tree, nil)
		l.SetGenerator(&recordingGen{files: map[string]string{"boot.ipxe": "x"}})
		l.SetGenerator(nil)
		return l
	}()} {
		f, err := l.Open("pxelinux.0")
		if err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, f); got != "pxe" {
			t.Errorf("read %q", got)
		}
		if _, err := l.Open("boot.ipxe"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(boot.ipxe) without a generator: %v, want not-exist", err)
		}
		if src, _ := l.Source(Client{}, "boot.ipxe"); src != "" {
			t.Errorf("Source(boot.ipxe) without a generator = %q", src)
		}
	}
}

func TestLayeredShadowWarnsOnce(t *testing.T) {
	disk := map[string]string{
		"pxelinux.cfg/default": "disk default",
		"boot.ipxe":            "disk ipxe",
		"vmlinuz":              "kernel",
	}
	gen := map[string]string{
		"pxelinux.cfg/default": "generated default",
		"boot.ipxe":            "generated ipxe",
	}
	const msg = "bootfs: disk file shadows generated file"
	tests := []struct {
		name string
		owns func(string) bool // nil: the generator has no Owns method
		// wantGenCalls: Generate calls for the disk hits on vmlinuz.
		wantVmlinuzCalls int
	}{
		{name: "without Owns", wantVmlinuzCalls: 3},
		{name: "with Owns", owns: func(n string) bool { return n != "vmlinuz" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, g, log, _ := newLayered(t, disk, gen)
			if tt.owns != nil {
				l.SetGenerator(owningGen{g, tt.owns})
			}
			for i := range 3 {
				c := Client{Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})}
				for _, name := range []string{"pxelinux.cfg/default", "/pxelinux.cfg/default", "vmlinuz"} {
					f, err := l.OpenFor(c, name)
					if err != nil {
						t.Fatal(err)
					}
					f.Close()
				}
			}
			if n := log.Count(msg); n != 1 {
				t.Fatalf("%d shadow warnings after opening one shadowed file 6 times, want 1; log:\n%s", n, log)
			}
			out := log.String()
			for _, want := range []string{"name=pxelinux.cfg/default", "remove the disk file to serve the generated one", "level=WARN"} {
				if !strings.Contains(out, want) {
					t.Errorf("warning does not contain %q:\n%s", want, out)
				}
			}
			vmlinuz := 0
			for _, c := range g.recorded() {
				if c.name == "vmlinuz" {
					vmlinuz++
				}
			}
			if vmlinuz != tt.wantVmlinuzCalls {
				t.Errorf("Generate called %d times for vmlinuz, want %d", vmlinuz, tt.wantVmlinuzCalls)
			}
			// Once warned, a name costs no more Generate calls.
			g.reset()
			f, _ := l.Open("pxelinux.cfg/default")
			f.Close()
			if calls := g.recorded(); len(calls) != 0 {
				t.Errorf("Generate called again after the warning: %v", calls)
			}
			// Another shadowed name warns once more.
			for range 2 {
				f, _ = l.Open("boot.ipxe")
				f.Close()
			}
			if n := log.Count(msg); n != 2 {
				t.Errorf("%d shadow warnings after a second shadowed name, want 2", n)
			}
			// Source and Stat say it, but do not log.
			if _, shadowed := l.Source(Client{}, "boot.ipxe"); !shadowed {
				t.Error("Source does not report boot.ipxe as shadowed")
			}
			if _, err := l.Stat("pxelinux.cfg/default"); err != nil {
				t.Error(err)
			}
			if n := log.Count(msg); n != 2 {
				t.Errorf("%d shadow warnings after Source and Stat, want still 2", n)
			}
		})
	}
}

func TestLayeredShadowWarningConcurrent(t *testing.T) {
	l, _, log, _ := newLayered(t, map[string]string{"boot.ipxe": "disk"}, map[string]string{"boot.ipxe": "gen"})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 20 {
				f, err := l.Open("boot.ipxe")
				if err != nil {
					t.Error(err)
					return
				}
				f.Close()
			}
		})
	}
	wg.Wait()
	if n := log.Count("shadows generated file"); n != 1 {
		t.Errorf("%d shadow warnings from concurrent opens, want 1", n)
	}
}

func TestLayeredRefusedDiskFileIsNotReplaced(t *testing.T) {
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "passwd"), "root:x:0:0", 0o644)
	l, g, log, dir := newLayered(t, nil, map[string]string{
		"private.cfg":  "generated private",
		"escape":       "generated escape",
		"absolute":     "generated absolute",
		"pipe":         "generated pipe",
		"dir/sub.cfg":  "generated sub",
		"fine.cfg":     "generated fine",
		"missing.cfg":  "generated missing",
		"escape-dir/x": "generated under an escaping link",
	})
	writeFile(t, filepath.Join(dir, "private.cfg"), "disk private", 0o600)
	for name, target := range map[string]string{
		"escape":     "../" + filepath.Base(outside) + "/passwd",
		"absolute":   filepath.Join(outside, "passwd"),
		"escape-dir": outside,
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"private.cfg", "escape", "absolute", "pipe", "escape-dir/x"} {
		t.Run(name, func(t *testing.T) {
			f, err := l.Open(name)
			if err == nil {
				got := readFile(t, f)
				t.Fatalf("Open succeeded and served %q; want the disk file refused", got)
			}
			if !errors.Is(err, fs.ErrPermission) {
				t.Errorf("Open: %v, want a permission error", err)
			}
			var de *DeniedError
			if !errors.As(err, &de) {
				t.Errorf("Open: %v (%T), want a *DeniedError that says why", err, err)
			}
			if _, err := l.Stat(name); !errors.Is(err, fs.ErrPermission) {
				t.Errorf("Stat: %v, want a permission error", err)
			}
			if src, _ := l.Source(Client{}, name); src != "disk" {
				t.Errorf("Source = %q, want disk (the file the client gets an error for)", src)
			}
		})
	}
	for _, c := range g.recorded() {
		if c.name != "private.cfg" && c.name != "escape" && c.name != "absolute" && c.name != "pipe" && c.name != "escape-dir/x" {
			t.Errorf("unexpected Generate(%q)", c.name)
		}
	}
	if strings.Contains(log.String(), "generated") {
		t.Errorf("log mentions generated content:\n%s", log)
	}
}

func TestLayeredJailNamesNeverReachGenerator(t *testing.T) {
	l, g, _, dir := newLayered(t, nil, map[string]string{
		"x":          "generated x",
		"etc/passwd": "generated passwd",
	})
	refused := []string{
		"", "..", "../x", "a/../x", "a/../../x", `..\x`, `a\..\..\x`, "/../x", dir + "/../x",
		"\x00", "x\x00", "x\x00y", "\x1b[31m", "x\x7f", "\xff", "a/\xc3",
	}
	for _, name := range refused {
		if f, err := l.OpenFor(Client{Proto: "tftp"}, name); err == nil {
			f.Close()
			t.Errorf("OpenFor(%q) succeeded", name)
		} else if !errors.Is(err, fs.ErrPermission) {
			t.Errorf("OpenFor(%q): %v, want refused", name, err)
		}
		if _, err := l.Stat(name); !errors.Is(err, fs.ErrPermission) {
			t.Errorf("Stat(%q): %v, want refused", name, err)
		}
		if src, shadowed := l.Source(Client{}, name); src != "" || shadowed {
			t.Errorf("Source(%q) = %q, %v; want nothing", name, src, shadowed)
		}
	}
	if calls := g.recorded(); len(calls) != 0 {
		t.Fatalf("refused names reached the generator: %v", calls)
	}

	// Absolute names stay in the jail: the generator sees them as clean
	// paths inside the tree, never as the raw request.
	accepted := map[string]string{
		"/etc/passwd":           "etc/passwd",
		"//etc//./passwd":       "etc/passwd",
		`\etc\passwd`:           "etc/passwd",
		dir + "/x":              "x",
		dir + "/etc/passwd":     "etc/passwd",
		"/" + dir + "/x":        "x",
		"a/b/./c/":              "a/b/c",
		"./x":                   "x",
		"/nonexistent-root-dir": "nonexistent-root-dir",
	}
	for raw, clean := range accepted {
		g.reset()
		if f, err := l.Open(raw); err == nil {
			f.Close()
		}
		calls := g.recorded()
		if len(calls) != 1 || calls[0].name != clean {
			t.Errorf("Open(%q): generator saw %v, want one call for %q", raw, calls, clean)
		}
		for _, c := range calls {
			if !fs.ValidPath(c.name) {
				t.Errorf("Open(%q): generator saw %q, not a valid fs.FS path", raw, c.name)
			}
		}
	}
	// The root itself is a directory and never generated.
	g.reset()
	for _, name := range []string{".", "/", "//", `\`, "./"} {
		if _, err := l.Open(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%q): %v, want not-exist", name, err)
		}
	}
	if calls := g.recorded(); len(calls) != 0 {
		t.Errorf("the root reached the generator: %v", calls)
	}
}

func TestLayeredClientPassedThrough(t *testing.T) {
	l, g, _, _ := newLayered(t, nil, map[string]string{"boot.ipxe": "#!ipxe\n"})
	clients := []Client{
		{},
		{Addr: netip.MustParseAddr("192.0.2.7"), Local: netip.MustParseAddr("192.0.2.1"), Proto: "tftp"},
		{Addr: netip.MustParseAddr("2001:db8::7"), Local: netip.MustParseAddr("2001:db8::1"), Proto: "http"},
		{Addr: netip.MustParseAddr("::ffff:192.0.2.7"), Proto: "http"},
		{Addr: netip.MustParseAddr("fe80::1%eth0"), Proto: "tftp"},
	}
	for _, c := range clients {
		g.reset()
		f, err := l.OpenFor(c, "/boot.ipxe")
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		calls := g.recorded()
		if len(calls) != 1 || calls[0].c != c || calls[0].name != "boot.ipxe" {
			t.Errorf("OpenFor(%+v): generator saw %+v", c, calls)
		}
		g.reset()
		if src, _ := l.Source(c, "boot.ipxe"); src != "generated" {
			t.Errorf("Source = %q", src)
		}
		if calls := g.recorded(); len(calls) != 1 || calls[0].c != c {
			t.Errorf("Source(%+v): generator saw %+v", c, calls)
		}
	}
}

func TestLayeredGeneratedFile(t *testing.T) {
	content := strings.Repeat("0123456789abcdef", 300) + "tail"
	l, _, _, _ := newLayered(t, nil, map[string]string{"ipxe/host.ipxe": content})
	open := func() fs.File {
		t.Helper()
		f, err := l.Open("ipxe/host.ipxe")
		if err != nil {
			t.Fatal(err)
		}
		return f
	}

	t.Run("Stat", func(t *testing.T) {
		f := open()
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		sfi, err := l.Stat("ipxe/host.ipxe")
		if err != nil {
			t.Fatal(err)
		}
		for _, fi := range []fs.FileInfo{fi, sfi} {
			if fi.Name() != "host.ipxe" || fi.Size() != int64(len(content)) || fi.Mode() != 0o444 ||
				!fi.Mode().IsRegular() || fi.IsDir() || !fi.ModTime().Equal(genMod) {
				t.Errorf("FileInfo: name %q size %d mode %v dir %v mod %v", fi.Name(), fi.Size(), fi.Mode(), fi.IsDir(), fi.ModTime())
			}
		}
		if _, err := fs.Stat(l, "ipxe/host.ipxe"); err != nil {
			t.Errorf("fs.Stat: %v", err)
		}
	})
	t.Run("iotest", func(t *testing.T) {
		// Read, ReadAt and Seek, against the content.
		f := open()
		defer f.Close()
		if err := iotest.TestReader(f.(io.Reader), []byte(content)); err != nil {
			t.Error(err)
		}
	})
	t.Run("ReadAt and Seek", func(t *testing.T) {
		f := open()
		defer f.Close()
		ra, ok := f.(io.ReaderAt)
		if !ok {
			t.Fatalf("%T is not an io.ReaderAt", f)
		}
		sk, ok := f.(io.Seeker)
		if !ok {
			t.Fatalf("%T is not an io.Seeker", f)
		}
		buf := make([]byte, 8)
		n, err := ra.ReadAt(buf, 16*300-4)
		if n != 8 || string(buf) != "cdeftail" || (err != nil && err != io.EOF) {
			t.Errorf("ReadAt at the end: %d %q %v", n, buf[:n], err)
		}
		n, err = ra.ReadAt(buf, int64(len(content))-2)
		if n != 2 || string(buf[:n]) != "il" || err != io.EOF {
			t.Errorf("ReadAt past the end: %d %q %v, want 2 \"il\" EOF", n, buf[:n], err)
		}
		if pos, err := sk.Seek(-4, io.SeekEnd); pos != int64(len(content))-4 || err != nil {
			t.Errorf("Seek(-4, end) = %d, %v", pos, err)
		}
		if rest := readFile(t, f); rest != "tail" {
			t.Errorf("read after Seek: %q", rest)
		}
	})
	t.Run("concurrent ReadAt", func(t *testing.T) {
		f := open()
		defer f.Close()
		ra := f.(io.ReaderAt)
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				buf := make([]byte, 16)
				for i := range 300 {
					off := int64((i*7 + w) % 300 * 16)
					if n, err := ra.ReadAt(buf, off); n != 16 || err != nil || string(buf) != "0123456789abcdef" {
						t.Errorf("ReadAt(%d): %d %q %v", off, n, buf[:n], err)
						return
					}
				}
			})
		}
		wg.Wait()
	})
	t.Run("closed", func(t *testing.T) {
		f := open()
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Read(make([]byte, 1)); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("Read after Close: %v", err)
		}
		if _, err := f.(io.ReaderAt).ReadAt(make([]byte, 1), 0); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("ReadAt after Close: %v", err)
		}
		if err := f.Close(); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("second Close: %v", err)
		}
	})
	t.Run("fs.ReadFile", func(t *testing.T) {
		b, err := fs.ReadFile(l, "/ipxe/host.ipxe")
		if err != nil || string(b) != content {
			t.Errorf("fs.ReadFile: %d bytes, %v", len(b), err)
		}
	})
}

func TestLayeredSetGeneratorConcurrent(t *testing.T) {
	tree, dir := newTree(t)
	writeFile(t, filepath.Join(dir, "pxelinux.0"), "disk", 0o644)
	l := NewLayered(tree, nil)
	a := &recordingGen{files: map[string]string{"boot.ipxe": "from A"}}
	b := owningGen{&recordingGen{files: map[string]string{"boot.ipxe": "from B"}}, func(n string) bool { return n == "boot.ipxe" }}

	const readers, opens, swaps = 8, 300, 1000
	var wg sync.WaitGroup
	for range readers {
		wg.Go(func() {
			for range opens {
				f, err := l.Open("boot.ipxe")
				if err != nil {
					if !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("Open: %v", err)
						return
					}
				} else {
					b, err := io.ReadAll(f)
					f.Close()
					if err != nil || (string(b) != "from A" && string(b) != "from B") {
						t.Errorf("read %q, %v", b, err)
						return
					}
				}
				f, err = l.Open("pxelinux.0")
				if err != nil {
					t.Errorf("Open(pxelinux.0): %v", err)
					return
				}
				f.Close()
				l.Source(Client{}, "boot.ipxe")
			}
		})
	}
	wg.Go(func() {
		for i := range swaps {
			switch i % 3 {
			case 0:
				l.SetGenerator(a)
			case 1:
				l.SetGenerator(b)
			default:
				l.SetGenerator(nil)
			}
		}
	})
	wg.Wait()

	// After the swaps, each setting takes effect at once.
	for _, tc := range []struct {
		g    Generator
		want string
	}{{a, "from A"}, {b, "from B"}, {nil, ""}} {
		l.SetGenerator(tc.g)
		f, err := l.Open("boot.ipxe")
		if tc.want == "" {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("after SetGenerator(nil): %v, want not-exist", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, f); got != tc.want {
			t.Errorf("after SetGenerator: read %q, want %q", got, tc.want)
		}
	}
}
