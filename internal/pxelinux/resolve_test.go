package pxelinux

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

func parseFile(t *testing.T, name string) *Config {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := Parse(name, f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestResolveSeedXenHost(t *testing.T) {
	c := parseFile(t, "seed-xen-host.cfg")
	b, err := c.Resolve("")
	if err != nil {
		t.Fatal(err)
	}
	want := Boot{
		Label:  "ovm",
		Kind:   KindCOM32,
		Kernel: "mboot.c32",
		Append: "ovm/2.2/xen-64bit-3.4.0.gz noreboot --- ovm/2.2/vmlinuz-2.6.18-128.2.1.4.9.el5xen ro root=LABEL=/ --- ovm/2.2/initrd-2.6.18-128.2.1.4.9.el5xen.img",
		Multiboot: []Module{
			{Path: "ovm/2.2/xen-64bit-3.4.0.gz", Args: "noreboot"},
			{Path: "ovm/2.2/vmlinuz-2.6.18-128.2.1.4.9.el5xen", Args: "ro root=LABEL=/"},
			{Path: "ovm/2.2/initrd-2.6.18-128.2.1.4.9.el5xen.img"},
		},
	}
	if !reflect.DeepEqual(b, want) {
		t.Errorf("got  %+v\nwant %+v", b, want)
	}
	if c.Global("TIMEOUT").Num != 120 || c.Global("PROMPT").Num != 1 {
		t.Error("TIMEOUT/PROMPT not global")
	}
}

func TestResolveSeedPVGuests(t *testing.T) {
	b, err := parseFile(t, "seed-pv-guest-mac.cfg").Resolve("")
	if err != nil {
		t.Fatal(err)
	}
	want := Boot{Label: "linux", Kind: KindLinux, Kernel: "el5u4_x86_xen_install/vmlinuz",
		Initrds: []string{"el5u4_x86_xen_install/initrd.img"},
		Append:  "initrd=el5u4_x86_xen_install/initrd.img"}
	if !reflect.DeepEqual(b, want) {
		t.Errorf("got  %+v\nwant %+v", b, want)
	}

	// The blog's C0A8C8B1 file continues APPEND with backslashes, which
	// syslinux does not support: the continuation lines are unknown
	// keywords and the kickstart options never reach the kernel.
	c := parseFile(t, "seed-pv-guest-hexip.cfg")
	b, err = c.Resolve("linux")
	if err != nil {
		t.Fatal(err)
	}
	want = Boot{Label: "linux", Kind: KindLinux, Kernel: "vmlinuz",
		Initrds: []string{"initrd.img"},
		Append:  `initrd=initrd.img lang=en_US keymap=us \`}
	if !reflect.DeepEqual(b, want) {
		t.Errorf("got  %+v\nwant %+v", b, want)
	}
	l := c.Label("linux")
	if s := l.Stmts[2]; s.Kind != Unknown || s.Keyword != "ks=nfs:" || s.Line != 7 {
		t.Errorf("continuation line = %+v", s)
	}
}

func TestResolve(t *testing.T) {
	menu := parseFile(t, "example-menu.cfg")
	plain := parseFile(t, "example-plain.cfg")
	tests := []struct {
		name  string
		c     *Config
		label string
		want  Boot
	}{
		{"menu default label", menu, "", Boot{Label: "local", Kind: KindLocalboot, Localboot: 0x80}},
		{"INITRD list + global APPEND overridden", menu, "install", Boot{Label: "install", Kind: KindLinux,
			Kernel: "images/vmlinuz", Initrds: []string{"images/initrd.img", "images/extra.cpio"},
			Append: "initrd=images/initrd.img,images/extra.cpio ks=http://install.example/ks.cfg text", IPAppend: 2}},
		{"global APPEND inherited", menu, "memtest", Boot{Label: "memtest", Kind: KindBoot, Kernel: "memtest86+.bin", Append: "quiet"}},
		{"APPEND - drops global APPEND", menu, "hdt", Boot{Label: "hdt", Kind: KindCOM32, Kernel: "hdt.c32"}},
		{"nested submenu label, extra args", menu, "chain hd1", Boot{Label: "chain", Kind: KindCOM32, Kernel: "chain.c32", Append: "hd0 1 hd1"}},
		{"label without kernel boots its name", menu, "back", Boot{Label: "back", Kind: KindLinux, Kernel: "back", Append: "quiet"}},
		{"CONFIG", menu, "reload", Boot{Label: "reload", Kind: KindConfig, Kernel: "pxelinux.cfg/other.cfg", Append: "quiet"}},
		{"DEFAULT as command line", plain, "", Boot{Kind: KindLinux, Kernel: "vmlinuz",
			Initrds: []string{"initrd.img", "modules.cgz"}, Append: "initrd=initrd.img,modules.cgz console=ttyS0", IPAppend: 1}},
		{"KERNEL args, INITRD, SYSAPPEND", plain, "rescue", Boot{Label: "rescue", Kind: KindLinux, Kernel: "rescue/bzImage",
			Initrds: []string{"rescue/initrd.gz"}, Append: "initrd=rescue/initrd.gz ro single", IPAppend: 3}},
		{"PXE chain", plain, "pxechain", Boot{Label: "pxechain", Kind: KindPXE, Kernel: "gpxe.0",
			Append: "root=/dev/nfs nfsroot=10.0.0.1:/srv/root", IPAppend: 1}},
		{"fdimage by extension", plain, "dos", Boot{Label: "dos", Kind: KindFDImage, Kernel: "fdos.img",
			Append: "root=/dev/nfs nfsroot=10.0.0.1:/srv/root", IPAppend: 1}},
		{"BSS", plain, "raw", Boot{Label: "raw", Kind: KindBSS, Kernel: "boot.bss",
			Append: "root=/dev/nfs nfsroot=10.0.0.1:/srv/root", IPAppend: 1}},
		{"DEFAULT label with args", mustParse(t, "default a single\nlabel a\nkernel k\nappend ro\n"), "",
			Boot{Label: "a", Kind: KindLinux, Kernel: "k", Append: "ro single"}},
		{"DEFAULT label beats MENU DEFAULT", mustParse(t, "ui menu.c32\ndefault b\nlabel a\nmenu default\nlabel b\n"), "",
			Boot{Label: "b", Kind: KindLinux, Kernel: "b"}},
		{"ONTIMEOUT label", mustParse(t, "ontimeout b\nlabel a\nlabel b\nlocalboot -1\n"), "",
			Boot{Label: "b", Kind: KindLocalboot, Localboot: -1}},
		{"ONTIMEOUT command line", mustParse(t, "ontimeout memdisk.c32 iso\nlabel a\n"), "",
			Boot{Kind: KindCOM32, Kernel: "memdisk.c32", Append: "iso"}},
		{"first label", mustParse(t, "timeout 1\nlabel first\nkernel f\nlabel second\n"), "",
			Boot{Label: "first", Kind: KindLinux, Kernel: "f"}},
		{"initrd= in KERNEL line and APPEND", mustParse(t, "label a\nkernel vmlinuz initrd=x.img\nappend INITRD=y.img,,z.img initrd=\n"), "",
			Boot{Label: "a", Kind: KindLinux, Kernel: "vmlinuz", Initrds: []string{"x.img", "y.img", "z.img"},
				Append: "initrd=x.img INITRD=y.img,,z.img initrd="}},
		{"last KERNEL wins, LINUX forces kind", mustParse(t, "label a\nkernel a.c32\nlinux b.c32\n"), "",
			Boot{Label: "a", Kind: KindLinux, Kernel: "b.c32"}},
		{"mboot via DEFAULT command line", mustParse(t, "default mboot.c32 xen.gz dom0_mem=1G --- vmlinuz ro --- initrd.img ---\n"), "",
			Boot{Kind: KindCOM32, Kernel: "mboot.c32", Append: "xen.gz dom0_mem=1G --- vmlinuz ro --- initrd.img ---",
				Multiboot: []Module{{"xen.gz", "dom0_mem=1G"}, {"vmlinuz", "ro"}, {"initrd.img", ""}}}},
	}
	for _, tc := range tests {
		got, err := tc.c.Resolve(tc.label)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
}

func TestResolveErrors(t *testing.T) {
	c := mustParse(t, "label a\n")
	if _, err := c.Resolve("nope"); !errors.Is(err, ErrNoLabel) {
		t.Errorf("unknown label: %v", err)
	}
	if b, err := mustParse(t, "label my label\n").Resolve("my label"); err != nil || b.Label != "my label" {
		t.Errorf("label with a space: %+v, %v", b, err)
	}
	if _, err := mustParse(t, "# nothing\ntimeout 5\n").Resolve(""); !errors.Is(err, ErrNothingToBoot) {
		t.Errorf("empty config: %v", err)
	}
}

func TestMultiboot(t *testing.T) {
	got := Multiboot("  xen.gz   a  b ---vmlinuz --- --- vmlinuz root=/dev/sda1 ---  initrd.img")
	want := []Module{{"xen.gz", "a b ---vmlinuz"}, {"vmlinuz", "root=/dev/sda1"}, {"initrd.img", ""}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v", got)
	}
	if Multiboot("") != nil {
		t.Error("empty args should give no modules")
	}
}

func fsOpen(fsys fs.FS) func(string) (io.ReadCloser, error) {
	return func(name string) (io.ReadCloser, error) {
		return fsys.Open(strings.TrimPrefix(path.Clean(name), "/"))
	}
}

func TestParseWithIncludes(t *testing.T) {
	c, err := ParseWithIncludes("example-include.cfg", fsOpen(os.DirFS("testdata")), 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"common.cfg", "menu-body.cfg"}; !reflect.DeepEqual(c.Includes, want) {
		t.Errorf("Includes = %v", c.Includes)
	}
	// menu-body.cfg continues label "menu"; common.cfg sets globals.
	b, err := c.Resolve("")
	if err != nil {
		t.Fatal(err)
	}
	want := Boot{Label: "menu", Kind: KindLinux, Kernel: "vmlinuz-menu", Initrds: []string{"initrd-menu.img"},
		Append: "initrd=initrd-menu.img console=tty0"}
	if !reflect.DeepEqual(b, want) {
		t.Errorf("got  %+v\nwant %+v", b, want)
	}
	if c.Global("TIMEOUT").Num != 100 {
		t.Error("TIMEOUT from include missing")
	}
	wantText := "DEFAULT menu\nTIMEOUT 100\nAPPEND console=tty0\nLABEL menu\n  KERNEL vmlinuz-menu\n  INITRD initrd-menu.img\nLABEL last\n  KERNEL last.bin\n"
	if got := string(c.Render()); got != wantText {
		t.Errorf("inlined rendering:\n%s", got)
	}
	// Without resolution INCLUDE is just recorded.
	plain := parseFile(t, "example-include.cfg")
	if s := top(plain)[1]; s.Keyword != "INCLUDE" || s.Arg != "common.cfg" {
		t.Errorf("INCLUDE not recorded: %+v", s)
	}
}

func TestParseWithIncludesErrors(t *testing.T) {
	fsys := fstest.MapFS{
		"loop.cfg":   {Data: []byte("# x\ninclude ./b.cfg\n")},
		"b.cfg":      {Data: []byte("include sub/../loop.cfg\n")},
		"d0.cfg":     {Data: []byte("include d1.cfg\n")},
		"d1.cfg":     {Data: []byte("include d2.cfg\n")},
		"d2.cfg":     {Data: []byte("label x\n")},
		"bad.cfg":    {Data: []byte("include broken.cfg\n")},
		"broken.cfg": {Data: []byte("\n\ntimeout x\n")},
		"text.cfg":   {Data: []byte("label a\ninclude help.cfg\nkernel k\n")},
		"help.cfg":   {Data: []byte("text help\nunterminated\n")},
		"miss.cfg":   {Data: []byte("include nowhere.cfg\n")},
		"menu.cfg":   {Data: []byte("include open.cfg\nlabel z\n")},
		"open.cfg":   {Data: []byte("menu begin\n")},
	}
	open := fsOpen(fsys)
	tests := []struct {
		name  string
		depth int
		want  string
	}{
		{"loop.cfg", 0, "./b.cfg:1: INCLUDE cycle: loop.cfg -> b.cfg -> loop.cfg"},
		{"d0.cfg", 1, "d1.cfg:1: INCLUDE d2.cfg: nested deeper than 1 levels"},
		{"bad.cfg", 0, "broken.cfg:3: TIMEOUT: \"x\" is not a number"},
		{"miss.cfg", 0, "miss.cfg:1: INCLUDE nowhere.cfg: open nowhere.cfg: file does not exist"},
		{"menu.cfg", 0, "open.cfg:1: MENU BEGIN without matching MENU END"},
		{"absent.cfg", 0, "absent.cfg: open absent.cfg: file does not exist"},
	}
	for _, tc := range tests {
		_, err := ParseWithIncludes(tc.name, open, tc.depth)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: err = %v, want %s", tc.name, err, tc.want)
		}
	}
	if _, err := ParseWithIncludes("d0.cfg", open, 2); err != nil {
		t.Errorf("depth 2: %v", err)
	}
	// A TEXT block left open by an included file ends with that file.
	c, err := ParseWithIncludes("text.cfg", open, 0)
	if err != nil {
		t.Fatal(err)
	}
	if k := c.Label("a").Get("KERNEL"); k == nil || k.Arg != "k" {
		t.Errorf("KERNEL after included TEXT block lost: %+v", c.Label("a").Stmts)
	}
	if _, err := Parse("r", strings.NewReader(string(c.Render()))); err != nil {
		t.Error(err)
	}
}

func TestKindByExtension(t *testing.T) {
	tests := map[string]BootKind{
		"vmlinuz": KindLinux, "bzImage-6.1": KindLinux, "menu.C32": KindCOM32, "x.com": KindCOMBOOT,
		"x.cbt": KindCOMBOOT, "x.bs": KindBoot, "x.bin": KindBoot, "x.bss": KindBSS,
		"undionly.0": KindPXE, "fd.img": KindFDImage,
	}
	for file, want := range tests {
		b, err := mustParse(t, "label a\nkernel "+file+"\n").Resolve("")
		if err != nil || b.Kind != want {
			t.Errorf("%s: kind %q, %v; want %q", file, b.Kind, err, want)
		}
	}
}

func TestResolveCommandLineDefaults(t *testing.T) {
	// A bare DEFAULT command line takes the global APPEND and SYSAPPEND.
	b, err := mustParse(t, "default pxelinux.0\nappend a=1\nsysappend 4\n").Resolve("")
	want := Boot{Kind: KindPXE, Kernel: "pxelinux.0", Append: "a=1", IPAppend: 4}
	if err != nil || !reflect.DeepEqual(b, want) {
		t.Errorf("got %+v, %v", b, err)
	}
	b, err = mustParse(t, "default vmlinuz\nappend -\n").Resolve("")
	want = Boot{Kind: KindLinux, Kernel: "vmlinuz"}
	if err != nil || !reflect.DeepEqual(b, want) {
		t.Errorf("APPEND -: got %+v, %v", b, err)
	}
}
