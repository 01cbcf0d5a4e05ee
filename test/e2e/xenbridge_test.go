package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"pxed/internal/testutil"
)

// The Xen bootloader speaks as the guest: after its lease, every frame it
// sends carries the guest's MAC and leased address, whatever dom0's own
// addresses on the bridge, as a PXE ROM's would.

var bridgeCases = []bridgeCase{
	sameSubnet,
	{name: "dom0 without an address"},
	{name: "dom0 on another subnet", dom0Addr: "203.0.113.2/24"},
	{name: "through a DHCP relay", relay: true},
}

// bridgeConf is pxed's dhcpd.conf for a bridge case. Option 209 names the
// one config the guest fetches (configName): one that pxed generates for
// an inventory host but serves only to the host's own address; fetched
// from any other address (dom0's), it is not there.
func bridgeConf(c bridgeCase) string {
	guests := `subnet 192.0.2.0 netmask 255.255.255.0 {
  next-server 192.0.2.1;
  filename "pxelinux.0";
  option pxelinux-configfile "` + c.configName() + `";
  range 192.0.2.100 192.0.2.150;
}
`
	if c.relay {
		// Through the router everything goes over HTTP: option 210, the
		// path prefix, is a URL (lpxelinux.0 on iPXE does the same).
		guests = `subnet 192.0.2.0 netmask 255.255.255.0 {
}
subnet 198.51.100.0 netmask 255.255.255.0 {
  option routers 198.51.100.1;
  next-server 192.0.2.1;
  filename "pxelinux.0";
  option pxelinux-configfile "` + c.configName() + `";
  option pxelinux-pathprefix "http://192.0.2.1:8080/";
  range 198.51.100.100 198.51.100.150;
}
`
	}
	return "authoritative;\noption pxelinux-configfile code 209 = text;\noption pxelinux-pathprefix code 210 = text;\n" + guests
}

// logServed logs how long pxed took to serve each of the last n files.
func logServed(t testing.TB, log string, n int) {
	t.Helper()
	ms := regexp.MustCompile(`msg="(?:tftp transfer|http request)" client=\S+ (?:file|method=GET path)=(\S+) .*duration=(\S+)`).FindAllStringSubmatch(log, -1)
	for _, m := range ms[max(len(ms)-n, 0):] {
		t.Logf("served %s in %s", m[1], m[2])
	}
}

// served returns, from pxed's log, the files it served over TFTP and HTTP
// (paths without the leading slash) and the clients it served them to.
func served(log string) map[string][]string {
	files := map[string][]string{}
	for _, m := range regexp.MustCompile(`msg="tftp transfer" client=(\S+) file=(\S+)`).FindAllStringSubmatch(log, -1) {
		files[m[2]] = append(files[m[2]], m[1])
	}
	for _, m := range regexp.MustCompile(`msg="http request" client=(\S+) method=GET path=(\S+) status=200`).FindAllStringSubmatch(log, -1) {
		p := strings.TrimPrefix(m[2], "/")
		files[p] = append(files[p], m[1])
	}
	return files
}

// configName is the config option 209 names: where dom0 has no address of
// its own on the bridge, the guest's hex IP without its last digit (the
// name PXELINUX asks for after the full hex IP; pxed answers it only to
// the host whose address it begins); elsewhere "default" (likewise
// answered only to the host's own address).
func (c bridgeCase) configName() string {
	if c.dom0Addr != "" {
		return "pxelinux.cfg/default"
	}
	a := netip.MustParseAddr(c.guestIP()).As4()
	return fmt.Sprintf("pxelinux.cfg/%02X%02X%02X%02X", a[0], a[1], a[2], a[3])[:len("pxelinux.cfg/")+7]
}

// guestIP is the fixed address of test_pvm in a bridge case.
func (c bridgeCase) guestIP() string {
	if c.relay {
		return "198.51.100.199"
	}
	return "192.0.2.199"
}

func bridgeInventory(c bridgeCase) string {
	return strings.Replace(xenInventory, "ip: 192.0.2.199", "ip: "+c.guestIP(), 1)
}

// withPxedCase serves the tree with pxed for a bridge case, and starts the
// relay (dnsmasq, as a DHCP relay only) on the router when there is one.
func (d *dom0) withPxedCase(c bridgeCase) *dom0 {
	d.t.Helper()
	inv := filepath.Join(d.dir, "inventory.yaml")
	os.WriteFile(inv, []byte(bridgeInventory(c)), 0o644)
	d.pxedSrv = d.startPxed(bridgeConf(c), d.stateDir, "--tftp-addr", "192.0.2.1:69", "--tftp-root", d.root,
		"--inventory", inv, "--http-addr", "192.0.2.1:8080")
	if c.relay {
		d.startRelay()
	}
	return d
}

// startRelay runs dnsmasq in the router namespace as a DHCP relay from the
// guests' 198.51.100.1 to pxed at 192.0.2.1, and waits until it listens.
func (d *dom0) startRelay() {
	d.t.Helper()
	need(d.t, "dnsmasq")
	cmd := exec.Command("ip", "netns", "exec", d.cli, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--port=0", "--dhcp-relay=198.51.100.1,192.0.2.1", "--log-dhcp", "--log-facility=-",
		"--pid-file="+filepath.Join(d.dir, "dnsmasq.pid"), "--user=root", "--group=root")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if d.t.Failed() {
			d.t.Logf("dnsmasq (relay):\n%s", log.String())
		}
	})
	for end := time.Now().Add(10 * time.Second); ; {
		out, _ := d.try(d.cli, 5*time.Second, "ss", "-lunp")
		if strings.Contains(out, ":67 ") {
			return
		}
		if time.Now().After(end) {
			d.t.Fatalf("the relay does not listen on port 67:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// capture records the frames on dom0's bridge port until stop is called,
// which returns them as `tcpdump -e -nn` prints them, one per line.
func (d *dom0) capture() (stop func() []string) {
	d.t.Helper()
	need(d.t, "tcpdump")
	pcap := filepath.Join(d.t.TempDir(), "bridge.pcap")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", d.ns, "tcpdump", "-i", d.port, "-U", "-nn", "-w", pcap)
	errb := &testutil.SyncBuffer{} // read while tcpdump writes it
	cmd.Stderr = errb
	if err := cmd.Start(); err != nil {
		cancel()
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { cancel(); cmd.Wait() })
	for end := time.Now().Add(10 * time.Second); !strings.Contains(errb.String(), "listening on"); {
		if time.Now().After(end) {
			d.t.Fatalf("tcpdump did not start:\n%s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return func() []string {
		d.t.Helper()
		time.Sleep(200 * time.Millisecond) // the last frames reach the file
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
		out, err := exec.Command("tcpdump", "-r", pcap, "-e", "-nn").Output()
		if err != nil {
			d.t.Fatalf("tcpdump -r: %v\n%s", err, errb.String())
		}
		return strings.Split(strings.TrimSpace(string(out)), "\n")
	}
}

// mac is an interface's hardware address in a namespace.
func (d *dom0) mac(ns, dev string) string {
	d.t.Helper()
	b, err := exec.Command("ip", "netns", "exec", ns, "cat", "/sys/class/net/"+dev+"/address").Output()
	if err != nil {
		d.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestE2EXenBootloaderBridges boots test_pvm through pxed-xenboot on each
// bridge case: dom0 next to the guests, dom0 without an address on the
// bridge, dom0 in another subnet, and the boot server behind a DHCP relay
// (a router: the guest needs its MAC). In each the bootloader returns the
// kernel and initrds byte for byte, found through pxelinux.cfg/default or
// the guest's short hex IP (which pxed serves only to the guest's
// address), and they boot under
// QEMU; pxed logs every transfer with the guest's address; and no frame
// on the bridge during the boot carries dom0's MAC or dom0's address.
func TestE2EXenBootloaderBridges(t *testing.T) {
	for _, c := range bridgeCases {
		t.Run(c.name, func(t *testing.T) {
			d := newDom0Case(t, c).withPxedCase(c)
			dom0MACs := []string{d.mac(d.ns, "xenbr0"), d.mac(d.ns, d.port)}
			stop := d.capture()
			res, took := d.boot(t, "console=hvc0")
			frames := stop()
			t.Logf("%s: bootloader took %s; %d frames on the bridge", c.name, took.Round(time.Millisecond), len(frames))

			guest := 0
			for _, f := range frames {
				if strings.Contains(f, "00:16:3e:72:79:e3") {
					guest++
				}
				for _, m := range dom0MACs {
					if strings.Contains(f, m) {
						t.Errorf("a frame with dom0's MAC %s crossed the bridge: %s", m, f)
					}
				}
				if c.dom0Addr != "" {
					a, _, _ := strings.Cut(c.dom0Addr, "/")
					if regexp.MustCompile(`\b` + regexp.QuoteMeta(a) + `\b`).MatchString(f) {
						t.Errorf("a frame with dom0's address %s crossed the bridge: %s", a, f)
					}
				}
			}
			if guest < 10 {
				t.Fatalf("only %d of %d captured frames carry the guest's MAC: the capture saw nothing of the boot\n%s",
					guest, len(frames), strings.Join(frames, "\n"))
			}

			// Every file pxed served (over HTTP through the relay, else
			// TFTP) went to the guest's address.
			logServed(t, d.pxedSrv.log.String(), 4)
			files := served(d.pxedSrv.log.String())
			for f, clients := range files {
				for _, cl := range clients {
					if !strings.HasPrefix(cl, c.guestIP()+":") {
						t.Errorf("pxed served %s to %s, not to the guest's %s", f, cl, c.guestIP())
					}
				}
			}
			for _, f := range []string{c.configName(), "el5u4_x86_xen_install/vmlinuz",
				"el5u4_x86_xen_install/initrd.img", "el5u4_x86_xen_install/extra.img"} {
				if len(files[f]) == 0 {
					t.Errorf("pxed logged no transfer of %s; served: %v", f, files)
				}
			}

			if c.name == sameSubnet.name {
				// The control: from dom0's own address (after the
				// capture), the config the guest got is not there.
				out, err := d.try(d.ns, 30*time.Second, "curl", "-sS", "-o", "/dev/null", "tftp://192.0.2.1/"+c.configName())
				var ee *exec.ExitError
				if !asExit(err, &ee) || ee.ExitCode() != 68 {
					t.Errorf("curl %s from dom0's address: %v, want exit 68 (TFTP file not found)\n%s", c.configName(), err, out)
				}
			}

			cmdline := bootDirect(t, res["kernel"], res["ramdisk"], res["args"])
			if !strings.HasPrefix(cmdline, res["args"]) {
				t.Fatalf("the guest kernel ran with %q, want %q first", cmdline, res["args"])
			}
		})
	}
}

// boot runs the bootloader as libxl does for test_pvm and checks what it
// returns against the tree; it returns the result and how long it took.
func (d *dom0) boot(t testing.TB, extraArgs string) (map[string]string, time.Duration) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bootloader.out")
	os.WriteFile(out, nil, 0o600)
	outDir := t.TempDir()
	start := time.Now()
	stderr, code := d.run(60*time.Second, "--args="+extraArgs, "--output="+out, "--output-format=simple0",
		"--output-directory="+outDir, "mac=00:16:3E:72:79:E3,bridge=xenbr0,", "/dev/null")
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("exit %d after %s:\n%s", code, took, stderr)
	}
	data, _ := os.ReadFile(out)
	res := parseSimple0(t, data)
	for key, want := range map[string][]byte{"kernel": d.kernel, "ramdisk": d.initrd} {
		got, err := os.ReadFile(res[key])
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s %q: %d bytes, %v; want the %d served\n%s", key, res[key], len(got), err, len(want), stderr)
		}
	}
	wantArgs := "ks=http://192.0.2.1:8080/ks/x ksdevice=eth0 BOOTIF=01-00-16-3e-72-79-e3 " + extraArgs
	if res["args"] != wantArgs {
		t.Errorf("args %q\nwant %q", res["args"], wantArgs)
	}
	return res, took
}

// BenchmarkXenBootloader times pxed-xenboot from start to output on each
// bridge case (bench/xenboot/run.sh). With PXED_OLD_BIN set to a pxed that
// fetches through dom0's own stack (before guest identity), the same-subnet
// case is timed with it too, in the same run.
func BenchmarkXenBootloader(b *testing.B) {
	for _, c := range bridgeCases {
		name := strings.ReplaceAll(c.name, " ", "_")
		b.Run(name+"/guest", func(b *testing.B) { benchBridge(b, c, "") })
		if old := os.Getenv("PXED_OLD_BIN"); old != "" && c.name == sameSubnet.name {
			b.Run(name+"/dom0-stack", func(b *testing.B) { benchBridge(b, c, old) })
		}
	}
}

// benchBridge boots test_pvm b.N times on bridge case c with bin as the
// bootloader (pxed's own when "").
func benchBridge(b *testing.B, c bridgeCase, bin string) {
	d := newDom0Case(b, c).withPxedCase(c)
	if bin != "" {
		d.xenboot = filepath.Join(b.TempDir(), "pxed-xenboot")
		if err := os.Symlink(bin, d.xenboot); err != nil {
			b.Fatal(err)
		}
	}
	d.boot(b, "console=hvc0") // warm: ARP caches, page cache
	b.ResetTimer()
	for b.Loop() {
		d.boot(b, "console=hvc0")
	}
	logServed(b, d.pxedSrv.log.String(), 4)
}
