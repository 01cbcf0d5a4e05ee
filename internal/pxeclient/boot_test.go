package pxeclient

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// mapFetcher serves files from a map and records what was asked.
type mapFetcher struct {
	files map[string]string
	asked []string
}

func (m *mapFetcher) Fetch(_ context.Context, name string, w io.Writer) error {
	m.asked = append(m.asked, name)
	data, ok := m.files[name]
	if !ok {
		return fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	_, err := io.WriteString(w, data)
	return err
}

var (
	pvMAC, _ = net.ParseMAC("00:16:3e:72:79:e3")
	pvLease  = &Lease{IP: netip.MustParseAddr("192.0.2.199"), NextServer: netip.MustParseAddr("192.0.2.166"), File: "pxelinux.0",
		Mask: netip.MustParseAddr("255.255.255.0"), Router: netip.MustParseAddr("192.0.2.166")}
)

const seedPV = "default linux\nprompt 1\ntimeout 120\nlabel linux\nkernel el5u4_x86_xen_install/vmlinuz\nappend initrd=el5u4_x86_xen_install/initrd.img\n"

func TestFindSeedPVGuest(t *testing.T) {
	f := &mapFetcher{files: map[string]string{"pxelinux.cfg/01-00-16-3e-72-79-e3": seedPV}}
	p, err := Find(context.Background(), f, pvLease, pvMAC, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Config != "pxelinux.cfg/01-00-16-3e-72-79-e3" || p.Label != "linux" || p.Kernel != "el5u4_x86_xen_install/vmlinuz" ||
		len(p.Initrds) != 1 || p.Initrds[0] != "el5u4_x86_xen_install/initrd.img" || p.Args != "" {
		t.Fatalf("%+v", p)
	}
}

func TestFindSearchOrderAndPrefixes(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		files      map[string]string
		uuid       string
		wantConfig string
		wantTried  int
		wantKernel string
	}{
		{"hex ip after mac", "pxelinux.0", map[string]string{"pxelinux.cfg/C00002C7": seedPV}, "", "pxelinux.cfg/C00002C7", 2, "el5u4_x86_xen_install/vmlinuz"},
		{"hex prefix", "pxelinux.0", map[string]string{"pxelinux.cfg/C000": seedPV}, "", "pxelinux.cfg/C000", 6, "el5u4_x86_xen_install/vmlinuz"},
		{"uuid first", "pxelinux.0", map[string]string{"pxelinux.cfg/4c4c4544-0032-3510-8052-b8c04f4a4e31": seedPV, "pxelinux.cfg/default": "kernel other"},
			"4C4C4544-0032-3510-8052-B8C04F4A4E31", "pxelinux.cfg/4c4c4544-0032-3510-8052-b8c04f4a4e31", 1, "el5u4_x86_xen_install/vmlinuz"},
		// The prefix is sent as it is, leading slash and all.
		{"boot file directory", "/boot/x86/pxelinux.0", map[string]string{"/boot/x86/pxelinux.cfg/default": "default l\nlabel l\nkernel vmlinuz\ninitrd /abs/initrd.img,rel.img\n"},
			"", "/boot/x86/pxelinux.cfg/default", 10, "/boot/x86/vmlinuz"},
		{"http boot file", "http://192.0.2.1:8080/pxe/pxelinux.0", map[string]string{"http://192.0.2.1:8080/pxe/pxelinux.cfg/default": "default vmlinuz quiet\n"},
			"", "http://192.0.2.1:8080/pxe/pxelinux.cfg/default", 10, "http://192.0.2.1:8080/pxe/vmlinuz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := *pvLease
			l.File = tc.file
			f := &mapFetcher{files: tc.files}
			p, err := Find(context.Background(), f, &l, pvMAC, tc.uuid, "", 0)
			if err != nil {
				t.Fatal(err)
			}
			if p.Config != tc.wantConfig || len(p.Tried) != tc.wantTried || p.Kernel != tc.wantKernel {
				t.Fatalf("config %s after %d tries (%v), kernel %s", p.Config, len(p.Tried), p.Tried, p.Kernel)
			}
			// A leading '/' does not escape the prefix (this test expected
			// "abs/initrd.img" before PXELINUX's rule was established).
			if tc.name == "boot file directory" && strings.Join(p.Initrds, " ") != "/boot/x86//abs/initrd.img /boot/x86/rel.img" {
				t.Fatalf("initrds %v", p.Initrds)
			}
		})
	}
}

func TestFindArgsAndIPAppend(t *testing.T) {
	cfg := "default inst\nlabel inst\nkernel vmlinuz\nappend initrd=a.img,b.img ks=http://x/ks initrd=c.img ksdevice=eth0\nipappend 3\nlabel disk\nlocalboot 0\nlabel xen\nkernel mboot.c32\nappend xen.gz --- vmlinuz --- initrd.img\n"
	f := &mapFetcher{files: map[string]string{"pxelinux.cfg/default": cfg}}
	p, err := Find(context.Background(), f, pvLease, pvMAC, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := "ks=http://x/ks ksdevice=eth0 ip=192.0.2.199:192.0.2.166:192.0.2.166:255.255.255.0 BOOTIF=01-00-16-3e-72-79-e3"
	if p.Args != want || strings.Join(p.Initrds, ",") != "a.img,b.img,c.img" {
		t.Fatalf("args %q initrds %v\nwant %q", p.Args, p.Initrds, want)
	}
	if p, err := Find(context.Background(), f, pvLease, pvMAC, "", "disk", 0); err != nil || !p.Localboot {
		t.Fatalf("localboot label: %+v %v", p, err)
	}
	if p, err := Find(context.Background(), f, pvLease, pvMAC, "", "xen", 0); err != nil {
		t.Fatalf("mboot label: %v", err)
	} else if err := p.ForPV(); err == nil || !strings.Contains(err.Error(), "cannot run") {
		t.Fatalf("mboot label for a PV guest: %v", err)
	}
	if _, err := Find(context.Background(), f, pvLease, pvMAC, "", "nope", 0); err == nil || !strings.Contains(err.Error(), "no such label") {
		t.Fatalf("missing label: %v", err)
	}
}

func TestFindNothingNamesEveryNameTried(t *testing.T) {
	f := &mapFetcher{files: map[string]string{}}
	_, err := Find(context.Background(), f, pvLease, pvMAC, "", "", 0)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"pxelinux.cfg/01-00-16-3e-72-79-e3", "pxelinux.cfg/C00002C7", "pxelinux.cfg/C", "pxelinux.cfg/default"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %s", err, want)
		}
	}
}

func TestLeaseServer(t *testing.T) {
	sid := netip.MustParseAddr("192.0.2.1")
	for _, tc := range []struct {
		l    Lease
		want string
	}{
		{Lease{NextServer: netip.MustParseAddr("192.0.2.166"), TFTPServer: "192.0.2.9", ServerID: sid}, "192.0.2.166"},
		{Lease{NextServer: netip.IPv4Unspecified(), TFTPServer: "192.0.2.9", ServerID: sid}, "192.0.2.9"},
		{Lease{ServerID: sid}, "192.0.2.1"},
	} {
		if a, _ := tc.l.Server(); a.String() != tc.want {
			t.Errorf("%+v: server %s, want %s", tc.l, a, tc.want)
		}
	}
}
