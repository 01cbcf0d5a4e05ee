package main

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pxed/internal/app"
	"pxed/internal/lease"
	"pxed/internal/lease/bolt"
	"pxed/internal/testutil"
)

// TestLeasesEscapesHostnames: a host name is whatever a machine on the
// network sent in option 12. `pxed leases` printed it raw, so a lease
// could retitle the operator's terminal, clear it, or break the table.
// (pxed stores host names escaped now; a database written before may
// still hold raw ones.)
func TestLeasesEscapesHostnames(t *testing.T) {
	dir := t.TempDir()
	st, err := bolt.Open(filepath.Join(dir, app.LeaseDBName))
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC("02:00:5e:00:53:66")
	evil := "pwn\x1b]0;owned\x07\x1b[2J\tx\r\n\u009b31m\xff\\ok-é"
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := st.Put(context.Background(), []lease.Lease{{IP: netip.MustParseAddr("192.0.2.201"), Client: lease.Key(nil, mac), MAC: mac,
		Hostname: evil, State: lease.Bound, Start: exp.Add(-time.Hour), Expiry: exp}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	var stdout, stderr testutil.SyncBuffer
	if code := run([]string{"leases", "--state-dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, r := range out {
		if r < 0x20 && r != '\n' || r == 0x7f || r >= 0x80 && r < 0xa0 || r == '\uFFFD' {
			t.Fatalf("pxed leases printed %U:\n%q", r, out)
		}
	}
	if strings.Count(out, "\n") != 2 {
		t.Errorf("want a header and one line:\n%s", out)
	}
	want := `pwn\x1b]0;owned\x07\x1b[2J\x09x\x0d\x0a\u009b31m\xff\\ok-é`
	if !strings.Contains(out, want) {
		t.Errorf("host name shown as\n%s\nwant %s", out, want)
	}
	if got := printable("node7.example"); got != "node7.example" {
		t.Errorf("a plain name became %q", got)
	}
}
