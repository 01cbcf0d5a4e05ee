package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"pxed/internal/inventory"
	"pxed/internal/testutil"
)

// pxed vm create: the seeds' PV guest RK with an 8 GB disk (the seed's dd
// took 165 s; a sparse file takes nothing), registered in the inventory.
func TestVMCreate(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "inventory.yaml")
	src, err := os.ReadFile("../../examples/inventory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// A copy without RK, whose MAC the command adds.
	text := string(src)
	text = text[:strings.Index(text, "  - name: RK")]
	writeFile(t, inv, []byte(text))
	ks := filepath.Join(dir, "kickstart")
	os.MkdirAll(ks, 0o755)
	data, _ := os.ReadFile("../../examples/kickstart/el5.ks")
	writeFile(t, filepath.Join(ks, "el5.ks"), data)
	disk := filepath.Join(dir, "system.img")
	cfg := filepath.Join(dir, "rk.cfg")
	var stdout, stderr testutil.SyncBuffer
	code := run([]string{"vm", "create", "RK", "--type", "pv", "--mac", "00:16:3e:62:39:d3", "--memory", "1024", "--disk", disk + ":8000M",
		"--out", cfg, "--inventory", inv, "--profile", "el5-pv-install", "--ip", "192.0.2.77"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var st syscall.Stat_t
	if err := syscall.Stat(disk, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != 8000<<20 || st.Blocks*512 > 1<<20 {
		t.Errorf("disk: size %d, %d bytes allocated; want 8000 MiB, sparse", st.Size, st.Blocks*512)
	}
	c, _ := os.ReadFile(cfg)
	for _, want := range []string{`bootloader = "/usr/lib/pxed/pxed-xenboot"`, "mac=00:16:3e:62:39:d3", "bridge=xenbr0", disk} {
		if !strings.Contains(string(c), want) {
			t.Errorf("config lacks %q:\n%s", want, c)
		}
	}
	parsed, err := inventory.Load(inv)
	if err != nil {
		t.Fatal(err)
	}
	if h := parsed.Host("00:16:3e:62:39:d3"); h == nil || h.Name != "RK" || h.Profile != "el5-pv-install" || h.Addr().String() != "192.0.2.77" {
		t.Fatalf("inventory host: %+v", h)
	}
	if !strings.Contains(stdout.String(), "xl create "+cfg) {
		t.Errorf("stdout: %s", stdout.String())
	}

	// Again: the disk exists and the MAC is taken; nothing is changed.
	before, _ := os.ReadFile(inv)
	stderr = testutil.SyncBuffer{}
	if code := run([]string{"vm", "create", "RK2", "--mac", "00:16:3e:62:39:d3", "--disk", filepath.Join(dir, "other.img") + ":1G",
		"--inventory", inv, "--profile", "el5-pv-install", "--out", filepath.Join(dir, "rk2.cfg")}, &stdout, &stderr); code == 0 {
		t.Fatal("a second guest with the same MAC was accepted")
	}
	if !strings.Contains(stderr.String(), "00:16:3e:62:39:d3") {
		t.Errorf("error does not name the MAC: %s", stderr.String())
	}
	if after, _ := os.ReadFile(inv); string(after) != string(before) {
		t.Error("a refused vm create changed the inventory")
	}
	if _, err := os.Stat(filepath.Join(dir, "other.img")); err == nil {
		t.Error("a refused vm create created its disk")
	}
	stderr = testutil.SyncBuffer{}
	if code := run([]string{"vm", "create", "RK3", "--mac", "00:16:3e:00:00:99", "--disk", disk + ":1G", "--out", filepath.Join(dir, "rk3.cfg")}, &stdout, &stderr); code == 0 {
		t.Fatal("an existing disk was overwritten")
	}

	// HVM in the xm form of the seeds.
	stdout = testutil.SyncBuffer{}
	if code := run([]string{"vm", "create", "xen_el5u4_x86_hvm", "--type", "hvm", "--xm", "--mac", "00:16:3E:72:79:E4", "--disk", filepath.Join(dir, "hvm.img") + ":1G", "--out", "-"}, &stdout, &stderr); code != 0 {
		t.Fatalf("hvm: %s", stderr.String())
	}
	for _, want := range []string{"boot = 'n'", "builder = 'hvm'", "00:16:3e:72:79:e4"} {
		if !strings.Contains(strings.ReplaceAll(stdout.String(), `"`, "'"), want) {
			t.Errorf("xm hvm config lacks %q:\n%s", want, stdout.String())
		}
	}
}
