package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzHandler: any path and method, either transport, with or without the
// API or a host token: no panic, a known status, JSON errors, and no over-long
// or control-character host name reaching the service.
func FuzzHandler(f *testing.F) {
	for _, p := range []string{
		"/api/v1/hosts", "/api/v1/hosts/test_hvm", "/api/v1/hosts/test_hvm/installed?token=host-test_hvm",
		"/api/v1/hosts/00:16:3e:72:79:e4/install", "/api/v1/leases", "/api/v1/hosts/%00", "/api/v1/hosts/..",
		"/api/v1/hosts/../leases", "/api/v1/hosts/%2e%2e/local", "/api/v1/hosts/a%2Fb/local", "/api/v1/hosts/ホスト",
		"/api/v1/hosts/%ff", "/api/v1//hosts", "/api/v1/hosts/" + strings.Repeat("a", 300) + "/installed",
		"/api/v1/hosts/x/y/z/w", "/", "/api/v1/hosts/%zz", "/api/v1/hosts/a%0Db/installed?token=%00",
	} {
		for _, m := range []string{"GET", "POST", "HEAD", "PUT"} {
			f.Add(m, p, uint8(0))
			f.Add(m, p, uint8(1))
			f.Add(m, p, uint8(2))
		}
	}
	svc := newFake()
	handlers := []http.Handler{
		Handler(svc, Options{Trusted: true}),
		Handler(svc, Options{Token: "api-secret"}),
		Handler(svc, Options{}),
	}
	f.Fuzz(func(t *testing.T, method, target string, auth uint8) {
		u, err := url.ParseRequestURI(target)
		if err != nil || method == "" || strings.ContainsAny(method, " \t\r\n/") {
			return
		}
		for _, h := range handlers {
			req := httptest.NewRequest("GET", "/", nil)
			req.Method, req.URL, req.RequestURI = method, u, target
			switch auth % 3 {
			case 1:
				req.Header.Set("Authorization", "Bearer api-secret")
			case 2:
				req.Header.Set("Authorization", "Bearer host-test_hvm")
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			switch w.Code {
			case 200:
			case 400, 401, 404, 405, 500:
				var e errorBody
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" || e.Code == "" {
					t.Fatalf("%s %q: %d %q", method, target, w.Code, w.Body.Bytes())
				}
			default:
				t.Fatalf("%s %q: status %d", method, target, w.Code)
			}
			if w.Header().Get("Content-Type") != "application/json" || w.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("%s %q: headers %v", method, target, w.Header())
			}
		}
		svc.mu.Lock()
		defer svc.mu.Unlock()
		for _, a := range svc.asked {
			if len(a) > maxHostName || checkHost(a) != nil {
				t.Fatalf("the service was asked about %q", a)
			}
		}
		svc.asked = svc.asked[:0]
	})
}
