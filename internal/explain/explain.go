// Package explain walks one machine's boot path offline and says what will
// happen and what is wrong: its host entries, the DHCP answer to a BIOS
// PXE, UEFI x64 and iPXE client (the real DHCP decision, dhcp.Decide), the
// PXELINUX config it finds and what that boots (the same PXELINUX client
// as the Xen bootloader, pxeclient.Find, over the served boot tree), the
// iPXE script and kickstart URL, each with the classic mistakes flagged
// and their fix. It touches no network and writes nothing.
package explain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"strings"

	"pxed/internal/app"
	"pxed/internal/bootfs"
	"pxed/internal/inventory"
)

// Kind is what a line of the report is.
type Kind int

const (
	Heading Kind = iota // a section title ("dhcp")
	Info                // a fact
	Note                // worth knowing, not wrong
	Problem             // a mistake, with its fix
)

// Line is one line of the report.
type Line struct {
	Kind Kind
	Text string
}

// Report is what Run found.
type Report struct {
	MAC      net.HardwareAddr
	Lines    []Line
	Problems int
}

// Input is what a walk reads: the snapshot a server would answer from,
// the boot tree with its generated files, and the DHCP interfaces named
// (to find this server's address on the client's network).
type Input struct {
	Snapshot *app.Snapshot
	// Files is the boot tree with generated files; nil without a tree.
	Files *bootfs.Layered
	// States are the hosts' recorded states (for the state shown).
	States *inventory.States
	// Interfaces are the DHCP interfaces of the configuration.
	Interfaces []string
	// TFTP: pxed itself serves TFTP.
	TFTP bool
	// SecureBoot: the machine has Secure Boot on, so what its firmware or
	// shim would refuse is a problem rather than a note.
	SecureBoot bool
}

type walk struct {
	in   Input
	hw   net.HardwareAddr
	rep  *Report
	host *inventory.Host
	ctx  context.Context
}

func (w *walk) add(k Kind, format string, args ...any) {
	w.rep.Lines = append(w.rep.Lines, Line{k, fmt.Sprintf(format, args...)})
	if k == Problem {
		w.rep.Problems++
	}
}
func (w *walk) heading(s string)                   { w.add(Heading, "%s", s) }
func (w *walk) info(format string, args ...any)    { w.add(Info, format, args...) }
func (w *walk) note(format string, args ...any)    { w.add(Note, format, args...) }
func (w *walk) problem(format string, args ...any) { w.add(Problem, format, args...) }

// Run walks the boot path of the machine with hardware address hw.
func Run(ctx context.Context, in Input, hw net.HardwareAddr) *Report {
	w := &walk{in: in, hw: hw, rep: &Report{MAC: hw}, ctx: ctx}
	w.run()
	return w.rep
}

// Failed reports a report of a walk that could not start (the
// configuration does not load): one problem, err.
func Failed(hw net.HardwareAddr, what string, err error) *Report {
	return &Report{MAC: hw, Lines: []Line{{Problem, what + ": " + err.Error()}}, Problems: 1}
}

func (w *walk) run() {
	s := w.in.Snapshot
	w.hosts()
	for _, warn := range s.Warnings {
		w.note("dhcp config: %s", warn)
	}
	answers := w.dhcp()
	if w.in.Files == nil {
		return
	}
	w.secureBoot(answers)
	bios := answers.bios
	switch {
	case bios.answered && bios.file != "" && !strings.Contains(bios.file, "://"):
		w.heading("boot file")
		w.checkFile(bios.file, "boot file")
		if strings.HasSuffix(bios.file, "pxelinux.0") {
			w.pxelinux(bios.file, bios.yiaddr, answers.server)
		}
	case s.DHCP == nil:
		// DHCP elsewhere: still show what PXELINUX would find.
		var ip netip.Addr
		if w.host != nil {
			ip = w.host.Addr()
		}
		w.pxelinux("pxelinux.0", ip, netip.Addr{})
	}
	if ipxe := answers.ipxe; ipxe.answered && strings.HasPrefix(ipxe.file, "http://") {
		w.ipxeScript(ipxe.file, answers.server)
	}
	if w.host != nil {
		env := s.Boot.Env(bootfs.Client{Local: answers.server}, w.host, "")
		if env.KickstartURL != "" {
			w.heading("kickstart")
			w.info("%s", env.KickstartURL)
		}
	}
}

// hosts shows the host entries that name this MAC.
func (w *walk) hosts() {
	s := w.in.Snapshot
	w.heading("host")
	if inv := s.Inventory; inv != nil {
		if w.host = inv.ByMAC(w.hw); w.host != nil {
			st, rec := s.Boot.States().State(w.host)
			how := "declared"
			if rec != nil {
				how = fmt.Sprintf("set %s by %s", rec.Changed.Format("2006-01-02 15:04"), rec.By)
			}
			w.info("inventory: %s (%s), profile %s, state %s (%s)", w.host.Name, w.host.Pos, w.host.Profile, st, how)
		} else {
			w.info("inventory: no host with this MAC in %s", inv.File)
		}
	}
	if n := s.Network; n != nil {
		for _, h := range n.Hosts {
			if m, err := net.ParseMAC(h.MAC); err == nil && string(m) == string(w.hw) && (s.Inventory == nil || h.Pos.File != s.Inventory.File) {
				w.info("dhcp: host %s (%s), fixed-address %s", h.Name, h.Pos, strings.Join(h.FixedAddresses, ", "))
			}
		}
	}
}

// checkFile says whether a file the client will fetch is there and readable.
func (w *walk) checkFile(name, what string) {
	name = strings.TrimLeft(name, "/")
	fi, err := w.in.Files.Stat(name)
	if clean, cerr := bootfs.CleanName(name, ""); cerr == nil {
		name = clean
	}
	var de *bootfs.DeniedError
	switch {
	case err == nil:
		w.info("%s %s: ok (%d bytes)", what, name, fi.Size())
	case errors.As(err, &de):
		w.info("%s %s: REFUSED", what, name)
		w.problem("%s %s is refused: %s (the seeds' `find /tftpboot -type f -exec chmod 644 {} \\;`)", what, name, de.Reason)
	case errors.Is(err, fs.ErrNotExist):
		w.info("%s %s: MISSING", what, name)
		w.problem("%s %s does not exist in the boot tree %s", what, name, w.in.Files.Dir())
	default:
		w.problem("%s %s: %v", what, name, err)
	}
}

// ipxeScript shows the script iPXE gets from pxed's HTTP server.
func (w *walk) ipxeScript(url string, server netip.Addr) {
	w.heading("ipxe")
	rest := strings.TrimPrefix(url, "http://")
	_, p, _ := strings.Cut(rest, "/")
	w.info("script %s", url)
	f, err := w.in.Files.OpenFor(bootfs.Client{Local: server, Proto: "http"}, p)
	if err != nil {
		w.note("not served by pxed from the boot tree: %v", err)
		return
	}
	defer f.Close()
	data, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		w.info("  %s", l)
		if fields := strings.Fields(l); len(fields) >= 2 && (fields[0] == "kernel" || fields[0] == "initrd" || fields[0] == "module") && strings.HasPrefix(fields[1], "/") {
			w.checkFile(fields[1], "  "+fields[0])
		}
	}
}
