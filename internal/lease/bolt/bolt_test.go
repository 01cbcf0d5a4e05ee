package bolt_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"pxed/internal/lease"
	"pxed/internal/lease/bolt"
	"pxed/internal/lease/leasetest"
)

func TestConformance(t *testing.T) {
	leasetest.Conformance(t, func(t *testing.T) lease.Store {
		s, err := bolt.Open(filepath.Join(t.TempDir(), "leases.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, false)
}

func sample(i int) lease.Lease {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return lease.Lease{
		IP:     netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}),
		Client: lease.Key(nil, net.HardwareAddr{2, 0, 0, 0, byte(i >> 8), byte(i)}),
		MAC:    net.HardwareAddr{2, 0, 0, 0, byte(i >> 8), byte(i)},
		State:  lease.Bound,
		Start:  t0,
		Expiry: t0.Add(time.Hour),
	}
}

// create makes a database at a new path holding n sample leases.
func create(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "leases.db")
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var batch []lease.Lease
	for i := range n {
		batch = append(batch, sample(i))
	}
	if _, err := s.Put(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReopen(t *testing.T) {
	path := create(t, 3)
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ls, err := s.Load(context.Background())
	if err != nil || len(ls) != 3 {
		t.Fatalf("Load: %d leases, %v", len(ls), err)
	}
	for i, l := range ls {
		want := sample(i)
		want.Rev = 1
		if err := leasetest.Equal(l, want); err != nil {
			t.Error(err)
		}
	}
	// Revisions continue from the file's.
	out, err := s.Put(context.Background(), []lease.Lease{ls[0]})
	if err != nil || out[0].Rev != 2 {
		t.Fatalf("Put after reopen: rev %d, %v", out[0].Rev, err)
	}
}

func TestLocked(t *testing.T) {
	path := create(t, 1)
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	for name, open := range map[string]func(string, ...bolt.Option) (*bolt.Store, error){
		"Open": bolt.Open, "OpenReadOnly": bolt.OpenReadOnly,
	} {
		s2, err := open(path, bolt.LockTimeout(50*time.Millisecond))
		if err == nil {
			s2.Close()
			t.Fatalf("%s of a locked file succeeded", name)
		}
		if !errors.Is(err, bolt.ErrLocked) || !strings.Contains(err.Error(), "pxed serve already running") ||
			!strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("waited %v for the lock", d)
	}
}

func TestReadOnly(t *testing.T) {
	path := create(t, 2)
	r1, err := bolt.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := bolt.OpenReadOnly(path) // readers share the file
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	ls, err := r2.Load(context.Background())
	if err != nil || len(ls) != 2 {
		t.Fatalf("Load: %d, %v", len(ls), err)
	}
	if _, err := r1.Put(context.Background(), ls); !errors.Is(err, bolt.ErrReadOnly) {
		t.Errorf("Put read-only: %v", err)
	}
	if _, err := bolt.OpenReadOnly(filepath.Join(t.TempDir(), "none.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenReadOnly of a missing file: %v", err)
	}
}

// tamper changes the file with bbolt directly.
func tamper(t *testing.T, path string, f func(tx *bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(f); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestUndecodableRecord(t *testing.T) {
	good := sample(7)
	good.Rev = 1
	tests := []struct {
		name  string
		key   []byte
		value func(v []byte) []byte
		want  string
	}{
		{"newer record version", []byte{10, 0, 0, 7}, func(v []byte) []byte { v[0] = 2; return v }, "record version 2"},
		{"bad state", []byte{10, 0, 0, 7}, func(v []byte) []byte { v[1] = byte(lease.Offered); return v }, "bad state"},
		{"truncated", []byte{10, 0, 0, 7}, func(v []byte) []byte { return v[:len(v)-3] }, "10.0.0.7"},
		{"trailing bytes", []byte{10, 0, 0, 7}, func(v []byte) []byte { return append(v, 0) }, "trailing"},
		{"short", []byte{10, 0, 0, 7}, func(v []byte) []byte { return v[:5] }, "too short"},
		{"bad key", []byte{10, 0, 7}, func(v []byte) []byte { return v }, "key 0a0007"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := create(t, 10)
			var orig []byte
			tamper(t, path, func(tx *bbolt.Tx) error {
				b := tx.Bucket([]byte("leases"))
				orig = append([]byte(nil), b.Get([]byte{10, 0, 0, 7})...)
				return b.Put(tt.key, tt.value(append([]byte(nil), orig...)))
			})
			s, err := bolt.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ls, err := s.Load(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %d leases, %v; want an error mentioning %q", len(ls), err, tt.want)
			}
		})
	}
}

func TestSchemaVersion(t *testing.T) {
	path := create(t, 1)
	tamper(t, path, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), binary.BigEndian.AppendUint32(nil, 2))
	})
	for _, open := range []func(string, ...bolt.Option) (*bolt.Store, error){bolt.Open, bolt.OpenReadOnly} {
		if s, err := open(path); err == nil || !strings.Contains(err.Error(), "schema version 2") {
			if s != nil {
				s.Close()
			}
			t.Errorf("open of a newer schema: %v", err)
		}
	}
}

func TestPutRejects(t *testing.T) {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "leases.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v6 := sample(1)
	v6.IP = netip.MustParseAddr("2001:db8::1")
	long := sample(2)
	long.Hostname = strings.Repeat("x", 1<<17)
	for _, l := range []lease.Lease{v6, long} {
		if _, err := s.Put(context.Background(), []lease.Lease{sample(3), l}); err == nil {
			t.Errorf("Put of %v succeeded", l.IP)
		}
	}
	if ls, _ := s.Load(context.Background()); len(ls) != 0 {
		t.Errorf("a rejected batch left %d leases", len(ls))
	}
}
