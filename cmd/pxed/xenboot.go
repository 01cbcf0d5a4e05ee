package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"pxed/internal/guestnet"
	"pxed/internal/pxeclient"
	"pxed/internal/tftp"
	"pxed/internal/xen"
)

// xenbootName is the link name under which pxed runs as the bootloader
// with no subcommand (bootloader = "/usr/lib/pxed/pxed-xenboot" in xl.cfg).
const xenbootName = "pxed-xenboot"

// cmdXenBootloader is `pxed xen-bootloader ARGS…`: what libxl (xl) or
// xend (xm) runs before a PV guest starts. It does DHCP as the guest's
// MAC on the dom0 bridge, finds the guest's PXELINUX config like PXELINUX,
// fetches kernel and initrd(s) and hands them to the toolstack.
//
// What needs privilege comes first: the packet socket on the bridge and
// the files the kernel and ramdisk go to. With --runas (libxl's
// bootloader_restrict) the network part then runs in a copy of pxed
// restricted to that uid (see runRestricted); this process, still root,
// only writes the result, cleans up, or hands a LOCALBOOT guest to the
// local bootloader with --runas, which restricts itself as libxl expects.
func cmdXenBootloader(args []string, stderr io.Writer) int {
	if isHelp(args) {
		fmt.Fprint(os.Stdout, xenbootUsage)
		return 0
	}
	inv, err := xen.ParseArgs(args)
	if err != nil {
		failOutput(args)
		fmt.Fprintf(stderr, "pxed-xenboot: %v\n", err)
		return 1
	}
	logf := xenbootLog(inv, stderr)
	for _, u := range inv.Unknown {
		logf("ignoring option %s", u)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, inv.Timeout)
	defer cancel()
	res, local, err := xenBoot(ctx, inv, args, stderr, logf)
	if err == nil && local {
		// The config says LOCALBOOT: the guest is installed. Hand over to
		// the local bootloader (pygrub) with the toolstack's arguments.
		err = execLocal(inv, args)
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("%w (gave up after --timeout=%s)", err, inv.Timeout)
		}
		inv.Fail(err)
		fmt.Fprintf(stderr, "pxed-xenboot: %s\n", xen.OneLine(err))
		return 1
	}
	if err := inv.Deliver(res); err != nil {
		inv.Fail(err)
		fmt.Fprintf(stderr, "pxed-xenboot: %s\n", xen.OneLine(err))
		return 1
	}
	logf("kernel %s, ramdisk %s, args %q", res.Kernel, res.Ramdisk, xen.JoinArgs(res.Args, inv.Args))
	return 0
}

const xenbootUsage = `usage: pxed xen-bootloader [options] mac=MAC[,bridge=BRIDGE] [DISK]
       (or a link named pxed-xenboot, as xl.cfg's bootloader)

The Xen PV bootloader: what xl (libxl) or xm (xend) runs before a PV guest
starts. It does DHCP as the guest's MAC on the guest's bridge, then speaks
as the guest (its address, router and DNS) to fetch the guest's PXELINUX
config, kernel and initrds, and hands them to the toolstack.

Options: --interface=BRIDGE --label=LABEL --timeout=D --local-bootloader=PATH
  --max-config-size=N --max-kernel-size=N --max-initrd-size=N
  --allow-host=HOST --use-env-proxy -q, and the toolstack's --kernel=
  --ramdisk= --args= --output= --output-format= --output-directory=
  --runas= --quiet.

Examples (xl.cfg):
  bootloader = "/usr/lib/pxed/pxed-xenboot"
  bootloader_args = ["mac=00:16:3e:62:39:d3,bridge=xenbr0"]
`

// xenbootLog logs to stderr unless -q.
func xenbootLog(inv *xen.Invocation, stderr io.Writer) func(string, ...any) {
	return func(format string, a ...any) {
		if !inv.Quiet {
			fmt.Fprintf(stderr, "pxed-xenboot: "+format+"\n", a...)
		}
	}
}

// netResult is what the network part found: a LOCALBOOT label, or a
// kernel (and a ramdisk when Ramdisk) written and the label's command
// line. Error carries a restricted worker's failure to its parent.
type netResult struct {
	Local   bool   `json:"local,omitempty"`
	Ramdisk bool   `json:"ramdisk,omitempty"`
	Args    string `json:"args,omitempty"`
	Error   string `json:"error,omitempty"`
}

// xenBoot opens the packet socket and the kernel and ramdisk files, runs
// the network part (restricted with --runas) and returns the result to
// deliver; local reports a LOCALBOOT label.
func xenBoot(ctx context.Context, inv *xen.Invocation, args []string, stderr io.Writer, logf func(string, ...any)) (res xen.Result, local bool, err error) {
	pc, err := pxeclient.ListenPacket(inv.Interface, inv.MAC)
	if err != nil {
		return res, false, err
	}
	defer pc.Close()
	kernel, err := inv.CreateFile("kernel.")
	if err != nil {
		return res, false, err
	}
	defer kernel.Close()
	ramdisk, err := inv.CreateFile("ramdisk.")
	if err != nil {
		return res, false, err
	}
	defer ramdisk.Close()
	var nr netResult
	if inv.RunAs != "" {
		nr, err = runRestricted(ctx, inv, args, pc, kernel, ramdisk, stderr)
	} else {
		nr, err = netBoot(ctx, inv, pc, kernel, ramdisk, logf)
	}
	if err != nil {
		return res, false, err
	}
	if nr.Local {
		inv.Discard(kernel.Name())
		inv.Discard(ramdisk.Name())
		return res, true, nil
	}
	res = xen.Result{Kernel: kernel.Name(), Args: nr.Args}
	if nr.Ramdisk {
		res.Ramdisk = ramdisk.Name()
	} else {
		inv.Discard(ramdisk.Name())
	}
	return res, false, nil
}

// netBoot is the part that reads from the network: DHCP as the guest
// through pc, the PXELINUX config from the boot server, then the kernel
// into kernel and the initrds, concatenated, into ramdisk, each within its
// limit and only from the hosts the DHCP answer names (or --allow-host).
func netBoot(ctx context.Context, inv *xen.Invocation, pc *pxeclient.PacketConn, kernel, ramdisk io.Writer, logf func(string, ...any)) (netResult, error) {
	// One transfer at a time, through the guest's userspace stack: every
	// frame passes from the socket's reader goroutine to the transfer's.
	// With one P that hand-over is a run-queue push; with several, each
	// frame could wake a parked thread (a futex call and a cross-CPU
	// wake-up), which made a boot 15 % slower (bench/xenboot).
	runtime.GOMAXPROCS(1)
	logf("requesting an address for MAC %s on %s", inv.MAC, pc.Interface())
	lease, err := pc.DHCP(ctx, inv.MAC, pxeclient.DHCPOptions{Log: logf})
	if err != nil {
		return netResult{}, err
	}
	// From here on the bootloader is the guest: its MAC, its leased
	// address and router, on its bridge, whatever dom0's own addresses.
	guest, err := guestnet.Start(guestnet.Config{Conn: pc, MAC: inv.MAC, Addr: lease.Prefix(), Router: lease.Router})
	if err != nil {
		return netResult{}, err
	}
	defer guest.Close()
	lease.Resolver = guest.Resolver(lease.DNS())
	server, how := lease.Server()
	if !server.IsValid() || server.IsUnspecified() {
		return netResult{}, fmt.Errorf("the DHCP answer for %s (%s) names no boot server: set next-server", inv.MAC, lease.IP)
	}
	logf("got %s; boot server %s (%s), boot file %q; speaking as %s (%s) on %s",
		lease.IP, server, how, lease.File, lease.Prefix(), inv.MAC, pc.Interface())
	src := &pxeclient.Source{TFTP: netip.AddrPortFrom(server, 69),
		Hosts: append(lease.BootHosts(), inv.AllowHosts...), Proxy: inv.EnvProxy,
		Client: tftp.Client{Listen: guest.ListenUDP, Windowsize: guestWindow}, Dial: guest.DialContext, Resolver: lease.Resolver}
	plan, err := pxeclient.Find(ctx, src, lease, inv.MAC, "", inv.Label, inv.MaxConfigSize)
	if err == nil {
		err = plan.ForPV()
	}
	if err != nil {
		return netResult{}, fmt.Errorf("%w (boot server %s)", err, server)
	}
	logf("config %s, label %q", plan.Config, plan.Label)
	if plan.Localboot {
		if inv.LocalBootloader == "" {
			return netResult{}, fmt.Errorf("%s says LOCALBOOT (the guest is installed): give --local-bootloader=/usr/bin/pygrub to boot its disk, or reinstall it (pxed host install)", plan.Config)
		}
		return netResult{Local: true}, nil
	}
	logf("fetching kernel %s", plan.Kernel)
	lim := pxeclient.NewLimit(kernel, inv.MaxKernelSize, sizeFlag("max-kernel-size", inv.MaxKernelSize))
	if err := fetchAll(ctx, src, []string{plan.Kernel}, lim); err != nil {
		return netResult{}, fmt.Errorf("kernel %s from %s: %w", plan.Kernel, server, err)
	}
	if len(plan.Initrds) > 0 {
		logf("fetching initrd %s", strings.Join(plan.Initrds, " + "))
		lim := pxeclient.NewLimit(ramdisk, inv.MaxInitrdSize, sizeFlag("max-initrd-size", inv.MaxInitrdSize)+", all initrds together")
		if err := fetchAll(ctx, src, plan.Initrds, lim); err != nil {
			return netResult{}, fmt.Errorf("initrd %s from %s: %w", strings.Join(plan.Initrds, ","), server, err)
		}
	}
	// Deliver appends --args= as pygrub does.
	return netResult{Ramdisk: len(plan.Initrds) > 0, Args: plan.Args}, nil
}

// guestWindow is the TFTP window the bootloader asks for (RFC 7440; a
// server without windowsize sends lock-step as ever). Each window costs a
// round trip through the guest's userspace stack, dearer than the kernel's:
// 64 blocks make a boot as quick as 16 did through dom0's own stack
// (bench/xenboot). pxed serves at most 64 by default.
const guestWindow = 64

// sizeFlag names a limit for an error: "--max-kernel-size=268435456".
func sizeFlag(name string, n int64) string {
	return fmt.Sprintf("--%s=%d", name, n)
}

// fetchAll fetches the files one after the other into w (several initrds
// are concatenated, as the kernel accepts them).
func fetchAll(ctx context.Context, f pxeclient.Fetcher, names []string, w io.Writer) error {
	for _, n := range names {
		if err := f.Fetch(ctx, n, w); err != nil {
			return err
		}
	}
	return nil
}

// localValueOptions are the toolstack's options, taking a value, that the
// local bootloader gets as they were given.
var localValueOptions = map[string]bool{"output": true, "output-format": true, "output-directory": true,
	"kernel": true, "ramdisk": true, "args": true, "runas": true}

// execLocal replaces this process with the local bootloader, passing the
// toolstack's own options (--runas among them: pygrub restricts itself to
// that uid, as libxl expects of the bootloader it starts) and the disk, not
// pxed's.
func execLocal(inv *xen.Invocation, args []string) error {
	var keep []string
	for i := 0; i < len(args) && args[i] != "--"; i++ {
		a := args[i]
		name, _, hasVal := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		switch {
		case a == "-q" || a == "--quiet":
			keep = append(keep, a)
		case strings.HasPrefix(a, "--") && localValueOptions[name]:
			keep = append(keep, a)
			if !hasVal && i+1 < len(args) {
				i++
				keep = append(keep, args[i])
			}
		}
	}
	if inv.Disk != "" {
		keep = append(keep, inv.Disk)
	}
	argv := append([]string{inv.LocalBootloader}, keep...)
	err := syscall.Exec(inv.LocalBootloader, argv, os.Environ())
	return fmt.Errorf("running the local bootloader %s: %w", inv.LocalBootloader, err)
}

// failOutput opens and closes --output when the arguments could not be
// parsed, so that xend, blocked on its FIFO, sees EOF.
func failOutput(args []string) {
	for _, a := range args {
		if name, ok := strings.CutPrefix(a, "--output="); ok && name != "" {
			if f, err := os.OpenFile(name, os.O_WRONLY, 0); err == nil {
				f.Close()
			}
		}
	}
}
