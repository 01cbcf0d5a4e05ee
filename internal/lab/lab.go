// Package lab boots real firmware through a boot server on this machine:
// a network namespace with a tap device, a server inside it (pxed, or a
// peer such as dnsmasq), and QEMU guests (SeaBIOS or OVMF with QEMU's iPXE
// ROMs) on the tap, under software emulation. The end-to-end tests, `pxed
// lab` and bench/boot use it. It needs root, iproute2 and QEMU.
package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Lab is a network namespace holding a tap device for QEMU guests and the
// boot server's processes.
type Lab struct {
	NS, Tap string
	// Server is the tap's address in the namespace: the boot server.
	Server netip.Prefix
	// Dir is scratch space, removed by Close.
	Dir string

	mu    sync.Mutex
	procs []*Proc
}

var seq atomic.Int32

// New creates a namespace with a tap device addressed server (a prefix in
// a documentation range, e.g. 192.0.2.1/24).
func New(server netip.Prefix) (*Lab, error) {
	id := fmt.Sprintf("%d-%d", os.Getpid()%100000, seq.Add(1))
	l := &Lab{NS: "pxlab-" + id, Tap: "tap0", Server: server}
	var err error
	if l.Dir, err = os.MkdirTemp("", "pxed-lab-"); err != nil {
		return nil, err
	}
	steps := [][]string{
		{"ip", "netns", "add", l.NS},
		{"ip", "netns", "exec", l.NS, "ip", "link", "set", "lo", "up"},
		{"ip", "netns", "exec", l.NS, "ip", "tuntap", "add", "dev", l.Tap, "mode", "tap"},
		{"ip", "netns", "exec", l.NS, "ip", "addr", "add", server.String(), "dev", l.Tap},
		{"ip", "netns", "exec", l.NS, "ip", "link", "set", l.Tap, "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			l.Close()
			return nil, fmt.Errorf("%s: %v: %s", strings.Join(s, " "), err, bytes.TrimSpace(out))
		}
	}
	return l, nil
}

// Close stops every process and deletes the namespace and the scratch
// directory.
func (l *Lab) Close() error {
	l.mu.Lock()
	procs := l.procs
	l.procs = nil
	l.mu.Unlock()
	for _, p := range procs {
		p.Stop()
	}
	exec.Command("ip", "netns", "del", l.NS).Run()
	return os.RemoveAll(l.Dir)
}

// Proc is a process running in the lab's namespace.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	w  io.Writer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w != nil {
		s.w.Write(p)
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start runs a command in the namespace, in its own process group; its
// output is kept (and copied to tee when not nil).
func (l *Lab) Start(name string, tee io.Writer, args ...string) (*Proc, error) {
	p := &Proc{Name: name, out: &syncBuffer{w: tee}, done: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", l.NS}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Stdin = nil
	p.cmd.Dir = l.Dir
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p, nil
}

// Output is what the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Stop ends the process group: SIGTERM, then SIGKILL after 5 s.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// WaitFile waits until path exists (a server's socket or pid file).
func WaitFile(ctx context.Context, p *Proc, path string) error {
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not appear: %w\n%s", path, ctx.Err(), p.Output())
		case <-p.Done():
			return fmt.Errorf("%s exited before %s appeared:\n%s", p.Name, path, p.Output())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Guest is a QEMU machine booting from the network.
type Guest struct {
	MAC string
	// UEFI: OVMF with QEMU's EFI iPXE ROM on the NIC; else SeaBIOS.
	UEFI bool
	// Xen: a machine Xen and a PVH dom0 run on under software emulation
	// (q35, split irqchip, an IOMMU, no RDTSCP).
	Xen bool
	// MemoryMiB defaults to 1024.
	MemoryMiB int
	// VirtioNoROM: a virtio-net NIC without option ROM, so UEFI firmware
	// boots with its own network stack (OVMF's PXE, option 93 = 7) rather
	// than with iPXE; else an e1000 with QEMU's iPXE ROM.
	VirtioNoROM bool
	// SecureBoot: OVMF with Secure Boot enforced and Microsoft's keys
	// enrolled (q35 with SMM); implies UEFI and VirtioNoROM, so the
	// firmware's own PXE or HTTP boot runs what the server sends.
	SecureBoot bool
	// HTTPBoot: OVMF's PXE boot options are disabled, so it boots through
	// its UEFI HTTP boot option (vendor class HTTPClient, arch 16) at
	// once; implies UEFI and VirtioNoROM.
	HTTPBoot bool
	// ARM64: an arm64 UEFI machine (QEMU virt, AAVMF) with a virtio NIC
	// without option ROM, so the firmware's own PXE (option 93 = 11) runs;
	// with SecureBoot, Microsoft's keys enrolled and Secure Boot on.
	ARM64 *ARM64Assets
}

// Result is what a boot showed on the serial console.
type Result struct {
	// Start is when QEMU started (power-on).
	Start time.Time
	// Seen says when each awaited string appeared on the serial console.
	Seen map[string]time.Duration
	// Serial is the whole serial log.
	Serial string
}

// Cmdline is the command line the marker line reported ("" if none).
func (r *Result) Cmdline() string {
	i := strings.Index(r.Serial, Marker)
	if i < 0 {
		return ""
	}
	line, _, _ := strings.Cut(r.Serial[i+len(Marker):], "\n")
	return strings.TrimSpace(line)
}

// Boot powers a guest on and waits until every string of until has
// appeared on its serial console (then stops it) or timeout passes (an
// error, with the serial log). QEMU also ends when the guest powers off.
func (l *Lab) Boot(ctx context.Context, a *Assets, g Guest, until []string, timeout time.Duration) (*Result, error) {
	res, err := l.BootUntil(ctx, a, g, timeout, func(r *Result) bool {
		all := true
		for _, u := range until {
			if _, ok := r.Seen[u]; !ok {
				if !strings.Contains(r.Serial, u) {
					all = false
					continue
				}
				r.Seen[u] = time.Since(r.Start)
			}
		}
		return all
	})
	if err != nil {
		return res, fmt.Errorf("%w: waiting for %s", err, missing(until, res.Seen))
	}
	return res, nil
}

// BootUntil powers a guest on and polls done (every 100 ms, with the
// serial log so far) until it returns true, then stops the guest. It fails
// when timeout passes or QEMU ends first.
func (l *Lab) BootUntil(ctx context.Context, a *Assets, g Guest, timeout time.Duration, done func(*Result) bool) (*Result, error) {
	mem := g.MemoryMiB
	if mem == 0 {
		mem = 1024
	}
	serial := filepath.Join(l.Dir, "serial-"+strings.ReplaceAll(g.MAC, ":", "")+fmt.Sprint(seq.Add(1))+".log")
	args := []string{"qemu-system-x86_64", "-accel", "tcg", "-m", fmt.Sprint(mem), "-display", "none", "-monitor", "none",
		"-no-reboot", "-boot", "n", "-netdev", "tap,id=n0,ifname=" + l.Tap + ",script=no,downscript=no", "-serial", "file:" + serial}
	if g.ARM64 != nil {
		var err error
		if args, err = l.arm64Machine(args, g.ARM64, g.SecureBoot); err != nil {
			return &Result{}, err
		}
		g.UEFI, g.SecureBoot, g.HTTPBoot, g.Xen, g.VirtioNoROM = false, false, false, false, true
	}
	if g.SecureBoot || g.HTTPBoot {
		g.UEFI, g.VirtioNoROM = true, true
	}
	nic := "e1000,netdev=n0,mac=" + g.MAC
	if g.VirtioNoROM {
		nic = "virtio-net-pci,netdev=n0,romfile=,mac=" + g.MAC
	}
	if g.UEFI {
		code, varsFile := a.OVMFCode, a.OVMFVars
		if g.SecureBoot {
			code, varsFile = a.OVMFSecureCode, a.OVMFMSVars
			args = append(args, "-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on")
		}
		if code == "" || varsFile == "" {
			return &Result{}, errors.New("UEFI guest: OVMF is not installed (apt-get install ovmf)")
		}
		if g.HTTPBoot {
			args = append(args, "-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n", "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n")
		}
		vars := filepath.Join(l.Dir, "OVMF_VARS-"+fmt.Sprint(seq.Add(1))+".fd")
		data, err := os.ReadFile(varsFile)
		if err != nil {
			return &Result{}, err
		}
		if err := os.WriteFile(vars, data, 0o644); err != nil {
			return &Result{}, err
		}
		args = append(args, "-drive", "if=pflash,format=raw,readonly=on,file="+code, "-drive", "if=pflash,format=raw,file="+vars)
		if !g.VirtioNoROM {
			nic += ",romfile=/usr/lib/ipxe/qemu/efi-e1000.rom"
		}
	}
	if g.Xen {
		args = append(args, "-machine", "q35,kernel-irqchip=split", "-cpu", "max,-rdtscp", "-device", "intel-iommu,intremap=on")
	}
	args = append(args, "-device", nic)
	res := &Result{Start: time.Now(), Seen: map[string]time.Duration{}}
	p, err := l.Start("qemu "+g.MAC, nil, args...)
	if err != nil {
		return res, err
	}
	defer p.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	read := func() {
		data, _ := os.ReadFile(serial)
		res.Serial = string(data)
	}
	for {
		read()
		if done(res) {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-deadline.C:
			return res, fmt.Errorf("guest %s: %s passed\n%s", g.MAC, timeout, tail(res.Serial, 3000))
		case <-p.Done():
			read()
			if done(res) {
				return res, nil
			}
			return res, fmt.Errorf("guest %s: QEMU ended\n%s\n%s", g.MAC, p.Output(), tail(res.Serial, 3000))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func missing(until []string, seen map[string]time.Duration) string {
	var m []string
	for _, u := range until {
		if _, ok := seen[u]; !ok {
			m = append(m, fmt.Sprintf("%q", u))
		}
	}
	return strings.Join(m, ", ")
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// InstallBootloaders copies pxelinux.0 and the BIOS modules it needs
// (ldlinux.c32, mboot.c32, libcom32.c32, menu.c32, libutil.c32) into a
// boot tree, and ipxe.efi when it is installed.
func (a *Assets) InstallBootloaders(root string) error {
	files := map[string]string{"pxelinux.0": a.PXELinux}
	for _, m := range []string{"ldlinux.c32", "mboot.c32", "libcom32.c32", "menu.c32", "libutil.c32"} {
		files[m] = filepath.Join(a.Syslinux, m)
	}
	if a.IPXEEFI != "" {
		files["ipxe.efi"] = a.IPXEEFI
	}
	for name, src := range files {
		if err := copyFile(src, filepath.Join(root, name)); err != nil {
			return err
		}
	}
	return nil
}

// Place copies src into the boot tree at name (directories created,
// mode 0644).
func Place(root, name, src string) error { return copyFile(src, filepath.Join(root, name)) }

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}

// Event is one step of a boot, for a timeline.
type Event struct {
	At   time.Duration
	What string
}

// PxedEvents reads pxed's JSON log (--log-format json) and returns the
// steps of a boot for the client with this MAC or address, relative to
// start: DHCP offers and ACKs, files served over TFTP and HTTP, API calls.
func PxedEvents(log string, start time.Time, mac, ip string) []Event {
	var out []Event
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		ts, _ := time.Parse(time.RFC3339Nano, str(m["time"]))
		at := ts.Sub(start)
		client := str(m["client"])
		if h, _, ok := strings.Cut(client, ":"); ok && !strings.Contains(h, "[") {
			client = h
		}
		ours := (mac != "" && strings.EqualFold(str(m["mac"]), mac)) || (ip != "" && client == ip)
		if !ours {
			continue
		}
		switch msg := str(m["msg"]); msg {
		case "dhcp: OFFER":
			out = append(out, Event{at, "DHCP offer " + str(m["ip"])})
		case "dhcp: ACK":
			out = append(out, Event{at, fmt.Sprintf("DHCP ack %s, next-server %s, boot file %s", str(m["ip"]), str(m["next-server"]), str(m["file"]))})
		case "tftp transfer":
			what := fmt.Sprintf("TFTP %s (%s bytes, %s, %s)", str(m["file"]), num(m["bytes"]), dur(m["duration"]), str(m["result"]))
			if r, ok := m["retransmits"].(float64); ok && r > 0 {
				what += fmt.Sprintf(", %d retransmits", int(r))
			}
			out = append(out, Event{at, what})
		case "http request":
			out = append(out, Event{at, fmt.Sprintf("HTTP %s %s (%s, %s bytes, %s)", str(m["method"]), str(m["path"]), num(m["status"]), num(m["bytes"]), dur(m["duration"]))})
		case "api request":
			out = append(out, Event{at, fmt.Sprintf("API %s %s (%s)", str(m["method"]), str(m["path"]), num(m["status"]))})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

func str(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// FormatTimeline prints events as "  12.3s  what" lines.
func FormatTimeline(w io.Writer, events []Event) {
	for _, e := range events {
		fmt.Fprintf(w, "  %6.1fs  %s\n", e.At.Seconds(), e.What)
	}
}

// num formats a JSON number without an exponent.
func num(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return str(v)
}

// dur formats a duration slog's JSON handler wrote as nanoseconds.
func dur(v any) string {
	if f, ok := v.(float64); ok {
		return time.Duration(f).Round(time.Millisecond).String()
	}
	return str(v)
}

// WaitOutput waits until the process has printed s.
func WaitOutput(ctx context.Context, p *Proc, s string) error {
	for !strings.Contains(p.Output(), s) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not print %q: %w\n%s", p.Name, s, ctx.Err(), p.Output())
		case <-p.Done():
			return fmt.Errorf("%s exited:\n%s", p.Name, p.Output())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
