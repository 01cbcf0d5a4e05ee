package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pxed/internal/app"
	"pxed/internal/clusterstate"
	"pxed/internal/etcdstore"
	"pxed/internal/inventory"
	"pxed/internal/lease"
	"pxed/internal/lease/bolt"
	"pxed/internal/testutil"
	"pxed/internal/testutil/etcdtest"
)

// TestStoreMigrate: a single server's leases and host states reach a
// real etcd as they were; a second run writes nothing; a record the
// cluster holds differently is reported and kept.
func TestStoreMigrate(t *testing.T) {
	dir := t.TempDir()
	st, err := bolt.Open(filepath.Join(dir, app.LeaseDBName))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	var in []lease.Lease
	for i := range 3 {
		hw := net.HardwareAddr{0x52, 0x54, 0, 0, 0, byte(i)}
		in = append(in, lease.Lease{IP: netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)}), Client: lease.Key(nil, hw), MAC: hw,
			Hostname: fmt.Sprintf("h%d", i), State: lease.Bound, Start: start, Expiry: start.Add(time.Hour)})
	}
	if _, err := st.Put(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	st.Close()
	sf, err := inventory.OpenStateFile(filepath.Join(dir, app.HostStateName))
	if err != nil {
		t.Fatal(err)
	}
	rec := inventory.Record{State: inventory.Install, Declared: inventory.Local, Changed: start, By: "pxed host", Token: "00112233445566778899aabbccddeeff"}
	if err := sf.Update([]string{"web1"}, func(map[string]inventory.Record) (map[string]inventory.Record, error) {
		return map[string]inventory.Record{"web1": rec}, nil
	}); err != nil {
		t.Fatal(err)
	}

	c := etcdtest.Start(t, etcdtest.Options{Members: 1})
	args := []string{"store", "migrate", "--from", "bolt:" + filepath.Join(dir, app.LeaseDBName), "--to", "etcd://" + c.Endpoints()[0], "--store-prefix", "/m/"}
	migrate := func(want string) {
		t.Helper()
		var out, errb testutil.SyncBuffer
		if code := run(args, &out, &errb); code != 0 || !strings.Contains(out.String(), want) {
			t.Fatalf("store migrate: exit %d, stdout %q (want %q), stderr %q", code, out.String(), want, errb.String())
		}
	}
	migrate("leases: 3 written, 0 already there, 0 differ")
	migrate("host states: 0 written, 1 already there")
	keys := etcdstore.Keys{Prefix: "/m/"}
	got, err := etcdstore.NewLeases(c.Client(t), keys, etcdstore.LeasesOptions{}).Load(context.Background())
	if err != nil || len(got) != 3 {
		t.Fatalf("etcd holds %d leases (%v), want 3", len(got), err)
	}
	for _, l := range got {
		want := in[l.IP.As4()[3]-10]
		if l.Client != want.Client || l.MAC.String() != want.MAC.String() || !l.Start.Equal(want.Start) || !l.Expiry.Equal(want.Expiry) || l.Hostname != want.Hostname {
			t.Errorf("etcd holds %+v, the bolt file %+v", l, want)
		}
	}
	hs, err := clusterstate.OpenStates(context.Background(), c.Client(t), keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := hs.Get("web1"); !ok || !sameRecord(r, rec) {
		t.Fatalf("etcd's host state of web1: %+v %v, want %+v", r, ok, rec)
	}
	migrate("host states: 0 written, 1 already there, 0 differ")

	// The cluster changed one lease since: reported, kept.
	other := in[1]
	other.Rev = got[1].Rev
	for _, l := range got {
		if l.IP == other.IP {
			other.Rev = l.Rev
		}
	}
	other.Hostname = "renamed"
	s := etcdstore.NewLeases(c.Client(t), keys, etcdstore.LeasesOptions{ID: "t", TTL: 2 * time.Second})
	s.Start(nil)
	defer s.Close()
	for deadline := time.Now().Add(10 * time.Second); !s.Up(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("store not up")
		}
	}
	if _, err := s.Put(context.Background(), []lease.Lease{other}); err != nil {
		t.Fatal(err)
	}
	migrate("leases: 0 written, 2 already there, 1 differ")
	var out, errb testutil.SyncBuffer
	run(args, &out, &errb)
	if !strings.Contains(out.String(), "differs: 192.0.2.11") {
		t.Errorf("the differing lease is not named: %q", out.String())
	}
}

// TestLeasesFromEtcd: with no server running, pxed leases --config of a
// cluster's server lists the leases etcd holds.
func TestLeasesFromEtcd(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 1})
	keys := etcdstore.Keys{Prefix: "/l/"}
	hw := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 9}
	l := lease.Lease{IP: netip.MustParseAddr("198.18.0.9"), Client: lease.Key(nil, hw), MAC: hw, Hostname: "node9",
		State: lease.Bound, Start: time.Now(), Expiry: time.Now().Add(time.Hour)}
	if _, err := etcdstore.CopyLeases(context.Background(), c.Client(t), keys, []lease.Lease{l}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pxed.yaml")
	writeFile(t, cfg, []byte("state-dir: "+dir+"\nstore:\n  url: etcd://"+c.Endpoints()[0]+"\n  prefix: /l/\n"))
	var out, errb testutil.SyncBuffer
	if code := run([]string{"leases", "--config", cfg}, &out, &errb); code != 0 || !strings.Contains(out.String(), "198.18.0.9") || !strings.Contains(out.String(), "node9") {
		t.Fatalf("pxed leases: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}

// TestEtcdTLS: against etcd members that require TLS client certificates,
// the --etcd-ca/--etcd-cert/--etcd-key flags connect; the CA alone (no
// client certificate) is refused with an error, not a hang.
func TestEtcdTLS(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 1, TLS: true})
	f := c.TLS()
	dir := t.TempDir()
	st, err := bolt.Open(filepath.Join(dir, app.LeaseDBName))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	base := []string{"store", "migrate", "--from", "bolt:" + filepath.Join(dir, app.LeaseDBName), "--to", "etcd://" + c.Endpoints()[0], "--etcd-ca", f.CA}
	var out, errb testutil.SyncBuffer
	if code := run(append(base, "--etcd-cert", f.Cert, "--etcd-key", f.Key), &out, &errb); code != 0 || !strings.Contains(out.String(), "leases: 0 written") {
		t.Fatalf("over TLS with a client certificate: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	var out2, errb2 testutil.SyncBuffer
	start := time.Now()
	if code := run(base, &out2, &errb2); code == 0 || !strings.Contains(errb2.String(), "etcd") {
		t.Fatalf("without a client certificate: exit %d, stdout %q, stderr %q", code, out2.String(), errb2.String())
	}
	t.Logf("refused after %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(errb2.String()))
}
