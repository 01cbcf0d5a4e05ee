package inventory

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pxed/internal/config"
)

// Netboot once: the callback switches the host to local; that survives a
// restart; a changed declaration in the file wins over it.
func TestStateSurvivesRestartAndFileWins(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts.json")
	inv := loadExample(t)
	sf, err := OpenStateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	live := NewStates(sf, nil)
	h, err := live.Set(inv, "00:16:3e:72:79:e4", Local, "api 192.0.2.177")
	if err != nil || h.Name != "test_hvm" {
		t.Fatalf("%v %v", h, err)
	}
	if _, err := live.Set(inv, "nope", Local, "x"); !errors.Is(err, ErrUnknownHost) {
		t.Fatalf("unknown host: %v", err)
	}

	// "Restart": a new state file object and a fresh inventory.
	sf2, err := OpenStateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	live2 := NewStates(sf2, nil)
	inv2 := loadExample(t)
	st, rec := live2.State(inv2.Host("test_hvm"))
	if st != Local || rec == nil || rec.By != "api 192.0.2.177" {
		t.Fatalf("after restart: %s %+v", st, rec)
	}
	if st, _ := live2.State(inv2.Host("test_pvm")); st != Install {
		t.Fatalf("untouched host: %s", st)
	}

	// The operator now declares it local in the file, then install again:
	// the run-time record was made against "install"... declaring "local"
	// is a change of mind, and the file wins.
	data, _ := os.ReadFile(example)
	text := strings.Replace(string(data), "profile: el5-hvm-install\n", "profile: el5-hvm-install\n    state: local\n", 1)
	inv3, err := Parse(example, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if st, rec := live2.State(inv3.Host("test_hvm")); st != Local || rec != nil {
		t.Fatalf("declared local: %s %+v", st, rec)
	}
	// pxed host install flips it back, against the new declaration.
	live2.Set(inv3, "test_hvm", Install, "pxed host")
	if st, _ := live2.State(inv3.Host("test_hvm")); st != Install {
		t.Fatalf("after host install: %s", st)
	}
}

func TestStateFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("{not json"), 0o600)
	if _, err := OpenStateFile(bad); err == nil || !strings.Contains(err.Error(), "move the file away") {
		t.Errorf("corrupt file: %v", err)
	}
	os.WriteFile(bad, []byte(`{"version": 9, "hosts": {}}`), 0o600)
	if _, err := OpenStateFile(bad); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Errorf("future version: %v", err)
	}
	os.WriteFile(bad, []byte(`{"version": 1, "hosts": {"a": {"state": "gone"}}}`), 0o600)
	if _, err := OpenStateFile(bad); err == nil {
		t.Error("bad state accepted")
	}
	// A write that cannot happen leaves the old state in memory.
	ro := filepath.Join(dir, "ro")
	os.Mkdir(ro, 0o500)
	sf, err := OpenStateFile(filepath.Join(ro, "hosts.json"))
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 { // root writes anywhere
		if err := sf.Update([]string{"a"}, func(map[string]Record) (map[string]Record, error) { return map[string]Record{"a": {State: Local}}, nil }); err == nil {
			t.Fatal("write into a read-only directory succeeded")
		}
		if _, ok := sf.Get("a"); ok {
			t.Fatal("failed write kept in memory")
		}
	}
}

// The install callback's token: one per install, random, good once, for
// its host only, kept across restarts; replaying an old one after a
// reinstall fails. (It was HMAC(name): the same for ever, reinstalls
// included, and good any number of times.)
func TestInstallToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts.json")
	open := func() *States {
		t.Helper()
		sf, err := OpenStateFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return NewStates(sf, nil)
	}
	inv := loadExample(t)
	hvm, pvm := inv.Host("test_hvm"), inv.Host("test_pvm")
	live := open()
	if live.Token(hvm) != "" {
		t.Fatal("a token before EnsureTokens")
	}
	if err := live.EnsureTokens(inv); err != nil {
		t.Fatal(err)
	}
	first := live.Token(hvm)
	if len(first) != 32 || live.Token(pvm) == "" || live.Token(pvm) == first || live.Token(inv.Host("RK")) == "" {
		t.Fatalf("tokens %q %q", first, live.Token(pvm))
	}
	if live.Token(inv.Host("dell_optiplex_745")) == "" {
		t.Fatal("a host declared install (profile ovm) has no token")
	}
	if st, rec := live.State(hvm); st != Install || rec == nil || !rec.Changed.IsZero() {
		t.Fatalf("EnsureTokens changed the state: %s %+v", st, rec)
	}
	if err := live.EnsureTokens(inv); err != nil || live.Token(hvm) != first {
		t.Fatalf("a second EnsureTokens replaced the token: %v", err)
	}
	// Restart: the same token is still the one.
	live = open()
	if live.Token(hvm) != first {
		t.Fatalf("after restart %q, want %q", live.Token(hvm), first)
	}
	for _, bad := range []string{"", "x", first[:31], strings.ToUpper(first)} {
		if _, err := live.Installed(inv, "test_hvm", bad, "t"); !errors.Is(err, ErrBadToken) {
			t.Fatalf("token %q: %v", bad, err)
		}
	}
	if _, err := live.Installed(inv, "test_pvm", first, "t"); !errors.Is(err, ErrBadToken) {
		t.Fatalf("another host's token: %v", err)
	}
	if _, err := live.Installed(inv, "nobody", first, "t"); !errors.Is(err, ErrBadToken) {
		t.Fatalf("unknown host: %v", err)
	}
	h, err := live.Installed(inv, "00:16:3e:72:79:e4", first, "api 192.0.2.177")
	if err != nil || h != hvm {
		t.Fatalf("the right token: %v %v", h, err)
	}
	if st, _ := live.State(hvm); st != Local || live.Token(hvm) != "" {
		t.Fatalf("after the callback: %s, token %q", st, live.Token(hvm))
	}
	if _, err := live.Installed(inv, "test_hvm", first, "t"); !errors.Is(err, ErrBadToken) {
		t.Fatalf("second use: %v", err)
	}
	// Reinstall: a new token; the old one stays spent, across a restart.
	if _, err := live.Set(inv, "test_hvm", Install, "pxed host"); err != nil {
		t.Fatal(err)
	}
	second := live.Token(hvm)
	if second == "" || second == first {
		t.Fatalf("reinstall: token %q (first %q)", second, first)
	}
	live = open()
	if _, err := live.Installed(inv, "test_hvm", first, "t"); !errors.Is(err, ErrBadToken) {
		t.Fatalf("old token after reinstall and restart: %v", err)
	}
	if _, err := live.Installed(inv, "test_hvm", second, "t"); err != nil {
		t.Fatalf("current token after restart: %v", err)
	}
	// A host declared local in the file has no token; declared install
	// again, it is back to its install's token (never spent).
	data, _ := os.ReadFile(example)
	local, err := Parse(example, []byte(strings.Replace(string(data), "profile: el5-pv-install\n", "profile: el5-pv-install\n    state: local\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	pvmTok := live.Token(pvm)
	live.EnsureTokens(local)
	if live.Token(local.Host("test_pvm")) != "" {
		t.Fatal("a host declared local has a token")
	}
	live.EnsureTokens(inv)
	if tok := live.Token(pvm); tok != pvmTok || tok == "" {
		t.Fatalf("declared install again: %q, want its install's token %q", tok, pvmTok)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file (holds tokens): %v %v, want mode 0600", fi.Mode(), err)
	}
}

// The inventory and a dhcpd.conf together: conflicts are errors naming both.
func TestMerge(t *testing.T) {
	n := &config.Network{
		Subnets: []config.Subnet{{Network: "192.0.2.0/24"}},
		Hosts:   []config.Host{{Name: "old", MAC: "00:16:3E:72:79:E4", FixedAddresses: []string{"192.0.2.5"}, Pos: config.Pos{File: "dhcpd.conf", Line: 12, Column: 1}}},
	}
	inv, err := Parse("inv.yaml", []byte(`profiles: {p: {kernel: k}}
hosts:
  - {name: a, mac: "00:16:3e:72:79:e4", ip: 192.0.2.6, profile: p}
  - {name: b, mac: "00:16:3e:00:00:02", ip: 192.0.2.5, profile: p}
  - {name: c, mac: "00:16:3e:00:00:03", ip: 198.51.100.7, profile: p}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = inv.Merge(n)
	msg := fmt.Sprint(err)
	for _, want := range []string{
		"inv.yaml:3:5: host a: MAC 00:16:3e:72:79:e4 is already declared as host old (dhcpd.conf:12:1) with fixed-address 192.0.2.5, not ip 192.0.2.6",
		"inv.yaml:4:5: host b: ip 192.0.2.5 is already host old's fixed-address (dhcpd.conf:12:1)",
		"inv.yaml:5:5: host c: ip 198.51.100.7 is outside every DHCP subnet (192.0.2.0/24)",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("merge error:\n%s\nwant %q", msg, want)
		}
	}

	inv, _ = Parse("inv.yaml", []byte(`profiles: {p: {kernel: k}}
hosts:
  - {name: a, macs: ["00:16:3e:00:00:01", "00:16:3e:00:00:02"], ip: 192.0.2.9, profile: p}
`))
	m, err := inv.Merge(n)
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Hosts) != 1 || len(m.Hosts) != 3 {
		t.Fatalf("merge changed its input or lost hosts: %d, %d", len(n.Hosts), len(m.Hosts))
	}
	h := m.Hosts[2]
	if h.Name != "a-1" || h.MAC != "00:16:3e:00:00:02" || h.FixedAddresses[0] != "192.0.2.9" ||
		h.IPXEScript != "" || len(h.BootFiles) != 0 {
		t.Fatalf("merged host %+v", h)
	}

	// The same machine in both files (as a migration keeps dhcpd.conf and
	// adds an inventory): its MAC with the same address, or with none in
	// the inventory, is one host, declared once.
	for _, ip := range []string{", ip: 192.0.2.5", ""} {
		inv, err = Parse("inv.yaml", []byte(`profiles: {p: {kernel: k}}
hosts:
  - {name: new, mac: "00:16:3E:72:79:E4"`+ip+`, profile: p}
`))
		if err != nil {
			t.Fatal(err)
		}
		m, err = inv.Merge(n)
		if err != nil {
			t.Fatalf("the same host in both files%s: %v", ip, err)
		}
		if len(m.Hosts) != 1 || m.Hosts[0].Name != "old" {
			t.Fatalf("the same host in both files%s: declared %+v", ip, m.Hosts)
		}
	}
}
