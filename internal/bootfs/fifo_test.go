package bootfs_test

// A FIFO in the boot tree must never make a request hang: opening one for
// reading waits for a writer. Plain FIFOs are refused before they are
// opened; these tests replay the rest: a FIFO requested over TFTP and HTTP,
// and a name that is swapped between a regular file and a FIFO while it is
// opened (the swap can land between the check and the open).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"pxed/internal/bootfs"
	"pxed/internal/httpboot"
	"pxed/internal/tftp"
)

// fifoTree is a boot tree with a regular file "file", a FIFO "fifo" and a
// name "swap" that swapper, once started, points at one and then the other
// as fast as it can.
type fifoTree struct {
	dir  string
	tree *bootfs.Tree
}

func newFIFOTree(t *testing.T) *fifoTree {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file"), []byte("a regular file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	for _, n := range []string{"file", "fifo"} {
		if err := os.Chmod(filepath.Join(dir, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(dir, "file"), filepath.Join(dir, "swap")); err != nil {
		t.Fatal(err)
	}
	tree, err := bootfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tree.Close() })
	return &fifoTree{dir: dir, tree: tree}
}

// swapper replaces "swap" by the FIFO and by the file in turn (hard links
// renamed over it: the name always exists) until stop is called.
func (f *fifoTree) swapper(t *testing.T) (stop func()) {
	var done atomic.Bool
	var wg sync.WaitGroup
	tmp, swap := filepath.Join(f.dir, ".tmp"), filepath.Join(f.dir, "swap")
	wg.Go(func() {
		for i := 0; !done.Load(); i++ {
			src := filepath.Join(f.dir, []string{"fifo", "file"}[i%2])
			os.Remove(tmp)
			if err := os.Link(src, tmp); err == nil {
				os.Rename(tmp, swap)
			}
		}
	})
	return func() { done.Store(true); wg.Wait() }
}

// unblock opens the FIFO for writing and closes it, so that an open for
// reading blocked on it returns (a regression must fail, not hang).
func (f *fifoTree) unblock() {
	if w, err := os.OpenFile(filepath.Join(f.dir, "fifo"), os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
		w.Close()
	}
}

// within runs fn and fails the test if it takes longer than d.
func (f *fifoTree) within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { fn(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Errorf("%s: still blocked after %v (opened a FIFO?)", what, d)
		for {
			f.unblock()
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// TestOpenSwappedFIFO opens "swap" again and again while it is swapped
// between a regular file and a FIFO: every Open returns (the file, or a
// refusal), none waits for a writer.
func TestOpenSwappedFIFO(t *testing.T) {
	f := newFIFOTree(t)
	stop := f.swapper(t)
	defer stop()
	var opened, refused int
	f.within(t, 20*time.Second, "20000 opens of a name swapped with a FIFO", func() {
		for range 20000 {
			file, err := f.tree.Open("swap")
			switch {
			case err == nil:
				fi, err := file.Stat()
				file.Close()
				if err != nil || !fi.Mode().IsRegular() {
					t.Errorf("Open returned a %v (%v), want only regular files", fi.Mode(), err)
					return
				}
				opened++
			case errors.Is(err, fs.ErrPermission):
				refused++
			default:
				t.Errorf("Open: %v", err)
				return
			}
		}
	})
	t.Logf("%d opens of the regular file, %d refusals of the FIFO", opened, refused)
}

// TestFIFOOverTFTPAndHTTP requests a FIFO, and the swapped name many times,
// over TFTP (every engine) and HTTP: each request is answered (an error for
// the FIFO) and the server goes on serving.
func TestFIFOOverTFTPAndHTTP(t *testing.T) {
	f := newFIFOTree(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	servers := map[string]*net.UDPAddr{}
	for name, set := range map[string]func(*tftp.Server){
		"io_uring":    func(*tftp.Server) {},
		"goroutines":  func(s *tftp.Server) { s.NoRing = true },
		"single-port": func(s *tftp.Server) { s.SinglePort = true },
	} {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		s := &tftp.Server{FS: f.tree, Root: f.tree.Dir(), Grace: 100 * time.Millisecond, MaxTransfersPerClient: 1000}
		set(s)
		done := make(chan struct{})
		go func() { s.Serve(ctx, conn); close(done) }()
		t.Cleanup(func() { cancel(); f.unblock(); <-done })
		servers[name] = conn.LocalAddr().(*net.UDPAddr)
	}
	hs := httptest.NewServer(&httpboot.Files{FS: f.tree, Logger: slog.New(slog.DiscardHandler)})
	defer hs.Close()
	hc := &http.Client{Timeout: 10 * time.Second}

	fetchTFTP := func(server *net.UDPAddr, name string) error {
		c := &tftp.Client{Timeout: 2 * time.Second, Retries: 2}
		_, err := c.Get(context.Background(), server.AddrPort(), name, io.Discard)
		return err
	}
	fetchHTTP := func(name string) (int, error) {
		resp, err := hc.Get(hs.URL + "/" + name)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	// The FIFO itself: refused, promptly.
	for name, addr := range servers {
		f.within(t, 15*time.Second, "TFTP "+name+" request of the FIFO", func() {
			err := fetchTFTP(addr, "fifo")
			var re *tftp.RemoteError
			if !errors.As(err, &re) || re.Code != tftp.ErrAccess {
				t.Errorf("TFTP %s: fifo: %v, want ERROR %d (access violation)", name, err, tftp.ErrAccess)
			}
		})
	}
	f.within(t, 15*time.Second, "HTTP request of the FIFO", func() {
		if code, err := fetchHTTP("fifo"); err != nil || code != http.StatusForbidden {
			t.Errorf("HTTP fifo: %d %v, want 403", code, err)
		}
	})

	// The swapped name: each request answered, then the servers still serve.
	stop := f.swapper(t)
	outcomes := map[string]int{}
	f.within(t, 60*time.Second, "requests of a name swapped with a FIFO", func() {
		for range 200 {
			for _, addr := range servers {
				err := fetchTFTP(addr, "swap") // the file, or a refusal
				outcomes[fmt.Sprintf("TFTP %v", err)]++
			}
			code, err := fetchHTTP("swap")
			if err != nil {
				t.Errorf("HTTP swap: %v", err)
				return
			}
			outcomes[fmt.Sprintf("HTTP %d", code)]++
		}
	})
	stop()
	t.Logf("outcomes: %v", outcomes)
	for name, addr := range servers {
		if err := fetchTFTP(addr, "file"); err != nil {
			t.Errorf("TFTP %s no longer serves after the FIFO: %v", name, err)
		}
	}
	if code, err := fetchHTTP("file"); err != nil || code != http.StatusOK {
		t.Errorf("HTTP no longer serves after the FIFO: %d %v", code, err)
	}
}
