package pxelinux

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// BootKind says how syslinux treats the kernel of a boot entry.
type BootKind string

// Boot kinds. KERNEL picks one from the file name extension; the
// type-specific keywords (LINUX, COM32, ...) force theirs.
const (
	KindLinux     BootKind = "linux"     // Linux kernel (bzImage)
	KindCOM32     BootKind = "com32"     // .c32 module
	KindCOMBOOT   BootKind = "comboot"   // .com / .cbt image
	KindBoot      BootKind = "boot"      // .bs / .bin boot sector
	KindBSS       BootKind = "bss"       // .bss boot sector, DOS superblock patched
	KindPXE       BootKind = "pxe"       // .0 chained PXE network bootstrap program
	KindFDImage   BootKind = "fdimage"   // .img floppy image
	KindConfig    BootKind = "config"    // CONFIG: load another configuration file
	KindLocalboot BootKind = "localboot" // LOCALBOOT: boot from a local device
)

// Module is one multiboot module of an mboot.c32 command line.
type Module struct {
	Path string
	Args string
}

// Boot is what a configuration boots, as worked out by Resolve.
type Boot struct {
	// Label is the label booted; empty when DEFAULT or ONTIMEOUT was
	// taken as a plain command line.
	Label string
	Kind  BootKind
	// Kernel is the kernel, module or image file (or the CONFIG file).
	Kernel string
	// Initrds lists the initial ramdisks in order: those of INITRD, then
	// those of initrd= options in Append (comma lists split).
	Initrds []string
	// Append is the argument string syslinux passes: "initrd=<INITRD>"
	// when INITRD is used, extra words of the KERNEL line, the label's
	// APPEND (or the global APPEND; none for "APPEND -"), then any words
	// that followed the label name on the command line.
	Append string
	// IPAppend is the IPAPPEND/SYSAPPEND bit mask.
	IPAppend int
	// Localboot is the LOCALBOOT argument (Kind == KindLocalboot).
	Localboot int
	// Multiboot is the module list when Kernel is mboot.c32: the
	// hypervisor, then the dom0 kernel, then the initrd and any other
	// modules, split at "---".
	Multiboot []Module
}

// ErrNoLabel is returned (wrapped) by Resolve when the requested label
// does not exist.
var ErrNoLabel = errors.New("no such label")

// ErrNothingToBoot is returned by Resolve when no label was requested and
// the configuration has no DEFAULT, ONTIMEOUT or label.
var ErrNothingToBoot = errors.New("nothing to boot")

// Resolve works out what boots. With a non-empty label (a label name,
// optionally followed by extra arguments as typed at the boot prompt) that
// label boots, or the error wraps ErrNoLabel.
// Otherwise, in this order: the label named by DEFAULT; the label marked
// MENU DEFAULT; DEFAULT taken as a kernel command line (syslinux allows
// "DEFAULT vmlinuz args" with no such label); ONTIMEOUT (label or command
// line); the first label.
func (c *Config) Resolve(label string) (Boot, error) {
	if label = trimSpace(label); label != "" {
		if l := c.Label(label); l != nil { // a name with spaces
			return c.fromLabel(l, ""), nil
		}
		name, extra := cut(label)
		l := c.Label(name)
		if l == nil {
			return Boot{}, fmt.Errorf("%s: %w %q", c.Name, ErrNoLabel, name)
		}
		return c.fromLabel(l, extra), nil
	}
	def := c.Global("DEFAULT")
	if def != nil {
		name, extra := cut(def.Arg)
		if l := c.Label(name); l != nil {
			return c.fromLabel(l, extra), nil
		}
	}
	for _, l := range c.Labels() {
		if l.Menu("DEFAULT") != nil {
			return c.fromLabel(l, ""), nil
		}
	}
	if def != nil {
		return c.fromCommandLine(def.Arg), nil
	}
	if ot := c.Global("ONTIMEOUT"); ot != nil {
		name, extra := cut(ot.Arg)
		if l := c.Label(name); l != nil {
			return c.fromLabel(l, extra), nil
		}
		return c.fromCommandLine(ot.Arg), nil
	}
	if ls := c.Labels(); len(ls) > 0 {
		return c.fromLabel(ls[0], ""), nil
	}
	return Boot{}, fmt.Errorf("%s: %w", c.Name, ErrNothingToBoot)
}

// kindOf derives the boot kind of a KERNEL file from its extension.
func kindOf(file string) BootKind {
	switch lower(path.Ext(file)) {
	case ".c32":
		return KindCOM32
	case ".com", ".cbt":
		return KindCOMBOOT
	case ".bs", ".bin":
		return KindBoot
	case ".bss":
		return KindBSS
	case ".0":
		return KindPXE
	case ".img":
		return KindFDImage
	}
	return KindLinux
}

// forcedKind is the boot kind a type-specific keyword imposes.
func forcedKind(kw string) BootKind {
	switch kw {
	case "COM32":
		return KindCOM32
	case "COMBOOT":
		return KindCOMBOOT
	case "BOOT":
		return KindBoot
	case "BSS":
		return KindBSS
	case "PXE":
		return KindPXE
	case "FDIMAGE":
		return KindFDImage
	case "CONFIG":
		return KindConfig
	}
	return KindLinux
}

// globalAppend returns the top-level APPEND (last one wins), "" if none.
func (c *Config) globalAppend() (string, bool) {
	if s := c.Global("APPEND"); s != nil {
		return s.Arg, true
	}
	return "", false
}

func (c *Config) fromLabel(l *Label, extra string) Boot {
	// A label without KERNEL boots the file named like the label.
	b := Boot{Label: l.Name, Kind: kindOf(l.Name), Kernel: l.Name}
	var kernelArgs, initrd string
	var appendArg string
	haveAppend, haveIP := false, false
	for _, s := range l.Stmts {
		if s.Kind != Keyword {
			continue
		}
		switch s.Keyword {
		case "KERNEL":
			b.Kernel, kernelArgs = cut(s.Arg)
			b.Kind = kindOf(b.Kernel)
		case "LINUX", "COM32", "COMBOOT", "BOOT", "BSS", "PXE", "FDIMAGE", "CONFIG":
			b.Kernel, kernelArgs = cut(s.Arg)
			b.Kind = forcedKind(s.Keyword)
		case "LOCALBOOT":
			b.Kind, b.Kernel, kernelArgs, b.Localboot = KindLocalboot, "", "", s.Num
		case "APPEND":
			appendArg, haveAppend = s.Arg, true
		case "INITRD":
			initrd = s.Arg
		case "IPAPPEND", "SYSAPPEND":
			b.IPAppend, haveIP = s.Num, true
		}
	}
	if !haveAppend {
		appendArg, _ = c.globalAppend()
	}
	if appendArg == "-" {
		appendArg = ""
	}
	if !haveIP {
		for _, kw := range []string{"IPAPPEND", "SYSAPPEND"} {
			if s := c.Global(kw); s != nil {
				b.IPAppend = s.Num
			}
		}
	}
	if b.Kind == KindLocalboot {
		return b
	}
	var args []string
	if initrd != "" {
		args = append(args, "initrd="+initrd)
	}
	args = append(args, kernelArgs, appendArg, extra)
	b.Append = joinNonEmpty(args)
	c.finish(&b)
	return b
}

func (c *Config) fromCommandLine(cmd string) Boot {
	kernel, args := cut(cmd)
	b := Boot{Kind: kindOf(kernel), Kernel: kernel, Append: args}
	if args == "" {
		b.Append, _ = c.globalAppend()
		if b.Append == "-" {
			b.Append = ""
		}
	}
	if s := c.Global("IPAPPEND"); s != nil {
		b.IPAppend = s.Num
	}
	if s := c.Global("SYSAPPEND"); s != nil {
		b.IPAppend = s.Num
	}
	c.finish(&b)
	return b
}

// finish fills Initrds and Multiboot from Append.
func (c *Config) finish(b *Boot) {
	if b.Kind == KindCOM32 && lower(path.Base(b.Kernel)) == "mboot.c32" {
		b.Multiboot = Multiboot(b.Append)
		return
	}
	for _, f := range strings.Fields(b.Append) {
		if len(f) > len("initrd=") && lower(f[:len("initrd=")]) == "initrd=" {
			for _, p := range strings.Split(f[len("initrd="):], ",") {
				if p != "" {
					b.Initrds = append(b.Initrds, p)
				}
			}
		}
	}
}

// Multiboot splits an mboot.c32 argument string into modules at each
// "---" word: the first module is the hypervisor, the second the dom0
// kernel, the rest initrds and other modules. Empty modules are dropped.
func Multiboot(args string) []Module {
	var mods []Module
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			mods = append(mods, Module{Path: cur[0], Args: strings.Join(cur[1:], " ")})
		}
		cur = nil
	}
	for _, f := range strings.Fields(args) {
		if f == "---" {
			flush()
			continue
		}
		cur = append(cur, f)
	}
	flush()
	return mods
}

func joinNonEmpty(parts []string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, " ")
}
