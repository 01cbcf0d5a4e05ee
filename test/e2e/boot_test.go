package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	pxlab "pxed/internal/lab"
)

// Real firmware through pxed: QEMU guests (SeaBIOS or OVMF, with QEMU's
// iPXE ROMs) boot from pxed in a network namespace, as LAB-NOTES verified
// with peer servers. Each scenario asserts pxed's events for the guest
// and the marker its initramfs prints with /proc/cmdline.

// prepared is a lab asset prepared once per test run (downloads and
// builds, cached in pxlab.CacheDir()).
type prepared[T any] struct {
	once sync.Once
	v    T
	err  error
}

// get prepares the asset the first time, within 10 minutes; a failure
// fails the test under PXED_E2E=1 and skips it otherwise.
func (p *prepared[T]) get(t testing.TB, prepare func(ctx context.Context, cache string) (T, error)) T {
	t.Helper()
	p.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		p.v, p.err = prepare(ctx, pxlab.CacheDir())
	})
	if p.err != nil {
		if e2eRequired() {
			t.Fatal(p.err)
		}
		t.Skip(p.err)
	}
	return p.v
}

var assets prepared[*pxlab.Assets]

func labAssets(t testing.TB) *pxlab.Assets {
	t.Helper()
	need(t, "qemu-system-x86_64", "apt-get", "dpkg-deb", "busybox")
	return assets.get(t, func(ctx context.Context, cache string) (*pxlab.Assets, error) {
		return pxlab.PrepareAssets(ctx, cache, true)
	})
}

// bootLab is a lab with pxed serving a boot tree.
type bootLab struct {
	*pxlab.Lab
	t     *testing.T
	a     *pxlab.Assets
	root  string
	state string
	pxed  *pxlab.Proc
}

func newBootLab(t *testing.T, server string) *bootLab {
	t.Helper()
	a := labAssets(t)
	l, err := pxlab.New(netip.MustParsePrefix(server))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	b := &bootLab{Lab: l, t: t, a: a, root: filepath.Join(l.Dir, "tftpboot"), state: filepath.Join(l.Dir, "state")}
	if err := a.InstallBootloaders(b.root); err != nil {
		t.Fatal(err)
	}
	return b
}

// place copies a lab asset into the tree.
func (b *bootLab) place(name, src string) {
	b.t.Helper()
	if err := pxlab.Place(b.root, name, src); err != nil {
		b.t.Fatal(err)
	}
}

// write writes a file into the boot tree.
func (b *bootLab) write(name, data string) {
	b.t.Helper()
	p := filepath.Join(b.root, name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// file writes a file into the lab's directory (outside the tree) and
// returns its path.
func (b *bootLab) file(name, data string) string {
	b.t.Helper()
	p := filepath.Join(b.Dir, name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		b.t.Fatal(err)
	}
	return p
}

// serve starts pxed in the lab on the tap (DHCP, TFTP :69, HTTP :8080).
func (b *bootLab) serve(args ...string) {
	b.t.Helper()
	host := b.Server.Addr().String()
	all := append([]string{pxed(b.t), "serve", "--interface", b.Tap, "--tftp-root", b.root, "--tftp-addr", host + ":69",
		"--http-addr", host + ":8080", "--state-dir", b.state, "--log-format", "json", "--log-level", "debug"}, args...)
	p, err := b.Start("pxed", nil, all...)
	if err != nil {
		b.t.Fatal(err)
	}
	b.pxed = p
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := pxlab.WaitFile(ctx, p, filepath.Join(b.state, "control.sock")); err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() {
		if b.t.Failed() {
			b.t.Logf("pxed log:\n%s", tail(p.Output(), 6000))
		}
	})
}

// boot boots a guest until the marker (and any other strings) and logs
// its timeline.
func (b *bootLab) boot(g pxlab.Guest, ip string, timeout time.Duration, until ...string) *pxlab.Result {
	b.t.Helper()
	res, err := b.Boot(context.Background(), b.a, g, append([]string{pxlab.Marker}, until...), timeout)
	if err != nil {
		b.t.Fatal(err)
	}
	var tl strings.Builder
	pxlab.FormatTimeline(&tl, b.events(res, g.MAC, ip))
	fmt.Fprintf(&tl, "  %6.1fs  kernel running (marker)\n", res.Seen[pxlab.Marker].Seconds())
	b.t.Logf("boot of %s:\n%s", g.MAC, tl.String())
	return res
}

func (b *bootLab) events(res *pxlab.Result, mac, ip string) []pxlab.Event {
	return pxlab.PxedEvents(b.pxed.Output(), res.Start, mac, ip)
}

// wantEvents checks that pxed's events for the guest include each
// fragment, in order.
func wantEvents(t *testing.T, events []pxlab.Event, fragments ...string) {
	t.Helper()
	i := 0
	for _, e := range events {
		if i < len(fragments) && strings.Contains(e.What, fragments[i]) {
			i++
		}
	}
	if i < len(fragments) {
		var all []string
		for _, e := range events {
			all = append(all, e.What)
		}
		t.Errorf("pxed's events lack %q (after %q):\n%s", fragments[i], fragments[:i], strings.Join(all, "\n"))
	}
}

// seedHVMConfig is the first seed's pxelinux.cfg/01-00-16-3e-72-79-e4.
const seedHVMConfig = "default linux\nprompt 1\ntimeout 120\nlabel linux\nkernel el5u4_x86_pxeboot_install/vmlinuz\nappend initrd=el5u4_x86_pxeboot_install/initrd.img\n"

// Scenario 1: the seeds' HVM guest. The seed's dhcpd.conf (next-server
// 192.0.2.166 is this server) and /tftpboot as written: SeaBIOS + iPXE
// load pxelinux.0, ldlinux.c32 and 01-00-16-3e-72-79-e4, which boots the
// kernel with its append line (after the seed's 12 s prompt).
func TestE2EBootSeedHVMGuest(t *testing.T) {
	t.Parallel()
	b := newBootLab(t, "192.0.2.166/24")
	b.place("el5u4_x86_pxeboot_install/vmlinuz", b.a.Kernel)
	b.place("el5u4_x86_pxeboot_install/initrd.img", b.a.Initrd)
	b.write("pxelinux.cfg/01-00-16-3e-72-79-e4", seedHVMConfig)
	b.serve("--dhcpd-conf", seedDHCPDPath(t))
	res := b.boot(pxlab.Guest{MAC: "00:16:3E:72:79:E4"}, "192.0.2.177", 150*time.Second)
	if c := res.Cmdline(); !strings.Contains(c, "initrd=el5u4_x86_pxeboot_install/initrd.img") || !strings.Contains(c, "BOOT_IMAGE=el5u4_x86_pxeboot_install/vmlinuz") {
		t.Errorf("kernel command line %q: not the seed's append line", c)
	}
	wantEvents(t, b.events(res, "00:16:3e:72:79:e4", "192.0.2.177"),
		"DHCP ack 192.0.2.177, next-server 192.0.2.166, boot file pxelinux.0",
		"TFTP pxelinux.0", "TFTP ldlinux.c32", "TFTP pxelinux.cfg/01-00-16-3e-72-79-e4",
		"TFTP el5u4_x86_pxeboot_install/vmlinuz", "TFTP el5u4_x86_pxeboot_install/initrd.img")
}

// xenArgs are what Xen and a PVH dom0 need under QEMU's emulation (the
// seed's own arguments first).
const (
	xenArgs  = "noreboot dom0=pvh dom0_mem=512M iommu=1 console=com1 com1=115200,8n1"
	dom0Args = "ro root=LABEL=/ console=hvc0"
)

// Scenario 2: the seeds' Xen server (MAC 00:19:B9:41:2C:B9): mboot.c32
// loads Xen and the dom0 kernel and initrd; Xen's banner and command line
// appear on the serial console, then dom0's marker.
func TestE2EBootSeedXenServer(t *testing.T) {
	t.Parallel()
	b := newBootLab(t, "192.0.2.166/24")
	b.place("ovm/2.2/xen-64bit-3.4.0.gz", b.a.Xen)
	b.place("ovm/2.2/vmlinuz-2.6.18-128.2.1.4.9.el5xen", b.a.Kernel)
	b.place("ovm/2.2/initrd-2.6.18-128.2.1.4.9.el5xen.img", b.a.Initrd)
	b.write("pxelinux.cfg/01-00-19-b9-41-2c-b9", "default ovm\nprompt 1\ntimeout 10\nlabel ovm\nkernel mboot.c32\nappend ovm/2.2/xen-64bit-3.4.0.gz "+
		xenArgs+" --- ovm/2.2/vmlinuz-2.6.18-128.2.1.4.9.el5xen "+dom0Args+" --- ovm/2.2/initrd-2.6.18-128.2.1.4.9.el5xen.img\n")
	b.serve("--dhcpd-conf", seedDHCPDPath(t))
	res := b.boot(pxlab.Guest{MAC: "00:19:B9:41:2C:B9", Xen: true}, "192.0.2.188", 240*time.Second, "Xen version", "Command line: "+xenArgs)
	if c := res.Cmdline(); !strings.Contains(c, dom0Args) {
		t.Errorf("dom0 command line %q, want %q in it", c, dom0Args)
	}
	wantEvents(t, b.events(res, "00:19:b9:41:2c:b9", "192.0.2.188"),
		"DHCP ack 192.0.2.188", "TFTP pxelinux.cfg/01-00-19-b9-41-2c-b9", "TFTP mboot.c32",
		"TFTP ovm/2.2/xen-64bit-3.4.0.gz", "TFTP ovm/2.2/vmlinuz-2.6.18-128.2.1.4.9.el5xen", "TFTP ovm/2.2/initrd-2.6.18-128.2.1.4.9.el5xen.img")
}

// poolConf is a dhcpd.conf with the subnet and no hosts: the inventory
// brings them.
const poolConf = `authoritative;
subnet 192.0.2.0 netmask 255.255.255.0 {
  next-server 192.0.2.1;
  filename "pxelinux.0";
  range 192.0.2.100 192.0.2.150;
}
`

// Scenario 3: the same Xen server described only in the inventory (no
// host in dhcpd.conf, no pxelinux.cfg file on disk): the generated config
// boots it.
func TestE2EBootInventoryXenServer(t *testing.T) {
	t.Parallel()
	b := newBootLab(t, "192.0.2.1/24")
	b.place("xen/xen.gz", b.a.Xen)
	b.place("xen/vmlinuz", b.a.Kernel)
	b.place("xen/initrd.img", b.a.Initrd)
	conf := b.file("dhcpd.conf", poolConf)
	inv := b.file("inventory.yaml", `profiles:
  xen-host:
    multiboot:
      hypervisor: xen/xen.gz
      hypervisor-args: `+xenArgs+`
      kernel: xen/vmlinuz
      kernel-args: `+dom0Args+`
      initrd: xen/initrd.img
hosts:
  - {name: dell_optiplex_745, mac: "00:19:B9:41:2C:B9", ip: 192.0.2.188, profile: xen-host}
`)
	b.serve("--dhcpd-conf", conf, "--inventory", inv)
	res := b.boot(pxlab.Guest{MAC: "00:19:B9:41:2C:B9", Xen: true}, "192.0.2.188", 240*time.Second, "Command line: "+xenArgs)
	if c := res.Cmdline(); !strings.Contains(c, dom0Args) {
		t.Errorf("dom0 command line %q", c)
	}
	if _, err := os.Stat(filepath.Join(b.root, "pxelinux.cfg")); err == nil {
		t.Error("a pxelinux.cfg directory exists on disk; the config must come from the inventory")
	}
	wantEvents(t, b.events(res, "00:19:b9:41:2c:b9", "192.0.2.188"),
		"DHCP ack 192.0.2.188", "TFTP pxelinux.cfg/01-00-19-b9-41-2c-b9", "TFTP mboot.c32", "TFTP xen/xen.gz", "TFTP xen/vmlinuz", "TFTP xen/initrd.img")
}

const guestInventory = `profiles:
  install:
    kernel: inst/vmlinuz
    initrd: inst/initrd.img
    append: console=ttyS0 %s
hosts:
  - {name: test_hvm, mac: "00:16:3E:72:79:E4", ip: 192.0.2.177, profile: install}
`

func (b *bootLab) serveGuestInventory(appendExtra string) {
	b.t.Helper()
	b.place("inst/vmlinuz", b.a.Kernel)
	b.place("inst/initrd.img", b.a.Initrd)
	conf := b.file("dhcpd.conf", poolConf)
	inv := b.file("inventory.yaml", fmt.Sprintf(guestInventory, appendExtra))
	b.serve("--dhcpd-conf", conf, "--inventory", inv)
}

// Scenario 4: iPXE over HTTP. The NIC's iPXE asks DHCP with user class
// iPXE and gets the host's HTTP script; kernel and initrd come over HTTP,
// not TFTP.
func TestE2EBootIPXEOverHTTP(t *testing.T) {
	t.Parallel()
	b := newBootLab(t, "192.0.2.1/24")
	b.serveGuestInventory("via=http")
	res := b.boot(pxlab.Guest{MAC: "00:16:3E:72:79:E4"}, "192.0.2.177", 150*time.Second)
	if c := res.Cmdline(); !strings.Contains(c, "via=http") {
		t.Errorf("command line %q", c)
	}
	ev := b.events(res, "00:16:3e:72:79:e4", "192.0.2.177")
	wantEvents(t, ev, "DHCP ack 192.0.2.177, next-server 192.0.2.1, boot file http://192.0.2.1:8080/ipxe/00-16-3e-72-79-e4",
		"HTTP GET /ipxe/00-16-3e-72-79-e4 (200", "HTTP GET /inst/vmlinuz (200", "HTTP GET /inst/initrd.img (200")
	noTFTP(t, ev)
}

// noTFTP fails for each TFTP transfer among a boot's events (an HTTP boot).
func noTFTP(t *testing.T, events []pxlab.Event) {
	t.Helper()
	for _, e := range events {
		if strings.HasPrefix(e.What, "TFTP") {
			t.Errorf("a TFTP transfer in an HTTP boot: %s", e.What)
		}
	}
}

// uefiLab is a boot lab for OVMF guests, which boot ipxe.efi.
func uefiLab(t *testing.T) *bootLab {
	t.Helper()
	b := newBootLab(t, "192.0.2.1/24")
	if b.a.IPXEEFI == "" || b.a.OVMFCode == "" {
		if e2eRequired() {
			t.Fatal("ipxe.efi or OVMF missing: apt-get install ipxe ovmf")
		}
		t.Skip("ipxe.efi or OVMF missing")
	}
	return b
}

// Scenario 5: UEFI. OVMF's own PXE (option 93 = 7, a virtio NIC without
// an iPXE ROM) gets ipxe.efi from the tree; iPXE then gets the HTTP script
// and boots the kernel's EFI stub. (With QEMU's EFI iPXE ROM on the NIC,
// iPXE is the firmware's network stack and gets the script at once; the
// BIOS scenarios cover that path.)
func TestE2EBootUEFI(t *testing.T) {
	t.Parallel()
	b := uefiLab(t)
	b.serveGuestInventory("via=uefi")
	res := b.boot(pxlab.Guest{MAC: "00:16:3E:72:79:E4", UEFI: true, VirtioNoROM: true}, "192.0.2.177", 200*time.Second)
	if c := res.Cmdline(); !strings.Contains(c, "via=uefi") {
		t.Errorf("command line %q", c)
	}
	wantEvents(t, b.events(res, "00:16:3e:72:79:e4", "192.0.2.177"),
		"boot file ipxe.efi", "TFTP ipxe.efi", "boot file http://192.0.2.1:8080/ipxe/00-16-3e-72-79-e4",
		"HTTP GET /inst/vmlinuz (200", "HTTP GET /inst/initrd.img (200")
}

// Scenario 6: netboot once. The first boot installs (the initramfs calls
// the kickstart-style callback URL from its command line) and reaches the
// marker; the second boot of the same machine gets LOCALBOOT and loads
// no kernel.
func TestE2EBootNetbootOnce(t *testing.T) {
	t.Parallel()
	b := newBootLab(t, "192.0.2.1/24")
	b.serveGuestInventory("pxed.callback={{.InstalledURL}}")
	g := pxlab.Guest{MAC: "00:16:3E:72:79:E4"}
	res := b.boot(g, "192.0.2.177", 150*time.Second, pxlab.CallbackOK)
	if !strings.Contains(res.Cmdline(), "pxed.callback=http://192.0.2.1:8080/api/v1/hosts/test_hvm/installed?token=") {
		t.Errorf("command line %q", res.Cmdline())
	}
	wantEvents(t, b.events(res, "00:16:3e:72:79:e4", "192.0.2.177"), "HTTP GET /inst/vmlinuz", "API POST /api/v1/hosts/test_hvm/installed (200)")
	out := run(t, pxed(t), "host", "list", "--state-dir", b.state)
	if !strings.Contains(out, "local") {
		t.Fatalf("after the callback:\n%s", out)
	}

	// Second power-on: pxed answers the script with exit (iPXE) — the
	// machine goes on to its disk; no kernel is fetched.
	res2, err := b.BootUntil(context.Background(), b.a, g, 120*time.Second, func(r *pxlab.Result) bool {
		for _, e := range b.events(r, "00:16:3e:72:79:e4", "192.0.2.177") {
			if e.At > 0 && strings.Contains(e.What, "HTTP GET /ipxe/00-16-3e-72-79-e4 (200") {
				// Watch a few seconds more for what follows.
				return time.Since(r.Start) > e.At+8*time.Second
			}
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range b.events(res2, "00:16:3e:72:79:e4", "192.0.2.177") {
		if e.At > 0 && (strings.Contains(e.What, "vmlinuz") || strings.Contains(e.What, "initrd")) {
			t.Errorf("second boot fetched a kernel: %s", e.What)
		}
	}
	if strings.Contains(res2.Serial, pxlab.Marker) {
		t.Error("second boot ran the installer again")
	}
}

// seedDHCPDPath is examples/dhcpd.conf (the first seed's) as an absolute path.
func seedDHCPDPath(t *testing.T) string {
	p, err := filepath.Abs("../../examples/dhcpd.conf")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pxed lab: one command builds the lab, boots the demo guest, prints the
// timeline and leaves no namespace behind.
func TestE2EPxedLab(t *testing.T) {
	t.Parallel()
	need(t, "tcpdump")
	labAssets(t) // the same cache: no second download
	before := run(t, "ip", "netns", "list")
	out := run(t, pxed(t), "lab", "--http")
	for _, want := range []string{"power on", "DHCP ack 192.0.2.177", "HTTP GET /ipxe/00-16-3e-72-79-e4 (200", "HTTP GET /demo/vmlinuz (200",
		"kernel running: initrd=initrd.img console=ttyS0 pxed.lab=demo", "power-on to kernel running:"} {
		if !strings.Contains(out, want) {
			t.Errorf("pxed lab output lacks %q:\n%s", want, out)
		}
	}
	// The same boot over TFTP with the tap captured: the wire's view of
	// each file agrees with pxed's own log.
	out = run(t, pxed(t), "lab", "--capture")
	for _, want := range []string{"DHCP DISCOVER (wire)", "DHCP ACK (wire)", "IPv6 router solicitation (wire;", "DHCP ACK on the wire: ",
		"TFTP pxelinux.0 on the wire: ", "kernel running: BOOT_IMAGE=demo/vmlinuz", "TFTP on the wire: "} {
		if !strings.Contains(out, want) {
			t.Errorf("pxed lab --capture output lacks %q:\n%s", want, out)
		}
	}
	for _, file := range []string{"demo/vmlinuz", "demo/initrd.img"} {
		logged := regexp.MustCompile(`TFTP ` + regexp.QuoteMeta(file) + ` \((\d+) bytes, [^,]+, ok\)`).FindStringSubmatch(out)
		wire := regexp.MustCompile(`TFTP ` + regexp.QuoteMeta(file) + ` on the wire: (\d+) bytes in [^,]+, (\d+) blocks of (\d+)`).FindStringSubmatch(out)
		if logged == nil || wire == nil || logged[1] != wire[1] {
			t.Errorf("%s: pxed logged %v, the capture saw %v; want the same byte count:\n%s", file, logged, wire, out)
		}
	}
	// Other tests' labs come and go meanwhile (named after this process);
	// pxed lab's own must be gone.
	mine := fmt.Sprintf("pxlab-%d-", os.Getpid()%100000)
	for _, line := range strings.Split(run(t, "ip", "netns", "list"), "\n") {
		name, _, _ := strings.Cut(line, " ")
		if strings.HasPrefix(name, "pxlab-") && !strings.HasPrefix(name, mine) && !strings.Contains(before, name) {
			t.Errorf("pxed lab left namespace %s behind", name)
		}
	}
}
