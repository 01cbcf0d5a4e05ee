package httpboot

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

// rangeHandler serves content as /vmlinuz from memory.
func rangeHandler() *Files {
	return &Files{FS: fstest.MapFS{"vmlinuz": {Data: content, Mode: 0o644, ModTime: modTime}}}
}

func getRange(h http.Handler, rng string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", "/vmlinuz", nil)
	req.Header.Set("Range", rng)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// ranges is "bytes=" and n one-byte ranges from first, step apart.
func ranges(n, first, step int) string {
	parts := make([]string, n)
	for i := range parts {
		b := first + i*step
		parts[i] = fmt.Sprintf("%d-%d", b, b)
	}
	return "bytes=" + strings.Join(parts, ",")
}

// Multi-range abuse is refused with 416: too many parts (each costs a part
// header: tiny ranges made the answer ~30 times the request) and
// overlapping parts. Ordinary ranges still work.
func TestRangeParts(t *testing.T) {
	h := rangeHandler()
	const refused = 0 // 416 from the cap, with Content-Range: bytes */size
	for _, tt := range []struct {
		rng  string
		want int
	}{
		{ranges(MaxRanges+1, 0, 2), refused},
		{ranges(40, 0, 1), refused},
		{"bytes=0-9,5-14", refused},
		{"bytes=-10,50-", refused}, // 54-63 and 50-63
		{"bytes=0-,0-", refused},
		{"bytes=-0", refused}, // ServeContent: 206 "bytes 64-63/64"
		{"bytes=0-1,-0", refused},
		{ranges(MaxRanges, 0, 2), http.StatusPartialContent},
		{"bytes=0-1,10-11,20-21", http.StatusPartialContent},
		{"bytes=20-21,0-1", http.StatusPartialContent}, // out of order, apart
		{"bytes=0-1,2-3", http.StatusPartialContent},   // adjacent
		{"bytes=10-19", http.StatusPartialContent},
		{"bytes=0-1,100-200", http.StatusPartialContent}, // one unsatisfiable part is dropped
		{"bytes=100-200", http.StatusRequestedRangeNotSatisfiable},
		{"bytes=x", http.StatusRequestedRangeNotSatisfiable},
		{"items=0-1", http.StatusRequestedRangeNotSatisfiable}, // net/http's answer
	} {
		rec := getRange(h, tt.rng)
		want := tt.want
		if want == refused {
			want = http.StatusRequestedRangeNotSatisfiable
			if cr := rec.Header().Get("Content-Range"); cr != fmt.Sprintf("bytes */%d", len(content)) {
				t.Errorf("Range %.60s: Content-Range %q", tt.rng, cr)
			}
		}
		if rec.Code != want {
			t.Errorf("Range %.60s: status %d, want %d", tt.rng, rec.Code, want)
		}
	}
	// The amplification the cap removes: a header of tiny ranges, as large
	// as the server reads, over a 1 MiB file.
	big := bytes.Repeat([]byte{'x'}, 1<<20)
	hb := &Files{FS: fstest.MapFS{"vmlinuz": {Data: big, Mode: 0o644, ModTime: modTime}}}
	hdr := ranges(1400, 0, 2) // ~12 KiB, under MaxHeaderBytes
	rec := getRange(hb, hdr)
	t.Logf("a %d-byte Range header of 1400 parts: status %d, %d bytes answered", len(hdr), rec.Code, rec.Body.Len())
	if rec.Code != http.StatusRequestedRangeNotSatisfiable || rec.Body.Len() > 200 {
		t.Errorf("1400 tiny ranges: status %d, %d bytes; want a short 416", rec.Code, rec.Body.Len())
	}
}

// FuzzRange runs any Range header through the real handler and checks the
// answer: a status net/http's ServeContent gives, the right bytes in every
// part, at most MaxRanges parts that do not overlap, and an answer bounded
// by the file plus the part headers.
func FuzzRange(f *testing.F) {
	for _, s := range []string{"bytes=0-0", "bytes=10-19", "bytes=-4", "bytes=60-", "bytes=0-1,10-11",
		"bytes=0-9,5-14", ranges(17, 0, 2), "bytes= 1 - 2 , ,3-4", "bytes=-0", "bytes=0--1", "bytes=99999999999999999999-"} {
		f.Add(s)
	}
	h := rangeHandler()
	f.Fuzz(func(t *testing.T, rng string) {
		rec := getRange(h, rng)
		body := rec.Body.Bytes()
		switch rec.Code {
		case http.StatusOK:
			if !bytes.Equal(body, content) {
				t.Fatalf("200 with %q", body)
			}
		case http.StatusRequestedRangeNotSatisfiable:
		case http.StatusPartialContent:
			if len(body) > len(content)+MaxRanges*200 {
				t.Fatalf("answer of %d bytes for a %d-byte file", len(body), len(content))
			}
			mt, params, _ := mime.ParseMediaType(rec.Header().Get("Content-Type"))
			if mt != "multipart/byteranges" {
				checkPart(t, rec.Header().Get("Content-Range"), body)
				return
			}
			mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
			var seen []span
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("multipart: %v", err)
				}
				data, _ := io.ReadAll(p)
				s := checkPart(t, p.Header.Get("Content-Range"), data)
				for _, o := range seen {
					if s.start < o.end && o.start < s.end {
						t.Fatalf("parts %v and %v overlap", s, o)
					}
				}
				if seen = append(seen, s); len(seen) > MaxRanges {
					t.Fatalf("%d parts", len(seen))
				}
			}
		default:
			t.Fatalf("status %d", rec.Code)
		}
	})
}

// checkPart checks that data is the part of content cr ("bytes a-b/size")
// names, and returns it.
func checkPart(t *testing.T, cr string, data []byte) span {
	t.Helper()
	var a, b, size int64
	if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &a, &b, &size); err != nil || size != int64(len(content)) || a < 0 || b < a || b >= size {
		t.Fatalf("Content-Range %q (%v)", cr, err)
	}
	if !bytes.Equal(data, content[a:b+1]) {
		t.Fatalf("Content-Range %q with %q", cr, data)
	}
	return span{a, b + 1}
}
