package xen

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Invocation is one run of the bootloader as the toolstack asked for it.
type Invocation struct {
	// Toolstack is ToolstackXL when --output-directory or --output-format
	// was given (only libxl passes them), else ToolstackXM.
	Toolstack string
	// Kernel, Ramdisk and Args are --kernel=, --ramdisk= and --args=: the
	// guest config's kernel, ramdisk and extra (command line) settings.
	// Deliver appends Args to the chosen command line, as pygrub does.
	Kernel, Ramdisk, Args string
	// Output is --output=: the file (libxl) or FIFO (xend) the result goes
	// to. Empty or "-" means standard output.
	Output string
	// Format is --output-format=; FormatSXP when not given.
	Format Format
	// OutputDir is --output-directory=, where CreateFile makes the kernel and
	// ramdisk; DefaultOutputDir when not given.
	OutputDir string
	// Quiet is -q or --quiet: no interaction on the console.
	Quiet bool
	// RunAs is --runas=: the numeric uid, not 0, libxl wants the bootloader
	// to restrict itself to (libxl passes it, with --quiet, when the guest
	// config says bootloader_restrict). The caller drops to it before it
	// reads from the network and passes it on to a local bootloader.
	RunAs string
	// MaxConfigSize, MaxKernelSize and MaxInitrdSize are
	// --max-config-size=, --max-kernel-size= and --max-initrd-size= (sizes
	// such as 1MiB or 512M): the largest PXELINUX configuration file (all
	// of one search may have four times that), kernel, and initrds of a
	// label together. DefaultMaxConfigSize, DefaultMaxKernelSize and
	// DefaultMaxInitrdSize when not given.
	MaxConfigSize, MaxKernelSize, MaxInitrdSize int64
	// AllowHosts are the --allow-host= values (the option may be repeated):
	// hosts other than the boot server the DHCP answer names that files may
	// be fetched from; "*" allows any host.
	AllowHosts []string
	// EnvProxy is --use-env-proxy: HTTP goes through the proxy the
	// environment names (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), which is
	// otherwise ignored.
	EnvProxy bool
	// MAC is the guest's MAC address, from a mac= field of the vif-style
	// positional arguments (pypxeboot's convention). Required.
	MAC net.HardwareAddr
	// Interface is --interface=, else the vif's bridge=, else
	// DefaultInterface: the dom0 interface the PXE client runs on.
	Interface string
	// Label is --label=: the PXELINUX label to boot instead of the default.
	Label string
	// Timeout is --timeout= (a Go duration, or whole seconds): the overall
	// deadline of the run; DefaultTimeout when not given.
	Timeout time.Duration
	// LocalBootloader is --local-bootloader=: the program (e.g.
	// /usr/bin/pygrub) to run when the PXELINUX config says LOCALBOOT;
	// empty means LOCALBOOT is an error.
	LocalBootloader string
	// Disk is the last positional argument: the guest's boot disk. libxl
	// always passes one; it is empty when the only positional arguments are
	// vif fields.
	Disk string
	// Unknown lists the options (and stray positional arguments) that were
	// not recognised. They are accepted and ignored, since libxl and xend
	// pass options older bootloaders do not know; the caller should log them.
	Unknown []string

	mu        sync.Mutex
	saved     []string // files made by CreateFile, removed by Fail
	delivered bool     // Deliver succeeded: the files belong to the toolstack
	failed    bool     // Fail ran: Output is closed, no file is made
}

// valueOptions are the long options that take a value (--name=value, or
// --name value as getopt allows).
var valueOptions = map[string]func(inv *Invocation, v string) error{
	"kernel":  func(inv *Invocation, v string) error { inv.Kernel = v; return nil },
	"ramdisk": func(inv *Invocation, v string) error { inv.Ramdisk = v; return nil },
	"args":    func(inv *Invocation, v string) error { inv.Args = v; return nil },
	"output":  func(inv *Invocation, v string) error { inv.Output = v; return nil },
	"output-format": func(inv *Invocation, v string) error {
		switch f := Format(v); f {
		case FormatSimple0, FormatSimple, FormatSXP:
			inv.Format = f
			inv.Toolstack = ToolstackXL
			return nil
		}
		return fmt.Errorf("unknown --output-format=%q (want simple0, simple or sxp)", v)
	},
	"output-directory": func(inv *Invocation, v string) error {
		if v == "" {
			return errors.New("empty --output-directory=")
		}
		inv.OutputDir = v
		inv.Toolstack = ToolstackXL
		return nil
	},
	"runas": func(inv *Invocation, v string) error {
		uid, err := strconv.ParseUint(v, 10, 32)
		switch {
		case err != nil || uid == 1<<32-1:
			return fmt.Errorf("--runas=%q: want a numeric uid", v)
		case uid == 0:
			return fmt.Errorf("--runas=%q: asked to restrict the bootloader to root", v)
		}
		inv.RunAs = strconv.FormatUint(uid, 10)
		return nil
	},
	"max-config-size": sizeOption("max-config-size", func(inv *Invocation) *int64 { return &inv.MaxConfigSize }),
	"max-kernel-size": sizeOption("max-kernel-size", func(inv *Invocation) *int64 { return &inv.MaxKernelSize }),
	"max-initrd-size": sizeOption("max-initrd-size", func(inv *Invocation) *int64 { return &inv.MaxInitrdSize }),
	"allow-host": func(inv *Invocation, v string) error {
		if err := checkHost(v); err != nil {
			return fmt.Errorf("--allow-host=%q: %v", v, err)
		}
		inv.AllowHosts = append(inv.AllowHosts, v)
		return nil
	},
	"interface": func(inv *Invocation, v string) error {
		if err := checkIfName(v); err != nil {
			return fmt.Errorf("--interface=%q: %v", v, err)
		}
		inv.Interface = v
		return nil
	},
	"label": func(inv *Invocation, v string) error { inv.Label = v; return nil },
	"timeout": func(inv *Invocation, v string) error {
		d, err := parseTimeout(v)
		if err != nil {
			return fmt.Errorf("--timeout=%q: %v", v, err)
		}
		inv.Timeout = d
		return nil
	},
	"local-bootloader": func(inv *Invocation, v string) error { inv.LocalBootloader = v; return nil },
}

// flagOptions are the long options that take no value.
var flagOptions = map[string]func(inv *Invocation){
	"quiet":         func(inv *Invocation) { inv.Quiet = true },
	"use-env-proxy": func(inv *Invocation) { inv.EnvProxy = true },
}

// sizeOption sets the size field of --name.
func sizeOption(name string, field func(*Invocation) *int64) func(*Invocation, string) error {
	return func(inv *Invocation, v string) error {
		n, err := ParseSize(v)
		if err == nil && n == 0 {
			err = errors.New("must be more than 0")
		}
		if err != nil {
			return fmt.Errorf("--%s=%q: %v", name, v, err)
		}
		*field(inv) = n
		return nil
	}
}

// vifKeys are the keys of an xm/xl vif specification. A positional argument
// whose first comma-separated field has one of them is vif fields, not the
// disk.
var vifKeys = map[string]bool{
	"mac": true, "bridge": true, "type": true, "model": true, "ip": true,
	"script": true, "vifname": true, "rate": true, "backend": true,
	"gatewaydev": true, "accel": true, "uuid": true, "devid": true, "mtu": true,
}

// ParseArgs parses the bootloader command line (without argv[0]) as libxl
// or xend builds it. Unrecognised options are collected in Unknown; a
// missing or invalid MAC address, a bad option value or a missing option
// value is an error.
func ParseArgs(args []string) (*Invocation, error) {
	inv := &Invocation{Toolstack: ToolstackXM, Format: FormatSXP, Timeout: DefaultTimeout,
		MaxConfigSize: DefaultMaxConfigSize, MaxKernelSize: DefaultMaxKernelSize, MaxInitrdSize: DefaultMaxInitrdSize}
	var positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i+1:]...)
			i = len(args)
		case a == "-q":
			inv.Quiet = true
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			if set, ok := flagOptions[name]; ok && !hasVal {
				set(inv)
				continue
			} else if ok {
				return nil, fmt.Errorf("option --%s takes no value", name)
			}
			set, ok := valueOptions[name]
			if !ok {
				inv.Unknown = append(inv.Unknown, a)
				continue
			}
			if !hasVal {
				if i+1 >= len(args) {
					return nil, fmt.Errorf("option --%s needs a value", name)
				}
				i++
				val = args[i]
			}
			if err := set(inv, val); err != nil {
				return nil, err
			}
		case len(a) > 1 && a[0] == '-':
			inv.Unknown = append(inv.Unknown, a)
		default:
			positional = append(positional, a)
		}
	}

	vifArgs := positional
	if n := len(positional); n > 0 && !isVifArg(positional[n-1]) {
		inv.Disk = positional[n-1]
		vifArgs = positional[:n-1]
	}
	var bridge string
	for _, a := range vifArgs {
		if !isVifArg(a) {
			inv.Unknown = append(inv.Unknown, a)
			continue
		}
		for _, field := range strings.Split(a, ",") {
			key, val, ok := strings.Cut(strings.TrimSpace(field), "=")
			if !ok {
				continue // empty field (trailing comma) or a bare word
			}
			key, val = strings.ToLower(strings.TrimSpace(key)), strings.TrimSpace(val)
			switch key {
			case "mac":
				mac, err := ParseMAC(val)
				if err != nil {
					return nil, fmt.Errorf("bootloader argument %q: %v", a, err)
				}
				if inv.MAC != nil && inv.MAC.String() != mac.String() {
					return nil, fmt.Errorf("conflicting MAC addresses %s and %s in bootloader arguments", inv.MAC, mac)
				}
				inv.MAC = mac
			case "bridge":
				if bridge == "" && val != "" {
					if err := checkIfName(val); err != nil {
						return nil, fmt.Errorf("bootloader argument %q: bridge %q: %v", a, val, err)
					}
					bridge = val
				}
			}
		}
	}
	if inv.MAC == nil {
		return nil, fmt.Errorf("no guest MAC address: want a vif-style mac=xx:xx:xx:xx:xx:xx in the bootloader arguments (bootloader_args / bootargs), got positional arguments %q", positional)
	}
	if inv.Interface == "" {
		inv.Interface = bridge
	}
	if inv.Interface == "" {
		inv.Interface = DefaultInterface
	}
	if inv.OutputDir == "" {
		inv.OutputDir = DefaultOutputDir
	}
	return inv, nil
}

// isVifArg reports whether a positional argument is vif fields
// (mac=…,bridge=…) rather than the disk.
func isVifArg(a string) bool {
	for _, field := range strings.Split(a, ",") {
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		key, _, ok := strings.Cut(field, "=")
		return ok && vifKeys[strings.ToLower(strings.TrimSpace(key))]
	}
	return false
}

// ParseMAC parses a 6-byte unicast MAC address in any of the forms
// net.ParseMAC accepts, in either case.
func ParseMAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("invalid MAC address %q", s)
	}
	if len(mac) != 6 {
		return nil, fmt.Errorf("invalid MAC address %q: want 6 bytes", s)
	}
	if mac[0]&1 != 0 {
		return nil, fmt.Errorf("invalid MAC address %q: multicast", s)
	}
	return mac, nil
}

// checkHost checks an --allow-host value: "*", an IP address or a DNS name.
func checkHost(s string) error {
	if s == "*" {
		return nil
	}
	if _, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return nil
	}
	if s == "" || len(s) > 253 {
		return errors.New("want an address, a host name or *")
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return errors.New("want an address, a host name or *")
		}
	}
	return nil
}

// checkIfName checks a Linux network interface name.
func checkIfName(s string) error {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return errors.New("not a valid interface name")
	}
	for _, c := range s {
		if c <= ' ' || c == '/' || c == ':' || c >= 0x7f {
			return errors.New("not a valid interface name")
		}
	}
	return nil
}

// parseTimeout parses a Go duration ("90s", "2m") or whole seconds ("90").
func parseTimeout(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.ParseUint(s, 10, 32)
		if nerr != nil {
			return 0, errors.New("want a duration such as 60s or 2m")
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		return 0, errors.New("must be positive")
	}
	return d, nil
}
