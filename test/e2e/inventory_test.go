package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// invConf is a dhcpd.conf with a pool and no hosts: the hosts come from
// the inventory.
const invConf = `authoritative;
subnet 192.0.2.0 netmask 255.255.255.0 {
  next-server 192.0.2.1;
  filename "pxelinux.0";
  default-lease-time 600;
  range 192.0.2.100 192.0.2.150;
}
`

const invYAML = `profiles:
  inst:
    kernel: inst/vmlinuz
    initrd: [inst/initrd.img]
    append: lang=en_US ksdevice=eth0 role={{.Vars.role}}
    kickstart: ks.tmpl
hosts:
  - {name: hvm, mac: "00:16:3E:72:79:E4", ip: 192.0.2.177, profile: inst, vars: {role: web}}
`

const invKS = `# kickstart for {{.Host.Name}} at {{.Host.IP}}
url --url {{.BaseURL}}/inst
%post
curl -fsS -X POST '{{.InstalledURL}}'
%end
`

// The inventory end to end with real clients: ISC dhclient gets the host's
// fixed address; curl fetches the generated PXELINUX config (by MAC and by
// the client's own hex-IP prefix) over TFTP, the kickstart and iPXE script
// over HTTP; the kickstart's %post callback switches the host to local
// boot; `pxed host` switches it back; the state survives a restart; the
// inventory reloads on change and on SIGHUP, and a bad reload keeps the
// running inventory.
func TestE2EInventoryNetbootOnce(t *testing.T) {
	need(t, "dhclient", "curl")
	l := newLab(t, "192.0.2.1/24")
	root := filepath.Join(l.dir, "tftpboot")
	for name, data := range map[string]string{"pxelinux.0": "pxelinux", "inst/vmlinuz": "kernel", "inst/initrd.img": "initrd"} {
		os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755)
		os.WriteFile(filepath.Join(root, name), []byte(data), 0o644)
	}
	inv := filepath.Join(l.dir, "inventory.yaml")
	os.WriteFile(inv, []byte(invYAML), 0o644)
	os.WriteFile(filepath.Join(l.dir, "ks.tmpl"), []byte(invKS), 0o644)
	stateDir := t.TempDir()
	args := []string{"--tftp-addr", "192.0.2.1:69", "--http-addr", "192.0.2.1:8080", "--tftp-root", root, "--inventory", inv}
	srv := l.startPxed(invConf, stateDir, args...)

	l.setClientMAC("00:16:3e:72:79:e4")
	env := l.dhclient(t)
	for k, want := range map[string]string{"new_ip_address": "192.0.2.177", "new_filename": "pxelinux.0", "new_next_server": "192.0.2.1"} {
		if env[k] != want {
			t.Errorf("dhclient: %s = %q, want %q", k, env[k], want)
		}
	}
	tftp := func(name string) string {
		t.Helper()
		return l.in(l.cli, "curl", "-fsS", "tftp://192.0.2.1/"+name)
	}
	cfg := tftp("pxelinux.cfg/01-00-16-3e-72-79-e4")
	for _, want := range []string{"KERNEL inst/vmlinuz", "APPEND initrd=inst/initrd.img lang=en_US ksdevice=eth0 role=web ks=http://192.0.2.1:8080/ks/hvm"} {
		if !strings.Contains(cfg, want) {
			t.Fatalf("generated config lacks %q:\n%s", want, cfg)
		}
	}
	// PXELINUX falls back to shorter hex prefixes; pxed answers them for
	// the client whose address they are a prefix of (192.0.2.177 = C00002B1).
	if got := tftp("pxelinux.cfg/C00002"); got != cfg {
		t.Fatalf("prefix C00002 for the host itself:\n%s\nwant\n%s", got, cfg)
	}
	ks := l.in(l.cli, "curl", "-fsS", "http://192.0.2.1:8080/ks/hvm")
	m := regexp.MustCompile(`curl -fsS -X POST '([^']+)'`).FindStringSubmatch(ks)
	if m == nil || !strings.Contains(ks, "at 192.0.2.177") || !strings.Contains(ks, "--url http://192.0.2.1:8080/inst") {
		t.Fatalf("kickstart:\n%s", ks)
	}
	callback := m[1]
	if !strings.HasPrefix(callback, "http://192.0.2.1:8080/api/v1/hosts/hvm/installed?token=") {
		t.Fatalf("callback URL %q", callback)
	}
	script := l.in(l.cli, "curl", "-fsS", "http://192.0.2.1:8080/ipxe/00-16-3e-72-79-e4")
	if !strings.Contains(script, "kernel /inst/vmlinuz initrd=initrd.img lang=en_US") || !strings.Contains(script, "initrd /inst/initrd.img") {
		t.Fatalf("iPXE script:\n%s", script)
	}
	// iPXE asks DHCP with user class "iPXE" and gets the script's URL.
	l.dhclientConf = "send user-class \"iPXE\";\n"
	os.Remove(filepath.Join(l.dir, "dhclient-env.BOUND"))
	os.Remove(filepath.Join(l.dir, "dhclient.leases")) // a fresh DISCOVER, not INIT-REBOOT
	l.in(l.cli, "sh", "-c", "kill $(cat "+filepath.Join(l.dir, "dhclient.pid")+") 2>/dev/null; true")
	if env := l.dhclient(t); env["new_filename"] != "http://192.0.2.1:8080/ipxe/00-16-3e-72-79-e4" {
		t.Errorf("iPXE client got filename %q, want its script URL", env["new_filename"])
	}
	l.dhclientConf = ""

	// The API wants a token.
	if code := l.in(l.cli, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "http://192.0.2.1:8080/api/v1/hosts/hvm/installed"); code != "401" {
		t.Fatalf("callback without token: HTTP %s, want 401", code)
	}
	// %post calls back: from now on the host boots its disk.
	l.in(l.cli, "curl", "-fsS", "-X", "POST", callback)
	if cfg := tftp("pxelinux.cfg/01-00-16-3e-72-79-e4"); !strings.Contains(cfg, "LOCALBOOT 0") || strings.Contains(cfg, "KERNEL") {
		t.Fatalf("after the callback:\n%s", cfg)
	}
	if s := l.in(l.cli, "curl", "-fsS", "http://192.0.2.1:8080/ipxe/00-16-3e-72-79-e4"); !strings.Contains(s, "\nexit\n") {
		t.Fatalf("iPXE after the callback:\n%s", s)
	}
	// pxed host (through the control socket) lists and flips it back.
	out := run(t, pxed(t), "host", "list", "--state-dir", stateDir)
	if !regexp.MustCompile(`hvm\s+00:16:3e:72:79:e4\s+192.0.2.177\s+inst\s+local\s+.* by api 192.0.2.177:`).MatchString(out) {
		t.Fatalf("pxed host list:\n%s", out)
	}
	run(t, pxed(t), "host", "install", "hvm", "--state-dir", stateDir)
	if cfg := tftp("pxelinux.cfg/01-00-16-3e-72-79-e4"); !strings.Contains(cfg, "KERNEL inst/vmlinuz") {
		t.Fatalf("after pxed host install:\n%s", cfg)
	}
	run(t, pxed(t), "host", "local", "00:16:3e:72:79:e4", "--state-dir", stateDir)

	// The state survives a restart.
	srv.kill(syscall.SIGTERM)
	srv = l.startPxed(invConf, stateDir, args...)
	if cfg := tftp("pxelinux.cfg/01-00-16-3e-72-79-e4"); !strings.Contains(cfg, "LOCALBOOT") {
		t.Fatalf("after restart the host should still boot locally:\n%s", cfg)
	}

	// Reload on file change: a new host is served, and DHCP gives it its
	// fixed address.
	os.WriteFile(inv, []byte(invYAML+"  - {name: new, mac: \"02:00:5e:00:53:07\", ip: 192.0.2.178, profile: inst, vars: {role: db}}\n"), 0o644)
	waitFor(t, 10*time.Second, "the reloaded host's config", func() bool {
		_, err := l.try(l.cli, 10*time.Second, "curl", "-fsS", "tftp://192.0.2.1/pxelinux.cfg/01-02-00-5e-00-53-07")
		return err == nil
	})
	l.setClientMAC("02:00:5e:00:53:07")
	l.in(l.cli, "ip", "addr", "flush", "dev", l.cif)
	os.Remove(filepath.Join(l.dir, "dhclient.leases"))
	if env := l.dhclient(t); env["new_ip_address"] != "192.0.2.178" {
		t.Fatalf("reloaded host got %q, want its fixed 192.0.2.178", env["new_ip_address"])
	}
	// A bad inventory is refused; the running one stays.
	os.WriteFile(inv, []byte(invYAML+"  - {name: bad, mac: \"02:00:5e:00:53:08\", profile: nope}\n"), 0o644)
	waitFor(t, 10*time.Second, "the failed reload's log line", func() bool {
		return strings.Contains(srv.log.String(), "inventory reload failed; still serving the previous inventory")
	})
	if !strings.Contains(srv.log.String(), `unknown profile \"nope\"`) {
		t.Errorf("the failed reload does not say why:\n%s", srv.log.String())
	}
	tftp("pxelinux.cfg/01-02-00-5e-00-53-07")
	// SIGHUP reloads too (the file is fixed meanwhile).
	os.WriteFile(inv, []byte(invYAML), 0o644)
	waitFor(t, 10*time.Second, "the reload after the fix", func() bool { return strings.Count(srv.log.String(), "inventory reloaded") >= 2 })
	syscall.Kill(srv.cmd.Process.Pid, syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the SIGHUP reload", func() bool { return strings.Contains(srv.log.String(), "trigger=SIGHUP") })
	if _, err := l.try(l.cli, 10*time.Second, "curl", "-fsS", "tftp://192.0.2.1/pxelinux.cfg/01-02-00-5e-00-53-07"); err == nil {
		t.Error("a host removed from the inventory is still served")
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// run runs a command on the host (not in a namespace) and fails the test
// if it fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
