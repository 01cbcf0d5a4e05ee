package xen

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
)

// VM describes a guest that boots from the network through pxed.
type VM struct {
	// Name is the domain name: letters, digits, '.', '_' and '-'.
	Name string
	// MAC is the guest's (only) NIC; a 6-byte unicast address.
	MAC net.HardwareAddr
	// Type is "pv" (boots through the Bootloader) or "hvm" (PXE-boots from
	// its emulated NIC).
	Type string
	// MemoryMiB is the guest's memory in MiB; required.
	MemoryMiB int
	// VCPUs is the number of virtual CPUs; 0 means 1.
	VCPUs int
	// Disk is the absolute path of the disk image (file:) or block device
	// (a /dev/ path, phy:). Required: libxl will not run a bootloader
	// without a disk, and an installer needs one.
	Disk string
	// DiskSize is the size of the disk image in bytes, for CreateSparseDisk;
	// the config writers do not use it.
	DiskSize int64
	// Bridge is the dom0 bridge of the NIC; "" means DefaultInterface.
	Bridge string
	// Bootloader is the PV bootloader path; "" means DefaultBootloader.
	Bootloader string
}

// Validate checks v for what the config writers need.
func (v VM) Validate() error {
	if v.Name == "" {
		return errors.New("vm: no name")
	}
	for _, c := range v.Name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("vm %q: name may only have letters, digits, '.', '_' and '-'", v.Name)
		}
	}
	if len(v.MAC) != 6 || v.MAC[0]&1 != 0 {
		return fmt.Errorf("vm %q: want a 6-byte unicast MAC address, got %q", v.Name, v.MAC.String())
	}
	if v.Type != "pv" && v.Type != "hvm" {
		return fmt.Errorf("vm %q: type %q: want pv or hvm", v.Name, v.Type)
	}
	if v.MemoryMiB <= 0 {
		return fmt.Errorf("vm %q: memory must be a positive number of MiB", v.Name)
	}
	if v.VCPUs < 0 {
		return fmt.Errorf("vm %q: negative vcpus", v.Name)
	}
	if v.DiskSize < 0 {
		return fmt.Errorf("vm %q: negative disk size", v.Name)
	}
	if v.Disk == "" || v.Disk[0] != '/' {
		return fmt.Errorf("vm %q: disk %q: want an absolute path", v.Name, v.Disk)
	}
	// The values go into quoted strings and comma-separated specs of
	// xl.cfg and xm (Python) configs: keep them free of anything that
	// would need escaping there.
	for what, s := range map[string]string{"disk": v.Disk, "bootloader": v.Bootloader} {
		if strings.ContainsAny(s, "\"'\\,=\n\r\t\x00 ") {
			return fmt.Errorf("vm %q: %s %q has a character not allowed in a config value", v.Name, what, s)
		}
	}
	if v.Bootloader != "" && v.Bootloader[0] != '/' {
		return fmt.Errorf("vm %q: bootloader %q: want an absolute path", v.Name, v.Bootloader)
	}
	if v.Bridge != "" {
		if err := checkIfName(v.Bridge); err != nil {
			return fmt.Errorf("vm %q: bridge %q: %v", v.Name, v.Bridge, err)
		}
		if strings.ContainsAny(v.Bridge, "\"',=\\") {
			return fmt.Errorf("vm %q: bridge %q has a character not allowed in a config value", v.Name, v.Bridge)
		}
	}
	return nil
}

func (v VM) vcpus() int {
	if v.VCPUs == 0 {
		return 1
	}
	return v.VCPUs
}

func (v VM) bridge() string {
	if v.Bridge == "" {
		return DefaultInterface
	}
	return v.Bridge
}

func (v VM) bootloader() string {
	if v.Bootloader == "" {
		return DefaultBootloader
	}
	return v.Bootloader
}

// vifSpec is the guest NIC in the vif syntax xm and xl share; it is also the
// bootloader argument that carries the MAC (pypxeboot's bootargs = vif[0]).
func (v VM) vifSpec() string {
	return "mac=" + v.MAC.String() + ",bridge=" + v.bridge()
}

// WriteXL writes v as an xl.cfg (Xen 4.10 and later: the type key). A PV
// guest runs the Bootloader with bootloader_args = [ vif ] and needs its
// disk for libxl to run a bootloader at all; an HVM guest PXE-boots from an
// emulated e1000 NIC (boot="n").
func (v VM) WriteXL(w io.Writer) error {
	if err := v.Validate(); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Xen guest %s: network boot through pxed (xl.cfg)\n", v.Name)
	fmt.Fprintf(&b, "name = %q\n", v.Name)
	fmt.Fprintf(&b, "type = %q\n", v.Type)
	fmt.Fprintf(&b, "memory = %d\n", v.MemoryMiB)
	fmt.Fprintf(&b, "vcpus = %d\n", v.vcpus())
	vdev := "xvda"
	if v.Type == "pv" {
		fmt.Fprintf(&b, "bootloader = %q\n", v.bootloader())
		fmt.Fprintf(&b, "bootloader_args = [ %q ]\n", v.vifSpec())
		fmt.Fprintf(&b, "vif = [ %q ]\n", v.vifSpec())
	} else {
		vdev = "hda"
		fmt.Fprintf(&b, "boot = \"n\"\n")
		fmt.Fprintf(&b, "vif = [ %q ]\n", "type=ioemu,model=e1000,"+v.vifSpec())
		fmt.Fprintf(&b, "serial = \"pty\"\n")
		fmt.Fprintf(&b, "vnc = 1\n")
		fmt.Fprintf(&b, "vncunused = 1\n")
	}
	fmt.Fprintf(&b, "disk = [ %q ]\n", "format=raw,vdev="+vdev+",access=rw,target="+v.Disk)
	fmt.Fprintf(&b, "on_reboot = \"restart\"\n")
	fmt.Fprintf(&b, "on_crash = \"restart\"\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// xmDisk is the disk in xm's 'file:PATH,DEV,w' form (phy: for /dev paths).
func (v VM) xmDisk(dev string) string {
	kind := "file:"
	if strings.HasPrefix(v.Disk, "/dev/") {
		kind = "phy:"
	}
	return kind + v.Disk + "," + dev + ",w"
}

// WriteXM writes v as an xm (xend, Python) config in the seeds' form: a PV
// guest runs the Bootloader with bootargs = vif[0]; an HVM guest uses
// hvmloader and qemu-dm and boots from the network (boot='n').
func (v VM) WriteXM(w io.Writer) error {
	if err := v.Validate(); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Xen guest %s: network boot through pxed (xm)\n", v.Name)
	fmt.Fprintf(&b, "name = '%s'\n", v.Name)
	if v.Type == "hvm" {
		fmt.Fprintf(&b, "builder = 'hvm'\n")
		fmt.Fprintf(&b, "kernel = '/usr/lib/xen/boot/hvmloader'\n")
		fmt.Fprintf(&b, "device_model = '/usr/lib/xen/bin/qemu-dm'\n")
	}
	fmt.Fprintf(&b, "memory = %d\n", v.MemoryMiB)
	fmt.Fprintf(&b, "vcpus = %d\n", v.vcpus())
	if v.Type == "hvm" {
		fmt.Fprintf(&b, "disk = [ '%s' ]\n", v.xmDisk("hda"))
		fmt.Fprintf(&b, "vif = [ 'type=ioemu,%s' ]\n", v.vifSpec())
		fmt.Fprintf(&b, "boot = 'n'\n")
		fmt.Fprintf(&b, "serial = 'pty'\n")
		fmt.Fprintf(&b, "vnc = 1\n")
		fmt.Fprintf(&b, "vncunused = 1\n")
		fmt.Fprintf(&b, "apic = 1\n")
		fmt.Fprintf(&b, "acpi = 1\n")
		fmt.Fprintf(&b, "pae = 1\n")
	} else {
		fmt.Fprintf(&b, "disk = [ '%s' ]\n", v.xmDisk("xvda"))
		fmt.Fprintf(&b, "vif = [ '%s' ]\n", v.vifSpec())
		fmt.Fprintf(&b, "bootloader = '%s'\n", v.bootloader())
		fmt.Fprintf(&b, "bootargs = vif[0]\n")
	}
	fmt.Fprintf(&b, "on_reboot = 'restart'\n")
	fmt.Fprintf(&b, "on_crash = 'restart'\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// CreateSparseDisk creates a sparse disk image of size bytes at path (mode
// 0600). It refuses to overwrite an existing file (or follow a symlink) and
// does not create the parent directory.
func CreateSparseDisk(path string, size int64) error {
	if size <= 0 {
		return fmt.Errorf("create disk %s: size must be positive", path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create disk %s: already exists; not overwriting it", path)
		}
		return fmt.Errorf("create disk: %v", err)
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("create disk %s: %v", path, err)
	}
	return nil
}

// ParseSize parses a size: bytes ("8388608000", "512B"), binary units
// ("8G", "8000M", "512MiB", "4k"; K, M, G, T, P with optional "iB") or
// decimal units ("8GB" = 8*10^9). Units are case-insensitive; the number is
// a non-negative integer.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit such as 8G or 512MiB", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	unit := strings.ToLower(strings.TrimSpace(t[i:]))
	mult := int64(1)
	if unit != "" && unit != "b" {
		pow := strings.IndexByte("kmgtp", unit[0]) + 1
		if pow == 0 {
			return 0, fmt.Errorf("size %q: unknown unit %q", s, t[i:])
		}
		var base int64
		switch unit[1:] {
		case "", "ib":
			base = 1024
		case "b":
			base = 1000
		default:
			return 0, fmt.Errorf("size %q: unknown unit %q", s, t[i:])
		}
		for ; pow > 0; pow-- {
			mult *= base
		}
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return n * mult, nil
}
