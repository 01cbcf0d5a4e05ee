package httpboot

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestObserveSeesTheStatus: the status a handler writes is observed, also
// when it writes a body without WriteHeader (200) and when the body goes
// through io.Copy (ReadFrom, as http.ServeContent does).
func TestObserveSeesTheStatus(t *testing.T) {
	got := map[string]int{}
	h := Observe(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/missing":
			http.NotFound(w, r)
		case "/copy":
			io.Copy(w, strings.NewReader("body"))
		case "/nothing":
		default:
			w.Write([]byte("ok"))
		}
	}), func(r *http.Request, code int) { got[r.URL.Path] = code })
	for _, p := range []string{"/a", "/missing", "/copy", "/nothing"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
	}
	want := map[string]int{"/a": 200, "/missing": 404, "/copy": 200, "/nothing": 200}
	for p, code := range want {
		if got[p] != code {
			t.Errorf("%s: observed %d, want %d", p, got[p], code)
		}
	}
}
