package explain

import (
	"strings"
	"testing"
)

// explain checks the kernel of the branch GRUB takes on its CPU, as the
// inventory generates them: x86_64 takes its own branch or else, never
// arm64's; without branches every line counts.
func TestGRUBCPU(t *testing.T) {
	cfg := `menuentry 'h: p' {
  if [ "$grub_cpu" = arm64 ]; then
    linux /arm64/vmlinuz
    initrd /arm64/initrd.img
  elif [ "$grub_cpu" = i386 ]; then
    linux /ia32/vmlinuz
  else
    linux /amd64/vmlinuz
  fi
}`
	explicit := strings.Replace(cfg, `"$grub_cpu" = i386`, `"$grub_cpu" = x86_64`, 1)
	for _, tc := range []struct{ name, cpu, cfg, want string }{
		{"x86_64 takes else", "x86_64", cfg, "/amd64/vmlinuz"},
		{"arm64 takes its branch", "arm64", cfg, "/arm64/vmlinuz /arm64/initrd.img"},
		{"i386 takes its branch", "i386", cfg, "/ia32/vmlinuz"},
		{"x86_64 takes its own branch, not else", "x86_64", explicit, "/ia32/vmlinuz"},
		{"no branches", "x86_64", "menuentry x {\n  linux /k\n  initrd /i\n}", "/k /i"},
	} {
		g := grubCPU{cpu: tc.cpu}
		var got []string
		for _, l := range strings.Split(tc.cfg, "\n") {
			f := strings.Fields(l)
			if !g.other(f) && len(f) == 2 && (f[0] == "linux" || f[0] == "initrd") {
				got = append(got, f[1])
			}
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
