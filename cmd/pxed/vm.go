package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"pxed/internal/inventory"
	"pxed/internal/xen"
)

const vmUsage = `usage: pxed vm create NAME --mac MAC --type pv|hvm --disk PATH:SIZE [flags]

Writes a Xen guest config that network-boots through pxed (NAME.cfg, or
--out), creates its disk as a sparse file, and with --inventory and
--profile adds the guest to the inventory so its boot files exist.
  PV:  bootloader = pxed-xenboot, bootloader_args carry the MAC and bridge
  HVM: boot = "n" with an emulated e1000 NIC with the MAC
--xm writes the xm-era form of the seeds (bootloader/bootargs) instead.
`

func cmdVM(args []string, stdout, stderr io.Writer) int {
	if isHelp(args) || (len(args) == 2 && args[0] == "create" && isHelp(args[1:])) {
		fmt.Fprint(stdout, vmUsage)
		return 0
	}
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprint(stderr, vmUsage)
		return 2
	}
	fs := flag.NewFlagSet("vm create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, vmUsage); fs.PrintDefaults() }
	var o vmOptions
	o.define(fs)
	mac, typ, memory, vcpus, disk, bridge := o.mac, o.typ, o.memory, o.vcpus, o.disk, o.bridge
	bootloader, xm, out, invFile, profile, ip := o.bootloader, o.xm, o.out, o.invFile, o.profile, o.ip
	pos, code, ok := parseCommand(fs, args[1:])
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, vmUsage)
		return 2
	}
	name := pos[0]
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "pxed vm create: "+format+"\n", a...)
		return 1
	}
	hw, err := inventory.ParseMAC(*mac)
	if err != nil {
		return fail("--mac: %v", err)
	}
	path, sizeText, ok := strings.Cut(*disk, ":")
	if !ok || path == "" {
		return fail("--disk wants PATH:SIZE, e.g. /srv/xen/%s.img:8G", name)
	}
	size, err := xen.ParseSize(sizeText)
	if err != nil {
		return fail("--disk: %v", err)
	}
	vm := xen.VM{Name: name, MAC: hw, Type: *typ, MemoryMiB: *memory, VCPUs: *vcpus, Disk: path, DiskSize: size, Bridge: *bridge, Bootloader: *bootloader}
	if err := vm.Validate(); err != nil {
		return fail("%v", err)
	}
	if (*invFile == "") != (*profile == "") {
		return fail("--inventory and --profile go together")
	}
	var cfg bytes.Buffer
	if *xm {
		err = vm.WriteXM(&cfg)
	} else {
		err = vm.WriteXL(&cfg)
	}
	if err != nil {
		return fail("%v", err)
	}
	// Check the inventory change before touching anything.
	var newInv []byte
	if *invFile != "" {
		if newInv, err = addToInventory(*invFile, name, hw.String(), *ip, *profile); err != nil {
			return fail("%v", err)
		}
	}
	if err := xen.CreateSparseDisk(path, size); err != nil {
		return fail("%v", err)
	}
	target := *out
	if target == "" {
		target = name + ".cfg"
	}
	if target == "-" {
		stdout.Write(cfg.Bytes())
	} else if err := os.WriteFile(target, cfg.Bytes(), 0o644); err != nil {
		return fail("%v", err)
	}
	if newInv != nil {
		if err := os.WriteFile(*invFile, newInv, 0o644); err != nil {
			return fail("%v", err)
		}
	}
	if target != "-" {
		start := "xl create " + target
		if *xm {
			start = "xm create " + target
		}
		fmt.Fprintf(stdout, "wrote %s and a sparse %s disk %s; start it with: %s\n", target, sizeText, path, start)
	}
	if newInv != nil {
		fmt.Fprintf(stdout, "added host %s (%s, profile %s) to %s; a running pxed reloads it\n", name, hw, *profile, *invFile)
	}
	return 0
}

// addToInventory returns the inventory file with a host appended, checked
// by the inventory parser (so a duplicate MAC or unknown profile is
// refused before anything is written). Comments and layout are kept: the
// host is appended as text.
func addToInventory(file, name, mac, ip, profile string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if _, err := inventory.Parse(file, data); err != nil {
		return nil, fmt.Errorf("the inventory is invalid before the change: %w", err)
	}
	entry := fmt.Sprintf("%s- {name: %s, mac: %q, profile: %s", itemIndent(string(data), "hosts"), name, mac, profile)
	if ip != "" {
		entry += ", ip: " + ip
	}
	entry += "}\n"
	text := string(data)
	if !strings.HasSuffix(text, "\n") && text != "" {
		text += "\n"
	}
	if !hasTopKey(text, "hosts") {
		text += "hosts:\n"
	} else if !lastTopKeyIs(text, "hosts") {
		return nil, errors.New("cannot append a host: hosts: is not the last section of the inventory; add it by hand")
	}
	text += entry
	if _, err := inventory.Parse(file, []byte(text)); err != nil {
		return nil, err
	}
	return []byte(text), nil
}

func hasTopKey(text, key string) bool {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, key+":") {
			return true
		}
	}
	return false
}

// lastTopKeyIs reports whether key is the last top-level key (so text
// appended with two spaces of indent lands in its list).
func lastTopKeyIs(text, key string) bool {
	last := ""
	for _, l := range strings.Split(text, "\n") {
		if l != "" && l[0] != ' ' && l[0] != '#' && l[0] != '\t' && l[0] != '-' {
			last = l
		}
	}
	return strings.HasPrefix(last, key+":")
}

// itemIndent is the indentation of the list items under a top-level key
// ("  " when it has none yet).
func itemIndent(text, key string) string {
	in := false
	for _, l := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(l, key+":"):
			in = true
		case in && strings.HasPrefix(strings.TrimLeft(l, " "), "- "):
			return l[:len(l)-len(strings.TrimLeft(l, " "))]
		}
	}
	return "  "
}

// vmOptions are the flags of `pxed vm create` (also read by completion
// and the manual page).
type vmOptions struct {
	mac, typ, disk, bridge, bootloader, out, invFile, profile, ip *string
	memory, vcpus                                                 *int
	xm                                                            *bool
}

func (o *vmOptions) define(fs *flag.FlagSet) {
	o.mac = fs.String("mac", "", "the guest's MAC (required)")
	o.typ = fs.String("type", "pv", "pv or hvm")
	o.memory = fs.Int("memory", 512, "memory in MiB")
	o.vcpus = fs.Int("vcpus", 1, "virtual CPUs")
	o.disk = fs.String("disk", "", "`PATH:SIZE` of the guest disk, e.g. /srv/xen/rk.img:8G (required)")
	o.bridge = fs.String("bridge", "xenbr0", "dom0 bridge of the guest's NIC")
	o.bootloader = fs.String("bootloader", "/usr/lib/pxed/pxed-xenboot", "PV bootloader path (a link to pxed named pxed-xenboot)")
	o.xm = fs.Bool("xm", false, "write the xm (xend) form instead of xl.cfg")
	o.out = fs.String("out", "", "config `file` to write (default NAME.cfg; - for stdout)")
	o.invFile = fs.String("inventory", "", "inventory `file` to add the guest to (with --profile)")
	o.profile = fs.String("profile", "", "inventory profile the guest boots")
	o.ip = fs.String("ip", "", "fixed IPv4 address for the guest in the inventory (optional)")
}
