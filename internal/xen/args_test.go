package xen

import (
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

// libxlArgv builds a bootloader command line in the order libxl's
// make_bootloader_args does: kernel, ramdisk, args (if non-empty), runas and
// quiet (bootloader_restrict), output, output-format, output-directory, the
// config's bootloader_args, the disk.
func libxlArgv(kernel, ramdisk, cmdline string, runas string, blargs []string, disk string) []string {
	var a []string
	if kernel != "" {
		a = append(a, "--kernel="+kernel)
	}
	if ramdisk != "" {
		a = append(a, "--ramdisk="+ramdisk)
	}
	if cmdline != "" {
		a = append(a, "--args="+cmdline)
	}
	if runas != "" {
		a = append(a, "--runas="+runas, "--quiet")
	}
	a = append(a, "--output=/var/lib/xen/bootloader.7.out", "--output-format=simple0",
		"--output-directory=/var/lib/xen/bootloader.7.d")
	a = append(a, blargs...)
	return append(a, disk)
}

// xendArgv builds a command line as xend's XendBootloader does: kernel,
// ramdisk, args, -q, output (a FIFO), the bootargs string split like a shell
// (whitespace, for these unquoted strings), the disk.
func xendArgv(cmdline string, quiet bool, bootargs, disk string) []string {
	var a []string
	if cmdline != "" {
		a = append(a, "--args="+cmdline)
	}
	if quiet {
		a = append(a, "-q")
	}
	a = append(a, "--output=/var/run/xend/boot/xenbl.4242")
	a = append(a, strings.Fields(bootargs)...)
	return append(a, disk)
}

func TestParseArgs(t *testing.T) {
	const mac = "00:16:3e:72:79:e3"
	tests := []struct {
		name string
		args []string
		want *Invocation // compared field by field (unexported fields ignored)
	}{
		{
			name: "libxl full",
			args: libxlArgv("/boot/vmlinuz", "/boot/initrd", "console=hvc0 ks=http://x/ks.cfg?a=b", "131079",
				[]string{"mac=00:16:3e:72:79:e3,bridge=xenbr1"}, "/dev/xvdb"),
			want: &Invocation{Toolstack: "xl", Kernel: "/boot/vmlinuz", Ramdisk: "/boot/initrd",
				Args: "console=hvc0 ks=http://x/ks.cfg?a=b", Output: "/var/lib/xen/bootloader.7.out",
				Format: FormatSimple0, OutputDir: "/var/lib/xen/bootloader.7.d", Quiet: true, RunAs: "131079",
				MAC: mustMAC(mac), Interface: "xenbr1", Timeout: DefaultTimeout, Disk: "/dev/xvdb"},
		},
		{
			name: "libxl minimal with pxed options",
			args: libxlArgv("", "", "", "", []string{"--interface=br-pxe", "--label=install", "--timeout=90s",
				"--local-bootloader=/usr/bin/pygrub", "mac=00:16:3E:72:79:E3"}, "/srv/vm/pvm.img"),
			want: &Invocation{Toolstack: "xl", Output: "/var/lib/xen/bootloader.7.out", Format: FormatSimple0,
				OutputDir: "/var/lib/xen/bootloader.7.d", MAC: mustMAC(mac), Interface: "br-pxe", Label: "install",
				Timeout: 90 * time.Second, LocalBootloader: "/usr/bin/pygrub", Disk: "/srv/vm/pvm.img"},
		},
		{
			name: "xend seed bootargs = vif[0] with a space after the comma",
			args: xendArgv("", true, "mac=00:16:3e:72:79:e3, bridge=xenbr0", "/share/vm/pxeboot/system.img"),
			want: &Invocation{Toolstack: "xm", Output: "/var/run/xend/boot/xenbl.4242", Format: FormatSXP,
				OutputDir: DefaultOutputDir, Quiet: true, MAC: mustMAC(mac), Interface: "xenbr0",
				Timeout: DefaultTimeout, Disk: "/share/vm/pxeboot/system.img"},
		},
		{
			name: "xend with args, upper case, trailing commas, label",
			args: xendArgv("ks=nfs:192.0.2.1:/ks.cfg ip=dhcp", false,
				"MAC=00:16:3E:72:79:E3,BRIDGE=xenbr2,, --label=rescue", "/dev/vg0/pvm"),
			want: &Invocation{Toolstack: "xm", Args: "ks=nfs:192.0.2.1:/ks.cfg ip=dhcp",
				Output: "/var/run/xend/boot/xenbl.4242", Format: FormatSXP, OutputDir: DefaultOutputDir,
				MAC: mustMAC(mac), Interface: "xenbr2", Label: "rescue", Timeout: DefaultTimeout, Disk: "/dev/vg0/pvm"},
		},
		{
			name: "vif with type and spaces inside one argument, explicit interface wins",
			args: []string{"--interface=eth1", "--output=-", " type=ioemu , mac = 00-16-3e-72-79-e3 , bridge=xenbr0 ,", "/d"},
			want: &Invocation{Toolstack: "xm", Output: "-", Format: FormatSXP, OutputDir: DefaultOutputDir,
				MAC: mustMAC(mac), Interface: "eth1", Timeout: DefaultTimeout, Disk: "/d"},
		},
		{
			name: "no disk: the only positional is the vif",
			args: []string{"--output-format=simple", "mac=00:16:3e:72:79:e3"},
			want: &Invocation{Toolstack: "xl", Format: FormatSimple, OutputDir: DefaultOutputDir,
				MAC: mustMAC(mac), Interface: "xenbr0", Timeout: DefaultTimeout},
		},
		{
			name: "unknown options collected, separated values, --",
			args: []string{"--entry=1", "-i", "--isconfig", "--output", "/tmp/o", "--args", "a=b  c=\"d e\"",
				"stray", "mac=00:16:3e:72:79:e3", "--timeout=30", "--", "-disk-with-dash"},
			want: &Invocation{Toolstack: "xm", Args: `a=b  c="d e"`, Output: "/tmp/o", Format: FormatSXP,
				OutputDir: DefaultOutputDir, MAC: mustMAC(mac), Interface: "xenbr0", Timeout: 30 * time.Second,
				Disk: "-disk-with-dash", Unknown: []string{"--entry=1", "-i", "--isconfig", "stray"}},
		},
		{
			name: "download limits and hosts",
			args: libxlArgv("", "", "", "131079", []string{"--max-config-size=64KiB", "--max-kernel-size", "32M",
				"--max-initrd-size=1G", "--allow-host=198.51.100.7", "--allow-host=mirror.example.", "--allow-host=*",
				"--use-env-proxy", "mac=00:16:3e:72:79:e3"}, "/d"),
			want: &Invocation{Toolstack: "xl", Output: "/var/lib/xen/bootloader.7.out", Format: FormatSimple0,
				OutputDir: "/var/lib/xen/bootloader.7.d", Quiet: true, RunAs: "131079", MAC: mustMAC(mac),
				Interface: "xenbr0", Timeout: DefaultTimeout, Disk: "/d",
				MaxConfigSize: 64 << 10, MaxKernelSize: 32 << 20, MaxInitrdSize: 1 << 30,
				AllowHosts: []string{"198.51.100.7", "mirror.example.", "*"}, EnvProxy: true},
		},
		{
			name: "--args with = and spaces, last one wins",
			args: []string{"--args=first", "--args=root=/dev/xvda1 console=hvc0 x==y", "mac=00:16:3e:72:79:e3", "disk"},
			want: &Invocation{Toolstack: "xm", Args: "root=/dev/xvda1 console=hvc0 x==y", Format: FormatSXP,
				OutputDir: DefaultOutputDir, MAC: mustMAC(mac), Interface: "xenbr0", Timeout: DefaultTimeout, Disk: "disk"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseArgs(tt.args)
			if err != nil {
				t.Fatalf("ParseArgs(%q): %v", tt.args, err)
			}
			checkInvocation(t, got, tt.want)
		})
	}
}

func checkInvocation(t *testing.T, got, want *Invocation) {
	t.Helper()
	// The download limits are the defaults unless the case says otherwise.
	for _, f := range []struct {
		p *int64
		d int64
	}{{&want.MaxConfigSize, DefaultMaxConfigSize}, {&want.MaxKernelSize, DefaultMaxKernelSize}, {&want.MaxInitrdSize, DefaultMaxInitrdSize}} {
		if *f.p == 0 {
			*f.p = f.d
		}
	}
	g := reflect.ValueOf(got).Elem()
	w := reflect.ValueOf(want).Elem()
	for i := 0; i < g.NumField(); i++ {
		f := g.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		if !reflect.DeepEqual(g.Field(i).Interface(), w.Field(i).Interface()) {
			t.Errorf("%s = %#v, want %#v", f.Name, g.Field(i).Interface(), w.Field(i).Interface())
		}
	}
}

func TestParseArgsErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr []string // substrings of the error
	}{
		{"no mac, names what was given", []string{"--output=/o", "bridge=xenbr0", "/dev/xvda"},
			[]string{"no guest MAC", `"bridge=xenbr0"`, `"/dev/xvda"`}},
		{"nothing at all", nil, []string{"no guest MAC", "[]"}},
		{"mac only as the disk position", []string{"/dev/xvda"}, []string{"no guest MAC", `"/dev/xvda"`}},
		{"bad mac", []string{"mac=00:16:3e:72:79", "/d"}, []string{"invalid MAC", "00:16:3e:72:79"}},
		{"multicast mac", []string{"mac=01:00:5e:00:00:01", "/d"}, []string{"multicast"}},
		{"eui64 mac", []string{"mac=00:16:3e:ff:fe:72:79:e3", "/d"}, []string{"6 bytes"}},
		{"conflicting macs", []string{"mac=00:16:3e:72:79:e3", "mac=00:16:3e:72:79:e4", "/d"}, []string{"conflicting"}},
		{"bad format", []string{"--output-format=json", "mac=00:16:3e:72:79:e3", "/d"}, []string{"json"}},
		{"bad timeout", []string{"--timeout=soon", "mac=00:16:3e:72:79:e3", "/d"}, []string{"--timeout"}},
		{"zero timeout", []string{"--timeout=0s", "mac=00:16:3e:72:79:e3", "/d"}, []string{"positive"}},
		{"missing value", []string{"mac=00:16:3e:72:79:e3", "/d", "--output"}, []string{"--output needs a value"}},
		{"bad runas", []string{"--runas=nobody", "mac=00:16:3e:72:79:e3", "/d"}, []string{"numeric uid"}},
		{"runas root", []string{"--runas=0", "mac=00:16:3e:72:79:e3", "/d"}, []string{"--runas", "root"}},
		{"runas -1", []string{"--runas=4294967295", "mac=00:16:3e:72:79:e3", "/d"}, []string{"numeric uid"}},
		{"bad size", []string{"--max-kernel-size=lots", "mac=00:16:3e:72:79:e3", "/d"}, []string{"--max-kernel-size"}},
		{"zero size", []string{"--max-initrd-size=0", "mac=00:16:3e:72:79:e3", "/d"}, []string{"--max-initrd-size", "more than 0"}},
		{"bad host", []string{"--allow-host=http://x/", "mac=00:16:3e:72:79:e3", "/d"}, []string{"--allow-host"}},
		{"flag with a value", []string{"--use-env-proxy=yes", "mac=00:16:3e:72:79:e3", "/d"}, []string{"--use-env-proxy takes no value"}},
		{"bad interface", []string{"--interface=a/b", "mac=00:16:3e:72:79:e3", "/d"}, []string{"interface"}},
		{"bad bridge", []string{"mac=00:16:3e:72:79:e3,bridge=this-name-is-far-too-long", "/d"}, []string{"bridge"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := ParseArgs(tt.args)
			if err == nil {
				t.Fatalf("ParseArgs(%q) = %+v, want error", tt.args, inv)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if strings.ContainsAny(err.Error(), "\n") {
				t.Errorf("error %q is not one line", err)
			}
		})
	}
}

func TestJoinArgs(t *testing.T) {
	for _, tt := range []struct{ chosen, extra, want string }{
		{"initrd=x ks=y", "", "initrd=x ks=y"},
		{"initrd=x", "console=hvc0 a=\"b c\"", `initrd=x console=hvc0 a="b c"`},
		{"", "console=hvc0", "console=hvc0"},
		{"", "", ""},
	} {
		if got := JoinArgs(tt.chosen, tt.extra); got != tt.want {
			t.Errorf("JoinArgs(%q, %q) = %q, want %q", tt.chosen, tt.extra, got, tt.want)
		}
	}
}

func mustMAC(s string) net.HardwareAddr {
	m, err := ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}
