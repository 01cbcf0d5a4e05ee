package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"pxed/internal/config"
	"pxed/internal/etcdstore"
	"pxed/internal/testutil/etcdtest"
)

// clusterConfig is testConfig for a server of the cluster at store.
func clusterConfig(t *testing.T, root, store string) *config.Config {
	t.Helper()
	c := testConfig(t, root)
	c.Store.URL = store
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// pxed runs a pxed command in this process and returns its exit status
// and output.
func pxed(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// httpGet fetches url and returns its status and body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls cond every 2 ms for at most 10 s and returns how long it
// took to hold; it fails the test if it never does.
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 10*time.Second {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("%s: not within 10 s", what)
	return 0
}

// Two pxed serve on loopback sharing a 3-member etcd: an inventory pushed
// with pxed inventory push (checked first: a bad file is refused and
// nothing stored) is served by both, its kickstart included, without the
// files on their disks; a new push is served by both within moments; a
// host state changed through one server's API, by the install callback on
// the other or by pxed host on the cluster is seen by both; both accept
// one API token.
func TestClusterInventoryAndStates(t *testing.T) {
	cluster := etcdtest.Start(t, etcdtest.Options{Members: 3})
	store := "etcd://" + strings.Join(cluster.Endpoints(), ",")
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "pxelinux.0"), []byte("x"))
	invFile := exampleInventory(t, "127.0.0.1")
	text, _ := os.ReadFile(invFile)
	base := []string{"--store", store, "--tftp-root", root, "--state-dir", t.TempDir()}
	ksFile := filepath.Join(filepath.Dir(invFile), "kickstart", "el5.ks")
	ks, _ := os.ReadFile(ksFile)
	const marker = "# the template as pushed"
	writeFile(t, ksFile, append(ks, marker+"\n"...))

	// A bad file: the errors pxed check gives, and nothing stored.
	bad := filepath.Join(filepath.Dir(invFile), "bad.yaml")
	writeFile(t, bad, []byte(strings.Replace(string(text), "profile: el5-hvm-install", "profile: nope", 1)))
	code, _, stderr := pxed(append([]string{"inventory", "push", bad}, base...)...)
	_, _, checkErr := pxed("check", "--inventory", bad, "--tftp-root", root)
	if code != 1 || !strings.Contains(stderr, `unknown profile "nope"`) || !strings.Contains(checkErr, strings.TrimSpace(strings.Split(stderr, "\n")[0])) {
		t.Fatalf("push of a bad file: exit %d\n%s\npxed check says:\n%s", code, stderr, checkErr)
	}
	cli := cluster.Client(t)
	keys := etcdstore.Keys{Prefix: config.DefaultStorePrefix}
	if r, err := cli.Get(context.Background(), keys.Inventory()); err != nil || len(r.Kvs) != 0 {
		t.Fatalf("a refused file was stored: %v %v", r, err)
	}
	// A host outside the serve configuration's DHCP subnets: refused as
	// pxed check refuses it.
	dhcpConf := filepath.Join(t.TempDir(), "pxed.yaml")
	writeFile(t, dhcpConf, []byte("dhcp:\n  subnets:\n    - network: 198.51.100.0/24\n"))
	code, _, stderr = pxed(append([]string{"inventory", "push", invFile, "--config", dhcpConf}, base...)...)
	if code != 1 || !strings.Contains(stderr, "outside every DHCP subnet") {
		t.Fatalf("push of a file that does not fit the DHCP configuration: exit %d\n%s", code, stderr)
	}

	code, stdout, stderr := pxed(append([]string{"inventory", "push", invFile}, base...)...)
	if code != 0 || !regexp.MustCompile(`stored .*: 4 host\(s\), 4 profile\(s\), .* at etcd revision \d+`).MatchString(stdout) {
		t.Fatalf("push: exit %d\n%s%s", code, stdout, stderr)
	}
	// The servers need nothing but etcd: the file and its kickstart go.
	pushedKS, _ := os.ReadFile(ksFile)
	os.RemoveAll(filepath.Dir(invFile))

	c1, c2 := clusterConfig(t, root, store), clusterConfig(t, root, store)
	ln1, stop1 := startServe(t, c1)
	ln2, stop2 := startServe(t, c2)
	urls := []string{"http://" + ln1.HTTP.String(), "http://" + ln2.HTTP.String()}
	const cfgName = "/pxelinux.cfg/01-00-16-3e-72-79-e4"
	for i, u := range urls {
		if code, body := httpGet(t, u+cfgName); code != 200 || !strings.Contains(body, "KERNEL el5u4_x86_pxeboot_install/vmlinuz") || !strings.Contains(body, "keymap=us") {
			t.Fatalf("server %d: %d\n%s", i+1, code, body)
		}
		if code, body := httpGet(t, u+"/ks/test_hvm"); code != 200 || !strings.Contains(body, marker) {
			t.Fatalf("server %d's kickstart: %d\n%s", i+1, code, body)
		}
	}
	if cfg, err := tftpGet(t, ln2.TFTP, strings.TrimPrefix(cfgName, "/")); err != nil || !strings.Contains(string(cfg), "keymap=us") {
		t.Fatalf("server 2 over TFTP: %v\n%s", err, cfg)
	}

	// A new push: both serve it. The delay is from the push command's
	// start to the second server's HTTP answer carrying the change.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kickstart", "el5.ks"), pushedKS)
	invFile2 := filepath.Join(dir, "inventory.yaml")
	writeFile(t, invFile2, []byte(strings.Replace(strings.Replace(string(text), "keymap=us", "keymap=de", 2), "ip: 192.0.2.177", "ip: 127.0.0.1", 1)))
	start := time.Now()
	if code, stdout, stderr := pxed(append([]string{"inventory", "push", invFile2}, base...)...); code != 0 {
		t.Fatalf("second push: exit %d\n%s%s", code, stdout, stderr)
	}
	pushed := time.Since(start)
	after := waitFor(t, "server 2 serves the new push", func() bool {
		_, body := httpGet(t, urls[1]+cfgName)
		return strings.Contains(body, "keymap=de")
	})
	t.Logf("inventory propagation: the push command took %v (check, dial, store); from its exit to the other pxed serving the new file over HTTP: %v; in all %v",
		pushed.Round(time.Microsecond), after.Round(time.Microsecond), time.Since(start).Round(time.Microsecond))
	waitFor(t, "server 1 serves the new push", func() bool {
		_, body := httpGet(t, urls[0]+cfgName)
		return strings.Contains(body, "keymap=de")
	})
	for i, ln := range []listening{ln1, ln2} {
		if cfg, err := tftpGet(t, ln.TFTP, strings.TrimPrefix(cfgName, "/")); err != nil || !strings.Contains(string(cfg), "keymap=de") {
			t.Fatalf("server %d over TFTP after the push: %v\n%s", i+1, err, cfg)
		}
	}

	// One API token for the cluster, in both state directories.
	tok1, _ := os.ReadFile(filepath.Join(c1.StateDir, "api-token"))
	tok2, _ := os.ReadFile(filepath.Join(c2.StateDir, "api-token"))
	token := strings.TrimSpace(string(tok1))
	if token == "" || token != strings.TrimSpace(string(tok2)) {
		t.Fatalf("api tokens %q and %q, want one", tok1, tok2)
	}
	serves := func(i int, want string) func() bool {
		return func() bool {
			_, body := httpGet(t, urls[i]+"/ipxe/00-16-3e-72-79-e4")
			if want == "local" {
				return strings.Contains(body, "\nexit\n")
			}
			return strings.Contains(body, "kernel ") && !strings.Contains(body, "\nexit\n")
		}
	}
	// The API of server 1, with the token: both see it.
	if code := postStatus(t, urls[0]+"/api/v1/hosts/test_hvm/local", token); code != 200 {
		t.Fatalf("local through server 1's API: %d", code)
	}
	t.Logf("host state: server 1's API -> server 2 serves it after %v", waitFor(t, "server 2 sees local", serves(1, "local")))
	if code := postStatus(t, urls[1]+"/api/v1/hosts/test_hvm/install", token); code != 200 {
		t.Fatalf("install through server 2's API with server 1's token: %d", code)
	}
	waitFor(t, "server 1 sees install", serves(0, "install"))

	// The install callback of server 1's kickstart, made to server 2.
	_, ksBody := httpGet(t, urls[0]+"/ks/test_hvm")
	m := regexp.MustCompile(`curl -fsS -X POST '([^']+)'`).FindStringSubmatch(ksBody)
	if m == nil {
		t.Fatalf("kickstart has no callback:\n%s", ksBody)
	}
	callback := strings.Replace(m[1], urls[0], urls[1], 1)
	if code := postStatus(t, callback, ""); code != 200 {
		t.Fatalf("callback %s on server 2: %d", callback, code)
	}
	waitFor(t, "server 1 sees the callback made to server 2", serves(0, "local"))
	if code := postStatus(t, m[1], ""); code != 401 {
		t.Fatalf("the spent token again, on server 1: %d", code)
	}

	// pxed host on the cluster, with no server of its own.
	code, stdout, stderr = pxed("host", "install", "test_hvm", "--store", store, "--state-dir", t.TempDir())
	if code != 0 || !strings.Contains(stdout, "install") {
		t.Fatalf("pxed host install on the cluster: exit %d\n%s%s", code, stdout, stderr)
	}
	waitFor(t, "server 1 sees pxed host install", serves(0, "install"))
	waitFor(t, "server 2 sees pxed host install", serves(1, "install"))
	// pxed explain on the cluster: its inventory and states.
	code, stdout, stderr = pxed("explain", "00:16:3e:72:79:e4", "--store", store, "--tftp-root", root, "--state-dir", t.TempDir())
	if code > 1 || !strings.Contains(stdout, "test_hvm") || !strings.Contains(stdout, "keymap=de") {
		t.Fatalf("pxed explain on the cluster: exit %d\n%s%s", code, stdout, stderr)
	}

	// A bad value written by hand: both keep serving what they served.
	if _, err := cli.Put(context.Background(), keys.Inventory(), `{"version":1,"inventory":"hosts: [{name: x}]"}`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // no event to wait for: the servers only log
	for i, u := range urls {
		if _, body := httpGet(t, u+cfgName); !strings.Contains(body, "keymap=de") {
			t.Fatalf("server %d after a bad stored inventory:\n%s", i+1, body)
		}
	}
	for i, stop := range []func() error{stop1, stop2} {
		if err := stop(); err != nil {
			t.Errorf("server %d: %v", i+1, err)
		}
	}

	// A server given an inventory file in cluster mode refuses to start.
	c3 := clusterConfig(t, root, store)
	c3.Inventory = invFile2
	if err := serve(context.Background(), c3, slog.New(slog.DiscardHandler), nil); err == nil || !strings.Contains(err.Error(), "pxed inventory push") {
		t.Fatalf("serve with --inventory in a cluster: %v", err)
	}
}

// A server cut off from the etcd quorum keeps serving the inventory and
// the host states it has; a state change is not made on this server alone
// (it fails within OpTimeout, and is not served); with the quorum back, a
// new push is served without a restart.
func TestClusterQuorumLoss(t *testing.T) {
	cluster := etcdtest.Start(t, etcdtest.Options{Members: 3})
	store := "etcd://" + strings.Join(cluster.Endpoints(), ",")
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "pxelinux.0"), []byte("x"))
	invFile := exampleInventory(t, "127.0.0.1")
	base := []string{"--store", store, "--tftp-root", root, "--state-dir", t.TempDir()}
	if code, stdout, stderr := pxed(append([]string{"inventory", "push", invFile}, base...)...); code != 0 {
		t.Fatalf("push: exit %d\n%s%s", code, stdout, stderr)
	}
	c := clusterConfig(t, root, store)
	ln, stop := startServe(t, c)
	defer stop()
	url := "http://" + ln.HTTP.String()
	const cfgName = "/pxelinux.cfg/01-00-16-3e-72-79-e4"
	tok, _ := os.ReadFile(filepath.Join(c.StateDir, "api-token"))

	cluster.Kill(1)
	cluster.Kill(2)
	if code, body := httpGet(t, url+cfgName); code != 200 || !strings.Contains(body, "keymap=us") {
		t.Fatalf("without quorum, HTTP: %d\n%s", code, body)
	}
	if cfg, err := tftpGet(t, ln.TFTP, strings.TrimPrefix(cfgName, "/")); err != nil || !strings.Contains(string(cfg), "keymap=us") {
		t.Fatalf("without quorum, TFTP: %v\n%s", err, cfg)
	}
	start := time.Now()
	code := postStatus(t, url+"/api/v1/hosts/test_hvm/local", strings.TrimSpace(string(tok)))
	if code == 200 {
		t.Fatal("a host state changed without an etcd quorum")
	}
	t.Logf("without quorum, a host state change answered %d after %v", code, time.Since(start).Round(time.Millisecond))
	if _, body := httpGet(t, url+"/ipxe/00-16-3e-72-79-e4"); strings.Contains(body, "\nexit\n") {
		t.Fatalf("the refused change is served:\n%s", body)
	}

	cluster.Restart(1)
	data, _ := os.ReadFile(invFile)
	writeFile(t, invFile, []byte(strings.Replace(string(data), "keymap=us", "keymap=de", 2)))
	if code, stdout, stderr := pxed(append([]string{"inventory", "push", invFile}, base...)...); code != 0 {
		t.Fatalf("push with the quorum back: exit %d\n%s%s", code, stdout, stderr)
	}
	// test_pvm: the timed-out change of test_hvm may still be committed
	// once the quorum is back (etcd's "request timed out" says the outcome
	// is unknown), and a local host's config has no kernel line.
	waitFor(t, "the push after the quorum came back", func() bool {
		_, body := httpGet(t, url+"/pxelinux.cfg/01-00-16-3e-72-79-e3")
		return strings.Contains(body, "keymap=de")
	})
}
