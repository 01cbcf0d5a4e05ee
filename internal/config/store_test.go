package config

import (
	"net"
	"strings"
	"testing"
)

func TestParseStoreURL(t *testing.T) {
	for _, tc := range []struct {
		in, kind, path, eps, err string
	}{
		{in: "", kind: StoreBolt, path: "/def/leases.db"},
		{in: "bolt:/var/lib/x.db", kind: StoreBolt, path: "/var/lib/x.db"},
		{in: "etcd://192.0.2.1:2379", kind: StoreEtcd, eps: "192.0.2.1:2379"},
		{in: "etcd://a.example:2379,[2001:db8::1]:2379", kind: StoreEtcd, eps: "a.example:2379,[2001:db8::1]:2379"},
		{in: "bolt:", err: "names no file"},
		{in: "etcd://", err: "names no etcd member"},
		{in: "etcd://192.0.2.1", err: "is not HOST:PORT"},
		{in: "etcd://192.0.2.1:0", err: "not in 1..65535"},
		{in: "etcd://:2379", err: "is not HOST:PORT"},
		{in: "etcd://" + strings.Repeat("h:1,", 16) + "h:1", err: "at most 16"},
		{in: "redis://x:1", err: "neither bolt:PATH nor etcd://"},
	} {
		got, err := ParseStoreURL(tc.in, "/def/leases.db")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want an error with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got.Kind != tc.kind || got.Path != tc.path || strings.Join(got.Endpoints, ",") != tc.eps {
			t.Errorf("%q: %+v %v", tc.in, got, err)
		}
	}
}

func TestValidateStore(t *testing.T) {
	for _, tc := range []struct {
		s   Store
		err string
	}{
		{s: Store{URL: "etcd://192.0.2.1:2379", Prefix: "/pxed/"}},
		{s: Store{URL: "etcd://192.0.2.1:2379", Prefix: "pxed"}, err: "store.prefix"},
		{s: Store{URL: "etcd://192.0.2.1:2379", Prefix: "/pxed/", Cert: "c.pem"}, err: "store.etcd-cert"},
		{s: Store{URL: "bolt:/x.db", Prefix: "/pxed/", CA: "ca.pem"}, err: "store.etcd-ca"},
		{s: Store{URL: "etcd:/x", Prefix: "/pxed/"}, err: "store.url"},
	} {
		c := Default()
		c.Store = tc.s
		err := c.Validate()
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%+v: %v, want %q", tc.s, err, tc.err)
		}
	}
}

// FuzzParseStoreURL: any string is refused or gives a store whose parts
// are well formed; never a panic.
func FuzzParseStoreURL(f *testing.F) {
	for _, s := range []string{"", "bolt:/x", "etcd://192.0.2.1:2379,192.0.2.2:2379", "etcd://[::1]:1", "etcd://,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseStoreURL(s, "/d")
		if err != nil {
			return
		}
		switch got.Kind {
		case StoreBolt:
			if got.Path == "" {
				t.Fatalf("%q: bolt with no path", s)
			}
		case StoreEtcd:
			if len(got.Endpoints) == 0 || len(got.Endpoints) > maxEndpoints {
				t.Fatalf("%q: %d endpoints", s, len(got.Endpoints))
			}
			for _, ep := range got.Endpoints {
				if h, _, err := net.SplitHostPort(ep); err != nil || h == "" {
					t.Fatalf("%q: endpoint %q", s, ep)
				}
			}
		default:
			t.Fatalf("%q: kind %q", s, got.Kind)
		}
	})
}
