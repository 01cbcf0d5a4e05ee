package e2e

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// xenConf: pxed is the boot server (next-server) on 192.0.2.1; guests not
// in the inventory get pool addresses.
const xenConf = `authoritative;
subnet 192.0.2.0 netmask 255.255.255.0 {
  next-server 192.0.2.1;
  filename "pxelinux.0";
  range 192.0.2.100 192.0.2.150;
}
`

const xenInventory = `profiles:
  pv-install:
    kernel: el5u4_x86_xen_install/vmlinuz
    initrd: [el5u4_x86_xen_install/initrd.img, el5u4_x86_xen_install/extra.img]
    append: ks=http://192.0.2.1:8080/ks/x ksdevice=eth0
    ipappend: 2
  broken:
    kernel: missing/vmlinuz
hosts:
  - {name: test_pvm, mac: "00:16:3E:72:79:E3", ip: 192.0.2.199, profile: pv-install}
  - {name: broken, mac: "00:16:3e:00:00:0b", profile: broken}
`

// dom0 is a lab whose client namespace plays dom0: a bridge xenbr0 with
// the veth to pxed as its port and dom0's own address on the bridge.
// Through a relay (newDom0Case), the client namespace is the router and
// dom0 is a third namespace behind it.
type dom0 struct {
	*lab
	ns       string // where dom0 runs the bootloader
	port     string // xenbr0's port toward the boot server
	pxedSrv  *server
	kernel   []byte
	initrd   []byte // the two initrds, concatenated
	xenboot  string // a link named pxed-xenboot
	stateDir string
	root     string // the boot tree
}

// bridgeCase is how dom0 sits on the guests' bridge.
type bridgeCase struct {
	name     string
	dom0Addr string // dom0's own address on xenbr0 (CIDR); "" for none
	// relay: the boot server (192.0.2.1) is behind a router that relays
	// DHCP for the guests' 198.51.100.0/24 (giaddr 198.51.100.1).
	relay bool
}

// sameSubnet is the classic Xen host: dom0 has an address in the guests'
// subnet, next to the boot server.
var sameSubnet = bridgeCase{name: "dom0 on the guests' subnet", dom0Addr: "192.0.2.2/24"}

// newDom0 builds the namespaces, the bridge (dom0 on the guests' subnet)
// and a boot tree with the guest's kernel and initrds; no server runs yet.
func newDom0(t testing.TB) *dom0 { return newDom0Case(t, sameSubnet) }

// newDom0Case is newDom0 for any bridgeCase. dom0 keeps quiet on the
// bridge (no IPv6, no IGMP), so that what crosses it during a boot is the
// guest's.
func newDom0Case(t testing.TB, c bridgeCase) *dom0 {
	t.Helper()
	a := labAssets(t)
	kernel, initrd := a.Kernel, a.Initrd
	l := newLab(t, "192.0.2.1/24")
	d := &dom0{lab: l, ns: l.cli, port: l.cif, stateDir: t.TempDir(), root: filepath.Join(l.dir, "tftpboot")}
	if c.relay {
		d.ns, d.port = "pxd-"+strings.TrimPrefix(l.cli, "pxc-"), "vd"+strings.TrimPrefix(l.cif, "vc")
		router := "vr" + strings.TrimPrefix(l.cif, "vc")
		t.Cleanup(func() { exec.Command("ip", "netns", "del", d.ns).Run() })
		l.ip("netns", "add", d.ns)
		l.in(d.ns, "ip", "link", "set", "lo", "up")
		l.ip("-n", l.cli, "link", "add", router, "type", "veth", "peer", "name", d.port, "netns", d.ns)
		l.in(l.cli, "ip", "addr", "add", "192.0.2.254/24", "dev", l.cif)
		l.in(l.cli, "ip", "addr", "add", "198.51.100.1/24", "dev", router)
		l.in(l.cli, "ip", "link", "set", router, "up")
		l.in(l.cli, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		l.in(l.srv, "ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.254")
	}
	l.in(d.ns, "ip", "link", "add", "xenbr0", "type", "bridge")
	for _, dev := range []string{"xenbr0", d.port} {
		l.in(d.ns, "sysctl", "-qw", "net.ipv6.conf."+dev+".disable_ipv6=1")
	}
	// Nor the IGMP reports an interface sends for a while after it gets
	// an address.
	l.in(d.ns, "sysctl", "-qw", "net.ipv4.igmp_link_local_mcast_reports=0")
	l.in(d.ns, "ip", "link", "set", d.port, "master", "xenbr0")
	l.in(d.ns, "ip", "link", "set", d.port, "up")
	if c.dom0Addr != "" {
		l.in(d.ns, "ip", "addr", "add", c.dom0Addr, "dev", "xenbr0")
	}
	l.in(d.ns, "ip", "link", "set", "xenbr0", "up")
	os.MkdirAll(filepath.Join(d.root, "el5u4_x86_xen_install"), 0o755)
	os.MkdirAll(filepath.Join(d.root, "pxelinux.cfg"), 0o755)
	var err error
	if d.kernel, err = os.ReadFile(kernel); err != nil {
		t.Fatal(err)
	}
	ird, err := os.ReadFile(initrd)
	if err != nil {
		t.Fatal(err)
	}
	extra := extraCpio(t)
	d.initrd = append(append([]byte(nil), ird...), extra...)
	os.WriteFile(filepath.Join(d.root, "el5u4_x86_xen_install", "vmlinuz"), d.kernel, 0o644)
	os.WriteFile(filepath.Join(d.root, "el5u4_x86_xen_install", "initrd.img"), ird, 0o644)
	os.WriteFile(filepath.Join(d.root, "el5u4_x86_xen_install", "extra.img"), extra, 0o644)
	d.xenboot = filepath.Join(t.TempDir(), "pxed-xenboot")
	if err := os.Symlink(pxed(t), d.xenboot); err != nil {
		t.Fatal(err)
	}
	return d
}

// withPxed serves the tree and the inventory with pxed (DHCP + TFTP).
func (d *dom0) withPxed() *dom0 {
	inv := filepath.Join(d.dir, "inventory.yaml")
	os.WriteFile(inv, []byte(xenInventory), 0o644)
	d.pxedSrv = d.startPxed(xenConf, d.stateDir, "--tftp-addr", "192.0.2.1:69", "--tftp-root", d.root, "--inventory", inv)
	return d
}

// extraCpio is a second initramfs (one file), to check that several
// initrds are concatenated as PXELINUX does.
func extraCpio(t testing.TB) []byte {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc", "pxed-extra"), []byte("second initrd\n"), 0o644)
	cmd := exec.Command("sh", "-c", "find etc | busybox cpio -o -H newc 2>/dev/null | gzip -9")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// run runs the bootloader in dom0 as the toolstack does and returns its
// stderr and exit code.
func (d *dom0) run(timeout time.Duration, args ...string) (string, int) {
	d.t.Helper()
	out, err := d.try(d.ns, timeout, append([]string{d.xenboot}, args...)...)
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !asExit(err, &ee) {
			d.t.Fatalf("pxed-xenboot: %v\n%s", err, out)
		}
		code = ee.ExitCode()
	}
	return out, code
}

func asExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*ee = e
	return ok
}

// parseSimple0 reads the result the way libxl's parse_bootloader_result
// does: NUL-separated items, key and value split at the first space.
func parseSimple0(t testing.TB, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, item := range bytes.Split(b, []byte{0}) {
		if len(item) == 0 {
			continue
		}
		k, v, ok := strings.Cut(string(item), " ")
		if !ok {
			t.Fatalf("item %q has no value", item)
		}
		out[k] = v
	}
	return out
}

// The PV guest of the seeds (test_pvm) under xl: pxed-xenboot runs exactly
// as libxl runs a bootloader, does DHCP as the guest's MAC through dom0's
// bridge, finds 01-<mac>, fetches the kernel and both initrds, and the
// artefacts it returns boot under QEMU to the initramfs's marker with the
// expected command line.
func TestE2EXenBootloaderLibxl(t *testing.T) {
	d := newDom0(t).withPxed()
	out := filepath.Join(d.dir, "bootloader.out")
	os.WriteFile(out, nil, 0o600) // libxl creates the output file first
	outDir := t.TempDir()
	disk := filepath.Join(d.dir, "system.img")
	os.WriteFile(disk, nil, 0o600)
	start := time.Now()
	stderr, code := d.run(60*time.Second, "--args=console=hvc0 extra=1", "--output="+out, "--output-format=simple0",
		"--output-directory="+outDir, "mac=00:16:3E:72:79:E3,bridge=xenbr0,", disk)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	took := time.Since(start)
	data, _ := os.ReadFile(out)
	res := parseSimple0(t, data)
	wantArgs := "ks=http://192.0.2.1:8080/ks/x ksdevice=eth0 BOOTIF=01-00-16-3e-72-79-e3 console=hvc0 extra=1"
	if res["args"] != wantArgs {
		t.Errorf("args %q\nwant %q", res["args"], wantArgs)
	}
	for key, want := range map[string][]byte{"kernel": d.kernel, "ramdisk": d.initrd} {
		p := res[key]
		if filepath.Dir(p) != outDir {
			t.Fatalf("%s %q is not in --output-directory %s", key, p, outDir)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", key, fi.Mode().Perm())
		}
		got, _ := os.ReadFile(p)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, not the %d served", key, len(got), len(want))
		}
	}
	log := d.pxedSrv.log.String()
	if !strings.Contains(log, "dhcp: ACK") || !strings.Contains(log, "mac=00:16:3e:72:79:e3") || !strings.Contains(log, "ip=192.0.2.199") {
		t.Errorf("pxed did not ACK the guest's MAC with its fixed address:\n%s", log)
	}
	if !strings.Contains(stderr, "config pxelinux.cfg/01-00-16-3e-72-79-e3") {
		t.Errorf("bootloader log:\n%s", stderr)
	}
	t.Logf("bootloader took %s", took.Round(time.Millisecond))

	// What the toolstack would boot, booted.
	cmdline := bootDirect(t, res["kernel"], res["ramdisk"], res["args"])
	if !strings.HasPrefix(cmdline, wantArgs) {
		t.Fatalf("the guest kernel ran with %q, want %q first", cmdline, wantArgs)
	}
}

// Under xm: xend passes a FIFO and reads SXP until EOF; -q, no output
// directory (files go to the default place).
func TestE2EXenBootloaderXend(t *testing.T) {
	d := newDom0(t).withPxed()
	fifo := filepath.Join(d.dir, "xend.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(f)
		f.Close()
		got <- b
	}()
	stderr, code := d.run(60*time.Second, "-q", "--output="+fifo, "mac=00:16:3e:72:79:e3,", "bridge=xenbr0", "/dev/null")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if stderr != "" {
		t.Errorf("-q, yet stderr says:\n%s", stderr)
	}
	var sxp []byte
	select {
	case sxp = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("xend's reader got no EOF")
	}
	m := regexp.MustCompile(`^linux \(kernel ([^)]+)\)\(ramdisk ([^)]+)\)\(args "((?:[^"\\]|\\.)*)"\)\s*$`).FindSubmatch(sxp)
	if m == nil {
		t.Fatalf("SXP %q", sxp)
	}
	for _, p := range [][]byte{m[1], m[2]} {
		t.Cleanup(func() { os.Remove(string(p)) })
	}
	k, _ := os.ReadFile(string(m[1]))
	if !bytes.Equal(k, d.kernel) {
		t.Errorf("kernel %s is not the one served", m[1])
	}
	if string(m[3]) != "ks=http://192.0.2.1:8080/ks/x ksdevice=eth0 BOOTIF=01-00-16-3e-72-79-e3" {
		t.Errorf("args %q", m[3])
	}
}

// Failures end in bounded time, non-zero, with a one-line reason naming
// what was tried; xend's FIFO still sees EOF.
func TestE2EXenBootloaderFailures(t *testing.T) {
	d := newDom0(t).withPxed()
	d.in(d.cli, "ip", "link", "add", "xenbr9", "type", "bridge")
	d.in(d.cli, "ip", "link", "set", "xenbr9", "up")
	for _, tc := range []struct {
		name  string
		args  []string
		wants []string
		max   time.Duration
	}{
		{"no config for the MAC", []string{"mac=02:00:5e:00:53:aa,bridge=xenbr0"},
			[]string{"no PXELINUX config for 02:00:5e:00:53:aa", "pxelinux.cfg/01-02-00-5e-00-53-aa", "pxelinux.cfg/default", "192.0.2.1"}, 30 * time.Second},
		{"no DHCP answer", []string{"--timeout=4s", "mac=02:00:5e:00:53:ab,bridge=xenbr9"},
			[]string{"no DHCP answer", "xenbr9"}, 10 * time.Second},
		{"TFTP error", []string{"mac=00:16:3e:00:00:0b,bridge=xenbr0"},
			[]string{"missing/vmlinuz", "not found"}, 30 * time.Second},
		{"no MAC", []string{"bridge=xenbr0"}, []string{"mac"}, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fifo := filepath.Join(t.TempDir(), "out.fifo")
			syscall.Mkfifo(fifo, 0o600)
			eof := make(chan int, 1)
			go func() {
				f, err := os.Open(fifo)
				if err != nil {
					eof <- -1
					return
				}
				b, _ := io.ReadAll(f)
				f.Close()
				eof <- len(b)
			}()
			start := time.Now()
			stderr, code := d.run(tc.max+5*time.Second, append([]string{"-q", "--output=" + fifo}, append(tc.args, "/dev/null")...)...)
			took := time.Since(start)
			if code == 0 {
				t.Fatalf("exit 0:\n%s", stderr)
			}
			if took > tc.max {
				t.Errorf("took %s, want under %s", took, tc.max)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 {
				t.Errorf("want one line of reason (with -q), got:\n%s", stderr)
			}
			for _, w := range tc.wants {
				if !strings.Contains(stderr, w) {
					t.Errorf("reason %q lacks %q", stderr, w)
				}
			}
			select {
			case n := <-eof:
				if n != 0 {
					t.Errorf("the FIFO reader got %d bytes, want EOF with nothing", n)
				}
			case <-time.After(5 * time.Second):
				t.Error("the FIFO reader never saw EOF (xend would hang)")
				os.OpenFile(fifo, os.O_WRONLY, 0) // unblock it
			}
		})
	}
}

// The seeds' own stack, no pxed serve: ISC dhcpd with the seed's
// dhcpd.conf (next-server pointing at the TFTP server) and tftp-hpa serving
// the seed's /tftpboot with its hand-written 01-<mac> file. pxed-xenboot
// replaces pypxeboot there as it is.
func TestE2EXenBootloaderSeedStack(t *testing.T) {
	need(t, "dhcpd", "in.tftpd")
	d := newDom0(t)
	conf := strings.Replace(seedConf, "next-server 192.0.2.166;", "next-server 192.0.2.1;", 1)
	confPath := filepath.Join(d.dir, "dhcpd.conf")
	os.WriteFile(confPath, []byte(conf), 0o644)
	leases := filepath.Join(d.dir, "dhcpd.leases")
	os.WriteFile(leases, nil, 0o644)
	// The seed's PV guest config, as written (one initrd).
	os.WriteFile(filepath.Join(d.root, "pxelinux.cfg", "01-00-16-3e-72-79-e3"),
		[]byte("default linux\nprompt 1\ntimeout 120\nlabel linux\nkernel el5u4_x86_xen_install/vmlinuz\nappend initrd=el5u4_x86_xen_install/initrd.img\n"), 0o644)
	daemon := func(name string, args ...string) {
		cmd := exec.Command("ip", append([]string{"netns", "exec", d.lab.srv}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
			if t.Failed() {
				t.Logf("%s output:\n%s", name, out.String())
			}
		})
	}
	daemon("dhcpd", "dhcpd", "-4", "-f", "-cf", confPath, "-lf", leases, "-pf", filepath.Join(d.dir, "dhcpd.pid"), d.sif)
	daemon("in.tftpd", "in.tftpd", "-L", "-s", d.root, "-u", "root", "-a", "192.0.2.1:69")
	out := filepath.Join(d.dir, "bootloader.out")
	os.WriteFile(out, nil, 0o600)
	outDir := t.TempDir()
	var stderr string
	var code int
	// dhcpd takes a moment to listen; the bootloader retries DHCP itself.
	stderr, code = d.run(60*time.Second, "--output="+out, "--output-format=simple0", "--output-directory="+outDir, "mac=00:16:3e:72:79:e3,bridge=xenbr0", "/dev/null")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	data, _ := os.ReadFile(out)
	res := parseSimple0(t, data)
	if !strings.Contains(stderr, "got 192.0.2.199") {
		t.Errorf("ISC dhcpd should have given test_pvm its fixed 192.0.2.199:\n%s", stderr)
	}
	k, _ := os.ReadFile(res["kernel"])
	if !bytes.Equal(k, d.kernel) || res["args"] != "" {
		t.Fatalf("result %v (kernel %d bytes)", res, len(k))
	}
	if cmdline := bootDirect(t, res["kernel"], res["ramdisk"], "seed-pv-guest"); !strings.HasPrefix(cmdline, "seed-pv-guest") {
		t.Fatalf("cmdline %q", cmdline)
	}
}

// An installed guest (netboot once: its config now says LOCALBOOT) is
// handed to the local bootloader with the toolstack's arguments, or the
// bootloader says why it cannot boot it.
func TestE2EXenBootloaderLocalboot(t *testing.T) {
	d := newDom0(t).withPxed()
	run(t, pxed(t), "host", "local", "test_pvm", "--state-dir", d.stateDir)
	out := filepath.Join(d.dir, "bootloader.out")
	os.WriteFile(out, nil, 0o600)
	outDir := t.TempDir()
	args := []string{"--output=" + out, "--output-format=simple0", "--output-directory=" + outDir, "mac=00:16:3e:72:79:e3,bridge=xenbr0", "/dev/xvda-image"}
	stderr, code := d.run(30*time.Second, append([]string{"-q"}, args...)...)
	if code == 0 || !strings.Contains(stderr, "LOCALBOOT") || !strings.Contains(stderr, "--local-bootloader") {
		t.Fatalf("without a local bootloader: exit %d, %q", code, stderr)
	}
	// A stand-in for pygrub that records its arguments and answers.
	argv := filepath.Join(d.dir, "pygrub.argv")
	pygrub := filepath.Join(d.dir, "pygrub")
	os.WriteFile(pygrub, []byte("#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done > "+argv+"\nprintf 'kernel /boot/vmlinuz\\0args root=/dev/xvda1\\0' > \""+out+"\"\n"), 0o755)
	stderr, code = d.run(30*time.Second, append([]string{"--local-bootloader=" + pygrub}, args...)...)
	if code != 0 {
		t.Fatalf("with a local bootloader: exit %d\n%s", code, stderr)
	}
	got, _ := os.ReadFile(argv)
	want := "--output=" + out + "\n--output-format=simple0\n--output-directory=" + outDir + "\n/dev/xvda-image\n"
	if string(got) != want {
		t.Errorf("the local bootloader got\n%s\nwant\n%s", got, want)
	}
	if res := parseSimple0(t, mustRead(t, out)); res["kernel"] != "/boot/vmlinuz" {
		t.Errorf("output %v", res)
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
