package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"pxed/internal/lab"
)

const labUsage = `usage: pxed lab [--http|--uefi|--uefi-http|--secure-boot] [--server pxed|dnsmasq] [--capture] [--cache DIR] [--serve-arg ARG]...

Builds a throwaway lab — a network namespace with a tap device, pxed serving
DHCP, TFTP and HTTP on it, and a QEMU guest (MAC 00:16:3e:72:79:e4, the
example setup's HVM guest) — boots the guest from the network, prints the timeline of the
boot (DHCP, each file, kernel running) and removes everything. Needs root,
QEMU and the packages in .ci/run; the first run downloads a Debian kernel
into --cache.
  --http            iPXE gets an HTTP script: kernel and initrd over HTTP
  --uefi            OVMF firmware (its own PXE gets ipxe.efi, then HTTP)
  --uefi-http       OVMF's native UEFI HTTP boot: ipxe.efi as a URL, then HTTP
  --secure-boot     OVMF with Secure Boot enforced: shim, Debian's signed GRUB
                    and the signed kernel over TFTP (downloads shim-signed and
                    grub-efi-amd64-signed into --cache)
  --server dnsmasq  serve the same tree with dnsmasq instead (bench/boot)
  --capture         also capture the tap with tcpdump and add what went over
                    the wire to the timeline (DHCP, IPv6, each TFTP transfer),
                    for any server
  --serve-arg ARG   one more flag for pxed serve (repeatable), e.g.
                    --serve-arg=--tftp-io-uring=false
`

const (
	labMAC = "00:16:3e:72:79:e4"
	labIP  = "192.0.2.177"
)

func cmdLab(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, labUsage) }
	var o labFlags
	o.define(fs)
	http, uefi, server, cache, timeout, capture := o.http, o.uefi, o.server, o.cache, o.timeout, o.capture
	pos, code, ok := parseCommand(fs, args)
	if !ok {
		return code
	}
	firmware := 0
	for _, f := range []bool{*http, *uefi, *o.secureBoot, *o.uefiHTTP} {
		if f {
			firmware++
		}
	}
	if len(pos) > 0 || firmware > 1 || (*server != "pxed" && *server != "dnsmasq") || (*server == "dnsmasq" && (firmware > 0 || len(o.serveArgs) > 0)) {
		fmt.Fprint(stderr, labUsage)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "pxed lab: needs root (network namespaces, a tap device)")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	opts := labOptions{server: *server, http: *http, uefi: *uefi, secureBoot: *o.secureBoot, uefiHTTP: *o.uefiHTTP,
		capture: *capture, cache: *cache, timeout: *timeout, serveArgs: o.serveArgs}
	if err := runLab(ctx, stdout, opts); err != nil {
		fmt.Fprintf(stderr, "pxed lab: %v\n", err)
		return 1
	}
	return 0
}

// labOptions are pxed lab's flags.
type labOptions struct {
	server               string
	http, uefi           bool
	secureBoot, uefiHTTP bool
	capture              bool
	cache                string
	timeout              time.Duration
	serveArgs            []string
}

func runLab(ctx context.Context, out io.Writer, o labOptions) error {
	fmt.Fprintf(out, "preparing boot files in %s …\n", o.cache)
	a, err := lab.PrepareAssets(ctx, o.cache, false)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	l, err := lab.New(netip.MustParsePrefix("192.0.2.1/24"))
	if err != nil {
		return err
	}
	defer l.Close()
	root := filepath.Join(l.Dir, "tftpboot")
	if err := a.InstallBootloaders(root); err != nil {
		return err
	}
	files := map[string]string{"demo/vmlinuz": a.Kernel, "demo/initrd.img": a.Initrd}
	loader := ""
	if o.secureBoot {
		sb, err := lab.PrepareSecureBoot(ctx, o.cache)
		if err != nil {
			return err
		}
		files["shimx64.efi"], files["grubx64.efi"] = sb.Shim, sb.GRUB
		loader = "    loader: grub\n"
	}
	for name, src := range files {
		if err := lab.Place(root, name, src); err != nil {
			return err
		}
	}
	write := func(name, data string) (string, error) {
		p := filepath.Join(l.Dir, name)
		return p, os.WriteFile(p, []byte(data), 0o644)
	}
	var srv *lab.Proc
	switch o.server {
	case "pxed":
		conf, err := write("dhcpd.conf", "authoritative;\nsubnet 192.0.2.0 netmask 255.255.255.0 {\n  next-server 192.0.2.1;\n  filename \"pxelinux.0\";\n  range 192.0.2.100 192.0.2.150;\n}\n")
		if err != nil {
			return err
		}
		inv, err := write("inventory.yaml", "profiles:\n  demo:\n    kernel: demo/vmlinuz\n    initrd: demo/initrd.img\n    append: console=ttyS0 pxed.lab=demo\n"+loader+"hosts:\n  - {name: demo, mac: \""+labMAC+"\", ip: "+labIP+", profile: demo}\n")
		if err != nil {
			return err
		}
		httpAddr := "192.0.2.1:8080"
		if !o.http && !o.uefi && !o.uefiHTTP {
			httpAddr = "" // iPXE then gets pxelinux.0 like any PXE ROM
		}
		state := filepath.Join(l.Dir, "state")
		args := append([]string{self, "serve", "--interface", l.Tap, "--dhcpd-conf", conf, "--inventory", inv,
			"--tftp-root", root, "--tftp-addr", "192.0.2.1:69", "--http-addr", httpAddr, "--state-dir", state,
			"--log-format", "json", "--log-level", "debug"}, o.serveArgs...)
		srv, err = l.Start("pxed", nil, args...)
		if err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := lab.WaitFile(wctx, srv, filepath.Join(state, "control.sock")); err != nil {
			return err
		}
	case "dnsmasq":
		// The same boot by hand, as the seeds did it: a config file per MAC.
		cfgDir := filepath.Join(root, "pxelinux.cfg")
		if err := os.MkdirAll(cfgDir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(cfgDir, "01-00-16-3e-72-79-e4"), []byte("DEFAULT demo\nLABEL demo\n  KERNEL demo/vmlinuz\n  APPEND initrd=demo/initrd.img console=ttyS0 pxed.lab=demo\n"), 0o644); err != nil {
			return err
		}
		srv, err = l.Start("dnsmasq", nil, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface="+l.Tap, "--bind-interfaces",
			"--dhcp-range=192.0.2.100,192.0.2.150,12h", "--dhcp-host="+labMAC+","+labIP, "--dhcp-boot=pxelinux.0,,192.0.2.1",
			"--enable-tftp", "--tftp-root="+root, "--log-dhcp")
		if err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := lab.WaitOutput(wctx, srv, "TFTP root is"); err != nil {
			return err
		}
	}
	how := "SeaBIOS + iPXE ROM, PXELINUX over TFTP"
	switch {
	case o.secureBoot:
		how = "OVMF with Secure Boot, shim and GRUB, kernel over TFTP"
	case o.uefiHTTP:
		how = "OVMF UEFI HTTP boot, ipxe.efi, kernel over HTTP"
	case o.uefi:
		how = "OVMF, ipxe.efi, kernel over HTTP"
	case o.http:
		how = "SeaBIOS + iPXE ROM, iPXE script, kernel over HTTP"
	}
	fmt.Fprintf(out, "booting %s from %s (%s) …\n", labMAC, o.server, how)
	var capt *lab.Capture
	if o.capture {
		if capt, err = l.StartCapture(ctx); err != nil {
			return fmt.Errorf("capture (is tcpdump installed?): %w", err)
		}
	}
	res, err := l.Boot(ctx, a, lab.Guest{MAC: labMAC, UEFI: o.uefi, VirtioNoROM: o.uefi, SecureBoot: o.secureBoot, HTTPBoot: o.uefiHTTP}, []string{lab.Marker}, o.timeout)
	if err != nil {
		return err
	}
	var events []lab.Event
	if o.server == "pxed" {
		events = lab.PxedEvents(srv.Output(), res.Start, labMAC, labIP)
	}
	var wire *lab.WireSummary
	if capt != nil {
		pkts, err := capt.Stop()
		if err != nil {
			return fmt.Errorf("reading the capture: %w", err)
		}
		wire = lab.Summarize(pkts, res.Start, labMAC)
		events = append(events, wire.Events(res.Start)...)
		sort.SliceStable(events, func(i, j int) bool { return events[i].At < events[j].At })
	}
	fmt.Fprintf(out, "\n  %6.1fs  power on\n", 0.0)
	lab.FormatTimeline(out, events)
	at := res.Seen[lab.Marker]
	fmt.Fprintf(out, "  %6.1fs  kernel running: %s\n\n", at.Seconds(), res.Cmdline())
	fmt.Fprintf(out, "power-on to kernel running: %.1f s (%s, %s)\n", at.Seconds(), o.server, how)
	if wire != nil {
		for _, e := range wire.DHCP {
			if e.What == "DHCP ACK (wire)" {
				fmt.Fprintf(out, "DHCP ACK on the wire: %.3f s after power-on\n", e.At.Seconds())
				break
			}
		}
		span, bytes := wire.TFTPSpan()
		fmt.Fprintf(out, "TFTP on the wire: %.3f s for %d bytes (first request to last packet)\n", span.Seconds(), bytes)
	}
	return nil
}

// labFlags are the flags of `pxed lab` (also read by completion and the
// manual page).
type labFlags struct {
	http, uefi, capture  *bool
	secureBoot, uefiHTTP *bool
	server, cache        *string
	timeout              *time.Duration
	serveArgs            stringList
}

func (o *labFlags) define(fs *flag.FlagSet) {
	o.http = fs.Bool("http", false, "kernel and initrd over HTTP through an iPXE script")
	o.uefi = fs.Bool("uefi", false, "UEFI firmware (OVMF)")
	o.secureBoot = fs.Bool("secure-boot", false, "OVMF with Secure Boot enforced: shim and Debian's signed GRUB, downloaded")
	o.uefiHTTP = fs.Bool("uefi-http", false, "OVMF's native UEFI HTTP boot (no PXE): ipxe.efi as a URL, then HTTP")
	o.server = fs.String("server", "pxed", "boot server: pxed or dnsmasq")
	o.cache = fs.String("cache", lab.CacheDir(), "`dir`ectory for the downloaded and built boot files")
	o.timeout = fs.Duration("timeout", 4*time.Minute, "give up on the boot after this long")
	o.capture = fs.Bool("capture", false, "capture the tap with tcpdump and show the wire in the timeline")
	fs.Var(&o.serveArgs, "serve-arg", "one more `flag` for pxed serve (repeatable)")
}
