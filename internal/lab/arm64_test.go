package lab

import (
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The arm64 initramfs holds /init built for arm64, static, printing the
// lab's marker: a real cpio (busybox's) unpacks it.
func TestARM64Initramfs(t *testing.T) {
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Skip("busybox not installed")
	}
	src, err := os.ReadFile("arm64init/main.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), "const marker = \""+Marker+"\"\n") {
		t.Fatalf("arm64init's marker is not lab.Marker %q", Marker)
	}
	dir := t.TempDir()
	rd := filepath.Join(dir, "initramfs.cpio.gz")
	if err := buildARM64Initramfs(context.Background(), rd); err != nil {
		t.Fatal(err)
	}
	x := filepath.Join(dir, "x")
	os.Mkdir(x, 0o755)
	cmd := exec.Command("sh", "-c", "busybox gzip -dc "+rd+" | busybox cpio -i -d")
	cmd.Dir = x
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("unpack: %v\n%s", err, out)
	}
	f, err := elf.Open(filepath.Join(x, "init"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 {
		t.Errorf("/init is for %v, want EM_AARCH64", f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("/init is not static")
		}
	}
	if fi, err := os.Stat(filepath.Join(x, "init")); err != nil {
		t.Error(err)
	} else if fi.Mode()&0o111 == 0 {
		t.Errorf("/init is not executable: %v", fi.Mode())
	}
}
