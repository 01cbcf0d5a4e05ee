// Package httpboot serves the boot tree over HTTP: the same files and the same
// jail rules as TFTP, with Range requests, Content-Length and Last-Modified,
// and no directory listings. Limits and NewServer bound what clients can
// hold: connections per address and in all, header and idle time, and a
// rate floor instead of a whole-response deadline.
package httpboot

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"pxed/internal/bootfs"
)

// Files is an http.Handler for a boot tree.
type Files struct {
	FS     fs.FS
	Logger *slog.Logger
	// ContentType names the type of a file served under name; generated
	// says it came from a generator, not from disk (the boot plan owns
	// which names are text). nil: application/octet-stream for all.
	ContentType func(name string, generated bool) string
}

func (h *Files) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// ServeHTTP answers GET and HEAD for files in the tree.
func (h *Files) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &recorder{ResponseWriter: w}
	status, reason := h.serve(rw, r)
	if rw.status == 0 {
		rw.status = status
	}
	if rw.err != nil && reason == "" {
		// The answer was cut: the client went away, or fell under the
		// rate floor (the write deadline of a Limits connection).
		reason = "sending: " + rw.err.Error()
		if errors.Is(rw.err, os.ErrDeadlineExceeded) {
			reason = "client too slow (under the rate floor): dropped"
		}
	}
	attrs := []any{
		"client", r.RemoteAddr, "method", r.Method, "path", r.URL.Path,
		"status", rw.status, "bytes", rw.bytes, "duration", time.Since(start).Round(time.Microsecond),
	}
	if reason != "" {
		attrs = append(attrs, "reason", reason)
	}
	level := slog.LevelInfo
	if rw.status >= 400 || rw.err != nil {
		level = slog.LevelWarn
	}
	h.logger().Log(r.Context(), level, "http request", attrs...)
}

func (h *Files) serve(w http.ResponseWriter, r *http.Request) (int, string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return http.StatusMethodNotAllowed, ""
	}
	if r.ContentLength != 0 {
		// GET and HEAD carry no body; not reading one that trickles in
		// must not hold the connection (net/http would wait for it).
		w.Header().Set("Connection", "close")
		http.Error(w, "request body not allowed", http.StatusRequestEntityTooLarge)
		return http.StatusRequestEntityTooLarge, "request with a body"
	}
	name, err := bootfs.CleanName(r.URL.Path, "")
	if err != nil {
		http.Error(w, "forbidden", http.StatusForbidden)
		return http.StatusForbidden, err.Error()
	}
	_, perClient := h.FS.(bootfs.ClientFS)
	f, err := bootfs.OpenFor(h.FS, clientOf(r), name)
	if err != nil {
		return h.fail(w, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return h.fail(w, err)
	}
	if fi.IsDir() {
		http.Error(w, "not found", http.StatusNotFound)
		return http.StatusNotFound, "is a directory (no listings)"
	}
	rs, ok := f.(io.ReadSeeker)
	if !ok {
		ra, ok := f.(io.ReaderAt)
		if !ok {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return http.StatusInternalServerError, "file supports neither Seek nor ReadAt"
		}
		rs = io.NewSectionReader(ra, 0, fi.Size())
	}
	ctype := "application/octet-stream"
	if h.ContentType != nil {
		_, onDisk := f.(*os.File)
		ctype = h.ContentType(name, perClient && !onDisk)
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if why := checkRanges(r.Header.Get("Range"), fi.Size()); why != "" {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", fi.Size()))
		http.Error(w, "range not satisfiable: "+why, http.StatusRequestedRangeNotSatisfiable)
		return http.StatusRequestedRangeNotSatisfiable, why
	}
	// ServeContent handles Range, If-Modified-Since, If-Range, HEAD and
	// Content-Length; it never lists directories.
	http.ServeContent(w, r, name, fi.ModTime(), rs)
	return http.StatusOK, ""
}

// clientOf says who sent r: the remote address and the local address the
// connection arrived on (never the Host header: the client writes it, and
// generated files must not carry it). Addresses that cannot be parsed are
// left invalid.
func clientOf(r *http.Request) bootfs.Client {
	c := bootfs.Client{Proto: "http"}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		c.Addr = ap.Addr().Unmap()
	}
	switch a := r.Context().Value(http.LocalAddrContextKey).(type) {
	case *net.TCPAddr:
		c.Local = a.AddrPort().Addr().Unmap()
	case net.Addr:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			c.Local = ap.Addr().Unmap()
		}
	}
	return c
}

func (h *Files) fail(w http.ResponseWriter, err error) (int, string) {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		http.Error(w, "not found", http.StatusNotFound)
		return http.StatusNotFound, err.Error()
	case errors.Is(err, fs.ErrPermission):
		http.Error(w, "forbidden", http.StatusForbidden)
		return http.StatusForbidden, err.Error()
	default:
		http.Error(w, "internal error", http.StatusInternalServerError)
		return http.StatusInternalServerError, err.Error()
	}
}

// recorder notes the status, body size and first write error for the log
// line.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	err    error
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	if r.err == nil {
		r.err = err
	}
	return n, err
}

// ReadFrom keeps sendfile(2) working through the wrapper.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := io.Copy(r.ResponseWriter, src)
	r.bytes += n
	if r.err == nil {
		r.err = err
	}
	return n, err
}
