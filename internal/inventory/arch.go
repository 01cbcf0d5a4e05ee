package inventory

import (
	"maps"
	"slices"
	"sort"
	"strings"
	"text/template"

	"pxed/internal/config"
)

// ArchFiles are a profile's kernel and initrds for one client
// architecture.
//
// The client's architecture is known from DHCP (option 93), but a config
// file fetched over TFTP or HTTP does not say which machine asks, and one
// host may boot on more than one. So a generated config carries every
// variant and the loader picks by the CPU it runs on: GRUB by $grub_cpu,
// iPXE by ${buildarch}. Architectures with the same CPU (efi-arm64 and
// efi-arm64-http; bios, efi-ia32 and their -http) cannot be told apart
// that way and must give the same files. PXELINUX runs on x86 only and
// boots the profile's own kernel.
type ArchFiles struct {
	Kernel string     `yaml:"kernel"`
	Initrd stringList `yaml:"initrd,omitempty"`
	// Append, when set, is this architecture's kernel command line (a
	// template, as the profile's), e.g. its serial console; else the
	// profile's append.
	Append string `yaml:"append,omitempty"`

	Pos config.Pos `yaml:"-"`

	appendTmpl *template.Template
}

// archCPU is the CPU a loader runs on for each client architecture (the
// boot-files names of internal/bootplan), as GRUB's $grub_cpu and iPXE's
// ${buildarch} spell it.
var archCPU = map[string]struct{ grub, ipxe string }{
	"bios":           {"i386", "i386"},
	"efi-ia32":       {"i386", "i386"},
	"efi-ia32-http":  {"i386", "i386"},
	"efi-x64":        {"x86_64", "x86_64"},
	"efi-x64-http":   {"x86_64", "x86_64"},
	"efi-arm32":      {"arm", "arm32"},
	"efi-arm32-http": {"arm", "arm32"},
	"efi-arm64":      {"arm64", "arm64"},
	"efi-arm64-http": {"arm64", "arm64"},
}

// ArchNames are the architecture names a profile's arch accepts, sorted.
func ArchNames() []string { return slices.Sorted(maps.Keys(archCPU)) }

// cpuVariant is what a loader on one CPU boots.
type cpuVariant struct {
	cpu    string // $grub_cpu or ${buildarch}
	kernel string
	initrd []string
	tmpl   *template.Template // its command line; nil: the profile's
}

// variants are p's arch entries by CPU as GRUB (grub) or iPXE names it,
// sorted by CPU, one per CPU (validation made them agree).
func (p *Profile) variants(grub bool) []cpuVariant {
	seen := map[string]bool{}
	var out []cpuVariant
	for _, name := range ArchNames() {
		a := p.Arch[name]
		if a == nil {
			continue
		}
		cpu := archCPU[name].ipxe
		if grub {
			cpu = archCPU[name].grub
		}
		if !seen[cpu] {
			seen[cpu] = true
			out = append(out, cpuVariant{cpu, a.Kernel, a.Initrd, a.appendTmpl})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].cpu < out[j].cpu })
	return out
}

// arch validates p's arch entries; check is the profile's path check,
// parse its template parser.
func (v *validator) arch(p *Profile, check func(what, s string), parse func(what, text string) *template.Template) {
	byCPU := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(p.Arch)) {
		a := p.Arch[name]
		pos := p.Pos
		if a != nil && a.Pos.Line > 0 {
			pos = a.Pos
		}
		cpu, ok := archCPU[name]
		switch {
		case !ok:
			v.bad(pos, "profile %s: arch %q is not one of %s", p.Name, name, strings.Join(ArchNames(), ", "))
			continue
		case a == nil || a.Kernel == "":
			v.bad(pos, "profile %s: arch %s needs a kernel", p.Name, name)
			continue
		}
		check("arch "+name+" kernel", a.Kernel)
		for _, i := range a.Initrd {
			check("arch "+name+" initrd", i)
		}
		if a.Append != "" {
			a.appendTmpl = parse("arch "+name+" append", a.Append)
		}
		if o, dup := byCPU[cpu.grub]; dup {
			if b := p.Arch[o]; b.Kernel != a.Kernel || !slices.Equal(b.Initrd, a.Initrd) || b.Append != a.Append {
				v.bad(pos, "profile %s: arch %s and %s give different files, but both run on %s and a loader cannot tell them apart", p.Name, o, name, cpu.grub)
			}
			continue
		}
		byCPU[cpu.grub] = name
	}
}
