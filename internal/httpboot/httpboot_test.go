package httpboot

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"pxed/internal/bootfs"
	"pxed/internal/testutil"
)

// content is the test kernel: 64 distinct bytes, so that ranges are checkable.
var content = func() []byte {
	b := make([]byte, 64)
	for i := range b {
		b[i] = byte('A' + i%26)
		if i >= 26 {
			b[i] = byte('a' + (i-26)%26)
		}
	}
	return b
}()

var modTime = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// fixture is a boot tree in a temporary directory, with a secret file next to
// (outside) it, and a handler serving it that logs into a buffer.
type fixture struct {
	dir     string // the tree
	outside string // a world-readable file outside the tree
	tree    *bootfs.Tree
	log     *testutil.SyncBuffer
	h       *Files
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	base := t.TempDir()
	dir := filepath.Join(base, "tree")
	write := func(path string, data []byte, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, modTime, modTime); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "vmlinuz"), content, 0o644)
	write(filepath.Join(dir, "boot", "grub", "grub.cfg"), []byte("set timeout=5\n"), 0o644)
	write(filepath.Join(dir, "secret"), []byte("do not serve"), 0o600)
	write(filepath.Join(base, "outside"), []byte("outside the tree"), 0o644)
	if err := os.Symlink("../outside", filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	tree, err := bootfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tree.Close() })
	log := &testutil.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return &fixture{
		dir:     dir,
		outside: filepath.Join(base, "outside"),
		tree:    tree,
		log:     log,
		h:       &Files{FS: tree, Logger: logger},
	}
}

// serve runs one request through the handler directly. The log line is
// written before it returns.
func (f *fixture) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

// start runs the handler on a real server on 127.0.0.1. stop closes it,
// waiting for in-flight handlers, so the log is complete afterwards.
func (f *fixture) start(t *testing.T) (url string, stop func()) {
	t.Helper()
	srv := httptest.NewServer(f.h)
	var once sync.Once
	stop = func() { once.Do(srv.Close) }
	t.Cleanup(stop)
	return srv.URL, stop
}

func do(t *testing.T, method, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, body
}

func TestGet(t *testing.T) {
	f := newFixture(t)
	url, _ := f.start(t)
	for path, want := range map[string][]byte{
		"/vmlinuz":              content,
		"/boot/grub/grub.cfg":   []byte("set timeout=5\n"),
		"//boot//grub/grub.cfg": []byte("set timeout=5\n"),
	} {
		resp, body := do(t, "GET", url+path, nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", path, resp.StatusCode)
			continue
		}
		if !bytes.Equal(body, want) {
			t.Errorf("GET %s: body %q, want %q", path, body, want)
		}
		if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(len(want)) {
			t.Errorf("GET %s: Content-Length %q, want %d", path, got, len(want))
		}
		if got := resp.Header.Get("Content-Type"); got != "application/octet-stream" {
			t.Errorf("GET %s: Content-Type %q, want application/octet-stream", path, got)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", path, got)
		}
		if got := resp.Header.Get("Accept-Ranges"); got != "bytes" {
			t.Errorf("GET %s: Accept-Ranges %q, want bytes", path, got)
		}
	}
}

func TestGetLargeFile(t *testing.T) {
	// Large enough that the body goes through the sendfile path, not only
	// the response buffer.
	f := newFixture(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	big = append(big, "tail"...)
	if err := os.WriteFile(filepath.Join(f.dir, "initrd.img"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(f.dir, "initrd.img"), 0o644)
	url, stop := f.start(t)
	resp, body := do(t, "GET", url+"/initrd.img", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, big) {
		t.Fatalf("GET /initrd.img: status %d, %d bytes (equal: %v), want 200 and %d bytes", resp.StatusCode, len(body), bytes.Equal(body, big), len(big))
	}
	stop()
	lines := f.log.Lines()
	if len(lines) != 1 {
		t.Fatalf("log has %d lines, want 1:\n%s", len(lines), f.log)
	}
	if want := "bytes=" + strconv.Itoa(len(big)); !strings.Contains(lines[0], want) {
		t.Errorf("log line %q does not contain %q", lines[0], want)
	}
}

func TestHead(t *testing.T) {
	f := newFixture(t)
	url, _ := f.start(t)
	resp, body := do(t, "HEAD", url+"/vmlinuz", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD: status %d, want 200", resp.StatusCode)
	}
	if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(len(content)) {
		t.Errorf("HEAD: Content-Length %q, want %d", got, len(content))
	}
	if len(body) != 0 {
		t.Errorf("HEAD: got a %d-byte body", len(body))
	}

	// The handler itself writes no body for HEAD (the client above would
	// hide one).
	rec := f.serve(httptest.NewRequest("HEAD", "/vmlinuz", nil))
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Errorf("HEAD via recorder: status %d, %d body bytes; want 200 and none", rec.Code, rec.Body.Len())
	}
	if got := rec.Header().Get("Content-Length"); got != strconv.Itoa(len(content)) {
		t.Errorf("HEAD via recorder: Content-Length %q, want %d", got, len(content))
	}
}

func TestRange(t *testing.T) {
	f := newFixture(t)
	url, _ := f.start(t)
	tests := []struct {
		rng       string
		from, to  int // inclusive
		wantRange string
	}{
		{"bytes=10-19", 10, 19, fmt.Sprintf("bytes 10-19/%d", len(content))},
		{"bytes=0-0", 0, 0, fmt.Sprintf("bytes 0-0/%d", len(content))},
		{"bytes=60-", 60, 63, fmt.Sprintf("bytes 60-63/%d", len(content))},
		{"bytes=-4", 60, 63, fmt.Sprintf("bytes 60-63/%d", len(content))},
		{"bytes=50-1000", 50, 63, fmt.Sprintf("bytes 50-63/%d", len(content))},
	}
	for _, tt := range tests {
		resp, body := do(t, "GET", url+"/vmlinuz", map[string]string{"Range": tt.rng})
		if resp.StatusCode != http.StatusPartialContent {
			t.Errorf("Range %s: status %d, want 206", tt.rng, resp.StatusCode)
			continue
		}
		if want := content[tt.from : tt.to+1]; !bytes.Equal(body, want) {
			t.Errorf("Range %s: body %q, want %q", tt.rng, body, want)
		}
		if got := resp.Header.Get("Content-Range"); got != tt.wantRange {
			t.Errorf("Range %s: Content-Range %q, want %q", tt.rng, got, tt.wantRange)
		}
		if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(tt.to-tt.from+1) {
			t.Errorf("Range %s: Content-Length %q, want %d", tt.rng, got, tt.to-tt.from+1)
		}
	}

	resp, _ := do(t, "GET", url+"/vmlinuz", map[string]string{"Range": "bytes=100-200"})
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("Range past the end: status %d, want 416", resp.StatusCode)
	}
}

func TestLastModified(t *testing.T) {
	f := newFixture(t)
	url, _ := f.start(t)
	resp, _ := do(t, "GET", url+"/vmlinuz", nil)
	lm := resp.Header.Get("Last-Modified")
	if lm == "" {
		t.Fatal("no Last-Modified header")
	}
	got, err := http.ParseTime(lm)
	if err != nil {
		t.Fatalf("Last-Modified %q: %v", lm, err)
	}
	if !got.Equal(modTime) {
		t.Errorf("Last-Modified %v, want %v", got, modTime)
	}

	resp, body := do(t, "GET", url+"/vmlinuz", map[string]string{"If-Modified-Since": lm})
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-Modified-Since (same time): status %d, want 304", resp.StatusCode)
	}
	if len(body) != 0 {
		t.Errorf("304 response has a %d-byte body", len(body))
	}
	later := modTime.Add(time.Hour).Format(http.TimeFormat)
	if resp, _ := do(t, "GET", url+"/vmlinuz", map[string]string{"If-Modified-Since": later}); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-Modified-Since (later): status %d, want 304", resp.StatusCode)
	}
	earlier := modTime.Add(-time.Hour).Format(http.TimeFormat)
	resp, body = do(t, "GET", url+"/vmlinuz", map[string]string{"If-Modified-Since": earlier})
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, content) {
		t.Errorf("If-Modified-Since (earlier): status %d, body %q; want 200 and the file", resp.StatusCode, body)
	}
	// If-Range with the current date gives the range; an old one the whole file.
	resp, body = do(t, "GET", url+"/vmlinuz", map[string]string{"Range": "bytes=10-19", "If-Range": lm})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, content[10:20]) {
		t.Errorf("If-Range (current): status %d, body %q; want 206", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", url+"/vmlinuz", map[string]string{"Range": "bytes=10-19", "If-Range": earlier})
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, content) {
		t.Errorf("If-Range (stale): status %d, body %q; want 200 and the file", resp.StatusCode, body)
	}
}

func TestNoDirectoryListing(t *testing.T) {
	f := newFixture(t)
	url, _ := f.start(t)
	for _, path := range []string{"/", "/boot", "/boot/", "/boot/grub/", "/."} {
		resp, body := do(t, "GET", url+path, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, resp.StatusCode)
		}
		for _, name := range []string{"vmlinuz", "grub", "grub.cfg", "secret", "<a href"} {
			if bytes.Contains(body, []byte(name)) {
				t.Errorf("GET %s: body %q lists %q", path, body, name)
			}
		}
		if loc := resp.Header.Get("Location"); loc != "" {
			t.Errorf("GET %s: redirected to %q", path, loc)
		}
	}
}

// rawGet sends request-target exactly as given, so that nothing on the
// client side cleans it, and returns the status and body.
func rawGet(t *testing.T, url, target string) (int, string) {
	t.Helper()
	addr := strings.TrimPrefix(url, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, addr)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestEscapesNotServed(t *testing.T) {
	f := newFixture(t)
	url, _ := f.start(t)
	treeName := filepath.Base(f.dir)
	targets := []string{
		"/../outside",
		"/../../outside",
		"/boot/../../outside",
		"/boot/../vmlinuz", // ".." is refused even when it would stay inside
		"/%2e%2e/outside",
		"/%2E%2E/outside",
		"/.%2e/outside",
		"/%2e%2e%2foutside",
		"/..%2foutside",
		"/..%5coutside",
		`/..\outside`,
		"/boot/%2e%2e/%2e%2e/outside",
		"/../" + treeName + "/vmlinuz",
		"/escape", // a symlink out of the tree
		"/%00",
		"/vmlinuz%00",
		"/vmlinuz%0a",
		"/" + f.outside, // an absolute path is not taken as one
		"/../" + strings.TrimPrefix(f.outside, "/"),
	}
	for _, target := range targets {
		status, body := rawGet(t, url, target)
		if status != http.StatusForbidden && status != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 403 or 404", target, status)
		}
		if strings.Contains(body, "outside the tree") || strings.Contains(body, string(content[:10])) {
			t.Errorf("GET %s: served %q", target, body)
		}
	}

	// The same through the handler directly, with no server in between.
	for _, target := range []string{"/../outside", "/%2e%2e/outside", "/..%2Foutside", "/escape"} {
		rec := f.serve(httptest.NewRequest("GET", target, nil))
		if rec.Code != http.StatusForbidden && rec.Code != http.StatusNotFound {
			t.Errorf("handler GET %s: status %d, want 403 or 404", target, rec.Code)
		}
		if strings.Contains(rec.Body.String(), "outside the tree") {
			t.Errorf("handler GET %s: served the file outside the tree", target)
		}
	}
}

func TestNotWorldReadableIsForbidden(t *testing.T) {
	f := newFixture(t)
	url, stop := f.start(t)
	resp, body := do(t, "GET", url+"/secret", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET /secret: status %d, want 403", resp.StatusCode)
	}
	if bytes.Contains(body, []byte("do not serve")) {
		t.Errorf("GET /secret: served the file: %q", body)
	}
	if resp, _ := do(t, "HEAD", url+"/secret", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("HEAD /secret: status %d, want 403", resp.StatusCode)
	}
	stop()
	// The log says why, for the operator.
	if log := f.log.String(); !strings.Contains(log, "world-readable") {
		t.Errorf("log does not say why /secret was refused:\n%s", log)
	}
}

func TestMissingIsNotFound(t *testing.T) {
	f := newFixture(t)
	url, _ := f.start(t)
	for _, path := range []string{"/missing", "/boot/missing", "/vmlinuz/under"} {
		if resp, _ := do(t, "GET", url+path, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, resp.StatusCode)
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	f := newFixture(t)
	url, _ := f.start(t)
	for _, method := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
		resp, _ := do(t, method, url+"/vmlinuz", nil)
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s: status %d, want 405", method, resp.StatusCode)
		}
		allow := resp.Header.Get("Allow")
		if !strings.Contains(allow, "GET") || !strings.Contains(allow, "HEAD") {
			t.Errorf("%s: Allow %q, want GET and HEAD", method, allow)
		}
	}
	// Not even for files that do not exist or are refused.
	if resp, _ := do(t, "POST", url+"/missing", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /missing: status %d, want 405", resp.StatusCode)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "vmlinuz")); err != nil {
		t.Error(err)
	}
}

func TestOneLogLinePerRequest(t *testing.T) {
	f := newFixture(t)
	url, stop := f.start(t)
	reqs := []struct {
		method, path string
		hdr          map[string]string
		status       int
		level        string
	}{
		{"GET", "/vmlinuz", nil, 200, "INFO"},
		{"HEAD", "/vmlinuz", nil, 200, "INFO"},
		{"GET", "/vmlinuz", map[string]string{"Range": "bytes=10-19"}, 206, "INFO"},
		{"GET", "/vmlinuz", map[string]string{"If-Modified-Since": modTime.Format(http.TimeFormat)}, 304, "INFO"},
		{"GET", "/missing", nil, 404, "WARN"},
		{"GET", "/secret", nil, 403, "WARN"},
		{"GET", "/boot", nil, 404, "WARN"},
		{"POST", "/vmlinuz", nil, 405, "WARN"},
	}
	for _, r := range reqs {
		resp, _ := do(t, r.method, url+r.path, r.hdr)
		if resp.StatusCode != r.status {
			t.Errorf("%s %s: status %d, want %d", r.method, r.path, resp.StatusCode, r.status)
		}
	}
	stop() // waits for the handlers, so every line is written
	lines := f.log.Lines()
	if len(lines) != len(reqs) {
		t.Fatalf("log has %d lines for %d requests:\n%s", len(lines), len(reqs), f.log)
	}
	for i, r := range reqs {
		line := lines[i]
		for _, want := range []string{
			"level=" + r.level,
			`msg="http request"`,
			"method=" + r.method,
			"path=" + r.path,
			"status=" + strconv.Itoa(r.status),
			"client=127.0.0.1:",
		} {
			if !strings.Contains(line, want) {
				t.Errorf("%s %s: log line %q does not contain %q", r.method, r.path, line, want)
			}
		}
	}
	if !strings.Contains(lines[0], "bytes="+strconv.Itoa(len(content))) {
		t.Errorf("GET log line %q does not count %d bytes", lines[0], len(content))
	}
	if !strings.Contains(lines[1], "bytes=0") {
		t.Errorf("HEAD log line %q should count 0 bytes", lines[1])
	}
	if !strings.Contains(lines[2], "bytes=10") {
		t.Errorf("Range log line %q should count 10 bytes", lines[2])
	}
	if !strings.Contains(lines[5], "reason=") {
		t.Errorf("403 log line %q has no reason", lines[5])
	}
}

func TestLogDirect(t *testing.T) {
	// Through the handler alone, the line is written by the time ServeHTTP
	// returns.
	f := newFixture(t)
	f.serve(httptest.NewRequest("GET", "/boot/grub/grub.cfg", nil))
	lines := f.log.Lines()
	if len(lines) != 1 {
		t.Fatalf("log has %d lines, want 1:\n%s", len(lines), f.log)
	}
	for _, want := range []string{"path=/boot/grub/grub.cfg", "status=200", "bytes=14"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("log line %q does not contain %q", lines[0], want)
		}
	}
}

func TestNilLogger(t *testing.T) {
	f := newFixture(t)
	h := &Files{FS: f.tree}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/vmlinuz", nil))
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), content) {
		t.Errorf("status %d, body %q; want 200 and the file", rec.Code, rec.Body.Bytes())
	}
}

// readAtOnly hides Seek, to check the io.ReaderAt fallback.
type readAtOnly struct {
	fs.File
	io.ReaderAt
}

// plainFile has neither Seek nor ReadAt.
type plainFile struct{ fs.File }

type wrapFS struct {
	fsys fs.FS
	wrap func(fs.File) fs.File
}

func (w wrapFS) Open(name string) (fs.File, error) {
	f, err := w.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	if _, ok := f.(io.ReaderAt); !ok {
		return f, nil // a directory
	}
	return w.wrap(f), nil
}

func TestOtherFS(t *testing.T) {
	mfs := fstest.MapFS{
		"pxelinux.cfg/default": {Data: []byte("DEFAULT linux\n"), Mode: 0o644, ModTime: modTime},
		"boot.ipxe":            {Data: []byte("#!ipxe\nchain http://x/y\n"), Mode: 0o644, ModTime: modTime},
	}
	tests := []struct {
		name string
		fsys fs.FS
	}{
		{"MapFS", mfs},
		{"ReaderAt only", wrapFS{mfs, func(f fs.File) fs.File { return readAtOnly{f, f.(io.ReaderAt)} }}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &Files{FS: tt.fsys}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/pxelinux.cfg/default", nil))
			if rec.Code != http.StatusOK || rec.Body.String() != "DEFAULT linux\n" {
				t.Errorf("GET: status %d, body %q", rec.Code, rec.Body.String())
			}
			rec = httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/boot.ipxe", nil)
			req.Header.Set("Range", "bytes=0-5")
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusPartialContent || rec.Body.String() != "#!ipxe" {
				t.Errorf("Range: status %d, body %q", rec.Code, rec.Body.String())
			}
			// A directory in an fs.FS that opens directories is still 404.
			for _, path := range []string{"/pxelinux.cfg", "/"} {
				rec = httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
				if rec.Code != http.StatusNotFound || strings.Contains(rec.Body.String(), "default") {
					t.Errorf("GET %s: status %d, body %q; want 404 and no listing", path, rec.Code, rec.Body.String())
				}
			}
		})
	}

	h := &Files{FS: wrapFS{mfs, func(f fs.File) fs.File { return plainFile{f} }}}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/boot.ipxe", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("file with neither Seek nor ReadAt: status %d, want 500", rec.Code)
	}
}
