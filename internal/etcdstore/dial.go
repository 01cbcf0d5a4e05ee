// Package etcdstore is pxed's door to a shared etcd: connecting to it
// (Dial), the key layout every pxed of a cluster agrees on (Keys), and the
// lease store with its block ownership (Leases), which lets several pxed
// answer one pool without ever binding one address to two clients.
//
// The design, its keys and its invariants are in docs/architecture.md,
// "Cluster mode on etcd".
package etcdstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"pxed/internal/config"
)

// DialTimeout bounds connecting to etcd and the first request that proves
// a quorum answers.
const DialTimeout = 10 * time.Second

// Dial connects to the etcd cluster c.Store names and checks, within
// DialTimeout, that it answers a linearizable read (a quorum is up). The
// caller closes the client.
func Dial(ctx context.Context, c *config.Config) (*clientv3.Client, error) {
	spec, err := c.StoreSpec()
	if err != nil {
		return nil, err
	}
	if spec.Kind != config.StoreEtcd {
		return nil, fmt.Errorf("store %q is not an etcd store", c.Store.URL)
	}
	tc, err := tlsConfig(c.Store)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            spec.Endpoints,
		DialTimeout:          DialTimeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		TLS:                  tc,
		Logger:               zap.NewNop(),
		// Load reads leases in pages well below this.
		MaxCallRecvMsgSize: 64 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %v: %w", spec.Endpoints, err)
	}
	cctx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	if _, err := cli.Get(cctx, c.Store.Prefix+"servers/", clientv3.WithCountOnly(), clientv3.WithPrefix()); err != nil {
		cli.Close()
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("etcd %v: no answer from a quorum within %v (members down or unreachable, or TLS not as the members expect it: --etcd-ca, --etcd-cert, --etcd-key)", spec.Endpoints, DialTimeout)
		}
		return nil, fmt.Errorf("etcd %v: %w", spec.Endpoints, err)
	}
	return cli, nil
}

// tlsConfig builds the TLS configuration of s; nil for plain TCP.
func tlsConfig(s config.Store) (*tls.Config, error) {
	if s.CA == "" && s.Cert == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.CA != "" {
		pem, err := os.ReadFile(s.CA)
		if err != nil {
			return nil, fmt.Errorf("etcd CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd CA %s: no PEM certificate in it", s.CA)
		}
		tc.RootCAs = pool
	}
	if s.Cert != "" {
		cert, err := tls.LoadX509KeyPair(s.Cert, s.Key)
		if err != nil {
			return nil, fmt.Errorf("etcd client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
