package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// response is an answer as the tests look at it.
type response struct {
	status int
	header http.Header
	raw    []byte
	err    errorBody
}

// call makes one request against h directly (RemoteAddr 192.0.2.1:1234).
func call(t *testing.T, h http.Handler, method, target, auth string, body io.Reader) response {
	t.Helper()
	req := httptest.NewRequest(method, target, body)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return check(t, method+" "+target, w.Result())
}

// check asserts what every response has: JSON, no-store, and an error
// sentence on every failure.
func check(t *testing.T, what string, resp *http.Response) response {
	t.Helper()
	defer resp.Body.Close()
	a := response{status: resp.StatusCode, header: resp.Header}
	a.raw, _ = io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s: Cache-Control %q", what, cc)
	}
	if resp.StatusCode != http.StatusOK {
		if err := json.Unmarshal(a.raw, &a.err); err != nil || a.err.Error == "" {
			t.Errorf("%s: status %d with body %q, want {\"error\": ...}", what, resp.StatusCode, a.raw)
		}
	}
	return a
}

// TestTCP ports internal/httpboot's API test and adds the routes the
// control socket had: API token for everything, the host's own token for
// its own install callback only.
func TestTCP(t *testing.T) {
	svc := newFake()
	srv := httptest.NewServer(Handler(svc, Options{Token: "api-secret"}))
	defer srv.Close()
	for _, tc := range []struct {
		method, path, auth string
		status             int
		code               string
		state              string // test_hvm's state afterwards
	}{
		{"GET", "/api/v1/hosts", "", 401, "unauthorized", "install"},
		{"GET", "/api/v1/hosts", "Bearer wrong", 401, "unauthorized", "install"},
		{"GET", "/api/v1/hosts", "Basic YXBpLXNlY3JldA==", 401, "unauthorized", "install"},
		{"GET", "/api/v1/leases", "", 401, "unauthorized", "install"},
		{"GET", "/api/v1/nothing", "", 401, "unauthorized", "install"}, // no route map for strangers
		{"POST", "/api/v1/hosts/test_hvm/installed", "", 401, "unauthorized", "install"},
		{"POST", "/api/v1/hosts/test_hvm/installed?token=host-test_pvm", "", 401, "unauthorized", "install"}, // another host's token
		{"POST", "/api/v1/hosts/nobody/installed?token=host-nobody", "", 401, "unauthorized", "install"},     // no probing with host tokens
		{"POST", "/api/v1/hosts/test_hvm/install?token=host-test_hvm", "", 401, "unauthorized", "install"},   // host token: installed only
		{"POST", "/api/v1/hosts/test_hvm/local?token=host-test_hvm", "", 401, "unauthorized", "install"},
		{"GET", "/api/v1/hosts/test_hvm?token=host-test_hvm", "", 401, "unauthorized", "install"},
		{"GET", "/api/v1/hosts/test_hvm/installed?token=host-test_hvm", "", 401, "unauthorized", "install"},
		{"POST", "/api/v1/hosts/test_hvm/installed?token=api-secret", "", 401, "unauthorized", "install"}, // the API token goes in the header
		{"GET", "/api/v1/hosts/test_hvm/installed", "Bearer api-secret", 405, "method_not_allowed", "install"},
		{"GET", "/api/v1/nothing", "Bearer api-secret", 404, "no_route", "install"},
		{"GET", "/api/v1/hosts/test_hvm/reboot", "Bearer api-secret", 404, "no_route", "install"},
		{"POST", "/api/v1/hosts/nobody/installed", "Bearer api-secret", 404, "not_found", "install"},
		{"GET", "/api/v1/hosts/nobody", "Bearer api-secret", 404, "not_found", "install"},
		{"POST", "/api/v1/hosts/test_pvm/install", "Bearer api-secret", 400, "bad_request", "install"}, // no profile
		{"POST", "/api/v1/hosts/test_hvm/installed?token=host-test_hvm", "", 200, "", "local"},
		{"POST", "/api/v1/hosts/test_hvm/installed?token=host-test_hvm", "", 401, "unauthorized", "local"}, // spent
		{"POST", "/api/v1/hosts/test_hvm/install", "bearer api-secret", 200, "", "install"},
		{"POST", "/api/v1/hosts/00:16:3e:72:79:e4/installed", "Bearer host-test_hvm", 200, "", "local"},
		{"GET", "/api/v1/hosts/test_hvm", "Bearer api-secret", 200, "", "local"},
		{"POST", "/api/v1/hosts/test_hvm/install", "Bearer api-secret", 200, "", "install"},
		{"POST", "/api/v1/hosts/test_hvm/local", "Bearer api-secret", 200, "", "local"},
		{"GET", "/api/v1/hosts", "Bearer api-secret", 200, "", "local"},
		{"GET", "/api/v1/leases", "Bearer api-secret", 200, "", "local"},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		what := tc.method + " " + tc.path + " (" + tc.auth + ")"
		a := check(t, what, resp)
		if a.status != tc.status || a.err.Code != tc.code {
			t.Errorf("%s: %d %q, want %d %q (%s)", what, a.status, a.err.Code, tc.status, tc.code, a.raw)
		}
		if a.status == 401 {
			if !strings.Contains(a.err.Error, "token") {
				t.Errorf("%s: 401 body %s", what, a.raw)
			}
			if a.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: 401 without WWW-Authenticate", what)
			}
		}
		if a.status == 405 && a.header.Get("Allow") != "POST" {
			t.Errorf("%s: Allow %q", what, a.header.Get("Allow"))
		}
		if got := svc.state("test_hvm"); got != tc.state {
			t.Errorf("%s: test_hvm state %s, want %s", what, got, tc.state)
		}
	}
	if !strings.HasPrefix(svc.by, "api 127.0.0.1:") {
		t.Errorf("state change recorded by %q, want the caller's address", svc.by)
	}
}

// TestTCPViews: the answers are the typed views with the old JSON names.
func TestTCPViews(t *testing.T) {
	h := Handler(newFake(), Options{Token: "api-secret"})
	a := call(t, h, "GET", "/api/v1/hosts", "Bearer api-secret", nil)
	var hosts []map[string]any
	if err := json.Unmarshal(a.raw, &hosts); err != nil || len(hosts) != 2 {
		t.Fatalf("hosts: %v %s", err, a.raw)
	}
	for _, k := range []string{"name", "macs", "profile", "state", "declared"} {
		if _, ok := hosts[0][k]; !ok {
			t.Errorf("host view has no %q: %v", k, hosts[0])
		}
	}
	a = call(t, h, "POST", "/api/v1/hosts/test_hvm/local", "Bearer api-secret", nil)
	var v HostView
	if err := json.Unmarshal(a.raw, &v); err != nil || v.Name != "test_hvm" || v.State != "local" || v.By != "api 192.0.2.1:1234" || v.Changed == nil {
		t.Errorf("set local: %v %+v", err, v)
	}
	a = call(t, h, "GET", "/api/v1/leases", "Bearer api-secret", nil)
	var leases []map[string]any
	if err := json.Unmarshal(a.raw, &leases); err != nil || len(leases) != 1 {
		t.Fatalf("leases: %v %s", err, a.raw)
	}
	for _, k := range []string{"ip", "mac", "client", "state", "start", "expiry", "hostname"} {
		if _, ok := leases[0][k]; !ok {
			t.Errorf("lease view has no %q: %v", k, leases[0])
		}
	}
}

// TestEmptyTokenDeniesAll: without a configured API token nothing is
// allowed on TCP, not even host tokens (they derive from it).
func TestEmptyTokenDeniesAll(t *testing.T) {
	svc := newFake()
	h := Handler(svc, Options{})
	for _, tc := range []struct{ method, path, auth string }{
		{"GET", "/api/v1/hosts", ""},
		{"GET", "/api/v1/hosts", "Bearer "},
		{"GET", "/api/v1/hosts", "Bearer x"},
		{"POST", "/api/v1/hosts/test_hvm/installed?token=host-test_hvm", ""},
		{"POST", "/api/v1/hosts/test_hvm/installed", "Bearer host-test_hvm"},
	} {
		if a := call(t, h, tc.method, tc.path, tc.auth, nil); a.status != 401 {
			t.Errorf("%s %s (%q): %d, want 401", tc.method, tc.path, tc.auth, a.status)
		}
	}
	if svc.state("test_hvm") != "install" || svc.calls() != 0 {
		t.Errorf("the service was called (%d calls, state %s)", svc.calls(), svc.state("test_hvm"))
	}
}

// TestTrusted: the control socket needs no token and serves the same routes.
func TestTrusted(t *testing.T) {
	svc := newFake()
	h := Handler(svc, Options{Trusted: true, Token: "api-secret"})
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/api/v1/hosts", 200, ""},
		{"GET", "/api/v1/hosts/00:16:3E:72:79:E4", 200, ""},
		{"GET", "/api/v1/leases", 200, ""},
		{"POST", "/api/v1/hosts/test_hvm/local", 200, ""},
		{"POST", "/api/v1/hosts/test_hvm/install", 200, ""},
		{"POST", "/api/v1/hosts/test_hvm/installed", 200, ""},
		{"GET", "/api/v1/hosts/nobody", 404, "not_found"},
		{"POST", "/api/v1/hosts/nobody/install", 404, "not_found"},
		{"POST", "/api/v1/hosts/test_pvm/install", 400, "bad_request"},
		{"POST", "/api/v1/hosts", 405, "method_not_allowed"},
		{"DELETE", "/api/v1/hosts/test_hvm", 405, "method_not_allowed"},
		{"GET", "/leases", 404, "no_route"}, // the old control routes are gone
		{"GET", "/hosts", 404, "no_route"},
		{"POST", "/hosts/test_hvm/state?to=install", 404, "no_route"},
	} {
		a := call(t, h, tc.method, tc.path, "", nil)
		if a.status != tc.status || a.err.Code != tc.code {
			t.Errorf("%s %s: %d %q, want %d %q (%s)", tc.method, tc.path, a.status, a.err.Code, tc.status, tc.code, a.raw)
		}
	}
	if a := call(t, h, "POST", "/api/v1/hosts/test_hvm/installed", "", nil); a.status != 200 || svc.by != "control socket" {
		t.Errorf("by %q, want control socket", svc.by)
	}
	for by, want := range map[string]string{
		"pxed host":              "pxed host",
		"evil\nname":             "control socket",
		strings.Repeat("x", 100): "control socket",
		"  ":                     "control socket",
	} {
		req := httptest.NewRequest("POST", "/api/v1/hosts/test_hvm/local", nil)
		req.Header.Set(byHeader, by)
		h.ServeHTTP(httptest.NewRecorder(), req)
		if svc.by != want {
			t.Errorf("X-Pxed-By %q: recorded by %q, want %q", by, svc.by, want)
		}
	}
	// Untrusted, the header is ignored: the address is recorded.
	req := httptest.NewRequest("POST", "/api/v1/hosts/test_hvm/local", nil)
	req.Header.Set(byHeader, "pxed host")
	req.Header.Set("Authorization", "Bearer api-secret")
	Handler(svc, Options{Token: "api-secret"}).ServeHTTP(httptest.NewRecorder(), req)
	if svc.by != "api 192.0.2.1:1234" {
		t.Errorf("TCP caller recorded as %q", svc.by)
	}
}

// TestOff: no DHCP and no inventory are 404s with a JSON sentence on both
// transports.
func TestOff(t *testing.T) {
	svc := newFake()
	svc.dhcp, svc.leases, svc.hosts = false, nil, nil
	for _, o := range []Options{{Trusted: true}, {Token: "api-secret"}} {
		h := Handler(svc, o)
		for _, tc := range []struct{ method, path, code, words string }{
			{"GET", "/api/v1/leases", "no_dhcp", "DHCP"},
			{"GET", "/api/v1/hosts", "no_inventory", "inventory"},
			{"GET", "/api/v1/hosts/test_hvm", "no_inventory", "inventory"},
			{"POST", "/api/v1/hosts/test_hvm/install", "no_inventory", "inventory"},
		} {
			a := call(t, h, tc.method, tc.path, "Bearer api-secret", nil)
			if a.status != 404 || a.err.Code != tc.code || !strings.Contains(a.err.Error, tc.words) {
				t.Errorf("trusted=%v %s %s: %d %s", o.Trusted, tc.method, tc.path, a.status, a.raw)
			}
		}
		// The install callback cannot tell "no inventory" either.
		if a := call(t, h, "POST", "/api/v1/hosts/test_hvm/installed?token=host-test_hvm", "", nil); !o.Trusted && a.status != 401 {
			t.Errorf("host token without inventory: %d", a.status)
		}
	}
}

// TestEmptyLists: no hosts or no leases are [], not null.
func TestEmptyLists(t *testing.T) {
	svc := newFake()
	svc.hosts, svc.leases = map[string]*HostView{}, nil
	h := Handler(svc, Options{Trusted: true})
	for _, p := range []string{"/api/v1/hosts", "/api/v1/leases"} {
		if a := call(t, h, "GET", p, "", nil); strings.TrimSpace(string(a.raw)) != "[]" {
			t.Errorf("%s: %s, want []", p, a.raw)
		}
	}
}

func TestInternalError(t *testing.T) {
	svc := newFake()
	svc.breakSet = true
	a := call(t, Handler(svc, Options{Trusted: true}), "POST", "/api/v1/hosts/test_hvm/local", "", nil)
	if a.status != 500 || a.err.Code != "internal" || !strings.Contains(a.err.Error, "disk full") {
		t.Errorf("%d %s", a.status, a.raw)
	}
}

// TestNotFoundMessage names the host asked about.
func TestNotFoundMessage(t *testing.T) {
	a := call(t, Handler(newFake(), Options{Trusted: true}), "GET", "/api/v1/hosts/nobody", "", nil)
	if a.err.Error != `no host "nobody" in the inventory` {
		t.Errorf("%s", a.raw)
	}
}

// TestBodies: no call takes a body; big ones are refused before anything else.
func TestBodies(t *testing.T) {
	svc := newFake()
	h := Handler(svc, Options{Trusted: true})
	if a := call(t, h, "POST", "/api/v1/hosts/test_hvm/local", "", strings.NewReader("{}")); a.status != 200 {
		t.Errorf("small body: %d %s", a.status, a.raw)
	}
	big := strings.Repeat("x", maxBody+1)
	if a := call(t, h, "POST", "/api/v1/hosts/test_hvm/install", "", strings.NewReader(big)); a.status != 413 || a.err.Code != "too_large" {
		t.Errorf("big body: %d %s", a.status, a.raw)
	}
	// Unknown length (chunked): read up to the limit, no further.
	req := httptest.NewRequest("POST", "/api/v1/hosts/test_hvm/install", nil)
	r := &countingReader{r: strings.NewReader(strings.Repeat("x", 1<<20))}
	req.Body, req.ContentLength = io.NopCloser(r), -1
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 413 || r.n > maxBody+1 {
		t.Errorf("chunked big body: %d, read %d bytes", w.Code, r.n)
	}
	if svc.state("test_hvm") != "local" {
		t.Errorf("a refused request changed the state")
	}
	// Over real TCP too, before authentication.
	srv := httptest.NewServer(Handler(svc, Options{Token: "api-secret"}))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/api/v1/hosts/test_hvm/install", "text/plain", bytes.NewReader(make([]byte, 1<<20)))
	if err != nil {
		t.Fatal(err)
	}
	if a := check(t, "big POST", resp); a.status != 413 {
		t.Errorf("big POST over TCP: %d", a.status)
	}
}

// A body announced and never sent must not hold the connection: net/http
// would wait for it without a deadline after the handler. The API reads it
// within BodyTimeout and answers 408.
func TestBodyNeverSent(t *testing.T) {
	for _, o := range []Options{{Token: "api-secret", BodyTimeout: 200 * time.Millisecond}, {Trusted: true, BodyTimeout: 200 * time.Millisecond}} {
		srv := httptest.NewServer(Handler(newFake(), o))
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /api/v1/hosts/test_hvm/install HTTP/1.1\r\nHost: pxed\r\nContent-Length: 100\r\n\r\n{")
		c.SetReadDeadline(time.Now().Add(10 * time.Second)) // the fix answers after 200 ms
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("trusted %v: a body that never comes: %v", o.Trusted, err)
		}
		if resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
			t.Errorf("trusted %v: status %d, close %v; want 408 and Connection: close", o.Trusted, resp.StatusCode, resp.Close)
		}
		c.Close()
		srv.Close()
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestHostNames: host names are bounded and sane before the service sees
// them; odd paths never panic and always response JSON.
func TestHostNames(t *testing.T) {
	long := strings.Repeat("a", maxHostName+1)
	for _, o := range []Options{{Trusted: true}, {Token: "api-secret"}} {
		svc := newFake()
		h := Handler(svc, o)
		for _, tc := range []struct {
			method, path, auth string
			status             int
		}{
			{"GET", "/api/v1/hosts/" + long, "Bearer api-secret", 400},
			{"POST", "/api/v1/hosts/" + long + "/install", "Bearer api-secret", 400},
			{"GET", "/api/v1/hosts/" + strings.Repeat("a", maxHostName), "Bearer api-secret", 404}, // at the limit: asked
			{"GET", "/api/v1/hosts/" + strings.Repeat("%e2%82%ac", 100), "Bearer api-secret", 400},
			{"GET", "/api/v1/hosts/%00", "Bearer api-secret", 400},
			{"GET", "/api/v1/hosts/a%0Ab", "Bearer api-secret", 400},
			{"GET", "/api/v1/hosts/%ff%fe", "Bearer api-secret", 400},
			{"GET", "/api/v1/hosts/h%C3%B4te", "Bearer api-secret", 404},
			{"GET", "/api/v1/hosts/ホスト", "Bearer api-secret", 404},
			{"GET", "/api/v1/hosts/..", "Bearer api-secret", 404},
			{"GET", "/api/v1/hosts/../leases", "Bearer api-secret", 404},
			{"GET", "/api/v1/hosts/%2e%2e/%2e%2e/leases", "Bearer api-secret", 404},
			{"GET", "/api/v1/hosts/a%2Fb", "Bearer api-secret", 404},
			{"GET", "/api/v1/hosts/", "Bearer api-secret", 404},
			{"GET", "/api/v1/hosts//install", "Bearer api-secret", 404},
			{"GET", "/api/v1//hosts", "Bearer api-secret", 404},
			{"GET", "/api/v1", "Bearer api-secret", 404},
			{"GET", "/api/v1/", "Bearer api-secret", 404},
			{"GET", "/api/v1/hosts/a/b/c/d/e", "Bearer api-secret", 404},
			{"GET", "/api/v1/" + strings.Repeat("/x", 5000), "Bearer api-secret", 404},
		} {
			a := call(t, h, tc.method, tc.path, tc.auth, nil)
			if a.status != tc.status {
				t.Errorf("trusted=%v %s %.80s: %d, want %d (%s)", o.Trusted, tc.method, tc.path, a.status, tc.status, a.raw)
			}
		}
		if svc.longest() > maxHostName {
			t.Errorf("the service was asked about a %d-byte name", svc.longest())
		}
	}
	// A host token with an over-long name is the same 401 as any other,
	// without asking the service.
	svc := newFake()
	a := call(t, Handler(svc, Options{Token: "api-secret"}), "POST", "/api/v1/hosts/"+long+"/installed?token=host-"+long, "", nil)
	if a.status != 401 || svc.calls() != 0 {
		t.Errorf("long name with a host token: %d, %d service calls", a.status, svc.calls())
	}
}

// TestLog: one line per request, with the reason on errors and never the
// query (it may hold a host token).
func TestLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	h := Handler(newFake(), Options{Token: "api-secret", Logger: log})
	call(t, h, "GET", "/api/v1/hosts", "Bearer api-secret", nil)
	call(t, h, "POST", "/api/v1/hosts/test_hvm/installed?token=host-wrong", "", nil)
	call(t, h, "GET", "/api/v1/hosts/"+strings.Repeat("z", 2000), "Bearer api-secret", nil)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d log lines, want 3:\n%s", len(lines), buf.String())
	}
	var recs []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, m)
	}
	if r := recs[0]; r["msg"] != "api request" || r["client"] != "192.0.2.1:1234" || r["method"] != "GET" ||
		r["path"] != "/api/v1/hosts" || r["status"] != 200.0 || r["level"] != "INFO" || r["reason"] != nil {
		t.Errorf("ok line: %v", r)
	}
	if r := recs[1]; r["status"] != 401.0 || r["level"] != "WARN" || !strings.Contains(r["reason"].(string), "token") {
		t.Errorf("401 line: %v", r)
	}
	if strings.Contains(buf.String(), "host-wrong") {
		t.Errorf("a token reached the log: %s", lines[1])
	}
	if p := recs[2]["path"].(string); len(p) > maxLogPath+len("…") {
		t.Errorf("logged a %d-byte path", len(p))
	}

	buf.Reset()
	call(t, Handler(newFake(), Options{Trusted: true, Logger: log}), "GET", "/api/v1/leases", "", nil)
	if !strings.Contains(buf.String(), `"client":"192.0.2.1:1234"`) {
		t.Errorf("trusted line: %s", buf.String())
	}
}

// TestEvents: GET /api/v1/events lists the boot events, of one host by
// name, MAC or IP, the latest N with limit; a bad limit is a 400; the
// route needs the API token like the others.
func TestEvents(t *testing.T) {
	h := Handler(newFake(), Options{Token: "api-secret"})
	if a := call(t, h, "GET", "/api/v1/events", "", nil); a.status != 401 {
		t.Fatalf("without a token: %d", a.status)
	}
	list := func(target string) []EventView {
		t.Helper()
		a := call(t, h, "GET", target, "Bearer api-secret", nil)
		var v []EventView
		if a.status != 200 || json.Unmarshal(a.raw, &v) != nil {
			t.Fatalf("%s: %d %s", target, a.status, a.raw)
		}
		return v
	}
	if v := list("/api/v1/events"); len(v) != 3 {
		t.Errorf("all events: %d, want 3", len(v))
	}
	if v := list("/api/v1/events?host=pvm"); len(v) != 2 || v[1].Kind != "tftp" {
		t.Errorf("pvm's events: %+v", v)
	}
	if v := list("/api/v1/events?host=00:16:3e:72:79:e4&limit=1"); len(v) != 1 || v[0].Kind != "dhcp" {
		t.Errorf("by MAC, limit 1: %+v", v)
	}
	if a := call(t, h, "GET", "/api/v1/events?limit=many", "Bearer api-secret", nil); a.status != 400 {
		t.Errorf("limit=many: %d %s, want 400", a.status, a.raw)
	}
}
