package clusterstate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	clientv3 "go.etcd.io/etcd/client/v3"

	"pxed/internal/app"
	"pxed/internal/config"
	"pxed/internal/etcdstore"
)

// APIToken is the API token of the cluster, which every pxed of it
// accepts. The first server stores one with a create-if-absent
// transaction: api.token-file's when set, else the token of its state
// directory if it has one (a server that joins a cluster keeps its
// clients'), else a new random one. Every later server reads that one; a
// server whose api.token-file holds another refuses to start rather than
// accept a token the others refuse. Without api.token-file, the cluster's
// token is written to <state-dir>/api-token, so it can be read there on
// any server.
func APIToken(ctx context.Context, cli *clientv3.Client, keys etcdstore.Keys, c *config.Config) (string, error) {
	mine, err := app.APIToken(c, false)
	if err != nil {
		return "", err
	}
	seed := mine
	if seed == "" {
		seed = app.NewAPIToken()
	}
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	k := keys.APIToken()
	resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, seed)).Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	tok := seed
	if !resp.Succeeded {
		rr := resp.Responses[0].GetResponseRange()
		if rr == nil || len(rr.Kvs) != 1 {
			return "", fmt.Errorf("api token: %s vanished while it was read", k)
		}
		if tok, err = app.ParseAPIToken(rr.Kvs[0].Value); err != nil {
			return "", fmt.Errorf("api token in etcd (%s): %v", k, err)
		}
	}
	switch {
	case c.API.TokenFile != "" && tok != mine:
		return "", fmt.Errorf("api token-file %s differs from the cluster's token in etcd (%s): every pxed of a cluster accepts the one token; put that one in the file, or drop api.token-file", c.API.TokenFile, k)
	case c.API.TokenFile == "" && tok != mine:
		if err := writeToken(filepath.Join(c.StateDir, app.APITokenName), tok); err != nil {
			return "", err
		}
	}
	return tok, nil
}

// writeToken replaces the token file at path (mode 0600) with tok.
func writeToken(path, tok string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".api-token-*.tmp")
	if err != nil {
		return fmt.Errorf("api token: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(tok + "\n")
	if serr := tmp.Sync(); err == nil {
		err = serr
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("api token: %w", err)
	}
	return nil
}
