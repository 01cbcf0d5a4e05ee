package xen

import (
	"bytes"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// seedVMs are the seeds' two guests.
func seedVMs() []VM {
	return []VM{
		{Name: "test_pvm", MAC: mustMAC("00:16:3e:72:79:e3"), Type: "pv", MemoryMiB: 512, VCPUs: 1,
			Disk: "/share/vm/pxeboot/system.img", DiskSize: 8 << 30, Bridge: "xenbr0"},
		{Name: "test_hvm", MAC: mustMAC("00:16:3E:72:79:E4"), Type: "hvm", MemoryMiB: 512,
			Disk: "/share/vm/pxeboot/hvm.img", DiskSize: 8 << 30, Bridge: "xenbr0"},
	}
}

func TestWriteConfigGolden(t *testing.T) {
	for _, vm := range seedVMs() {
		for _, w := range []struct {
			ext   string
			write func(VM, *bytes.Buffer) error
		}{
			{"xl.cfg", func(v VM, b *bytes.Buffer) error { return v.WriteXL(b) }},
			{"xm.cfg", func(v VM, b *bytes.Buffer) error { return v.WriteXM(b) }},
		} {
			name := vm.Name + "." + w.ext
			t.Run(name, func(t *testing.T) {
				var b bytes.Buffer
				if err := w.write(vm, &b); err != nil {
					t.Fatal(err)
				}
				golden := filepath.Join("testdata", name)
				if *update {
					if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b.Bytes(), want) {
					t.Errorf("%s differs from the golden file:\n%s\nwant:\n%s", name, b.Bytes(), want)
				}
			})
		}
	}
}

// TestPVConfigFeedsParseArgs: the bootloader arguments a generated config
// makes the toolstack pass are what ParseArgs wants.
func TestPVConfigFeedsParseArgs(t *testing.T) {
	vm := seedVMs()[0]
	vm.Bridge = "br-lab"
	var xl, xm bytes.Buffer
	if err := vm.WriteXL(&xl); err != nil {
		t.Fatal(err)
	}
	if err := vm.WriteXM(&xm); err != nil {
		t.Fatal(err)
	}
	line := func(cfg, key string) string {
		for _, l := range strings.Split(cfg, "\n") {
			if k, v, ok := strings.Cut(l, " = "); ok && k == key {
				return v
			}
		}
		t.Fatalf("no %s in\n%s", key, cfg)
		return ""
	}
	// xl: bootloader_args = [ "..." ] become separate arguments.
	blargs := strings.Trim(line(xl.String(), "bootloader_args"), "[] \"")
	// xm: bootargs = vif[0], the string of vif's first element.
	bootargs := strings.Trim(line(xm.String(), "vif"), "[] '")
	for _, args := range [][]string{
		libxlArgv("", "", "", "", []string{blargs}, "/dev/xvda"),
		xendArgv("", true, bootargs, vm.Disk),
	} {
		inv, err := ParseArgs(args)
		if err != nil {
			t.Fatalf("ParseArgs(%q): %v", args, err)
		}
		if inv.MAC.String() != vm.MAC.String() || inv.Interface != "br-lab" {
			t.Errorf("ParseArgs(%q): MAC %s interface %s", args, inv.MAC, inv.Interface)
		}
	}
}

func TestVMValidate(t *testing.T) {
	ok := seedVMs()[0]
	tests := []struct {
		name   string
		modify func(*VM)
		want   string
	}{
		{"no name", func(v *VM) { v.Name = "" }, "no name"},
		{"quote in name", func(v *VM) { v.Name = "a'b" }, "name"},
		{"no mac", func(v *VM) { v.MAC = nil }, "MAC"},
		{"multicast mac", func(v *VM) { v.MAC = net.HardwareAddr{0x01, 0x00, 0x5e, 0, 0, 1} }, "MAC"},
		{"bad type", func(v *VM) { v.Type = "pvh" }, "type"},
		{"no memory", func(v *VM) { v.MemoryMiB = 0 }, "memory"},
		{"negative vcpus", func(v *VM) { v.VCPUs = -1 }, "vcpus"},
		{"relative disk", func(v *VM) { v.Disk = "disk.img" }, "absolute"},
		{"no disk", func(v *VM) { v.Disk = "" }, "disk"},
		{"comma in disk", func(v *VM) { v.Disk = "/a,b" }, "not allowed"},
		{"quote in disk", func(v *VM) { v.Disk = `/a"b` }, "not allowed"},
		{"newline in bootloader", func(v *VM) { v.Bootloader = "/x\nkernel='/y'" }, "not allowed"},
		{"relative bootloader", func(v *VM) { v.Bootloader = "pxed-xenboot" }, "absolute"},
		{"bad bridge", func(v *VM) { v.Bridge = "br 0" }, "bridge"},
		{"negative size", func(v *VM) { v.DiskSize = -1 }, "size"},
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("seed VM: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := ok
			v.MAC = append([]byte(nil), ok.MAC...)
			tt.modify(&v)
			err := v.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want error containing %q", err, tt.want)
			}
			var b bytes.Buffer
			if v.WriteXL(&b) == nil || v.WriteXM(&b) == nil || b.Len() != 0 {
				t.Error("writers accepted an invalid VM")
			}
		})
	}
}

func TestWriteDefaults(t *testing.T) {
	v := VM{Name: "g", MAC: mustMAC("00:16:3e:00:00:01"), Type: "pv", MemoryMiB: 256, Disk: "/dev/vg0/g"}
	var xl, xm bytes.Buffer
	if err := v.WriteXL(&xl); err != nil {
		t.Fatal(err)
	}
	if err := v.WriteXM(&xm); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`bootloader = "` + DefaultBootloader + `"`, "vcpus = 1\n",
		`"mac=00:16:3e:00:00:01,bridge=xenbr0"`, "target=/dev/vg0/g"} {
		if !strings.Contains(xl.String(), want) {
			t.Errorf("xl.cfg lacks %q:\n%s", want, xl.String())
		}
	}
	for _, want := range []string{"bootloader = '" + DefaultBootloader + "'", "'phy:/dev/vg0/g,xvda,w'"} {
		if !strings.Contains(xm.String(), want) {
			t.Errorf("xm config lacks %q:\n%s", want, xm.String())
		}
	}
}

func TestCreateSparseDisk(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "system.img")
	const size = 8 << 30
	if err := CreateSparseDisk(path, size); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != size {
		t.Errorf("size %d, want %d", st.Size(), size)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode())
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Blocks*512 > 1<<20 {
		t.Errorf("not sparse: %d blocks allocated", sys.Blocks)
	}

	// Refuses to overwrite, and leaves the existing file alone.
	if err := os.WriteFile(path, []byte("installed system"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CreateSparseDisk(path, size); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("CreateSparseDisk over an existing file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "installed system" {
		t.Errorf("existing file changed to %q", b)
	}
	// Nor through a symlink, even a dangling one.
	link := filepath.Join(dir, "link.img")
	if err := os.Symlink(filepath.Join(dir, "target.img"), link); err != nil {
		t.Fatal(err)
	}
	if err := CreateSparseDisk(link, size); err == nil {
		t.Error("CreateSparseDisk followed a dangling symlink")
	}
	if _, err := os.Lstat(filepath.Join(dir, "target.img")); !os.IsNotExist(err) {
		t.Error("symlink target created")
	}
	// The parent directory must exist.
	if err := CreateSparseDisk(filepath.Join(dir, "missing", "x.img"), size); err == nil {
		t.Error("CreateSparseDisk created a parent directory")
	}
	for _, bad := range []int64{0, -1} {
		if err := CreateSparseDisk(filepath.Join(dir, "zero.img"), bad); err == nil {
			t.Errorf("size %d accepted", bad)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"8G", 8 << 30},
		{"8g", 8 << 30},
		{"8000M", 8000 << 20}, // the seed's dd bs=1M count=8000
		{"512MiB", 512 << 20},
		{"512mib", 512 << 20},
		{"4k", 4096},
		{"1T", 1 << 40},
		{"2P", 2 << 50},
		{"8GB", 8_000_000_000},
		{"1kB", 1000},
		{"8388608000", 8388608000},
		{"512B", 512},
		{" 1 G ", 1 << 30},
		{"0", 0},
		{"9223372036854775807", 1<<63 - 1},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "G", "-1G", "1.5G", "8X", "8Gi", "8GiBs", "9223372036854775808", "8388608T", "0x10"} {
		if got, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) = %d, want error", bad, got)
		}
	}
}
