package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Store selects where leases live: an embedded bbolt file (the default,
// one server) or an etcd cluster shared by several pxed.
type Store struct {
	// URL is "bolt:PATH" or "etcd://HOST:PORT[,HOST:PORT…]". Empty:
	// bolt:<state-dir>/leases.db.
	URL string `yaml:"url"`
	// Prefix is the etcd key prefix every pxed of one cluster shares
	// (default DefaultStorePrefix). Two clusters on one etcd use two
	// prefixes.
	Prefix string `yaml:"prefix"`
	// CA, Cert and Key are PEM files for TLS to etcd: CA verifies the
	// members' certificates, Cert and Key are pxed's client certificate.
	// With none of them the connection is plain TCP.
	CA   string `yaml:"etcd-ca"`
	Cert string `yaml:"etcd-cert"`
	Key  string `yaml:"etcd-key"`
}

// DefaultStorePrefix is Store.Prefix's default.
const DefaultStorePrefix = "/pxed/"

// Store kinds, StoreSpec.Kind.
const (
	StoreBolt = "bolt"
	StoreEtcd = "etcd"
)

// StoreSpec is a parsed Store.URL.
type StoreSpec struct {
	Kind string // StoreBolt or StoreEtcd
	// Path is the bolt file (StoreBolt).
	Path string
	// Endpoints are etcd's HOST:PORT client addresses (StoreEtcd).
	Endpoints []string
}

// maxEndpoints bounds an etcd URL: a cluster has a handful of members.
const maxEndpoints = 16

// ParseStoreURL parses a Store.URL; defaultBolt is the bolt path an empty
// URL means.
func ParseStoreURL(u, defaultBolt string) (StoreSpec, error) {
	switch {
	case u == "":
		return StoreSpec{Kind: StoreBolt, Path: defaultBolt}, nil
	case strings.HasPrefix(u, "bolt:"):
		p := strings.TrimPrefix(u, "bolt:")
		if p == "" {
			return StoreSpec{}, fmt.Errorf("%q names no file (bolt:PATH)", u)
		}
		return StoreSpec{Kind: StoreBolt, Path: p}, nil
	case strings.HasPrefix(u, "etcd://"):
		rest := strings.TrimPrefix(u, "etcd://")
		if rest == "" {
			return StoreSpec{}, fmt.Errorf("%q names no etcd member (etcd://HOST:PORT[,HOST:PORT…])", u)
		}
		eps := strings.Split(rest, ",")
		if len(eps) > maxEndpoints {
			return StoreSpec{}, fmt.Errorf("%q names %d etcd members, at most %d", u, len(eps), maxEndpoints)
		}
		for _, ep := range eps {
			host, port, err := net.SplitHostPort(ep)
			if err != nil || host == "" {
				return StoreSpec{}, fmt.Errorf("etcd member %q is not HOST:PORT", ep)
			}
			if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
				return StoreSpec{}, fmt.Errorf("etcd member %q: port %q is not in 1..65535", ep, port)
			}
		}
		return StoreSpec{Kind: StoreEtcd, Endpoints: eps}, nil
	}
	return StoreSpec{}, fmt.Errorf("%q is neither bolt:PATH nor etcd://HOST:PORT[,HOST:PORT…]", u)
}

// StoreSpec parses c.Store.URL (already checked by Validate).
func (c *Config) StoreSpec() (StoreSpec, error) {
	return ParseStoreURL(c.Store.URL, c.defaultLeaseDB())
}

func (c *Config) defaultLeaseDB() string { return c.StateDir + "/leases.db" }

// Shared reports whether the store is shared with other servers (etcd).
func (c *Config) Shared() bool { return strings.HasPrefix(c.Store.URL, "etcd://") }

func (c *Config) checkStore(bad func(path, format string, args ...any)) {
	s := &c.Store
	spec, err := ParseStoreURL(s.URL, c.defaultLeaseDB())
	if err != nil {
		bad("store.url", "%v", err)
		return
	}
	if spec.Kind != StoreEtcd {
		for key, v := range map[string]string{"store.etcd-ca": s.CA, "store.etcd-cert": s.Cert, "store.etcd-key": s.Key} {
			if v != "" {
				bad(key, "is for an etcd store; store.url is %q", s.URL)
			}
		}
		return
	}
	if (s.Cert == "") != (s.Key == "") {
		bad("store.etcd-cert", "etcd-cert and etcd-key go together (a client certificate and its key)")
	}
	p := s.Prefix
	if p == "" || p[0] != '/' || p[len(p)-1] != '/' || len(p) > 128 || strings.ContainsAny(p, "\x00\n") {
		bad("store.prefix", "%q must start and end with / (e.g. /pxed/), at most 128 bytes", p)
	}
}
