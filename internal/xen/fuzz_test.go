package xen

import (
	"bytes"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// FuzzEncode writes any result in each format and reads it back as the
// toolstack does (libxl's parse_bootloader_result for simple0 and simple,
// a reading of xend's sxp parser for sxp): Encode either refuses it or
// the toolstack reads exactly what was meant, with no extra item. libxl
// skips the white space after a key, so args read back without leading
// white space in the simple formats.
func FuzzEncode(f *testing.F) {
	f.Add(uint8(0), "/var/lib/xen/bootloader.7.d/kernel.1", "/var/lib/xen/bootloader.7.d/ramdisk.2", "ks=http://192.0.2.1/ks ip=dhcp")
	f.Add(uint8(1), "/k", "", "a\nb")
	f.Add(uint8(2), "/run/my boot/(k)", "/r", `quote="a b" back=C:\dir\ tab=	end`+"\x01\x7f7")
	f.Add(uint8(2), "/k", "", "x\")(kernel /etc/shadow")
	f.Add(uint8(0), "/k", "", "x\x00kernel /etc/shadow")
	f.Add(uint8(1), " /k", "", "")
	f.Fuzz(func(t *testing.T, which uint8, kernel, ramdisk, args string) {
		format := []Format{FormatSimple0, FormatSimple, FormatSXP}[int(which)%3]
		res := Result{Kernel: kernel, Ramdisk: ramdisk, Args: args}
		var b bytes.Buffer
		if err := Encode(&b, format, res); err != nil {
			if strings.ContainsAny(err.Error(), "\n") {
				t.Fatalf("error %q is not one line", err)
			}
			return
		}
		var got Result
		switch format {
		case FormatSimple0, FormatSimple:
			data := b.Bytes()
			if format == FormatSimple {
				data = bytes.ReplaceAll(data, []byte("\n"), []byte{0}) // Encode refused any NUL
			}
			var unexpected []string
			got, unexpected = libxlResult(data)
			if len(unexpected) > 0 {
				t.Fatalf("the toolstack would see unexpected items %q in %q", unexpected, b.Bytes())
			}
			res.Args = strings.TrimLeft(res.Args, " \t\n\v\f\r")
		case FormatSXP:
			got = sxpResult(t, b.String())
		}
		if got != res {
			t.Fatalf("%s: the toolstack reads %+v\nwant %+v\nraw %q", format, got, res, b.Bytes())
		}
	})
}

// FuzzParseArgs parses any command line (NUL-separated): never a panic,
// and what it accepts is whole: a unicast MAC, a valid interface name, a
// positive timeout and limits, a numeric --runas other than 0.
func FuzzParseArgs(f *testing.F) {
	for _, a := range [][]string{
		libxlArgv("/boot/vmlinuz", "", "console=hvc0", "131079", []string{"mac=00:16:3e:72:79:e3,bridge=xenbr1"}, "/dev/xvdb"),
		xendArgv("ks=nfs:192.0.2.1:/ks.cfg", true, "mac=00:16:3e:72:79:e3, bridge=xenbr0 --label=rescue", "/d"),
		{"--max-kernel-size", "32M", "--allow-host=198.51.100.7", "--use-env-proxy", "--timeout=90", "mac=00:16:3e:72:79:e3", "--", "-d"},
		{"--runas=0", "--output", "mac=02:00:00:00:00:01"},
	} {
		f.Add(strings.Join(a, "\x00"))
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Split(line, "\x00")
		inv, err := ParseArgs(args)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n") && !strings.ContainsAny(line, "\n") {
				t.Fatalf("error %q is not one line", err)
			}
			return
		}
		if len(inv.MAC) != 6 || inv.MAC[0]&1 != 0 {
			t.Fatalf("accepted MAC %v", inv.MAC)
		}
		if err := checkIfName(inv.Interface); err != nil {
			t.Fatalf("accepted interface %q: %v", inv.Interface, err)
		}
		if inv.Timeout <= 0 || inv.MaxConfigSize <= 0 || inv.MaxKernelSize <= 0 || inv.MaxInitrdSize <= 0 {
			t.Fatalf("accepted %+v", inv)
		}
		if inv.RunAs != "" {
			if n, err := strconv.ParseUint(inv.RunAs, 10, 32); err != nil || n == 0 {
				t.Fatalf("accepted --runas=%q", inv.RunAs)
			}
		}
		for _, h := range inv.AllowHosts {
			if checkHost(h) != nil {
				t.Fatalf("accepted --allow-host=%q", h)
			}
		}
		again, err := ParseArgs(args)
		if err != nil || !reflect.DeepEqual(again.Unknown, inv.Unknown) || again.Disk != inv.Disk || again.Args != inv.Args {
			t.Fatalf("a second parse differs: %v", err)
		}
	})
}

// FuzzWriteConfig writes xl and xm configs for any VM that validates: one
// "key = value" per line, and the bootloader arguments the toolstack will
// pass from it parse to the same MAC and bridge.
func FuzzWriteConfig(f *testing.F) {
	f.Add("test_pvm", "00:16:3e:72:79:e3", true, "/share/vm/pxeboot/system.img", "xenbr0", "")
	f.Add("h", "00:16:3E:72:79:E4", false, "/dev/vg0/h", "br-lab", "/usr/lib/pxed/pxed-xenboot")
	f.Add("x", "00:16:3e:72:79:e3", true, "/a b", "br\"0", "/b,c")
	f.Fuzz(func(t *testing.T, name, mac string, pv bool, disk, bridge, bootloader string) {
		hw, err := ParseMAC(mac)
		if err != nil {
			return
		}
		vm := VM{Name: name, MAC: hw, Type: "hvm", MemoryMiB: 512, Disk: disk, Bridge: bridge, Bootloader: bootloader}
		if pv {
			vm.Type = "pv"
		}
		if vm.Validate() != nil {
			return
		}
		var xl, xm bytes.Buffer
		if err := vm.WriteXL(&xl); err != nil {
			t.Fatal(err)
		}
		if err := vm.WriteXM(&xm); err != nil {
			t.Fatal(err)
		}
		values := map[string]map[string]string{}
		for kind, cfg := range map[string]string{"xl": xl.String(), "xm": xm.String()} {
			values[kind] = map[string]string{}
			for _, l := range strings.Split(strings.TrimSuffix(cfg, "\n"), "\n") {
				if strings.HasPrefix(l, "# ") {
					continue
				}
				k, v, ok := strings.Cut(l, " = ")
				if !ok || strings.ContainsAny(k, " \"'") {
					t.Fatalf("%s line %q is not key = value:\n%s", kind, l, cfg)
				}
				values[kind][k] = v
			}
		}
		if !pv {
			return
		}
		// xl: bootloader_args = [ "..." ], a list of one C-like string;
		// xm: vif = [ '...' ], a Python list of one string (bootargs = vif[0]).
		blargs, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(values["xl"]["bootloader_args"], "[ "), " ]"))
		if err != nil {
			t.Fatalf("bootloader_args %q: %v", values["xl"]["bootloader_args"], err)
		}
		bootargs, okPrefix := strings.CutPrefix(values["xm"]["vif"], "[ '")
		bootargs, okSuffix := strings.CutSuffix(bootargs, "' ]")
		if !okPrefix || !okSuffix || strings.ContainsAny(bootargs, "'\\") {
			t.Fatalf("vif %q is not a list of one plain string", values["xm"]["vif"])
		}
		for _, args := range [][]string{
			libxlArgv("", "", "", "", []string{blargs}, disk),
			xendArgv("", true, bootargs, disk),
		} {
			inv, err := ParseArgs(args)
			if err != nil {
				t.Fatalf("ParseArgs(%q): %v", args, err)
			}
			if inv.MAC.String() != hw.String() || inv.Interface != vm.bridge() {
				t.Fatalf("ParseArgs(%q): MAC %s interface %s, want %s %s", args, inv.MAC, inv.Interface, hw, vm.bridge())
			}
		}
	})
}
