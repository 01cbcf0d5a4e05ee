package main

import (
	"strings"
	"testing"
)

// TestLeasesEscapesHostnames: a host name is whatever a machine on the
// network sent in option 12. `pxed leases` printed it raw, so a lease
// could retitle the operator's terminal, clear it, or break the table.
// (pxed stores host names escaped now; a database written before may
// still hold raw ones.)
func TestLeasesEscapesHostnames(t *testing.T) {
	dir := t.TempDir()
	evil := "pwn\x1b]0;owned\x07\x1b[2J\tx\r\n\u009b31m\xff\\ok-é"
	out := offlineLeases(t, dir, "192.0.2.201", "02:00:5e:00:53:66", evil)
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
