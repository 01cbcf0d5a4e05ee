package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pxed/internal/bootfs"
	pxlab "pxed/internal/lab"
	"pxed/internal/pxeclient"
	"pxed/internal/testutil"
)

// PXELINUX's path prefix, seen in real boots: SeaBIOS + QEMU's iPXE ROM
// load pxelinux.0 (syslinux 6.04) from pxed, and pxed's JSON log shows
// the exact name of every file PXELINUX asked for. Then pxeclient.Find,
// run against the same pxed over TFTP/HTTP (inside the lab's namespace)
// and offline against the same tree (TreeFetcher), must resolve the same
// config, include, kernel, initrd and module names.

const ppConf = `authoritative;
option pxelinux-configfile code 209 = text;
option pxelinux-path-prefix code 210 = text;
subnet 192.0.2.0 netmask 255.255.255.0 {
  next-server 192.0.2.1;
  filename "bios/pxelinux.0";
  range 192.0.2.100 192.0.2.150;
}
host pp-bootfile { hardware ethernet 52:54:00:70:70:01; fixed-address 192.0.2.121; }
host pp-opt210 { hardware ethernet 52:54:00:70:70:02; fixed-address 192.0.2.122; option pxelinux-path-prefix "pfx/"; }
host pp-opt210url { hardware ethernet 52:54:00:70:70:03; fixed-address 192.0.2.123; option pxelinux-path-prefix "http://192.0.2.1:8080/web/"; }
host pp-quirks { hardware ethernet 52:54:00:70:70:04; fixed-address 192.0.2.124; filename "/bios/pxe_boot.0"; option pxelinux-configfile "cfg/none.cfg"; }
`

type ppCase struct {
	name, mac, ip string
	bootFile      string
	options       map[uint8][]byte // what ppConf sends the host beyond the boot file
	xen           bool
	setup         func(b *bootLab, cfg string) // cfg: the 01-<mac> file name
	until         []string                     // serial strings beside the marker
	cmdline       []string                     // in the marker's command line
	// wire is every transfer of the guest, in order, as pxed logged it
	// ("TFTP <name as asked>", "HTTP GET <path>"), each successful unless
	// listed in missing.
	wire    []string
	missing []string
	// find is what pxeclient.Find must resolve, in the same notation:
	// tried config names, includes, kernel, initrds or modules.
	find []string
	// tree: Find through TreeFetcher on the tree gives the same (false
	// when the prefix is a URL).
	tree bool
}

var ppCases = []ppCase{{
	// Prefix from the boot file; each name form in one boot.
	name: "boot file prefix", mac: "52:54:00:70:70:01", ip: "192.0.2.121", bootFile: "bios/pxelinux.0",
	setup: func(b *bootLab, cfg string) {
		b.installBootloaders("bios")
		b.write("bios/pxelinux.cfg/"+cfg, "DEFAULT linux\nINCLUDE /inc/a.cfg\n")
		b.write("bios/inc/a.cfg", "INCLUDE ::bios/inc/b.cfg\n")
		b.write("bios/inc/b.cfg", "INCLUDE inc/c.cfg\n") // relative to the prefix, not to bios/inc/
		b.write("bios/inc/c.cfg", "LABEL linux\n  KERNEL /images/vmlinuz\n"+
			"  INITRD ::bios/images/initrd.gz,images/extra1.gz,tftp://192.0.2.1/bios/images/extra2.gz,http://192.0.2.1:8080/bios/images/extra3.gz,"+
			"192.0.2.1::bios/images/extra4.gz,images/ex:tra5.gz\n"+
			"  APPEND console=ttyS0 pxed.pp=bootfile\n")
		b.place("bios/images/vmlinuz", b.a.Kernel)
		b.place("bios/images/initrd.gz", b.a.Initrd)
		for i := 1; i <= 4; i++ {
			b.write(fmt.Sprintf("bios/images/extra%d.gz", i), tinyInitrd(fmt.Sprintf("extra%d", i)))
		}
		b.write("bios/images/ex:tra5.gz", tinyInitrd("extra5"))
	},
	cmdline: []string{"BOOT_IMAGE=/images/vmlinuz console=ttyS0 pxed.pp=bootfile initrd=::bios/images/initrd.gz,images/extra1.gz,"},
	wire: []string{"TFTP bios/pxelinux.0", "TFTP bios/ldlinux.c32", "TFTP bios/pxelinux.cfg/01-52-54-00-70-70-01",
		"TFTP bios//inc/a.cfg", "TFTP bios/inc/b.cfg", "TFTP bios/inc/c.cfg",
		"TFTP bios//images/vmlinuz", "TFTP bios/images/initrd.gz", "TFTP bios/images/extra1.gz", "TFTP bios/images/extra2.gz",
		"HTTP GET /bios/images/extra3.gz", "TFTP bios/images/extra4.gz", "TFTP bios/images/ex:tra5.gz"},
	find: []string{"TFTP bios/pxelinux.cfg/01-52-54-00-70-70-01", "TFTP bios//inc/a.cfg", "TFTP bios/inc/b.cfg", "TFTP bios/inc/c.cfg",
		"TFTP bios//images/vmlinuz", "TFTP bios/images/initrd.gz", "TFTP bios/images/extra1.gz", "TFTP bios/images/extra2.gz",
		"HTTP GET /bios/images/extra3.gz", "TFTP bios/images/extra4.gz", "TFTP bios/images/ex:tra5.gz"},
	tree: true,
}, {
	// Option 210 wins over the boot file's directory, for ldlinux.c32 too;
	// mboot.c32 and its multiboot modules follow the same rules.
	name: "option 210 with mboot.c32", mac: "52:54:00:70:70:02", ip: "192.0.2.122", bootFile: "bios/pxelinux.0",
	options: map[uint8][]byte{210: []byte("pfx/")}, xen: true,
	setup: func(b *bootLab, cfg string) {
		b.installBootloaders("bios")
		b.installBootloaders("pfx")
		b.write("pfx/pxelinux.cfg/"+cfg, "DEFAULT xen\nLABEL xen\n  KERNEL mboot.c32\n  APPEND /images/xen.gz "+xenArgs+
			" --- images/vmlinuz "+dom0Args+" pxed.pp=opt210 --- ::pfx/images/initrd.gz\n")
		b.place("pfx/images/xen.gz", b.a.Xen)
		b.place("pfx/images/vmlinuz", b.a.Kernel)
		b.place("pfx/images/initrd.gz", b.a.Initrd)
	},
	until:   []string{"Command line: " + xenArgs},
	cmdline: []string{dom0Args + " pxed.pp=opt210"},
	wire: []string{"TFTP bios/pxelinux.0", "TFTP pfx/ldlinux.c32", "TFTP pfx/pxelinux.cfg/01-52-54-00-70-70-02",
		"TFTP pfx/mboot.c32", "TFTP pfx/libcom32.c32",
		"TFTP pfx//images/xen.gz", "TFTP pfx/images/vmlinuz", "TFTP pfx/images/initrd.gz"},
	find: []string{"TFTP pfx/pxelinux.cfg/01-52-54-00-70-70-02", "TFTP pfx/mboot.c32",
		"TFTP pfx//images/xen.gz", "TFTP pfx/images/vmlinuz", "TFTP pfx/images/initrd.gz"},
	tree: true,
}, {
	// A URL prefix: relative names (ldlinux.c32 and the config search
	// among them) go to it over HTTP through iPXE; "::name" is still TFTP
	// from the boot server.
	name: "option 210 URL", mac: "52:54:00:70:70:03", ip: "192.0.2.123", bootFile: "bios/pxelinux.0",
	options: map[uint8][]byte{210: []byte("http://192.0.2.1:8080/web/")},
	setup: func(b *bootLab, cfg string) {
		b.installBootloaders("bios")
		b.installBootloaders("web")
		b.write("web/pxelinux.cfg/"+cfg, "DEFAULT linux\nLABEL linux\n  KERNEL images/vmlinuz\n  INITRD ::bios/images/initrd.gz,/images/extra1.gz\n  APPEND console=ttyS0 pxed.pp=opt210url\n")
		b.place("web/images/vmlinuz", b.a.Kernel)
		b.place("bios/images/initrd.gz", b.a.Initrd)
		b.write("web/images/extra1.gz", tinyInitrd("extra1"))
	},
	cmdline: []string{"BOOT_IMAGE=images/vmlinuz console=ttyS0 pxed.pp=opt210url initrd=::bios/images/initrd.gz,/images/extra1.gz"},
	wire: []string{"TFTP bios/pxelinux.0", "HTTP GET /web/ldlinux.c32", "HTTP GET /web/pxelinux.cfg/01-52-54-00-70-70-03",
		"HTTP GET /web/images/vmlinuz", "TFTP bios/images/initrd.gz", "HTTP GET /web//images/extra1.gz"},
	find: []string{"HTTP GET /web/pxelinux.cfg/01-52-54-00-70-70-03", "HTTP GET /web/images/vmlinuz", "TFTP bios/images/initrd.gz", "HTTP GET /web//images/extra1.gz"},
}, {
	// The prefix keeps the boot file's leading '/' and ends after the
	// last character outside [A-Za-z0-9.-] ('_' here, not the '/');
	// option 209's config file is asked for first, under the prefix.
	name: "boot file quirks and option 209", mac: "52:54:00:70:70:04", ip: "192.0.2.124", bootFile: "/bios/pxe_boot.0",
	options: map[uint8][]byte{209: []byte("cfg/none.cfg")},
	setup: func(b *bootLab, cfg string) {
		b.place("bios/pxe_boot.0", b.a.PXELinux)
		b.place("bios/pxe_ldlinux.c32", b.a.Syslinux+"/ldlinux.c32")
		b.write("bios/pxe_pxelinux.cfg/"+cfg, "DEFAULT linux\nLABEL linux\n  KERNEL images/vmlinuz\n  INITRD ::bios/images/initrd.gz\n  APPEND console=ttyS0 pxed.pp=quirks\n")
		b.place("bios/pxe_images/vmlinuz", b.a.Kernel)
		b.place("bios/images/initrd.gz", b.a.Initrd)
	},
	cmdline: []string{"BOOT_IMAGE=images/vmlinuz console=ttyS0 pxed.pp=quirks initrd=::bios/images/initrd.gz"},
	wire: []string{"TFTP /bios/pxe_boot.0", "TFTP /bios/pxe_ldlinux.c32", "TFTP /bios/pxe_cfg/none.cfg",
		"TFTP /bios/pxe_pxelinux.cfg/01-52-54-00-70-70-04", "TFTP /bios/pxe_images/vmlinuz", "TFTP bios/images/initrd.gz"},
	missing: []string{"TFTP /bios/pxe_cfg/none.cfg"},
	find: []string{"TFTP /bios/pxe_cfg/none.cfg", "TFTP /bios/pxe_pxelinux.cfg/01-52-54-00-70-70-04",
		"TFTP /bios/pxe_images/vmlinuz", "TFTP bios/images/initrd.gz"},
	tree: true,
}}

func TestE2EBootPathPrefix(t *testing.T) {
	for _, tc := range ppCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBootLab(t, "192.0.2.1/24")
			mac, err := net.ParseMAC(tc.mac)
			if err != nil {
				t.Fatal(err)
			}
			tc.setup(b, "01-"+strings.ReplaceAll(mac.String(), ":", "-"))
			b.serve("--dhcpd-conf", b.file("dhcpd.conf", ppConf))
			timeout := 150 * time.Second
			if tc.xen {
				timeout = 240 * time.Second
			}
			res, err := b.Boot(context.Background(), b.a, pxlab.Guest{MAC: tc.mac, Xen: tc.xen}, append([]string{pxlab.Marker}, tc.until...), timeout)
			var ev []pxlab.Event
			if res != nil && b.pxed != nil {
				ev = b.events(res, tc.mac, tc.ip)
				var tl strings.Builder
				pxlab.FormatTimeline(&tl, ev)
				t.Logf("boot of %s:\n%s", tc.mac, tl.String())
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.cmdline {
				if !strings.Contains(res.Cmdline(), want) {
					t.Errorf("kernel command line %q lacks %q", res.Cmdline(), want)
				}
			}
			ev = slices.DeleteFunc(ev, func(e pxlab.Event) bool {
				return !strings.HasPrefix(e.What, "TFTP ") && !strings.HasPrefix(e.What, "HTTP ")
			})
			var got []string
			for _, e := range ev {
				name, result, _ := strings.Cut(e.What, " (")
				got = append(got, name)
				ok := strings.HasSuffix(result, ", ok)") || strings.Contains(result, ", ok), ") || strings.HasPrefix(result, "200,")
				if ok == slices.Contains(tc.missing, name) {
					t.Errorf("%s: want it to succeed: %v", e.What, !ok)
				}
			}
			if !slices.Equal(got, tc.wire) {
				t.Errorf("PXELINUX asked for\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.wire, "\n  "))
			}

			// pxed's own PXELINUX client, with the lease this guest got.
			lease := &pxeclient.Lease{IP: netip.MustParseAddr(tc.ip), Mask: netip.MustParseAddr("255.255.255.0"),
				NextServer: netip.MustParseAddr("192.0.2.1"), ServerID: netip.MustParseAddr("192.0.2.1"), File: tc.bootFile, Options: tc.options}
			var plan *pxeclient.Plan
			inNetns(t, b.NS, func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				src := &pxeclient.Source{TFTP: netip.MustParseAddrPort("192.0.2.1:69"), Dial: nsHTTPClient(b.NS).Transport.(*http.Transport).DialContext}
				plan, err = pxeclient.Find(ctx, src, lease, mac, "", "", 0)
			})
			if err != nil {
				t.Fatalf("pxeclient.Find over the network: %v", err)
			}
			if names := planWire(plan); !slices.Equal(names, tc.find) {
				t.Errorf("pxeclient.Find resolved\n  %s\nwant (as PXELINUX fetched)\n  %s", strings.Join(names, "\n  "), strings.Join(tc.find, "\n  "))
			}
			if err := plan.ForPV(); (err == nil) == tc.xen {
				t.Errorf("ForPV of a %s label: %v", plan.Kind, err)
			}

			// Offline, over the tree pxed served.
			tree, err := bootfs.Open(b.root)
			if err != nil {
				t.Fatal(err)
			}
			defer tree.Close()
			offline, err := pxeclient.Find(context.Background(), &pxeclient.TreeFetcher{FS: tree, Client: bootfs.Client{Proto: "tftp"}}, lease, mac, "", "", 0)
			if !tc.tree {
				if err == nil || len(offline.Tried) == 0 || !errors.Is(offline.Tried[0].Err, pxeclient.ErrNotInTree) {
					t.Errorf("Find over the tree with a URL prefix: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("pxeclient.Find over the tree: %v", err)
			}
			if a, b := planWire(offline), planWire(plan); !slices.Equal(a, b) {
				t.Errorf("over the tree Find resolved %v; over the network %v", a, b)
			}
			if !bytes.Equal(offline.ConfigData, plan.ConfigData) || len(plan.ConfigData) == 0 {
				t.Errorf("config bytes differ: %q over the tree, %q over the network", offline.ConfigData, plan.ConfigData)
			}
		})
	}
}

// installBootloaders puts pxelinux.0 and its modules under dir.
func (b *bootLab) installBootloaders(dir string) {
	b.t.Helper()
	if err := b.a.InstallBootloaders(b.root + "/" + dir); err != nil {
		b.t.Fatal(err)
	}
}

// planWire is every name a plan asked for or resolved, in the notation of
// pxed's log: config names tried, includes, kernel, initrds or modules.
func planWire(p *pxeclient.Plan) []string {
	var names []string
	for _, tr := range p.Tried {
		names = append(names, tr.Name)
	}
	names = append(names, p.Includes...)
	names = append(names, p.Kernel)
	names = append(names, p.Initrds...)
	for _, m := range p.Modules {
		names = append(names, m.Name)
	}
	for i, n := range names {
		names[i] = wireName(n)
	}
	return names
}

// wireName is how pxed logs the transfer of a resolved name.
func wireName(n string) string {
	if m := regexp.MustCompile(`^https?://[^/]*(/.*)$`).FindStringSubmatch(n); m != nil {
		return "HTTP GET " + m[1]
	}
	if m := regexp.MustCompile(`^tftp://[^/]*/(.*)$`).FindStringSubmatch(n); m != nil {
		return "TFTP " + m[1]
	}
	return "TFTP " + n
}

// inNetns runs fn in the network namespace ns (testutil.InNetns).
func inNetns(t *testing.T, ns string, fn func()) {
	t.Helper()
	if err := testutil.InNetns(ns, fn); err != nil {
		t.Fatal(err)
	}
}

// nsHTTPClient is an HTTP client whose connections are made in the
// network namespace ns (the transport dials on goroutines of its own).
func nsHTTPClient(ns string) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			f, err := os.Open("/var/run/netns/" + ns)
			if err == nil {
				err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
				f.Close()
			}
			if err != nil {
				ch <- result{nil, err}
				return
			}
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
	return &http.Client{Transport: &http.Transport{DialContext: dial}}
}

// tinyInitrd is a gzipped newc cpio holding one small file: a second
// initrd the kernel unpacks after the marker initramfs.
func tinyInitrd(name string) string {
	var raw bytes.Buffer
	entry := func(name string, mode int, data string) {
		fmt.Fprintf(&raw, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", 0, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
		raw.WriteString(name + "\x00")
		for raw.Len()%4 != 0 {
			raw.WriteByte(0)
		}
		raw.WriteString(data)
		for raw.Len()%4 != 0 {
			raw.WriteByte(0)
		}
	}
	entry(name, 0o100644, name+"\n")
	entry("TRAILER!!!", 0, "")
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(raw.Bytes())
	w.Close()
	return gz.String()
}
