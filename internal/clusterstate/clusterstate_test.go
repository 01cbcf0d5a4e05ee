package clusterstate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"pxed/internal/app"
	"pxed/internal/config"
	"pxed/internal/etcdstore"
	"pxed/internal/inventory"
	"pxed/internal/testutil/etcdtest"
)

// Every test runs against a real etcd (internal/testutil/etcdtest): one
// member, as the properties tested here do not depend on how many there
// are; cmd/pxed's cluster test runs three.

var keys = etcdstore.Keys{Prefix: "/pxed/"}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// logBuffer is a logger whose output a test reads.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// exampleFiles copies examples/inventory.yaml and its kickstart into a
// temporary directory and returns the inventory's path.
func exampleFiles(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"inventory.yaml", "kickstart/el5.ks"} {
		b, err := os.ReadFile(filepath.Join("../../examples", f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "inventory.yaml")
}

func loadInv(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Load(exampleFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func openStates(t *testing.T, cli *clientv3.Client, log *slog.Logger) *HostStates {
	t.Helper()
	hs, err := OpenStates(ctx(t), cli, keys, log)
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

// watching starts hs.Watch until the test ends.
func watching(t *testing.T, hs *HostStates) {
	c, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { hs.Watch(c); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// eventually polls cond every 5 ms for at most 10 s and returns how long
// it took to hold; it fails the test if it never does.
func eventually(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 10*time.Second {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s: not within 10 s", what)
	return 0
}

// Host states written by one server are the records a server opening the
// store later reads, in etcd as one key per host holding the state file's
// JSON; the install callback's token is spent once.
func TestHostStatesRoundTrip(t *testing.T) {
	cli := etcdtest.Start(t, etcdtest.Options{Members: 1}).Client(t)
	inv := loadInv(t)
	s1 := inventory.NewStates(openStates(t, cli, nil), nil)
	if err := s1.EnsureTokens(inv); err != nil {
		t.Fatal(err)
	}
	hvm := inv.Host("test_hvm")
	tok := s1.Token(hvm)
	if len(tok) != 32 {
		t.Fatalf("token %q", tok)
	}
	if _, err := s1.Set(inv, "test_pvm", inventory.Local, "pxed host"); err != nil {
		t.Fatal(err)
	}
	r, err := cli.Get(ctx(t), keys.Host("test_pvm"))
	if err != nil || len(r.Kvs) != 1 || !strings.Contains(string(r.Kvs[0].Value), `"state":"local"`) {
		t.Fatalf("hosts/test_pvm in etcd: %v %v", r, err)
	}

	s2 := inventory.NewStates(openStates(t, cli, nil), nil)
	if st, rec := s2.State(inv.Host("test_pvm")); st != inventory.Local || rec == nil || rec.By != "pxed host" {
		t.Fatalf("test_pvm read back: %s %+v", st, rec)
	}
	if s2.Token(hvm) != tok {
		t.Fatalf("token read back %q, want %q", s2.Token(hvm), tok)
	}
	// A second EnsureTokens, by another server, keeps the first one's.
	if err := s2.EnsureTokens(inv); err != nil || s2.Token(hvm) != tok {
		t.Fatalf("EnsureTokens on a second server: %v, token %q", err, s2.Token(hvm))
	}
	if _, err := s2.Installed(inv, "test_hvm", tok, "api 192.0.2.10"); err != nil {
		t.Fatal(err)
	}
	// s1 has not seen it (no watch here), but the token is checked against
	// etcd in the update that would spend it.
	if _, err := s1.Installed(inv, "test_hvm", tok, "api 192.0.2.11"); !errors.Is(err, inventory.ErrBadToken) {
		t.Fatalf("token spent on the other server, used again: %v", err)
	}
	if st, rec := s1.State(hvm); st != inventory.Local || rec.By != "api 192.0.2.10" {
		t.Fatalf("after the refused callback, s1 reads %s %+v", st, rec)
	}
	// Names in any case are one host, in the copy as in etcd.
	hs := openStates(t, cli, nil)
	want := inventory.Record{State: inventory.Local, Declared: inventory.Install, By: "mixed case"}
	if err := hs.Update([]string{"RK"}, func(map[string]inventory.Record) (map[string]inventory.Record, error) {
		return map[string]inventory.Record{"Rk": want}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := hs.Update([]string{"../api-token"}, func(map[string]inventory.Record) (map[string]inventory.Record, error) {
		return map[string]inventory.Record{"../api-token": want}, nil
	}); err == nil {
		t.Fatal("a record written under a key that names no host")
	}
	for _, s := range []*HostStates{hs, openStates(t, cli, nil)} {
		if r, ok := s.Get("rK"); !ok || r.State != want.State || r.By != want.By {
			t.Fatalf("record written as Rk, read as rK: %+v %v", r, ok)
		}
	}
}

// Two servers changing one host at once lose no update: each change is
// made on the record the other left, whoever commits first.
func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	cluster := etcdtest.Start(t, etcdtest.Options{Members: 1})
	a, b := openStates(t, cluster.Client(t), nil), openStates(t, cluster.Client(t), nil)
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for _, s := range []struct {
		hs   *HostStates
		mark string
	}{{a, "a"}, {b, "b"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				errs <- s.hs.Update([]string{"web1"}, func(cur map[string]inventory.Record) (map[string]inventory.Record, error) {
					r := cur["web1"]
					r.State, r.Declared = inventory.Install, inventory.Install
					r.By += s.mark
					return map[string]inventory.Record{"web1": r}, nil
				})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	c := openStates(t, cluster.Client(t), nil)
	r, ok := c.Get("web1")
	if !ok || strings.Count(r.By, "a") != n || strings.Count(r.By, "b") != n {
		t.Fatalf("after %d updates from each server: %q (%v); an update was lost", n, r.By, ok)
	}

	// Two servers given one install token at once: one accepts it.
	inv := loadInv(t)
	sa, sb := inventory.NewStates(a, nil), inventory.NewStates(b, nil)
	if _, err := sa.Set(inv, "test_hvm", inventory.Install, "test"); err != nil {
		t.Fatal(err)
	}
	tok := sa.Token(inv.Host("test_hvm"))
	var ok1, ok2 error
	var wg2 sync.WaitGroup
	wg2.Add(2)
	go func() { defer wg2.Done(); _, ok1 = sa.Installed(inv, "test_hvm", tok, "a") }()
	go func() { defer wg2.Done(); _, ok2 = sb.Installed(inv, "test_hvm", tok, "b") }()
	wg2.Wait()
	if (ok1 == nil) == (ok2 == nil) {
		t.Fatalf("one token given to two servers at once: %v, %v; want exactly one accepted", ok1, ok2)
	}
}

// A change made on one server is read on another through its watch, and
// a host's record deleted by hand returns it to its declared state.
func TestWatchPropagation(t *testing.T) {
	cluster := etcdtest.Start(t, etcdtest.Options{Members: 1})
	inv := loadInv(t)
	a := inventory.NewStates(openStates(t, cluster.Client(t), nil), nil)
	hb := openStates(t, cluster.Client(t), nil)
	watching(t, hb)
	b := inventory.NewStates(hb, nil)
	hvm := inv.Host("test_hvm")
	for i, st := range []inventory.State{inventory.Local, inventory.Install, inventory.Local} {
		if _, err := a.Set(inv, "test_hvm", st, fmt.Sprint("change ", i)); err != nil {
			t.Fatal(err)
		}
		d := eventually(t, "change seen by the other server", func() bool {
			got, rec := b.State(hvm)
			return got == st && rec != nil && rec.By == fmt.Sprint("change ", i)
		})
		t.Logf("host state %s set on one server, seen on the other after %v", st, d)
	}
	if _, err := cluster.Client(t).Delete(ctx(t), keys.Host("test_hvm")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted record seen", func() bool {
		st, rec := b.State(hvm)
		return st == hvm.State && rec == nil
	})
}

// Values another (older, broken or hostile) writer left under hosts/ are
// logged and read as no record, never used; a server's write replaces
// one, and the watch ignores them as the first read does.
func TestBadStoredRecords(t *testing.T) {
	cluster := etcdtest.Start(t, etcdtest.Options{Members: 1})
	cli := cluster.Client(t)
	bad := map[string]string{
		"test_hvm": "{not json",
		"test_pvm": `{"state":"reboot","declared":"install"}`,
		"rk":       `{"state":"install","declared":"install","token":"zz"}`,
		"web1":     `{"state":"local","declared":"install","by":"` + strings.Repeat("x", maxRecord) + `"}`,
		"web2":     `{"state":"local","declared":"install","by":"a\nb"}`,
		"../x":     `{"state":"local","declared":"install"}`,
	}
	for k, v := range bad {
		if _, err := cli.Put(ctx(t), keys.Hosts()+k, v); err != nil {
			t.Fatal(err)
		}
	}
	var log logBuffer
	hs := openStates(t, cli, log.logger())
	for k := range bad {
		if r, ok := hs.Get(k); ok {
			t.Errorf("bad value of %s read as %+v", k, r)
		}
	}
	if n := strings.Count(log.String(), "level=ERROR"); n != len(bad) {
		t.Errorf("%d errors logged for %d bad values:\n%s", n, len(bad), log.String())
	}
	inv := loadInv(t)
	st := inventory.NewStates(hs, nil)
	if got, rec := st.State(inv.Host("test_hvm")); got != inventory.Install || rec != nil {
		t.Fatalf("host with a bad record: %s %+v, want its declared state", got, rec)
	}
	if _, err := st.Set(inv, "test_hvm", inventory.Local, "pxed host"); err != nil {
		t.Fatalf("replacing a bad record: %v", err)
	}
	if got, _ := st.State(inv.Host("test_hvm")); got != inventory.Local {
		t.Fatalf("after replacing the bad record: %s", got)
	}
	// Through the watch: a bad value replacing a good one reads as none.
	watching(t, hs)
	if _, err := cli.Put(ctx(t), keys.Host("test_hvm"), `{"state":"local","declared":"install","token":"`+strings.Repeat("0", 31)+`"}`); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bad value from the watch ignored", func() bool {
		_, ok := hs.Get("test_hvm")
		return !ok
	})
}

// pxed inventory push's part: a file with errors is refused with the
// errors inventory.Load gives; a good one is stored with its kickstart and
// read back, as every server reads it, without the files.
func TestInventoryBundleAndLoad(t *testing.T) {
	cli := etcdtest.Start(t, etcdtest.Options{Members: 1}).Client(t)
	path := exampleFiles(t)
	data, _ := os.ReadFile(path)
	badPath := filepath.Join(filepath.Dir(path), "bad.yaml")
	os.WriteFile(badPath, []byte(strings.Replace(string(data), "profile: el5-hvm-install", "profile: nope", 1)), 0o644)
	_, _, berr := Bundle(badPath)
	_, lerr := inventory.Load(badPath)
	if berr == nil || lerr == nil || berr.Error() != lerr.Error() {
		t.Fatalf("bad file: Bundle says %v, Load says %v", berr, lerr)
	}
	if st, _, err := LoadInventory(ctx(t), cli, keys); st != nil || err != nil {
		t.Fatalf("nothing pushed: %v %v", st, err)
	}

	v, inv, err := Bundle(path)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := Push(ctx(t), cli, keys, v)
	if err != nil {
		t.Fatal(err)
	}
	// The servers' copy does not need the files any more.
	os.RemoveAll(filepath.Dir(path))
	st, _, err := LoadInventory(ctx(t), cli, keys)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rev != rev || st.Source != path || len(st.Inventory.Hosts) != len(inv.Hosts) || len(st.Inventory.Templates()) != 0 {
		t.Fatalf("stored: rev %d (pushed %d), source %q, %d hosts (pushed %d), templates %v", st.Rev, rev, st.Source, len(st.Inventory.Hosts), len(inv.Hosts), st.Inventory.Templates())
	}
	env := inventory.Env{Server: "192.0.2.1:8080", BaseURL: "http://192.0.2.1:8080", InstalledURL: "http://192.0.2.1:8080/x"}
	want, _, err := inv.Host("test_hvm").Kickstart(env)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := st.Inventory.Host("test_hvm").Kickstart(env)
	if err != nil || string(got) != string(want) || len(got) == 0 {
		t.Fatalf("kickstart from the stored inventory: %v\n%s\nwant\n%s", err, got, want)
	}

	// A value no pxed pushed is refused at start, naming the key.
	for _, v := range []string{"inventory: yes", `{"version":2}`, `{"version":1,"inventory":"hosts: [{name: x}]"}`, strings.Repeat("x", MaxInventory+1)} {
		if _, err := cli.Put(ctx(t), keys.Inventory(), v); err != nil {
			t.Fatal(err)
		}
		if _, _, err := LoadInventory(ctx(t), cli, keys); err == nil || !strings.Contains(err.Error(), keys.Inventory()) {
			t.Errorf("bad stored value %.40q: %v", v, err)
		}
	}
}

// Bundle refuses an inventory larger than etcd takes, templates included.
func TestBundleTooLarge(t *testing.T) {
	path := exampleFiles(t)
	// Each file alone is within bounds.
	for _, f := range []string{path, filepath.Join(filepath.Dir(path), "kickstart", "el5.ks")} {
		f, err := os.OpenFile(f, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("\n# " + strings.Repeat("x", MaxInventory*6/10) + "\n")
		f.Close()
	}
	if _, _, err := Bundle(path); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("inventory with a large kickstart: %v", err)
	}
}

// The watch hands over each good inventory pushed, in order, and skips a
// bad one with a log line.
func TestWatchInventory(t *testing.T) {
	cli := etcdtest.Start(t, etcdtest.Options{Members: 1}).Client(t)
	_, rev, err := LoadInventory(ctx(t), cli, keys)
	if err != nil {
		t.Fatal(err)
	}
	var log logBuffer
	got := make(chan *Stored, 10)
	c, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { WatchInventory(c, cli, keys, rev, log.logger(), func(st *Stored) { got <- st }); close(done) }()
	defer func() { cancel(); <-done }()

	v, _, err := Bundle(exampleFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	r1, _ := Push(ctx(t), cli, keys, v)
	if _, err := cli.Put(ctx(t), keys.Inventory(), "{broken"); err != nil {
		t.Fatal(err)
	}
	r3, _ := Push(ctx(t), cli, keys, v)
	for _, want := range []int64{r1, r3} {
		select {
		case st := <-got:
			if st.Rev != want {
				t.Fatalf("revision %d handed over, want %d", st.Rev, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("revision %d not handed over within 10 s", want)
		}
	}
	if !strings.Contains(log.String(), "refusing the one stored in etcd") {
		t.Fatalf("bad value not logged:\n%s", log.String())
	}
}

// The API token: the first server stores its own, the others take it
// (and write it to their state directory); a token-file that differs is
// refused.
func TestAPIToken(t *testing.T) {
	cli := etcdtest.Start(t, etcdtest.Options{Members: 1}).Client(t)
	conf := func() *config.Config {
		c := config.Default()
		c.StateDir = t.TempDir()
		return c
	}
	c1, c2 := conf(), conf()
	old, err := app.APIToken(c1, true) // c1 ran alone before
	if err != nil {
		t.Fatal(err)
	}
	t1, err := APIToken(ctx(t), cli, keys, c1)
	if err != nil || t1 != old {
		t.Fatalf("first server: %q %v, want its own %q", t1, err, old)
	}
	t2, err := APIToken(ctx(t), cli, keys, c2)
	if err != nil || t2 != t1 {
		t.Fatalf("second server: %q %v, want %q", t2, err, t1)
	}
	if f, err := app.APIToken(c2, false); f != t1 || err != nil {
		t.Fatalf("second server's state-dir token %q %v", f, err)
	}
	c3 := conf()
	c3.API.TokenFile = filepath.Join(c3.StateDir, "mine")
	os.WriteFile(c3.API.TokenFile, []byte("0123456789abcdef0123\n"), 0o600)
	if _, err := APIToken(ctx(t), cli, keys, c3); err == nil || !strings.Contains(err.Error(), "differs") {
		t.Fatalf("a token-file that differs: %v", err)
	}
	os.WriteFile(c3.API.TokenFile, []byte(t1+"\n"), 0o600)
	if tok, err := APIToken(ctx(t), cli, keys, c3); err != nil || tok != t1 {
		t.Fatalf("a token-file with the cluster's token: %q %v", tok, err)
	}
	if _, err := cli.Put(ctx(t), keys.APIToken(), "short"); err != nil {
		t.Fatal(err)
	}
	if _, err := APIToken(ctx(t), cli, keys, conf()); err == nil {
		t.Fatal("a bad token in etcd accepted")
	}
}

// A watch that starts behind etcd's compaction breaks at once; the host
// states and the inventory are then read again, so the changes it missed
// are seen all the same.
func TestWatchAfterCompaction(t *testing.T) {
	cli := etcdtest.Start(t, etcdtest.Options{Members: 1}).Client(t)
	hs := openStates(t, cli, nil)
	_, rev, err := LoadInventory(ctx(t), cli, keys)
	if err != nil {
		t.Fatal(err)
	}
	other := openStates(t, cli, nil)
	if err := other.Update([]string{"web1"}, func(map[string]inventory.Record) (map[string]inventory.Record, error) {
		return map[string]inventory.Record{"web1": {State: inventory.Local, Declared: inventory.Install, By: "other"}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	v, _, err := Bundle(exampleFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := Push(ctx(t), cli, keys, v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx(t), pushed); err != nil {
		t.Fatal(err)
	}
	var log logBuffer
	hs.log = log.logger()
	watching(t, hs)
	got := make(chan *Stored, 1)
	c, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { WatchInventory(c, cli, keys, rev, log.logger(), func(st *Stored) { got <- st }); close(done) }()
	defer func() { cancel(); <-done }()
	eventually(t, "a change missed before the compaction", func() bool {
		r, ok := hs.Get("web1")
		return ok && r.By == "other"
	})
	select {
	case st := <-got:
		if st.Rev != pushed {
			t.Fatalf("inventory revision %d handed over, want %d", st.Rev, pushed)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the inventory pushed before the compaction was not handed over")
	}
	if n := strings.Count(log.String(), "watch broken"); n != 2 {
		t.Fatalf("%d broken watches logged, want 2 (host states, inventory):\n%s", n, log.String())
	}
}
