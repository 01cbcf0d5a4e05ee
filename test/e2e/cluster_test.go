package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pxed/internal/etcdstore"
	pxlab "pxed/internal/lab"
	"pxed/internal/lease"
	"pxed/internal/testutil"
	"pxed/internal/testutil/etcdtest"
)

// Tests of several pxed sharing leases through etcd (cluster mode), on the
// cluster lab (cluster_lab_test.go): real etcd members, real pxed
// processes, perfdhcp as the clients, every ACK captured on the wire.

// clusterPrefix is the etcd prefix the lab's servers share.
const clusterPrefix = "/e2e/"

// storeArgs are the flags that put a lab server in the cluster.
func storeArgs() []string {
	var eps []string
	for _, ip := range clusterEtcdIPs {
		eps = append(eps, ip+":2379")
	}
	return []string{"--store", "etcd://" + strings.Join(eps, ","), "--store-prefix", clusterPrefix}
}

// startClusterServers starts pxed on every server of cn, in the cluster,
// with extra flags.
func startClusterServers(t *testing.T, cn *clusterNet, extra ...string) []*server {
	var out []*server
	for _, s := range cn.servers {
		out = append(out, s.startPxed(clusterConf, t.TempDir(), append(append([]string{"--log-level", "info"}, storeArgs()...), extra...)...))
	}
	return out
}

// etcdLeases reads every lease record of the lab's cluster from etcd.
func etcdLeases(t *testing.T, etcd *etcdtest.Cluster) map[netip.Addr]lease.Lease {
	t.Helper()
	st := etcdstore.NewLeases(etcd.Client(t), etcdstore.Keys{Prefix: clusterPrefix}, etcdstore.LeasesOptions{ID: "test"})
	ls, err := st.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[netip.Addr]lease.Lease{}
	for _, l := range ls {
		m[l.IP] = l
	}
	return m
}

// etcdLeader returns the index of the cluster's leader: killing it is the
// worst a member's death can do (an election, writes in flight lost).
func etcdLeader(t *testing.T, etcd *etcdtest.Cluster) int {
	t.Helper()
	cli := etcd.Client(t)
	for i, ep := range etcd.Endpoints() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := cli.Status(ctx, ep)
		cancel()
		if err == nil && st.Leader == st.Header.MemberId {
			return i
		}
	}
	t.Fatal("no etcd member says it is the leader")
	return 0
}

// perfdhcpAsync runs perfdhcp in the clients namespace in the background.
func perfdhcpAsync(cn *clusterNet, timeout time.Duration, args ...string) func() (string, error) {
	var out string
	var err error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		out, err = cn.servers[0].try(cn.clients, timeout, append([]string{"perfdhcp", "-4"}, args...)...)
	}()
	return func() (string, error) { wg.Wait(); return out, err }
}

// TestE2EClusterTwoServers: two pxed on one etcd serve one pool under
// perfdhcp load, each from its own relay (so both allocate at once). On
// the wire, no address is ACKed to two MACs while both leases are live;
// every final binding is in etcd as ACKed; both servers made bindings.
func TestE2EClusterTwoServers(t *testing.T) {
	need(t, "perfdhcp")
	cn := newClusterNet(t, 2)
	etcd := cn.startEtcd(etcdtest.Options{})
	startClusterServers(t, cn)
	cn.servers[0].in(cn.clients, "ip", "addr", "add", "198.18.0.3/15", "dev", clusterIface)
	capture := cn.capture()
	a := perfdhcpAsync(cn, 120*time.Second, "-l", clusterRelayIP, "-b", "mac=02:01:00:00:00:00", "-r", "300", "-n", "2000", "-R", "2000", "-W", "2000000", cn.serverIP(0))
	b := perfdhcpAsync(cn, 120*time.Second, "-l", "198.18.0.3", "-b", "mac=02:02:00:00:00:00", "-r", "300", "-n", "2000", "-R", "2000", "-W", "2000000", cn.serverIP(1))
	outA, errA := a()
	outB, errB := b()
	seen, drops := capture.stop()
	overlaps, final := doubleBindings(seen)
	by := map[netip.Addr]int{}
	for _, s := range seen {
		if s.Kind == "ACK" {
			by[s.Server]++
		}
	}
	pa, pb := perfdhcpCounts(outA)["REQUEST-ACK"], perfdhcpCounts(outB)["REQUEST-ACK"]
	t.Logf("perfdhcp to server 0: %d ACKs (%v); to server 1: %d ACKs (%v); captured %d ACKs by server %v, %d dropped, %d bindings",
		pa[1], errA, pb[1], errB, countACKs(seen), by, drops, len(final))
	for _, o := range overlaps {
		t.Error(o)
	}
	if pa[1] < 1000 || pb[1] < 1000 {
		t.Fatalf("perfdhcp got %d and %d ACKs: not the load this test is about\n%s\n%s", pa[1], pb[1], outA, outB)
	}
	if by[netip.MustParseAddr(cn.serverIP(0))] == 0 || by[netip.MustParseAddr(cn.serverIP(1))] == 0 {
		t.Fatalf("ACKs by server: %v, want both", by)
	}
	recs := etcdLeases(t, etcd)
	for _, f := range final {
		r, ok := recs[f.IP]
		if !ok || r.MAC.String() != f.MAC || r.State != lease.Bound {
			t.Errorf("%v was last ACKed to %s; etcd holds %+v", f.IP, f.MAC, r)
		}
	}
}

// TestE2EClusterFailover: two pxed answer one segment's broadcasting
// clients. Under load, the etcd leader is killed (nothing visible to the
// clients), then one pxed is killed with SIGKILL: the clients keep getting
// leases from the other with no gap over 5 s, and the dead server's
// bindings are renewed by the survivor.
func TestE2EClusterFailover(t *testing.T) {
	need(t, "perfdhcp")
	cn := newClusterNet(t, 2)
	etcd := cn.startEtcd(etcdtest.Options{})
	srv := startClusterServers(t, cn)
	capture := cn.capture()
	run := perfdhcpAsync(cn, 90*time.Second, "-l", clusterIface, "-r", "40", "-R", "150", "-p", "24", "-W", "2000000")
	time.Sleep(6 * time.Second)
	etcdKilled := time.Now()
	etcd.Kill(etcdLeader(t, etcd))
	time.Sleep(6 * time.Second)
	killed := time.Now()
	srv[0].kill(syscall.SIGKILL)
	out, err := run()
	seen, _ := capture.stop()
	dead, alive := netip.MustParseAddr(cn.serverIP(0)), netip.MustParseAddr(cn.serverIP(1))
	var acks []dhcpSeen
	boundBy := map[netip.Addr]netip.Addr{} // address -> server of its first ACK
	renewed := 0
	for _, s := range seen {
		if s.Kind != "ACK" {
			continue
		}
		acks = append(acks, s)
		first, ok := boundBy[s.IP]
		if !ok {
			boundBy[s.IP] = s.Server
		} else if first == dead && s.Server == alive && s.At.After(killed) {
			renewed++
		}
	}
	gap := func(from time.Time) (time.Duration, int) {
		last, worst, n := from, time.Duration(0), 0
		for _, s := range acks {
			if s.At.Before(from) {
				continue
			}
			n++
			worst = max(worst, s.At.Sub(last))
			last = s.At
		}
		return worst, n
	}
	etcdGap, _ := gap(etcdKilled)
	pxedGap, after := gap(killed)
	overlaps, _ := doubleBindings(seen)
	t.Logf("perfdhcp: %v (%v); longest gap between ACKs after the etcd member died: %v; after pxed 0 died: %v (%d ACKs after); %d of the dead server's addresses renewed by the survivor",
		perfdhcpCounts(out)["REQUEST-ACK"], err, etcdGap.Round(time.Millisecond), pxedGap.Round(time.Millisecond), after, renewed)
	for _, o := range overlaps {
		t.Error(o)
	}
	if after < 100 {
		t.Fatalf("only %d ACKs after pxed 0 died\nperfdhcp:\n%s", after, out)
	}
	if pxedGap > 5*time.Second || etcdGap > 5*time.Second {
		t.Errorf("gaps between ACKs: %v after the etcd member died, %v after pxed 0 died; want at most 5 s", etcdGap, pxedGap)
	}
	if renewed == 0 {
		t.Error("no address first ACKed by the dead server was ACKed again by the survivor")
	}
}

// TestE2EClusterPartitionNoBindings: a pxed cut off from etcd (nftables)
// ACKs nothing while the other goes on, says so in its log, and binds
// again by itself once the network heals.
func TestE2EClusterPartitionNoBindings(t *testing.T) {
	need(t, "perfdhcp", "nft", "curl")
	cn := newClusterNet(t, 2)
	cn.startEtcd(etcdtest.Options{})
	srv := startClusterServers(t, cn, "--metrics-addr", "127.0.0.1:9464")
	cn.servers[0].in(cn.clients, "ip", "addr", "add", "198.18.0.3/15", "dev", clusterIface)
	// storeUp is server 0's pxed_store_up metric.
	storeUp := func() string {
		out, _ := cn.servers[0].try(cn.servers[0].srv, 5*time.Second, "curl", "-fsS", "http://127.0.0.1:9464/metrics")
		for _, line := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(line, "pxed_store_up "); ok {
				return v
			}
		}
		return ""
	}
	if v := storeUp(); v != "1" {
		t.Fatalf("pxed_store_up = %q before the partition, want 1", v)
	}
	relay := func(i int, mac string, secs int) int {
		out, _ := cn.servers[0].try(cn.clients, time.Duration(secs+30)*time.Second, "perfdhcp", "-4", "-l", []string{clusterRelayIP, "198.18.0.3"}[i],
			"-b", "mac="+mac, "-r", "50", "-R", "500", "-p", fmt.Sprint(secs), "-W", "2000000", cn.serverIP(i))
		return perfdhcpCounts(out)["REQUEST-ACK"][1]
	}
	if n := relay(0, "02:03:00:00:00:00", 2); n == 0 {
		t.Fatal("server 0 ACKed nothing before the partition")
	}
	cn.partition(0)
	capture := cn.capture()
	var wg sync.WaitGroup
	var during [2]int
	for i := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); during[i] = relay(i, fmt.Sprintf("02:0%d:01:00:00:00", 4+i), 12) }()
	}
	wg.Wait()
	seen, _ := capture.stop()
	cut := 0
	for _, s := range seen {
		if s.Kind == "ACK" && s.Server == netip.MustParseAddr(cn.serverIP(0)) {
			cut++
		}
	}
	t.Logf("partitioned: server 0 ACKed %d (perfdhcp counted %d), server 1 ACKed %d", cut, during[0], during[1])
	if cut != 0 || during[0] != 0 {
		t.Errorf("server 0, cut off from etcd, ACKed %d requests", cut)
	}
	if during[1] == 0 {
		t.Error("server 1 ACKed nothing while server 0 was cut off")
	}
	if !strings.Contains(srv[0].log.String(), "quorum unreachable") {
		t.Errorf("server 0's log does not say it lost the quorum:\n%s", srv[0].log.String())
	}
	if v := storeUp(); v != "0" {
		t.Errorf("pxed_store_up = %q while cut off, want 0", v)
	}
	cn.heal(0)
	start := time.Now()
	for n := 0; n == 0; n = relay(0, "02:06:00:00:00:00", 2) {
		if time.Since(start) > 60*time.Second {
			t.Fatal("server 0 did not bind again within 60 s of the network healing")
		}
	}
	t.Logf("server 0 bound again %v after the network healed", time.Since(start).Round(time.Second))
	if v := storeUp(); v != "1" {
		t.Errorf("pxed_store_up = %q after healing, want 1", v)
	}
}

// rebindScript logs each udhcpc event with the address and the server
// that gave it, and configures a bound address (udhcpc renews and
// rebinds from it).
const rebindScript = `#!/bin/sh
echo "$1 $ip $serverid" >> "$LOG"
case "$1" in bound|renew) ip addr replace "$ip/$mask" dev "$interface" ;; esac
exit 0
`

// TestE2EClusterRebindAtSurvivor: busybox udhcpc binds through pxed 0 with
// a 20 s lease; pxed 1 starts, pxed 0 is killed. udhcpc's RENEW, unicast
// to the dead server, goes unanswered; its REBIND (broadcast, at 7/8 of
// the lease) is answered by pxed 1 from the shared lease: same address,
// the survivor's server id, and no DISCOVER in between.
func TestE2EClusterRebindAtSurvivor(t *testing.T) {
	need(t, "udhcpc")
	cn := newClusterNet(t, 2)
	cn.startEtcd(etcdtest.Options{})
	conf := strings.Replace(clusterConf, "default-lease-time 3600;\nmax-lease-time 7200;", "default-lease-time 20;\nmax-lease-time 20;", 1)
	args := append([]string{"--log-level", "info"}, storeArgs()...)
	s0 := cn.servers[0].startPxed(conf, t.TempDir(), args...)
	dir := t.TempDir()
	script, logf := filepath.Join(dir, "script"), filepath.Join(dir, "events")
	if err := os.WriteFile(script, []byte(rebindScript), 0o755); err != nil {
		t.Fatal(err)
	}
	udhcpc := exec.Command("ip", "netns", "exec", cn.clients, "env", "LOG="+logf, "udhcpc", "-f", "-i", clusterIface, "-s", script, "-t", "20", "-T", "1", "-A", "1")
	udhcpc.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out testutil.SyncBuffer
	udhcpc.Stdout, udhcpc.Stderr = &out, &out
	if err := udhcpc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-udhcpc.Process.Pid, syscall.SIGKILL)
		udhcpc.Wait()
		if t.Failed() {
			t.Logf("udhcpc:\n%s", out.String())
		}
	})
	events := func() string { b, _ := os.ReadFile(logf); return string(b) }
	waitFor(t, 30*time.Second, "udhcpc to bind through pxed 0", func() bool { return strings.Contains(events(), "bound ") })
	var ip string
	for _, line := range strings.Split(events(), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "bound" {
			if f[2] != cn.serverIP(0) {
				t.Fatalf("bound through %s, want pxed 0 (%s): %q", f[2], cn.serverIP(0), events())
			}
			ip = f[1]
		}
	}
	cn.servers[1].startPxed(conf, t.TempDir(), args...)
	s0.kill(syscall.SIGKILL)
	killed := time.Now()
	waitFor(t, 40*time.Second, "udhcpc's lease renewed by pxed 1", func() bool {
		return strings.Contains(events(), "renew "+ip+" "+cn.serverIP(1))
	})
	t.Logf("udhcpc events:\n%s(renewed by the survivor %v after pxed 0 died)", events(), time.Since(killed).Round(time.Second))
	if strings.Count(events(), "bound ") != 1 {
		t.Errorf("udhcpc bound again (lost its lease) instead of renewing it: %q", events())
	}
}

// TestE2EClusterInventoryPushBoots: an inventory pushed from pxed 0's
// machine reaches pxed 1 through etcd alone; pxed 0 then stops, and a QEMU
// guest (SeaBIOS, iPXE) boots through pxed 1 with the pushed profile: its
// HTTP script, kernel and initrd, and the pushed append line.
func TestE2EClusterInventoryPushBoots(t *testing.T) {
	a := labAssets(t)
	cn := newClusterNet(t, 2)
	cn.startEtcd(etcdtest.Options{})
	root := t.TempDir()
	if err := a.InstallBootloaders(root); err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{"inst/vmlinuz": a.Kernel, "inst/initrd.img": a.Initrd} {
		if err := pxlab.Place(root, name, src); err != nil {
			t.Fatal(err)
		}
	}
	var srv []*server
	for i, s := range cn.servers {
		ip := cn.serverIP(i)
		srv = append(srv, s.startPxed(clusterConf, t.TempDir(), append(storeArgs(), "--log-level", "debug", "--log-format", "json",
			"--tftp-root", root, "--tftp-addr", ip+":69", "--http-addr", ip+":8080")...))
	}
	inv := filepath.Join(t.TempDir(), "inventory.yaml")
	if err := os.WriteFile(inv, []byte(fmt.Sprintf(guestInventory, "pushed=yes")), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(cn.servers[0].dir, "dhcpd.conf") // startPxed wrote it
	out := cn.servers[0].in(cn.servers[0].srv, append([]string{pxed(t), "inventory", "push", inv, "--dhcpd-conf", conf, "--tftp-root", root}, storeArgs()...)...)
	t.Logf("pxed inventory push: %s", strings.TrimSpace(out))
	pushed := time.Now()
	waitFor(t, 10*time.Second, "pxed 1 to serve the pushed inventory", func() bool {
		return strings.Contains(srv[1].log.String(), "test_hvm") || strings.Contains(srv[1].log.String(), "\"hosts\":1")
	})
	t.Logf("pxed 1 took the pushed inventory %v after the push returned", time.Since(pushed).Round(time.Millisecond))
	srv[0].kill(syscall.SIGTERM)

	if _, err := cn.servers[0].try(cn.hub, 10*time.Second, "ip", "tuntap", "add", "dev", "tapq", "mode", "tap"); err != nil {
		t.Fatal(err)
	}
	cn.servers[0].in(cn.hub, "ip", "link", "set", "tapq", "master", "brdhcp", "up")
	guestLab := &pxlab.Lab{NS: cn.hub, Tap: "tapq", Dir: t.TempDir()}
	t.Cleanup(func() { guestLab.Close() })
	res, err := guestLab.Boot(context.Background(), a, pxlab.Guest{MAC: "00:16:3E:72:79:E4"}, []string{pxlab.Marker}, 150*time.Second)
	if err != nil {
		t.Fatalf("%v\npxed 1:\n%s", err, tail(srv[1].log.String(), 4000))
	}
	if c := res.Cmdline(); !strings.Contains(c, "pushed=yes") {
		t.Errorf("kernel command line %q: not the pushed profile's", c)
	}
	ev := pxlab.PxedEvents(srv[1].log.String(), res.Start, "00:16:3e:72:79:e4", "192.0.2.177")
	wantEvents(t, ev, "DHCP ack 192.0.2.177, next-server 192.0.2.2", "HTTP GET /ipxe/00-16-3e-72-79-e4 (200", "HTTP GET /inst/vmlinuz (200")
	var tl strings.Builder
	pxlab.FormatTimeline(&tl, ev)
	t.Logf("boot through pxed 1:\n%s  %6.1fs  kernel running", tl.String(), res.Seen[pxlab.Marker].Seconds())
}
