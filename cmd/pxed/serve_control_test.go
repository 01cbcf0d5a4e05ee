package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"pxed/internal/app"
)

// pxedHost runs `pxed host ARGS` on c's state directory and inventory.
func pxedHost(c *cfgPaths, args ...string) (int, string) {
	var out, errb bytes.Buffer
	rc := cmdHost(append(args, "--state-dir", c.stateDir, "--inventory", c.inventory), &out, &errb)
	return rc, out.String() + errb.String()
}

type cfgPaths struct{ stateDir, inventory string }

// `pxed host` edits the state file itself only when no server runs. A
// server whose control socket is gone (removed by a temp cleaner, or not
// yet created while the server starts) still owns the file: the command
// fails and changes nothing, where it used to write the file behind the
// server (which then overwrote it, or served the old state).
func TestHostOfflineOnlyWithoutServer(t *testing.T) {
	root := t.TempDir()
	c := testConfig(t, root)
	c.TFTP.Addr = ""
	c.Inventory = testInventory(t, t.TempDir(), "127.0.0.1")
	paths := &cfgPaths{c.StateDir, c.Inventory}
	_, stop := startServe(t, c)
	states := filepath.Join(c.StateDir, app.HostStateName)
	before, _ := os.ReadFile(states)

	if rc, out := pxedHost(paths, "list"); rc != 0 || !strings.Contains(out, "web1") {
		t.Fatalf("pxed host list through the server: %d %s", rc, out)
	}
	// A second server on the same state directory is refused at once.
	err := serve(context.Background(), c, slog.New(slog.DiscardHandler), nil)
	if err == nil || !strings.Contains(err.Error(), "another pxed serve is running") {
		t.Fatalf("a second serve on the state dir: %v", err)
	}
	if err := os.Remove(filepath.Join(c.StateDir, app.ControlSocket)); err != nil {
		t.Fatal(err)
	}
	rc, out := pxedHost(paths, "local", "web1")
	if rc == 0 {
		t.Fatalf("pxed host local with the server running and its socket gone: succeeded\n%s", out)
	}
	if !strings.Contains(out, "running pxed serve") {
		t.Errorf("the error does not say a server runs: %s", out)
	}
	if after, _ := os.ReadFile(states); !bytes.Equal(after, before) {
		t.Fatalf("the state file changed behind the server:\n%s\nwas\n%s", after, before)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// No server: a stale socket is refused, and the file is edited.
	ln, err := net.Listen("unix", filepath.Join(c.StateDir, app.ControlSocket))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if rc, out := pxedHost(paths, "local", "web1"); rc != 0 || !strings.Contains(out, "local") {
		t.Fatalf("pxed host local without a server: %d %s", rc, out)
	}
	if after, _ := os.ReadFile(states); !strings.Contains(string(after), `"state": "local"`) {
		t.Fatalf("the state file after an offline edit:\n%s", after)
	}
}

// inotifyEvent is a decoded inotify event on a watched directory.
type inotifyEvent struct {
	mask uint32
	name string
}

// watchDir reports the create, attribute and move-in events of dir.
func watchDir(t *testing.T, dir string) func() []inotifyEvent {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		t.Skipf("inotify: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_CREATE|syscall.IN_ATTRIB|syscall.IN_MOVED_TO); err != nil {
		t.Fatal(err)
	}
	return func() []inotifyEvent {
		var evs []inotifyEvent
		buf := make([]byte, 64<<10)
		n, _ := syscall.Read(fd, buf)
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(ev.Len)]
			evs = append(evs, inotifyEvent{ev.Mask, strings.TrimRight(string(name), "\x00")})
			off += syscall.SizeofInotifyEvent + int(ev.Len)
		}
		return evs
	}
}

// The control socket never exists with a mode that lets others connect:
// it appears in the state directory already 0600 (it used to be created
// with the umask's mode, then chmod'ed: inotify saw the create and then
// the attribute change).
func TestControlSocketMode(t *testing.T) {
	dir := t.TempDir()
	events := watchDir(t, dir)
	old := syscall.Umask(0) // the worst umask: a socket created here is 0777
	ln, err := listenControl(dir)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, app.ControlSocket)
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket %v, want a socket with mode 0600", fi.Mode())
	}
	time.Sleep(10 * time.Millisecond)
	for _, ev := range events() {
		if ev.name != app.ControlSocket {
			continue
		}
		if ev.mask&syscall.IN_MOVED_TO == 0 {
			t.Errorf("inotify event %#x on the socket: it was created or changed in place, not moved in whole", ev.mask)
		}
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("connecting to the control socket: %v", err)
	}
	c.Close()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("state directory holds %d entries, want the socket alone: %v", len(entries), entries)
	}
	ln.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("control socket after Close: %v, want it removed", err)
	}
}
