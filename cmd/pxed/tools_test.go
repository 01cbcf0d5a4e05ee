package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"pxed/internal/app"
	"pxed/internal/config"
	"pxed/internal/config/isc"
	"pxed/internal/dhcp"
	"pxed/internal/lease"
	"pxed/internal/lease/bolt"
	"pxed/internal/testutil"
)

// seedDHCPD is the first seed's dhcpd.conf in a documentation range, as
// shipped in examples/dhcpd.conf.
var seedDHCPD = func() string {
	b, err := os.ReadFile("../../examples/dhcpd.conf")
	if err != nil {
		panic(err)
	}
	return string(b)
}()

// stripPos clears positions, which differ between the two front ends, and
// the option bytes only the dhcpd.conf reader keeps (Options holds the same
// values as text for both).
func stripPos(n *config.Network) *config.Network {
	c := *n
	c.Encoded = nil
	c.Subnets = append([]config.Subnet(nil), n.Subnets...)
	for i := range c.Subnets {
		c.Subnets[i].Pos = config.Pos{}
		c.Subnets[i].Encoded = nil
		c.Subnets[i].Pools = append([]config.Pool(nil), c.Subnets[i].Pools...)
		for j := range c.Subnets[i].Pools {
			c.Subnets[i].Pools[j].Pos = config.Pos{}
			c.Subnets[i].Pools[j].Encoded = nil
			c.Subnets[i].Pools[j].Ranges = append([]config.Range(nil), c.Subnets[i].Pools[j].Ranges...)
			for k := range c.Subnets[i].Pools[j].Ranges {
				c.Subnets[i].Pools[j].Ranges[k].Pos = config.Pos{}
			}
		}
	}
	c.Hosts = append([]config.Host(nil), n.Hosts...)
	for i := range c.Hosts {
		c.Hosts[i].Pos = config.Pos{}
		c.Hosts[i].Encoded = nil
	}
	return &c
}

func TestImportRoundTrip(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "dhcpd.conf")
	// With a statement pxed skips: the YAML records it as a comment and
	// still loads.
	writeFile(t, conf, []byte(seedDHCPD+"log-facility local7;\n"))
	var stdout, stderr testutil.SyncBuffer
	if code := run([]string{"import", conf}, &stdout, &stderr); code != 0 {
		t.Fatalf("pxed import: exit %d\n%s", code, stderr.String())
	}
	for _, want := range []string{"# Not imported", `dhcpd.conf:40:1: "log-facility" is not supported by pxed`, "#     log-facility local7;"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the imported YAML lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "dhcpd.conf:40:1: \"log-facility\"") {
		t.Errorf("the warning has no column: %s", stderr.String())
	}
	yamlFile := filepath.Join(dir, "pxed.yaml")
	writeFile(t, yamlFile, []byte(stdout.String()))
	c, err := config.Load(yamlFile)
	if err != nil {
		t.Fatalf("the imported YAML does not load: %v\n%s", err, stdout.String())
	}
	fromISC, _, err := isc.ParseFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := stripPos(&c.DHCP.Network), stripPos(fromISC); !reflect.DeepEqual(got, want) {
		t.Fatalf("YAML model differs from the dhcpd.conf model:\n got %+v\nwant %+v", got, want)
	}
	// And it compiles to the same plan facts.
	p1, _, err := dhcp.Compile(&c.DHCP.Network)
	if err != nil {
		t.Fatal(err)
	}
	p2, _, _ := dhcp.Compile(fromISC)
	if !reflect.DeepEqual(p1.Subnets(), p2.Subnets()) || !reflect.DeepEqual(p1.Reserved, p2.Reserved) || len(p1.Pools()) != len(p2.Pools()) {
		t.Fatalf("plans differ: %v %v / %v %v", p1.Subnets(), p1.Reserved, p2.Subnets(), p2.Reserved)
	}
}

func TestCheckAndImportErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.conf")
	writeFile(t, good, []byte(seedDHCPD))
	broken := filepath.Join(dir, "broken.conf")
	// The second seed's subnet line lost its addresses.
	writeFile(t, broken, []byte("ddns-update-style none;\nallow booting;\nsubnet netmask {\noption routers;\n}\n"))
	unsupported := filepath.Join(dir, "unsupported.conf")
	writeFile(t, unsupported, []byte(seedDHCPD+"log-facility local7;\n"))
	typo := filepath.Join(dir, "typo.conf")
	writeFile(t, typo, []byte(strings.Replace(seedDHCPD, "next-server", "next-sever", 1)))
	bothYAML := filepath.Join(dir, "both.yaml")
	writeFile(t, bothYAML, []byte("dhcp:\n  dhcpd-conf: "+good+"\n  subnets:\n    - network: 198.51.100.0/24\n"))
	badYAML := filepath.Join(dir, "bad.yaml")
	writeFile(t, badYAML, []byte("dhcp:\n  interfaces: [eth0]\n  subnets:\n    - network: 192.0.2.1/24\n  hosts:\n    - name: a\n      mac: 00:16:3e\n"))
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		// Errors in the YAML model name file:line:column too.
		{args: []string{"check", "--config", badYAML, "--tftp-root", dir}, code: 1, stderr: "bad.yaml:4:7: subnet 192.0.2.1/24: host bits are set"},
		{args: []string{"check", "--config", badYAML, "--tftp-root", dir}, code: 1, stderr: "bad.yaml:6:7: host a: hardware ethernet"},
		{args: []string{"check", "--dhcpd-conf", good, "--interface", "lo", "--tftp-root", dir}, code: 0,
			stdout: "ok: 1 subnet(s) [192.0.2.0/24], 1 dynamic pool(s), 3 fixed address(es); DHCP on [lo]",
			stderr: "good.conf:26:1: host test_pvm: fixed-address 192.0.2.199 lies inside a dynamic range"},
		{args: []string{"check", "--dhcpd-conf", good, "--tftp-root", dir}, code: 1, stderr: "no --interface is named"},
		{args: []string{"check", "--dhcpd-conf", broken, "--interface", "lo", "--tftp-root", dir}, code: 1, stderr: "broken.conf:3:8: expected IP address after \"subnet\""},
		{args: []string{"check", "--dhcpd-conf", unsupported, "--interface", "lo", "--tftp-root", dir}, code: 0, stderr: "unsupported.conf:40:1: \"log-facility\" is not supported by pxed"},
		// --strict: what pxed skips is an error; a typo always is, as in ISC.
		{args: []string{"check", "--dhcpd-conf", unsupported, "--interface", "lo", "--tftp-root", dir, "--strict"}, code: 1,
			stderr: "unsupported.conf:40:1: \"log-facility\" is not supported by pxed: pxed logs through its own logger; statement skipped (an error with --strict)"},
		{args: []string{"check", "--dhcpd-conf", typo, "--interface", "lo", "--tftp-root", dir}, code: 1,
			stderr: `unknown statement "next-sever": not an ISC dhcpd statement`},
		{args: []string{"check", "--dhcpd-conf", filepath.Join(dir, "missing.conf"), "--interface", "lo", "--tftp-root", dir}, code: 1, stderr: "missing.conf"},
		{args: []string{"check", "--config", bothYAML, "--interface", "lo", "--tftp-root", dir}, code: 1, stderr: "both dhcpd-conf and inline"},
		{args: []string{"check", "--tftp-root", dir}, code: 0, stdout: "DHCP is off"},
		// What serve would find missing on this machine.
		{args: []string{"check", "--tftp-root", filepath.Join(dir, "no-tree")}, code: 1, stderr: "no-tree"},
		{args: []string{"check", "--tftp-root", filepath.Join(dir, "no-tree"), "--tftp-addr", "", "--http-addr", ""}, code: 1,
			stderr: "nothing to serve"},
		{args: []string{"check", "--dhcpd-conf", good, "--interface", "pxednosuch0", "--tftp-root", dir}, code: 1,
			stderr: "error: interface pxednosuch0: not on this machine"},
		// lo (127.0.0.1/8) is on none of the seed's subnets.
		{args: []string{"check", "--dhcpd-conf", good, "--interface", "lo", "--tftp-root", dir}, code: 0,
			stderr: "warning: interface lo (127.0.0.1/8) is on no configured subnet"},
		{args: []string{"import", broken}, code: 1, stderr: "broken.conf:3:8:"},
		{args: []string{"import"}, code: 2, stderr: "usage: pxed import"},
	} {
		var stdout, stderr testutil.SyncBuffer
		code := run(tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("pxed %q: exit %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)", tc.args, code, tc.code, stdout.String(), tc.stdout, stderr.String(), tc.stderr)
		}
	}
}

func TestLeasesOffline(t *testing.T) {
	dir := t.TempDir()
	out := offlineLeases(t, dir, "192.0.2.200", "00:16:3e:72:79:e3", "pvm")
	for _, want := range []string{"IP", "MAC", "STATE", "EXPIRES", "HOSTNAME", "192.0.2.200", "00:16:3e:72:79:e3", "bound", "pvm"} {
		if !strings.Contains(out, want) {
			t.Errorf("pxed leases output lacks %q:\n%s", want, out)
		}
	}
	var stdout, stderr testutil.SyncBuffer
	if code := run([]string{"leases", "--state-dir", t.TempDir()}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "no lease database") {
		t.Errorf("empty state dir: exit %d, stderr %q", code, stderr.String())
	}
	// --config, as serve and host take it: the file's state-dir.
	cfg := filepath.Join(t.TempDir(), "pxed.yaml")
	writeFile(t, cfg, []byte("state-dir: "+dir+"\n"))
	var out2, err2 testutil.SyncBuffer
	if code := run([]string{"leases", "--config", cfg}, &out2, &err2); code != 0 || !strings.Contains(out2.String(), "192.0.2.200") {
		t.Errorf("leases --config: exit %d, stdout %q, stderr %q", code, out2.String(), err2.String())
	}
}

// offlineLeases stores one bound lease (ip, mac, hostname) in a new lease
// database in dir and returns what `pxed leases` prints with no server.
func offlineLeases(t *testing.T, dir, ip, mac, hostname string) string {
	t.Helper()
	st, err := bolt.Open(filepath.Join(dir, app.LeaseDBName))
	if err != nil {
		t.Fatal(err)
	}
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := st.Put(context.Background(), []lease.Lease{{IP: netip.MustParseAddr(ip), Client: lease.Key(nil, hw), MAC: hw,
		Hostname: hostname, State: lease.Bound, Start: exp.Add(-time.Hour), Expiry: exp}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	var stdout, stderr testutil.SyncBuffer
	if code := run([]string{"leases", "--state-dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	return stdout.String()
}

// examplesDHCP returns examples/pxed.yaml with its variant-th commented
// dhcp: block (1: dhcpd-conf, 2: native YAML) uncommented and the
// interface renamed to iface, in a directory beside links to the rest of
// examples/, so its relative paths resolve as they do in the tree.
func examplesDHCP(t *testing.T, variant int, iface string) string {
	t.Helper()
	src, err := filepath.Abs("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(src, "pxed.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	block := 0
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case l == "#dhcp:":
			block++
			if block == variant {
				l = "dhcp:"
			}
		case block == variant && strings.HasPrefix(l, "#  "):
			l = strings.ReplaceAll(l[1:], "[eth1]", "["+iface+"]")
		case block == variant:
			block = -1 // the block ended
		}
		out = append(out, l)
	}
	if !slices.Contains(out, "dhcp:") {
		t.Fatalf("examples/pxed.yaml has no commented dhcp: block %d", variant)
	}
	dir := t.TempDir()
	for _, name := range []string{"tftpboot", "inventory.yaml", "dhcpd.conf", "kickstart"} {
		if err := os.Symlink(filepath.Join(src, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "pxed.yaml")
	if err := os.WriteFile(cfg, []byte(strings.Join(out, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The shipped examples work together: examples/pxed.yaml with either DHCP
// block uncommented passes `pxed check` beside examples/inventory.yaml
// (whose hosts dhcpd.conf also declares) — on a machine whose eth1 is on
// the example subnet (a namespace with a veth named eth1).
func TestExamplesCheckTogether(t *testing.T) {
	needNetns(t)
	ns := fmt.Sprintf("pxedex%d", os.Getpid())
	for _, c := range [][]string{
		{"netns", "add", ns},
		{"-n", ns, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p"},
		{"-n", ns, "addr", "add", "192.0.2.166/24", "dev", "eth1"},
		{"-n", ns, "link", "set", "eth1", "up"},
	} {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			t.Fatalf("ip %q: %v %s", c, err, out)
		}
		if c[0] == "netns" {
			t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		}
	}
	for variant := 1; variant <= 2; variant++ {
		cfg := examplesDHCP(t, variant, "eth1")
		var stdout, stderr bytes.Buffer
		rc := -1
		if err := testutil.InNetns(ns, func() { rc = cmdCheck([]string{"--config", cfg}, &stdout, &stderr) }); err != nil {
			t.Fatal(err)
		}
		// The only warning allowed is the example dhcpd.conf's own: it is
		// the original site's file, whose pool holds test_pvm's address.
		for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
			if l != "" && (variant == 2 || !strings.Contains(l, "fixed-address 192.0.2.199 lies inside a dynamic range")) {
				t.Errorf("dhcp block %d: %s", variant, l)
			}
		}
		if rc != 0 || !strings.Contains(stdout.String(), "DHCP on [eth1]") {
			t.Errorf("dhcp block %d: pxed check exit %d\n%s%s", variant, rc, stdout.String(), stderr.String())
		}
	}
	// The same files on an interface the subnet is not on: still valid,
	// with the warning that DHCP would answer nobody there.
	cfg := examplesDHCP(t, 1, "lo")
	var stdout, stderr bytes.Buffer
	if rc := cmdCheck([]string{"--config", cfg}, &stdout, &stderr); rc != 0 || !strings.Contains(stderr.String(), "warning") {
		t.Errorf("interface lo: pxed check exit %d, want 0 with a warning\n%s", rc, stderr.String())
	}
}

// A dhcpd.conf with classes or conditionals has no YAML form: pxed import
// refuses it with the position of the first, and says to serve it as it is.
func TestImportRefusesClasses(t *testing.T) {
	var stdout, stderr bytes.Buffer
	rc := cmdImport([]string{"../../internal/config/isc/testdata/classes.conf"}, &stdout, &stderr)
	if rc != 1 || stdout.Len() != 0 || !regexp.MustCompile(`classes\.conf:\d+:\d+: .*has no form in pxed's YAML; serve this file as it is \(--dhcpd-conf`).MatchString(stderr.String()) {
		t.Errorf("pxed import classes.conf: exit %d\nstdout: %s\nstderr: %s", rc, stdout.String(), stderr.String())
	}
}
