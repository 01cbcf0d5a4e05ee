package lease_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pxed/internal/lease"
	"pxed/internal/lease/bolt"
)

// The kill -9 test runs this test binary again as a child (see TestMain)
// that commits leases as fast as it can and prints "IP CLIENT" for each only
// once its done callback reported it durable. The parent kills the child
// with SIGKILL mid-stream and checks that every printed lease is in the file.
const (
	crashEnvDB  = "PXED_LEASE_CRASH_DB"
	crashEnvRun = "PXED_LEASE_CRASH_RUN"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(crashEnvDB); path != "" {
		if err := crashChild(path, os.Getenv(crashEnvRun)); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func crashPool() *lease.Pool {
	return &lease.Pool{Ranges: []lease.Range{{Start: netip.MustParseAddr("10.9.0.1"), End: netip.MustParseAddr("10.9.255.254")}}}
}

func crashChild(path, run string) error {
	s, err := bolt.Open(path)
	if err != nil {
		return err
	}
	p := crashPool()
	a, err := lease.NewAllocator(context.Background(), s, lease.Options{Pools: []*lease.Pool{p}})
	if err != nil {
		return err
	}
	lines := make(chan string, 4096)
	go func() { // the only writer of stdout: one write per burst of lines
		var b strings.Builder
		for l := range lines {
			b.WriteString(l)
		drain:
			for {
				select {
				case l := <-lines:
					b.WriteString(l)
				default:
					break drain
				}
			}
			if _, err := os.Stdout.WriteString(b.String()); err != nil {
				os.Exit(3)
			}
			b.Reset()
		}
	}()
	sem := make(chan struct{}, 512)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				r := lease.Request{Client: lease.ClientKey(fmt.Sprintf("id:r%s-w%d-%d", run, w, i)), Pools: []*lease.Pool{p}}
				ip, err := a.Offer(r)
				if err != nil {
					fmt.Fprintln(os.Stderr, "offer:", err)
					return
				}
				sem <- struct{}{}
				err = a.Commit(r, ip, time.Hour, func(l lease.Lease, err error) {
					<-sem
					if err == nil {
						lines <- fmt.Sprintf("%v %s\n", l.IP, l.Client)
					}
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, "commit:", err)
					return
				}
			}
		})
	}
	wg.Wait()
	select {} // pool full: wait for the kill
}

func TestKill9LosesNoAcknowledgedLease(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	path := filepath.Join(t.TempDir(), "leases.db")
	acked := map[netip.Addr]lease.ClientKey{}
	for run := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnvDB+"="+path, fmt.Sprintf("%s=%d", crashEnvRun, run))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 500 + rand.IntN(3000) // acknowledged leases before the kill
		timer := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
		sc := bufio.NewScanner(out)
		n, killed := 0, false
		for sc.Scan() {
			ipStr, c, ok := strings.Cut(sc.Text(), " ")
			a, err := netip.ParseAddr(ipStr)
			if !ok || err != nil {
				t.Fatalf("run %d: child printed %q", run, sc.Text())
			}
			if prev, dup := acked[a]; dup {
				t.Fatalf("run %d: %v acknowledged to %s and earlier to %s", run, a, c, prev)
			}
			acked[a] = lease.ClientKey(c)
			if n++; n == killAfter && !killed {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		werr := cmd.Wait()
		timer.Stop()
		if !killed {
			t.Fatalf("run %d: child ended after %d leases before it was killed: %v\n%s", run, n, werr, stderr.String())
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("run %d: child did not die of SIGKILL: %v\n%s", run, werr, stderr.String())
		}

		s, err := bolt.Open(path)
		if err != nil {
			t.Fatalf("run %d: reopen after kill -9: %v", run, err)
		}
		stored, err := s.Load(context.Background())
		if cerr := s.Close(); cerr != nil {
			t.Fatal(cerr)
		}
		if err != nil {
			t.Fatalf("run %d: load after kill -9: %v", run, err)
		}
		have := make(map[netip.Addr]lease.Lease, len(stored))
		for _, l := range stored {
			have[l.IP] = l
		}
		lost := 0
		for a, c := range acked {
			if l, ok := have[a]; !ok || l.Client != c || l.State != lease.Bound {
				if lost++; lost <= 5 {
					t.Errorf("run %d: acknowledged %v for %s, stored %+v", run, a, c, l)
				}
			}
		}
		if lost > 0 {
			t.Fatalf("run %d: %d of %d acknowledged leases lost", run, lost, len(acked))
		}
		t.Logf("run %d: killed after %d acknowledged leases (%d so far); the file holds %d, none lost",
			run, n, len(acked), len(stored))
	}
}
