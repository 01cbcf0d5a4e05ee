package inventory

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"pxed/internal/config"
)

const example = "../../examples/inventory.yaml"

func loadExample(t *testing.T) *Inventory {
	t.Helper()
	inv, err := Load(example)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestLoadExample(t *testing.T) {
	inv := loadExample(t)
	if len(inv.Hosts) != 4 || len(inv.Profiles) != 4 {
		t.Fatalf("%d hosts, %d profiles", len(inv.Hosts), len(inv.Profiles))
	}
	h := inv.Host("00-16-3E-72-79-E4")
	if h == nil || h.Name != "test_hvm" || h.Addr() != netip.MustParseAddr("192.0.2.177") || h.State != Install {
		t.Fatalf("by MAC: %+v", h)
	}
	if inv.Host("TEST_HVM") != h || inv.ByIP(netip.MustParseAddr("192.0.2.177")) != h {
		t.Fatal("lookup by name (any case) or IP failed")
	}
	if p := inv.Profiles["ovm-2.2"]; p.Pos.Line == 0 || p.Multiboot.Loader != "mboot.c32" {
		t.Fatalf("profile pos %v loader %q", p.Pos, p.Multiboot.Loader)
	}
	if h.Pos.Line == 0 || !strings.HasSuffix(h.Pos.File, "inventory.yaml") {
		t.Fatalf("host pos %v", h.Pos)
	}
}

// Every mistake the issue names is an error that says file:line:column.
func TestParseErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.ks"), []byte("{{.Host.Nmae}}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "var.ks"), []byte("host {{.Vars.role}}\n"), 0o644)
	const prof = "profiles:\n  p: {kernel: k}\n"
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"same MAC twice", prof + "hosts:\n  - {name: a, mac: 00:16:3e:00:00:01, profile: p}\n  - {name: b, mac: 00-16-3E-00-00-01, profile: p}\n",
			[]string{"inv.yaml:5:5: host b: MAC 00:16:3e:00:00:01 is also host a's (inv.yaml:4:5)"}},
		{"unknown profile", prof + "hosts:\n  - {name: a, mac: 00:16:3e:00:00:01, profile: q}\n",
			[]string{`inv.yaml:4:5: host a: unknown profile "q" (profiles: p)`}},
		{"same name", prof + "hosts:\n  - {name: a, mac: 00:16:3e:00:00:01, profile: p}\n  - {name: A, mac: 00:16:3e:00:00:02, profile: p}\n",
			[]string{"inv.yaml:5:5: host A: declared twice"}},
		{"same ip", prof + "hosts:\n  - {name: a, mac: 00:16:3e:00:00:01, ip: 192.0.2.5, profile: p}\n  - {name: b, mac: 00:16:3e:00:00:02, ip: 192.0.2.5, profile: p}\n",
			[]string{"inv.yaml:5:5: host b: ip 192.0.2.5 is also host a's"}},
		{"bad mac", prof + "hosts:\n  - {name: a, mac: 00:16:3e, profile: p}\n", []string{`host a: MAC "00:16:3e" is not an Ethernet address`}},
		{"no mac", prof + "hosts:\n  - {name: a, profile: p}\n", []string{"host a: needs a mac"}},
		{"bad ip", prof + "hosts:\n  - {name: a, mac: 00:16:3e:00:00:01, ip: 2001:db8::1, profile: p}\n", []string{"is not an IPv4 address"}},
		{"bad uuid", prof + "hosts:\n  - {name: a, mac: 00:16:3e:00:00:01, uuid: xyz, profile: p}\n", []string{`uuid "xyz" is not 32 hex digits`}},
		{"bad state", prof + "hosts:\n  - {name: a, mac: 00:16:3e:00:00:01, profile: p, state: done}\n", []string{`state "done" is not install or local`}},
		{"bad name", prof + "hosts:\n  - {name: ../x, mac: 00:16:3e:00:00:01, profile: p}\n", []string{`host "../x": name must be`}},
		{"unknown key", "profiles:\n  p: {kernel: k, apend: x}\n", []string{`inv.yaml:2:18: unknown key "apend" in profiles.p (known: kernel, initrd, append,`}},
		{"unknown host key", prof + "hosts:\n  - name: a\n    mak: 00:16:3e:00:00:01\n", []string{`:5:5: unknown key "mak" in hosts[0] (known: name,`}},
		{"two forms", "profiles:\n  p: {kernel: k, localboot: true}\n", []string{"inv.yaml:2:3: profile p: give exactly one of kernel, multiboot or localboot"}},
		{"escape", "profiles:\n  p: {kernel: ../../etc/shadow}\n", []string{"leaves the boot tree"}},
		{"append template", "profiles:\n  p: {kernel: k, append: '{{.Nope'}\n", []string{"profile p: append:"}},
		{"kickstart missing", "profiles:\n  p: {kernel: k, kickstart: none.ks}\n", []string{"profile p: kickstart: stat"}},
		{"kickstart field typo", "profiles:\n  p: {kernel: k, kickstart: bad.ks}\nhosts:\n  - {name: a, mac: 00:16:3e:00:00:01, profile: p}\n",
			[]string{"inv.yaml:4:5: host a: kickstart:", "Nmae"}},
		{"var missing for one host", "profiles:\n  p: {kernel: k, kickstart: var.ks}\nhosts:\n  - {name: a, mac: 00:16:3e:00:00:01, profile: p, vars: {role: web}}\n  - {name: b, mac: 00:16:3e:00:00:02, profile: p}\n",
			[]string{"inv.yaml:5:5: host b: kickstart:", "role"}},
		{"multiboot separator", "profiles:\n  x: {multiboot: {hypervisor: xen.gz, kernel: vmlinuz, kernel-args: 'a --- b'}}\n", []string{`may not contain "---"`}},
		{"yaml syntax", "hosts: [\n", []string{"inv.yaml:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(filepath.Join(dir, "inv.yaml"), []byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			msg := strings.ReplaceAll(err.Error(), dir+"/", "")
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q\nwant it to contain %q", msg, w)
				}
			}
			var es config.Errors
			if !errors.As(err, &es) {
				t.Errorf("error is %T, want config.Errors", err)
			}
		})
	}
}

func TestEmptyInventory(t *testing.T) {
	inv, err := Parse("empty.yaml", nil)
	if err != nil || len(inv.Hosts) != 0 {
		t.Fatalf("%v %v", inv, err)
	}
}

// A kickstart path naming a device or FIFO is refused instead of hanging
// the load (or a reload) forever.
func TestKickstartMustBeRegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ks := range []string{"/dev/zero", fifo} {
		_, err := Parse(filepath.Join(dir, "inv.yaml"), []byte("profiles: {p: {kernel: k, kickstart: "+ks+"}}\n"))
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("kickstart %s: %v", ks, err)
		}
	}
}

// shellquote makes one shell word of anything, expanding nothing: checked
// by a real sh printing it back.
func TestShellQuote(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	for _, s := range []string{"", "plain", "x';id;'", "a b\tc\nd", `$(id) ${HOME} ` + "`id`", `\'\\"'"'`, "'", "''", "*?[a]~"} {
		q := ShellQuote(s)
		out, err := exec.Command(sh, "-c", "printf %s "+q).Output()
		if err != nil || string(out) != s {
			t.Errorf("sh printed %q for %s (%v), want %q", out, q, err, s)
		}
	}
}
