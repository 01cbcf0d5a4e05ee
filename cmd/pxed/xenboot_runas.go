package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"pxed/internal/pxeclient"
	"pxed/internal/xen"
)

// xenbootWorkerName is argv[0] of the restricted copy of pxed that does
// the network part of a --runas run (main dispatches on it).
const xenbootWorkerName = "pxed-xenboot-worker"

// The worker's descriptors (ExtraFiles start at 3): the packet socket, the
// kernel and ramdisk files, the pipe its report goes to, and a pipe that
// reaches EOF once its parent holds no socket any more.
const (
	workerPacketFD = 3 + iota
	workerKernelFD
	workerRamdiskFD
	workerReportFD
	workerGoFD
)

// maxWorkerReport bounds the report a worker sends (a command line is at
// most 8 KiB for libxl).
const maxWorkerReport = 64 << 10

// workerGrace is how long a worker may outlive the deadline, to report
// why it gave up, before it is killed.
const workerGrace = 2 * time.Second

// runRestricted runs netBoot in a copy of pxed (/proc/self/exe) started as
// --runas: that uid, its primary group (the uid when it has no passwd
// entry), no supplementary groups, no capabilities, no_new_privs. The
// kernel sets the credentials between fork and exec, so the copy never
// runs a Go instruction with more. It gets the packet socket and the two
// files as descriptors, and reports a netResult through a pipe; this
// process never reads from the network.
func runRestricted(ctx context.Context, inv *xen.Invocation, args []string, pc *pxeclient.PacketConn, kernel, ramdisk *os.File, stderr io.Writer) (netResult, error) {
	uid, gid, err := runAsIDs(inv.RunAs)
	if err != nil {
		return netResult{}, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return netResult{}, err
	}
	defer r.Close()
	goR, goW, err := os.Pipe()
	if err != nil {
		w.Close()
		return netResult{}, err
	}
	cmd := exec.Command("/proc/self/exe", args...)
	cmd.Args[0] = xenbootWorkerName
	cmd.Stderr = stderr // stdin and stdout: /dev/null (xend may read the result on stdout)
	cmd.ExtraFiles = []*os.File{pc.File(), kernel, ramdisk, w, goR}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}},
		Pdeathsig:  syscall.SIGKILL,
	}
	started, exited, done := make(chan error, 1), make(chan error, 1), make(chan struct{})
	go func() {
		// no_new_privs is a thread's attribute, inherited by what it forks:
		// set it on a thread of its own, which lives (locked, so it is never
		// reused) until the worker exits: the worker's parent-death signal
		// is tied to this thread.
		runtime.LockOSThread()
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			started <- fmt.Errorf("no_new_privs: %w", err)
			return
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
		close(done)
	}()
	err = <-started
	w.Close()
	goR.Close()
	pc.Close() // the worker has it; this process never reads from the network
	goW.Close()
	if err != nil {
		return netResult{}, fmt.Errorf("starting the network worker as uid %d gid %d (--runas needs root): %w", uid, gid, err)
	}
	go func() {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				select { // it has the same deadline: let it say why
				case <-done:
					return
				case <-time.After(workerGrace):
				}
			}
			cmd.Process.Kill()
		case <-done:
		}
	}()
	msg, rerr := io.ReadAll(io.LimitReader(r, maxWorkerReport+1))
	var nr netResult
	switch {
	case rerr != nil:
		err = fmt.Errorf("network worker: reading its report: %w", rerr)
	case len(msg) > maxWorkerReport:
		err = fmt.Errorf("network worker: report over %d bytes", maxWorkerReport)
	case len(msg) == 0:
		err = errors.New("network worker ended without a report")
	default:
		if derr := json.Unmarshal(msg, &nr); derr != nil {
			err = fmt.Errorf("network worker: bad report: %w", derr)
		} else if nr.Error != "" {
			err = errors.New(nr.Error)
		}
	}
	if werr := <-exited; err == nil && werr != nil {
		err = fmt.Errorf("network worker: %w", werr)
	}
	if err == nil {
		err = checkSizes(inv, kernel, ramdisk)
	}
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	return nr, err
}

// checkSizes checks again, in the privileged process, that the files the
// worker wrote are within their limits.
func checkSizes(inv *xen.Invocation, kernel, ramdisk *os.File) error {
	for _, c := range []struct {
		f    *os.File
		max  int64
		flag string
	}{{kernel, inv.MaxKernelSize, "max-kernel-size"}, {ramdisk, inv.MaxInitrdSize, "max-initrd-size"}} {
		fi, err := c.f.Stat()
		if err != nil {
			return err
		}
		if fi.Size() > c.max {
			return fmt.Errorf("network worker wrote %d bytes to %s, over %s", fi.Size(), c.f.Name(), sizeFlag(c.flag, c.max))
		}
	}
	return nil
}

// runAsIDs is the uid and gid a --runas value means: its primary group
// when the uid has a passwd entry, else a group of the same number (as
// pygrub does). Root's group is refused.
func runAsIDs(runas string) (uid, gid uint32, err error) {
	n, err := strconv.ParseUint(runas, 10, 32)
	if err != nil || n == 0 {
		return 0, 0, fmt.Errorf("--runas=%q: want a numeric uid other than 0", runas)
	}
	uid, gid = uint32(n), uint32(n)
	if u, err := user.LookupId(runas); err == nil {
		if g, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
			gid = uint32(g)
		}
	}
	if gid == 0 {
		return 0, 0, fmt.Errorf("--runas=%s: the user's primary group is root's (0)", runas)
	}
	return uid, gid, nil
}

// xenbootWorker is the restricted copy of pxed runRestricted starts: it
// checks it holds no privilege, runs netBoot on the descriptors it was
// given and reports the outcome.
func xenbootWorker(args []string, stderr io.Writer) int {
	report := os.NewFile(workerReportFD, "report")
	nr, err := workerRun(args, stderr)
	if err != nil {
		nr = netResult{Error: err.Error()}
	}
	b, _ := json.Marshal(nr)
	if _, werr := report.Write(b); werr != nil {
		fmt.Fprintf(stderr, "pxed-xenboot: worker: %v\n", werr)
		return 1
	}
	if err != nil {
		return 1
	}
	return 0
}

func workerRun(args []string, stderr io.Writer) (netResult, error) {
	inv, err := xen.ParseArgs(args)
	if err != nil {
		return netResult{}, err
	}
	if inv.RunAs == "" {
		return netResult{}, errors.New("worker: no --runas")
	}
	uid, err := strconv.ParseUint(inv.RunAs, 10, 32)
	if err != nil {
		return netResult{}, err
	}
	if err := checkRestricted(uint32(uid)); err != nil {
		return netResult{}, fmt.Errorf("worker: refusing to touch the network: %w", err)
	}
	// Wait until the parent has closed its copy of the packet socket: from
	// then on only this process holds it.
	goR := os.NewFile(workerGoFD, "go")
	io.Copy(io.Discard, io.LimitReader(goR, 1))
	goR.Close()
	pc, err := pxeclient.NewPacketConn(os.NewFile(workerPacketFD, "packet"))
	if err != nil {
		return netResult{}, err
	}
	defer pc.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, inv.Timeout)
	defer cancel()
	kernel, ramdisk := os.NewFile(workerKernelFD, "kernel"), os.NewFile(workerRamdiskFD, "ramdisk")
	defer kernel.Close()
	defer ramdisk.Close()
	return netBoot(ctx, inv, pc, kernel, ramdisk, xenbootLog(inv, stderr))
}

// checkRestricted checks, from /proc, that every thread of this process
// runs as uid (real, effective, saved, filesystem), with one group that is
// not root's, no supplementary groups, no capabilities (inheritable,
// permitted, effective, ambient) and no_new_privs.
func checkRestricted(uid uint32) error {
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) == 0 {
		return fmt.Errorf("no /proc/self/task: %v", err)
	}
	u := strconv.FormatUint(uint64(uid), 10)
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			return err
		}
		st := map[string][]string{}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				st[k] = strings.Fields(v)
			}
		}
		check := func(key string, ok func(v []string) bool) error {
			if v, found := st[key]; !found || !ok(v) {
				return fmt.Errorf("%s: %s %q", t, key, st[key])
			}
			return nil
		}
		all := func(want string) func([]string) bool {
			return func(v []string) bool {
				for _, x := range v {
					if x != want {
						return false
					}
				}
				return len(v) == 4
			}
		}
		zero := func(v []string) bool {
			n, err := strconv.ParseUint(strings.Join(v, ""), 16, 64)
			return len(v) == 1 && err == nil && n == 0
		}
		gid := ""
		if g := st["Gid"]; len(g) > 0 {
			gid = g[0]
		}
		for _, c := range []error{
			check("Uid", all(u)),
			check("Gid", func(v []string) bool { return gid != "0" && all(gid)(v) }),
			check("Groups", func(v []string) bool { return len(v) == 0 }),
			check("CapInh", zero), check("CapPrm", zero), check("CapEff", zero), check("CapAmb", zero),
			check("NoNewPrivs", func(v []string) bool { return len(v) == 1 && v[0] == "1" }),
		} {
			if c != nil {
				return c
			}
		}
	}
	return nil
}
