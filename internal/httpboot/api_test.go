package httpboot

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type fakeHosts struct {
	state map[string]string
	by    string
}

func (f *fakeHosts) Resolve(n string) (string, bool) {
	if n == "00:16:3e:72:79:e4" {
		n = "test_hvm"
	}
	_, ok := f.state[n]
	return n, ok
}
func (f *fakeHosts) SetState(name, st, by string) error   { f.state[name], f.by = st, by; return nil }
func (f *fakeHosts) CheckHostToken(name, tok string) bool { return tok == "host-"+name }
func (f *fakeHosts) List() any                            { return f.state }
func (f *fakeHosts) Get(name string) any {
	return map[string]string{"name": name, "state": f.state[name]}
}

func TestAPI(t *testing.T) {
	hosts := &fakeHosts{state: map[string]string{"test_hvm": "install", "test_pvm": "install"}}
	srv := httptest.NewServer((&API{Token: "api-secret", Hosts: hosts}).Handler())
	defer srv.Close()
	do := func(method, path, auth string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" && resp.StatusCode != 405 {
			t.Errorf("%s %s: Content-Type %q", method, path, ct)
		}
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	for _, tc := range []struct {
		method, path, auth string
		status             int
		state              string // test_hvm's state afterwards
	}{
		{"GET", "/api/v1/hosts", "", 401, "install"},
		{"GET", "/api/v1/hosts", "Bearer wrong", 401, "install"},
		{"POST", "/api/v1/hosts/test_hvm/installed", "", 401, "install"},
		{"POST", "/api/v1/hosts/test_hvm/installed?token=host-test_pvm", "", 401, "install"}, // another host's token
		{"POST", "/api/v1/hosts/nobody/installed?token=host-nobody", "", 401, "install"},     // no probing with host tokens
		{"POST", "/api/v1/hosts/test_hvm/install?token=host-test_hvm", "", 401, "install"},   // host token: installed only
		{"GET", "/api/v1/hosts/test_hvm?token=host-test_hvm", "", 401, "install"},
		{"GET", "/api/v1/hosts/test_hvm/installed", "Bearer api-secret", 405, "install"},
		{"POST", "/api/v1/hosts/nobody/installed", "Bearer api-secret", 404, "install"},
		{"POST", "/api/v1/hosts/test_hvm/installed?token=host-test_hvm", "", 200, "local"},
		{"POST", "/api/v1/hosts/test_hvm/install", "bearer api-secret", 200, "install"},
		{"POST", "/api/v1/hosts/00:16:3e:72:79:e4/installed", "Bearer host-test_hvm", 200, "local"},
		{"GET", "/api/v1/hosts/test_hvm", "Bearer api-secret", 200, "local"},
	} {
		status, body := do(tc.method, tc.path, tc.auth)
		if status != tc.status {
			t.Errorf("%s %s (%q): status %d, want %d (%v)", tc.method, tc.path, tc.auth, status, tc.status, body)
		}
		if status == 401 && !strings.Contains(body["error"].(string), "token") {
			t.Errorf("%s %s: 401 body %v", tc.method, tc.path, body)
		}
		if hosts.state["test_hvm"] != tc.state {
			t.Errorf("%s %s: state %s, want %s", tc.method, tc.path, hosts.state["test_hvm"], tc.state)
		}
	}
	if !strings.HasPrefix(hosts.by, "api 127.0.0.1:") {
		t.Errorf("state change recorded by %q, want the caller's address", hosts.by)
	}
}
