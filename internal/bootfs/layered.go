package bootfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"path"
	"sync"
	"sync/atomic"
	"time"
)

// Client says who asks for a file, for generated files whose content depends on it.
type Client struct {
	Addr  netip.Addr // the client's address (TFTP source address, HTTP remote address); invalid if unknown
	Local netip.Addr // the server address the request arrived on; invalid if unknown
	Proto string     // "tftp" or "http"
}

// Generator produces files that are not on disk (PXELINUX configs, iPXE scripts, kickstarts).
// Generate must be cheap for names it does not own (it is asked about every name).
type Generator interface {
	// Generate returns the content of the generated file at the clean fs.FS path name as seen by client c.
	// ok is false when the generator has no such file.
	Generate(c Client, name string) (data []byte, mod time.Time, ok bool)
}

// owner is what a Generator may also implement to say, cheaply and without
// knowing the client, whether it could ever answer name. Layered uses it to
// avoid calling Generate for every file served from disk.
type owner interface {
	Owns(name string) bool
}

// genState is the Generator in use, with its Owns method looked up once.
type genState struct {
	gen  Generator
	owns func(string) bool // nil when gen does not implement owner
}

// mayOwn reports whether the generator might have a file called name.
func (g *genState) mayOwn(name string) bool {
	return g.owns == nil || g.owns(name)
}

// Layered serves Disk and, for names the disk lacks, the Generator's files. Disk files win.
//
// Every name goes through CleanName and the disk Tree's jail first, so a
// name the jail refuses is refused and the generator only ever sees clean
// fs.FS paths. A disk file that exists but is refused (not world-readable,
// a symbolic link out of the tree) is reported as refused, never replaced by
// a generated file, so the operator sees the problem.
//
// Layered implements fs.FS and fs.StatFS; Open and Stat act for an unknown
// client (Client{}). Front ends that know the client call OpenFor.
type Layered struct {
	disk   *Tree
	logger *slog.Logger
	gen    atomic.Pointer[genState]
	warned sync.Map // clean name -> struct{}: shadow warning already logged
}

// NewLayered returns a Layered over disk with no generator. logger receives
// the warnings about disk files that shadow generated ones; nil discards them.
func NewLayered(disk *Tree, logger *slog.Logger) *Layered {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Layered{disk: disk, logger: logger}
}

// SetGenerator makes g the source of generated files; nil means none. It may
// be called at any time, concurrently with Open: each lookup uses either the
// old or the new generator, never a mix.
func (l *Layered) SetGenerator(g Generator) {
	if g == nil {
		l.gen.Store(nil)
		return
	}
	st := &genState{gen: g}
	if o, ok := g.(owner); ok {
		st.owns = o.Owns
	}
	l.gen.Store(st)
}

// Dir is the absolute path of the disk tree.
func (l *Layered) Dir() string { return l.disk.Dir() }

// ClientFS is an fs.FS whose files may depend on who asks for them, such
// as a *Layered with generated files.
type ClientFS interface {
	fs.FS
	OpenFor(c Client, name string) (fs.File, error)
}

// OpenFor opens name from fsys for client c: through fsys.OpenFor when
// fsys is a ClientFS, else through fsys.Open. The TFTP and HTTP front ends
// open every file with it.
func OpenFor(fsys fs.FS, c Client, name string) (fs.File, error) {
	if cf, ok := fsys.(ClientFS); ok {
		return cf.OpenFor(c, name)
	}
	return fsys.Open(name)
}

// Open opens name for an unknown client: OpenFor(Client{}, name).
func (l *Layered) Open(name string) (fs.File, error) {
	return l.OpenFor(Client{}, name)
}

// OpenFor opens name as client c asks for it. name is a raw request name or a
// clean fs.FS path; it is cleaned with CleanName first. A file on disk is
// served if it exists and is servable; a refused disk file is an error that
// wraps fs.ErrPermission; only when the disk has no such file is the
// generator asked. The error for a name that neither has wraps fs.ErrNotExist.
//
// Files from disk are *os.File; generated files implement io.Reader,
// io.ReaderAt and io.Seeker and report mode 0444.
func (l *Layered) OpenFor(c Client, name string) (fs.File, error) {
	clean, err := CleanName(name, l.disk.Dir())
	if err != nil {
		return nil, err
	}
	f, err := l.disk.Open(clean)
	if err == nil {
		l.checkShadow(c, clean)
		return f, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if data, mod, ok := l.generate(c, clean); ok {
		return newGenFile(clean, data, mod), nil
	}
	return nil, err
}

// Stat reports on name with the same rules as Open, for an unknown client.
// It logs nothing.
func (l *Layered) Stat(name string) (fs.FileInfo, error) {
	clean, err := CleanName(name, l.disk.Dir())
	if err != nil {
		return nil, err
	}
	fi, err := l.disk.Stat(clean)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return fi, err
	}
	if data, mod, ok := l.generate(Client{}, clean); ok {
		return &genInfo{name: path.Base(clean), size: int64(len(data)), mod: mod}, nil
	}
	return nil, err
}

// Source tells where name would come from for client c: "disk", "generated", or "" (neither) — for `pxed explain`; shadowed reports a disk file hiding a generated one.
//
// A disk file that exists but would be refused (not world-readable, say)
// counts as "disk": that is the file the client would get an error for. A
// name the jail refuses is "". Source logs nothing.
func (l *Layered) Source(c Client, name string) (src string, shadowed bool) {
	clean, err := CleanName(name, l.disk.Dir())
	if err != nil {
		return "", false
	}
	_, err = l.disk.Stat(clean)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		_, _, shadowed = l.generate(c, clean)
		return "disk", shadowed
	}
	if _, _, ok := l.generate(c, clean); ok {
		return "generated", false
	}
	return "", false
}

// generate asks the current generator, if any and if it may own clean.
func (l *Layered) generate(c Client, clean string) ([]byte, time.Time, bool) {
	g := l.gen.Load()
	if g == nil || clean == "." || !g.mayOwn(clean) {
		return nil, time.Time{}, false
	}
	return g.gen.Generate(c, clean)
}

// checkShadow logs, once per name, that a disk file hides a generated one.
func (l *Layered) checkShadow(c Client, clean string) {
	if _, done := l.warned.Load(clean); done {
		return
	}
	if _, _, ok := l.generate(c, clean); !ok {
		return
	}
	if _, loaded := l.warned.LoadOrStore(clean, struct{}{}); loaded {
		return
	}
	l.logger.Warn("bootfs: disk file shadows generated file",
		"name", clean,
		"dir", l.disk.Dir(),
		"fix", "remove the disk file to serve the generated one")
}

// genFile is an open generated file: its content in memory. ReadAt may be
// called concurrently; Read and Seek share an offset, as for any file.
type genFile struct {
	r      *bytes.Reader
	info   genInfo
	closed atomic.Bool
}

func newGenFile(clean string, data []byte, mod time.Time) *genFile {
	return &genFile{
		r:    bytes.NewReader(data),
		info: genInfo{name: path.Base(clean), size: int64(len(data)), mod: mod},
	}
}

// Stat describes the generated file: a regular file, mode 0444.
func (f *genFile) Stat() (fs.FileInfo, error) {
	if f.closed.Load() {
		return nil, f.errClosed("stat")
	}
	return &f.info, nil
}

// Read reads from the current offset.
func (f *genFile) Read(b []byte) (int, error) {
	if f.closed.Load() {
		return 0, f.errClosed("read")
	}
	return f.r.Read(b)
}

// ReadAt reads at off without moving the offset; it is safe for concurrent use.
func (f *genFile) ReadAt(b []byte, off int64) (int, error) {
	if f.closed.Load() {
		return 0, f.errClosed("read")
	}
	return f.r.ReadAt(b, off)
}

// Seek sets the offset for the next Read.
func (f *genFile) Seek(offset int64, whence int) (int64, error) {
	if f.closed.Load() {
		return 0, f.errClosed("seek")
	}
	return f.r.Seek(offset, whence)
}

// Close marks the file closed; later calls fail with fs.ErrClosed.
func (f *genFile) Close() error {
	if f.closed.Swap(true) {
		return f.errClosed("close")
	}
	return nil
}

func (f *genFile) errClosed(op string) error {
	return &fs.PathError{Op: op, Path: f.info.name, Err: fs.ErrClosed}
}

var (
	_ fs.FS       = (*Layered)(nil)
	_ fs.StatFS   = (*Layered)(nil)
	_ io.ReaderAt = (*genFile)(nil)
	_ io.Seeker   = (*genFile)(nil)
)

// genInfo is the fs.FileInfo of a generated file.
type genInfo struct {
	name string
	size int64
	mod  time.Time
}

func (i *genInfo) Name() string       { return i.name }
func (i *genInfo) Size() int64        { return i.size }
func (i *genInfo) Mode() fs.FileMode  { return 0o444 }
func (i *genInfo) ModTime() time.Time { return i.mod }
func (i *genInfo) IsDir() bool        { return false }
func (i *genInfo) Sys() any           { return nil }
