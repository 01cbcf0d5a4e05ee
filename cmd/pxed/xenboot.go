package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"pxed/internal/pxeclient"
	"pxed/internal/xen"
)

// xenbootName is the link name under which pxed runs as the bootloader
// with no subcommand (bootloader = "/usr/lib/pxed/pxed-xenboot" in xl.cfg).
const xenbootName = "pxed-xenboot"

// cmdXenBootloader is `pxed xen-bootloader ARGS…`: what libxl (xl) or
// xend (xm) runs before a PV guest starts. It does DHCP as the guest's
// MAC on the dom0 bridge, finds the guest's PXELINUX config like PXELINUX,
// fetches kernel and initrd(s) and hands them to the toolstack.
func cmdXenBootloader(args []string, stderr io.Writer) int {
	inv, err := xen.ParseArgs(args)
	if err != nil {
		failOutput(args)
		fmt.Fprintf(stderr, "pxed-xenboot: %v\n", err)
		return 1
	}
	logf := func(format string, a ...any) {
		if !inv.Quiet {
			fmt.Fprintf(stderr, "pxed-xenboot: "+format+"\n", a...)
		}
	}
	for _, u := range inv.Unknown {
		logf("ignoring option %s", u)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, inv.Timeout)
	defer cancel()
	res, local, err := xenBoot(ctx, inv, logf)
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

// xenBoot does the network part; local reports a LOCALBOOT label.
func xenBoot(ctx context.Context, inv *xen.Invocation, logf func(string, ...any)) (res xen.Result, local bool, err error) {
	pc, err := pxeclient.ListenPacket(inv.Interface)
	if err != nil {
		return res, false, err
	}
	defer pc.Close()
	logf("requesting an address for MAC %s on %s", inv.MAC, inv.Interface)
	lease, err := pc.DHCP(ctx, inv.MAC, pxeclient.DHCPOptions{Log: logf})
	if err != nil {
		return res, false, err
	}
	server, how := lease.Server()
	if !server.IsValid() || server.IsUnspecified() {
		return res, false, fmt.Errorf("the DHCP answer for %s (%s) names no boot server: set next-server", inv.MAC, lease.IP)
	}
	logf("got %s; boot server %s (%s), boot file %q", lease.IP, server, how, lease.File)
	src := &pxeclient.Source{TFTP: netip.AddrPortFrom(server, 69),
		Hosts: append(lease.BootHosts(), inv.AllowHosts...), Proxy: inv.EnvProxy}
	plan, err := pxeclient.Find(ctx, src, lease, inv.MAC, "", inv.Label, inv.MaxConfigSize)
	if err == nil {
		err = plan.ForPV()
	}
	if err != nil {
		return res, false, fmt.Errorf("%w (boot server %s)", err, server)
	}
	logf("config %s, label %q", plan.Config, plan.Label)
	if plan.Localboot {
		if inv.LocalBootloader == "" {
			return res, false, fmt.Errorf("%s says LOCALBOOT (the guest is installed): give --local-bootloader=/usr/bin/pygrub to boot its disk, or reinstall it (pxed host install)", plan.Config)
		}
		return res, true, nil
	}
	logf("fetching kernel %s", plan.Kernel)
	kernelLimit := fetchLimit{inv.MaxKernelSize, sizeFlag("max-kernel-size", inv.MaxKernelSize)}
	if res.Kernel, err = inv.SaveFile("kernel.", fetchAll(ctx, src, []string{plan.Kernel}, kernelLimit)); err != nil {
		return res, false, fmt.Errorf("kernel %s from %s: %w", plan.Kernel, server, err)
	}
	if len(plan.Initrds) > 0 {
		logf("fetching initrd %s", strings.Join(plan.Initrds, " + "))
		initrdLimit := fetchLimit{inv.MaxInitrdSize, sizeFlag("max-initrd-size", inv.MaxInitrdSize) + ", all initrds together"}
		if res.Ramdisk, err = inv.SaveFile("ramdisk.", fetchAll(ctx, src, plan.Initrds, initrdLimit)); err != nil {
			return res, false, fmt.Errorf("initrd %s from %s: %w", strings.Join(plan.Initrds, ","), server, err)
		}
	}
	res.Args = plan.Args // Deliver appends --args= as pygrub does
	return res, false, nil
}

// fetchLimit bounds what fetchAll streams: max bytes, named by what.
type fetchLimit struct {
	max  int64
	what string
}

// sizeFlag names a limit for an error: "--max-kernel-size=268435456".
func sizeFlag(name string, n int64) string {
	return fmt.Sprintf("--%s=%d", name, n)
}

// fetchAll streams the files one after the other (several initrds are
// concatenated, as the kernel accepts them), within lim together.
func fetchAll(ctx context.Context, f pxeclient.Fetcher, names []string, lim fetchLimit) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		w := pxeclient.NewLimit(pw, lim.max, lim.what)
		for _, n := range names {
			if err := f.Fetch(ctx, n, w); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.Close()
	}()
	return pr
}

// execLocal replaces this process with the local bootloader, passing the
// toolstack's own options and the disk, not pxed's.
func execLocal(inv *xen.Invocation, args []string) error {
	var keep []string
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "--output"), strings.HasPrefix(a, "--kernel="), strings.HasPrefix(a, "--ramdisk="),
			strings.HasPrefix(a, "--args="), a == "-q", a == "--quiet":
			keep = append(keep, a)
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
