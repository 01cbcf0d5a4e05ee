package leasetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"pxed/internal/lease"
)

// Conformance checks that the stores newStore returns honour the lease.Store
// contract: round trip of every field, all-or-nothing batches, increasing
// revisions, refusal of non-persistent states. With cas it also checks
// compare-and-swap (lease.ErrConflict on a stale Rev, nothing written).
// newStore must return an empty store; Conformance closes it.
func Conformance(t *testing.T, newStore func(t *testing.T) lease.Store, cas bool) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	full := lease.Lease{
		IP:       netip.MustParseAddr("192.0.2.10"),
		Client:   lease.Key([]byte{1, 0, 0x16, 0x3e, 0x72, 0x79, 0xe3}, nil),
		MAC:      net.HardwareAddr{0, 0x16, 0x3e, 0x72, 0x79, 0xe3},
		Hostname: "node-1",
		UUID:     "00112233445566778899aabbccddeeff",
		State:    lease.Bound,
		Start:    t0,
		Expiry:   t0.Add(time.Hour),
	}
	load := func(t *testing.T, s lease.Store) map[netip.Addr]lease.Lease {
		t.Helper()
		ls, err := s.Load(ctx)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		m := make(map[netip.Addr]lease.Lease, len(ls))
		for _, l := range ls {
			if _, dup := m[l.IP]; dup {
				t.Fatalf("Load returned %v twice", l.IP)
			}
			m[l.IP] = l
		}
		return m
	}
	open := func(t *testing.T) lease.Store {
		s := newStore(t)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}

	t.Run("RoundTrip", func(t *testing.T) {
		s := open(t)
		if m := load(t, s); len(m) != 0 {
			t.Fatalf("new store holds %d leases", len(m))
		}
		bootp := full
		bootp.IP = netip.MustParseAddr("192.0.2.11")
		bootp.Client = lease.Key(nil, net.HardwareAddr{2, 0, 0, 0, 0, 1})
		bootp.Expiry = time.Time{}
		bare := lease.Lease{IP: netip.MustParseAddr("192.0.2.12"), State: lease.Abandoned, Start: t0, Expiry: t0.Add(time.Minute)}
		in := []lease.Lease{full, bootp, bare}
		out, err := s.Put(ctx, in)
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
		if len(out) != len(in) {
			t.Fatalf("Put returned %d leases for %d", len(out), len(in))
		}
		m := load(t, s)
		for i, want := range in {
			if out[i].Rev == 0 || out[i].IP != want.IP {
				t.Errorf("Put result %d: %v rev %d", i, out[i].IP, out[i].Rev)
			}
			want.Rev = out[i].Rev
			if err := Equal(m[want.IP], want); err != nil {
				t.Errorf("after Put+Load: %v", err)
			}
		}
	})

	t.Run("Revisions", func(t *testing.T) {
		s := open(t)
		var batch []lease.Lease
		// 64: the largest batch a shared store takes (etcd's
		// transaction bound; lease.Options.MaxBatch).
		for i := range 64 {
			l := full
			l.IP = netip.AddrFrom4([4]byte{10, 1, byte(i / 256), byte(i)})
			batch = append(batch, l)
		}
		out1, err := s.Put(ctx, batch)
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
		upd := out1[7]
		upd.State = lease.Released
		upd.Expiry = t0.Add(time.Minute)
		out2, err := s.Put(ctx, []lease.Lease{upd})
		if err != nil {
			t.Fatalf("Put of an update with the current Rev: %v", err)
		}
		if out2[0].Rev <= out1[7].Rev {
			t.Errorf("revision went from %d to %d", out1[7].Rev, out2[0].Rev)
		}
		m := load(t, s)
		if len(m) != 64 {
			t.Errorf("Load: %d leases, want 64", len(m))
		}
		if err := Equal(m[upd.IP], out2[0]); err != nil {
			t.Errorf("updated lease: %v", err)
		}
	})

	t.Run("RefusesOffered", func(t *testing.T) {
		s := open(t)
		l := full
		l.State = lease.Offered
		if _, err := s.Put(ctx, []lease.Lease{l}); err == nil {
			t.Fatal("Put of an Offered lease succeeded")
		}
		if m := load(t, s); len(m) != 0 {
			t.Fatalf("refused Put left %d leases", len(m))
		}
	})

	if !cas {
		return
	}
	t.Run("CompareAndSwap", func(t *testing.T) {
		s := open(t)
		out, err := s.Put(ctx, []lease.Lease{full})
		if err != nil {
			t.Fatal(err)
		}
		other := full
		other.IP = netip.MustParseAddr("192.0.2.99")
		for _, rev := range []uint64{0, out[0].Rev + 1} {
			stale := full
			stale.Rev = rev
			stale.Hostname = "intruder"
			_, err := s.Put(ctx, []lease.Lease{other, stale})
			if !errors.Is(err, lease.ErrConflict) {
				t.Fatalf("Put with Rev %d over Rev %d: %v, want ErrConflict", rev, out[0].Rev, err)
			}
		}
		m := load(t, s)
		if _, ok := m[other.IP]; ok || m[full.IP].Hostname != full.Hostname {
			t.Fatal("a batch that conflicted was partly written")
		}
	})
}

// Equal reports how got differs from want, field by field (times with
// time.Time.Equal), nil if it does not.
func Equal(got, want lease.Lease) error {
	switch {
	case got.IP != want.IP:
		return fmt.Errorf("IP %v, want %v", got.IP, want.IP)
	case got.Client != want.Client:
		return fmt.Errorf("%v: Client %q, want %q", want.IP, got.Client, want.Client)
	case got.MAC.String() != want.MAC.String():
		return fmt.Errorf("%v: MAC %v, want %v", want.IP, got.MAC, want.MAC)
	case got.Hostname != want.Hostname:
		return fmt.Errorf("%v: Hostname %q, want %q", want.IP, got.Hostname, want.Hostname)
	case got.UUID != want.UUID:
		return fmt.Errorf("%v: UUID %q, want %q", want.IP, got.UUID, want.UUID)
	case got.State != want.State:
		return fmt.Errorf("%v: State %v, want %v", want.IP, got.State, want.State)
	case !got.Start.Equal(want.Start):
		return fmt.Errorf("%v: Start %v, want %v", want.IP, got.Start, want.Start)
	case !got.Expiry.Equal(want.Expiry):
		return fmt.Errorf("%v: Expiry %v, want %v", want.IP, got.Expiry, want.Expiry)
	case got.Rev != want.Rev:
		return fmt.Errorf("%v: Rev %d, want %d", want.IP, got.Rev, want.Rev)
	}
	return nil
}
