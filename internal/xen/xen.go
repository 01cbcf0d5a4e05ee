// Package xen implements the Xen toolstack side of pxed's PV bootloader
// (the replacement for pypxeboot) and writes guest configurations for it.
//
// A PV bootloader is a program the toolstack runs on dom0 before a PV guest
// starts. Two toolstacks run it:
//
//   - xl (libxl) pre-creates an output file and an output directory and runs
//     the bootloader as
//     [--kernel=K] [--ramdisk=R] [--args=A] [--runas=UID --quiet]
//     --output=FILE --output-format=simple0 --output-directory=DIR
//     <bootloader_args...> <disk>.
//     After a zero exit status it reads FILE as NUL-separated items
//     "kernel <path>", "ramdisk <path>" and "args <cmdline>" (the key, then
//     whitespace, then the value; other items are logged and ignored),
//     loads the kernel and ramdisk and unlinks them. libxl itself sets no
//     deadline on the bootloader; it only stops it if the domain dies.
//   - xend (xm) makes a FIFO and runs the bootloader as
//     [--kernel=K] [--ramdisk=R] [--args=A] [-q] --output=FIFO
//     <bootargs split like a shell> <disk>,
//     then reads the FIFO until EOF and parses it as one S-expression:
//     linux (kernel <path>)(ramdisk <path>)(args "<cmdline>").
//     xend blocks on the FIFO, so the bootloader must open and close it even
//     when it fails.
//
// ParseArgs reads either command line; CreateFile, Deliver and Fail implement
// the output side. VM writes xl.cfg and xm configurations for a PXE-booted
// guest, and CreateSparseDisk makes its disk image.
package xen

import "time"

// Format is the output format the toolstack asked for with --output-format.
type Format string

// The output formats, as pygrub names them.
const (
	// FormatSimple0 is NUL-separated "key value" items; libxl asks for it.
	FormatSimple0 Format = "simple0"
	// FormatSimple is newline-separated "key value" items.
	FormatSimple Format = "simple"
	// FormatSXP is the S-expression xend reads; the default, as in pygrub.
	FormatSXP Format = "sxp"
)

// Toolstack names.
const (
	// ToolstackXL is libxl (xl, libvirt's libxl driver): recognised by
	// --output-directory or --output-format on the command line.
	ToolstackXL = "xl"
	// ToolstackXM is xend (xm): neither of those options is given.
	ToolstackXM = "xm"
)

const (
	// DefaultOutputDir is where kernel and ramdisk go when the toolstack
	// passes no --output-directory (xend). It is pygrub's default and the
	// directory xend itself makes (mode 0700) for its FIFOs; xend deletes
	// the temporary kernel and ramdisk from there after building the domain.
	DefaultOutputDir = "/var/run/xend/boot"
	// DefaultInterface is the bridge the DHCP/TFTP client uses when neither
	// --interface= nor the vif's bridge= names one.
	DefaultInterface = "xenbr0"
	// DefaultTimeout is the overall deadline of a bootloader run.
	DefaultTimeout = 60 * time.Second
	// DefaultMaxConfigSize, DefaultMaxKernelSize and DefaultMaxInitrdSize
	// bound what the bootloader fetches (see Invocation.MaxKernelSize): a
	// PXELINUX configuration file, the kernel, the initrds of a label
	// together. They land in the output directory, often a tmpfs on dom0.
	DefaultMaxConfigSize = 1 << 20
	DefaultMaxKernelSize = 256 << 20
	DefaultMaxInitrdSize = 512 << 20
	// DefaultBootloader is the bootloader path written into guest configs.
	DefaultBootloader = "/usr/lib/pxed/pxed-xenboot"
	// maxSimple0Item is the longest item libxl accepts: it reads items into
	// a buffer of 2*PATH_MAX bytes and skips (with a warning) any item that
	// does not fit with its terminating NUL.
	maxSimple0Item = 2*4096 - 2
)
