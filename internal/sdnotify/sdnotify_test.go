package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func receive(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1024)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	c := listen(t, path)
	t.Setenv("NOTIFY_SOCKET", path)
	if ok, err := Notify(Ready + "\nSTATUS=serving"); !ok || err != nil {
		t.Fatalf("Notify: %v, %v", ok, err)
	}
	if got := receive(t, c); got != "READY=1\nSTATUS=serving" {
		t.Fatalf("the manager got %q", got)
	}
}

func TestNotifyAbstract(t *testing.T) {
	name := "pxed-sdnotify-test-" + filepath.Base(t.TempDir())
	c := listen(t, "@"+name) // Go maps a leading @ to the abstract namespace
	t.Setenv("NOTIFY_SOCKET", "@"+name)
	if ok, err := Notify(Stopping); !ok || err != nil {
		t.Fatalf("Notify: %v, %v", ok, err)
	}
	if got := receive(t, c); got != "STOPPING=1" {
		t.Fatalf("the manager got %q", got)
	}
}

func TestNotifyWithoutManager(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if ok, err := Notify(Ready); ok || err != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v, %v; want nothing done", ok, err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone"))
	if ok, err := Notify(Ready); !ok || err == nil {
		t.Fatalf("to a missing socket: %v, %v; want an error", ok, err)
	}
}
