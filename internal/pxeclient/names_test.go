package pxeclient

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"pxed/internal/bootfs"
	"pxed/internal/pxelinux"
)

// Every expectation below was seen in a QEMU boot of PXELINUX 6.04 through
// pxed (test/e2e/pathprefix_test.go), unless marked "source only".

func TestPathPrefix(t *testing.T) {
	for _, tc := range []struct{ file, opt210, want string }{
		{"bios/pxelinux.0", "", "bios/"},
		{"pxelinux.0", "", ""},
		{"/bios/pxe_boot.0", "", "/bios/pxe_"}, // '_' ends the name; the leading '/' stays
		{"bios/pxelinux.0", "pfx/", "pfx/"},
		{"bios/pxelinux.0", "pfx", "pfx"}, // verbatim: "pfx" + "ldlinux.c32"
		{"bios/pxelinux.0", "http://192.0.2.1:8080/web/", "http://192.0.2.1:8080/web/"},
		{"http://192.0.2.1:8080/pxe/lpxelinux.0", "", "http://192.0.2.1:8080/pxe/"}, // source only
		{"bios/pxelinux.0", "::pfx/", "pfx/"},                                       // source only
		{"bios/pxelinux.0", "192.0.2.9::pfx/", "tftp://192.0.2.9/pfx/"},             // source only
		{"bios/pxelinux.0", "pfx/\x00junk", "pfx/"},                                 // source only: a C string
	} {
		if got := PathPrefix(tc.file, tc.opt210); got != tc.want {
			t.Errorf("PathPrefix(%q, %q) = %q, want %q", tc.file, tc.opt210, got, tc.want)
		}
	}
}

func TestResolveName(t *testing.T) {
	for _, tc := range []struct{ prefix, name, want string }{
		{"bios/", "images/vmlinuz", "bios/images/vmlinuz"},
		{"bios/", "/images/vmlinuz", "bios//images/vmlinuz"}, // not absolute
		{"bios/", "::bios/images/initrd.gz", "bios/images/initrd.gz"},
		{"bios/", "tftp://192.0.2.1/bios/images/extra2.gz", "tftp://192.0.2.1/bios/images/extra2.gz"},
		{"bios/", "http://192.0.2.1:8080/bios/images/extra3.gz", "http://192.0.2.1:8080/bios/images/extra3.gz"},
		{"", "images/vmlinuz", "images/vmlinuz"},
		{"", "/images/vmlinuz", "/images/vmlinuz"},
		{"", "::images/vmlinuz", "images/vmlinuz"},
		{"", "http://192.0.2.1/x", "http://192.0.2.1/x"},
		{"pfx", "ldlinux.c32", "pfxldlinux.c32"},
		{"/bios/pxe_", "images/vmlinuz", "/bios/pxe_images/vmlinuz"},
		{"http://192.0.2.1:8080/web/", "images/vmlinuz", "http://192.0.2.1:8080/web/images/vmlinuz"},
		{"http://192.0.2.1:8080/web/", "/images/extra1.gz", "http://192.0.2.1:8080/web//images/extra1.gz"},
		{"http://192.0.2.1:8080/web/", "::bios/images/initrd.gz", "bios/images/initrd.gz"},
		{"bios/", "192.0.2.9::x/y", "tftp://192.0.2.9/x/y"}, // lab: host::path is absolute, from that host
		{"bios/", "a:b", "bios/a:b"},                        // lab: one ':' is no URL
		{"::bios/", "x", "bios/x"},                          // source only
	} {
		if got := ResolveName(tc.prefix, tc.name); got != tc.want {
			t.Errorf("ResolveName(%q, %q) = %q, want %q", tc.prefix, tc.name, got, tc.want)
		}
	}
}

func TestSplitTFTPURL(t *testing.T) {
	for _, tc := range []struct{ url, host, path string }{
		{"tftp://192.0.2.1/bios/images/extra2.gz", "192.0.2.1", "bios/images/extra2.gz"},
		{"tftp://192.0.2.1:6969/a%20b;mode=octet", "192.0.2.1:6969", "a b"},
		{"tftp:///x", "", "x"},
	} {
		h, p, ok := splitTFTPURL(tc.url)
		if !ok || h != tc.host || p != tc.path {
			t.Errorf("splitTFTPURL(%q) = %q %q %v", tc.url, h, p, ok)
		}
	}
}

// lease210 is a lease for bios/pxelinux.0, with option 210 when given.
func lease210(file, opt210 string) *Lease {
	l := *pvLease
	l.File = file
	if opt210 != "" {
		l.Options = map[uint8][]byte{210: []byte(opt210)}
	}
	return &l
}

func TestFindPathPrefix(t *testing.T) {
	const mac = "01-00-16-3e-72-79-e3"
	linux := "default l\nlabel l\nkernel /images/vmlinuz\ninitrd ::bios/images/initrd.gz,images/extra.gz\nappend quiet\n"
	for _, tc := range []struct {
		name, file, opt210 string
		files              map[string]string
		config             string
		includes           []string
		kernel, initrds    string
	}{
		{"from the boot file", "bios/pxelinux.0", "", map[string]string{"bios/pxelinux.cfg/" + mac: linux},
			"bios/pxelinux.cfg/" + mac, nil, "bios//images/vmlinuz", "bios/images/initrd.gz bios/images/extra.gz"},
		{"from option 210", "bios/pxelinux.0", "pfx/", map[string]string{"pfx/pxelinux.cfg/" + mac: linux},
			"pfx/pxelinux.cfg/" + mac, nil, "pfx//images/vmlinuz", "bios/images/initrd.gz pfx/images/extra.gz"},
		{"option 210 URL", "bios/pxelinux.0", "http://192.0.2.1:8080/web/", map[string]string{"http://192.0.2.1:8080/web/pxelinux.cfg/" + mac: linux},
			"http://192.0.2.1:8080/web/pxelinux.cfg/" + mac, nil, "http://192.0.2.1:8080/web//images/vmlinuz",
			"bios/images/initrd.gz http://192.0.2.1:8080/web/images/extra.gz"},
		{"INCLUDE in each form", "bios/pxelinux.0", "", map[string]string{
			"bios/pxelinux.cfg/" + mac:        "default l\ninclude /inc/a.cfg\n",
			"bios//inc/a.cfg":                 "include ::bios/inc/b.cfg\n",
			"bios/inc/b.cfg":                  "include inc/c.cfg\n", // the prefix's, not bios/inc/
			"bios/inc/c.cfg":                  "include tftp://192.0.2.1/bios/inc/d.cfg\n",
			"tftp://192.0.2.1/bios/inc/d.cfg": linux,
		}, "bios/pxelinux.cfg/" + mac, []string{"bios//inc/a.cfg", "bios/inc/b.cfg", "bios/inc/c.cfg", "tftp://192.0.2.1/bios/inc/d.cfg"},
			"bios//images/vmlinuz", "bios/images/initrd.gz bios/images/extra.gz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &mapFetcher{files: tc.files}
			p, err := Find(context.Background(), f, lease210(tc.file, tc.opt210), pvMAC, "", "", 0)
			if err != nil {
				t.Fatal(err)
			}
			if p.Config != tc.config || strings.Join(p.Includes, " ") != strings.Join(tc.includes, " ") || p.Kernel != tc.kernel ||
				strings.Join(p.Initrds, " ") != tc.initrds || p.Args != "quiet" || p.Kind != pxelinux.KindLinux || p.ForPV() != nil {
				t.Fatalf("config %s includes %v kernel %s initrds %v args %q kind %s", p.Config, p.Includes, p.Kernel, p.Initrds, p.Args, p.Kind)
			}
			if string(p.ConfigData) != tc.files[tc.config] {
				t.Errorf("config data %q", p.ConfigData)
			}
		})
	}
}

func TestFindTriedAndOption209(t *testing.T) {
	l := lease210("/bios/pxe_boot.0", "")
	l.Options = map[uint8][]byte{209: []byte("cfg/none.cfg\x00")}
	f := &mapFetcher{files: map[string]string{
		"/bios/pxe_pxelinux.cfg/C00002C7": "default l\nlabel l\nkernel images/vmlinuz\n",
		"/bios/pxe_pxelinux.cfg/default":  "default other\n",
	}}
	p, err := Find(context.Background(), f, l, pvMAC, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/bios/pxe_cfg/none.cfg", "/bios/pxe_pxelinux.cfg/01-00-16-3e-72-79-e3", "/bios/pxe_pxelinux.cfg/C00002C7"}
	if len(p.Tried) != len(want) {
		t.Fatalf("tried %v", p.Tried)
	}
	for i, tr := range p.Tried {
		last := i == len(want)-1
		if tr.Name != want[i] || (tr.Err == nil) != last || (!last && !errors.Is(tr.Err, fs.ErrNotExist)) {
			t.Errorf("try %d: %+v, want %s", i, tr, want[i])
		}
	}
	if p.Kernel != "/bios/pxe_images/vmlinuz" {
		t.Errorf("kernel %s", p.Kernel)
	}
}

func TestFindLabelKinds(t *testing.T) {
	cfg := "default linux\nlabel linux\nkernel /k\nappend initrd=i.img\n" +
		"label xen\nkernel mboot.c32\nappend /xen.gz dom0_mem=512M --- vmlinuz ro --- ::bios/initrd.img\n" +
		"label menu\nkernel menu.c32\n" +
		"label disk\nlocalboot 0\n"
	f := &mapFetcher{files: map[string]string{"bios/pxelinux.cfg/default": cfg}}
	l := lease210("bios/pxelinux.0", "")
	find := func(label string) *Plan {
		t.Helper()
		p, err := Find(context.Background(), f, l, pvMAC, "", label, 0)
		if err != nil {
			t.Fatalf("label %s: %v", label, err)
		}
		return p
	}
	x := find("xen")
	if x.Kind != pxelinux.KindCOM32 || x.Kernel != "bios/mboot.c32" || len(x.Modules) != 3 ||
		x.Modules[0] != (Module{"bios//xen.gz", "dom0_mem=512M"}) || x.Modules[1] != (Module{"bios/vmlinuz", "ro"}) ||
		x.Modules[2] != (Module{"bios/initrd.img", ""}) || x.Boot.Multiboot[0].Path != "/xen.gz" {
		t.Errorf("mboot.c32: %+v", x)
	}
	if err := x.ForPV(); err == nil || !strings.Contains(err.Error(), `label "xen" boots mboot.c32 (com32), which a Xen PV guest cannot run`) {
		t.Errorf("ForPV: %v", err)
	}
	if m := find("menu"); m.Kernel != "bios/menu.c32" || m.ForPV() == nil {
		t.Errorf("menu.c32: %+v", m)
	}
	if d := find("disk"); !d.Localboot || d.Kind != pxelinux.KindLocalboot || d.ForPV() != nil || d.Kernel != "" {
		t.Errorf("localboot: %+v", d)
	}
	if k := find(""); k.Kernel != "bios//k" || strings.Join(k.Initrds, ",") != "bios/i.img" {
		t.Errorf("linux: %+v", k)
	}
}

func TestFindBounds(t *testing.T) {
	big := strings.Repeat("# padding\n", DefaultMaxConfig/10+1)
	f := &mapFetcher{files: map[string]string{"pxelinux.cfg/default": big}}
	if _, err := Find(context.Background(), f, pvLease, pvMAC, "", "", 0); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("a config over %d bytes: %v", DefaultMaxConfig, err)
	}
	// Many files each under the limit: the total is bounded too.
	files := map[string]string{"pxelinux.cfg/default": "include a0\n"}
	for i := 0; i < 7; i++ {
		files["a"+string(rune('0'+i))] = strings.Repeat("#", DefaultMaxConfig-100) + "\ninclude a" + string(rune('1'+i)) + "\n"
	}
	files["a7"] = "default k\n"
	if _, err := Find(context.Background(), &mapFetcher{files: files}, pvLease, pvMAC, "", "", 0); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("configs over %d bytes in all: %v", 4*DefaultMaxConfig, err)
	}
	// INCLUDE nesting.
	deep := map[string]string{"pxelinux.cfg/default": "include d0\n"}
	for i := 0; i < 20; i++ {
		deep["d"+strings.Repeat("x", i)] = ""
	}
	for i := 0; i < 12; i++ {
		deep[name(i)] = "include " + name(i+1) + "\n"
	}
	if _, err := Find(context.Background(), &mapFetcher{files: deep}, pvLease, pvMAC, "", "", 0); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("deep includes: %v", err)
	}
}

func name(i int) string { return "d" + string(rune('0'+i)) }

func TestTreeFetcher(t *testing.T) {
	tree := fstest.MapFS{
		"bios/images/vmlinuz":                    {Data: []byte("kernel")},
		"bios/pxelinux.cfg/default":              {Data: []byte("default l\nlabel l\nkernel /images/vmlinuz\n")},
		"bios/pxelinux.cfg/01-00-16-3e-72-79-e3": {Mode: fs.ModeDir}, // a directory is no file
	}
	tf := &TreeFetcher{FS: tree, Client: bootfs.Client{Proto: "tftp"}}
	var b strings.Builder
	if err := tf.Fetch(context.Background(), "bios//images/vmlinuz", &b); err != nil || b.String() != "kernel" {
		t.Errorf("bios//images/vmlinuz: %q %v", b.String(), err)
	}
	for _, n := range []string{"http://192.0.2.1/x", "tftp://192.0.2.1/bios/images/vmlinuz"} {
		err := tf.Fetch(context.Background(), n, &b)
		if !errors.Is(err, ErrNotInTree) || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v", n, err)
		}
	}
	if err := tf.Fetch(context.Background(), "bios/../etc/passwd", &b); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("..: %v", err)
	}
	if err := tf.Fetch(context.Background(), "bios/missing", &b); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	p, err := Find(context.Background(), tf, lease210("bios/pxelinux.0", ""), pvMAC, "", "", 0)
	if err != nil || p.Kernel != "bios//images/vmlinuz" || p.Config != "bios/pxelinux.cfg/default" {
		t.Fatalf("%+v %v", p, err)
	}
	if len(p.Tried) != 10 || !errors.Is(p.Tried[0].Err, fs.ErrNotExist) {
		t.Errorf("tried %v", p.Tried)
	}
}
