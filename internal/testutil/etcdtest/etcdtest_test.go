package etcdtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// put writes key until it succeeds or timeout passes, as a client would:
// a write caught by a leader's death fails with "request timed out" and is
// tried again.
func put(cli *clientv3.Client, key, val string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		try := time.Now().Add(2 * time.Second)
		if try.After(deadline) {
			try = deadline
		}
		ctx, cancel := context.WithDeadline(context.Background(), try)
		_, err := cli.Put(ctx, key, val)
		cancel()
		if err == nil || !time.Now().Before(deadline) {
			return err
		}
	}
}

// TestQuorum runs a real 3-member cluster on loopback: writes succeed with
// one member killed, fail once a second is gone (no quorum), and succeed
// again when one of them is restarted (on its data directory: a member
// started on an empty one would not be let back into the cluster).
func TestQuorum(t *testing.T) {
	c := Start(t, Options{})
	if n := len(c.Endpoints()); n != 3 {
		t.Fatalf("%d endpoints, want 3", n)
	}
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	r, err := cli.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v1" {
		t.Fatalf("Get k: %v, want v1", r.Kvs)
	}

	c.Kill(0)
	if c.PID(0) != 0 {
		t.Fatal("member 0 still running after Kill")
	}
	// A put can land on the dead member's connection first; the client
	// retries another endpoint within the deadline.
	if err := put(cli, "k", "v2", 10*time.Second); err != nil {
		t.Fatalf("put with 2 of 3 members: %v", err)
	}

	c.Kill(1)
	if err := put(cli, "k", "v3", 2*time.Second); err == nil {
		t.Fatal("put succeeded with 1 of 3 members: no quorum should mean no write")
	}

	c.Restart(1)
	if err := put(cli, "k", "v4", 10*time.Second); err != nil {
		t.Fatalf("put after restarting a member: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	r, err = cli.Get(ctx2, "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v4" {
		t.Fatalf("Get k after restart: %v, want v4", r.Kvs)
	}
}

// TestMaxTxnOps checks that the option reaches etcd: a transaction one
// operation over the limit is refused, one at the limit is not.
func TestMaxTxnOps(t *testing.T) {
	c := Start(t, Options{Members: 1, MaxTxnOps: 4})
	cli := c.Client(t)
	txn := func(n int) error {
		var ops []clientv3.Op
		for i := range n {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("k%d", i), "v"))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := cli.Txn(ctx).Then(ops...).Commit()
		return err
	}
	if err := txn(4); err != nil {
		t.Fatalf("txn of 4 ops with --max-txn-ops 4: %v", err)
	}
	if err := txn(5); err == nil {
		t.Fatal("txn of 5 ops accepted with --max-txn-ops 4")
	}
}

// TestNetns runs the members inside a network namespace, on addresses the
// test configures there, and reaches them with Client from the test
// process, which is outside it.
func TestNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("PXED_E2E") == "1" {
			t.Fatal("PXED_E2E=1 but not running as root: network namespaces need root")
		}
		t.Skip("needs root for a network namespace")
	}
	ns := fmt.Sprintf("pxetcd-%d", os.Getpid())
	ipns := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	ipns("link", "set", "lo", "up")
	ips := []string{"198.51.100.11", "198.51.100.12", "198.51.100.13"}
	for _, ip := range ips {
		ipns("addr", "add", ip+"/32", "dev", "lo")
	}
	c := Start(t, Options{Netns: ns, IPs: ips})
	if got := c.Endpoints()[1]; got != "198.51.100.12:2379" {
		t.Fatalf("endpoint 1 = %s", got)
	}
	if err := put(c.Client(t), "k", "v", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	c.Kill(2)
	c.Restart(2)
}
