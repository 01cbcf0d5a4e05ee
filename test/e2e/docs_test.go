package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"pxed/internal/testutil"
)

// docCommand is one command line of a shell block in the documentation.
type docCommand struct {
	file string
	line int
	text string   // as written, continuations joined, comment and redirection cut
	args []string // words
}

func (c docCommand) String() string { return fmt.Sprintf("%s:%d: %s", c.file, c.line, c.text) }

// docCommands reads every fenced code block of README.md and docs/*.md and
// returns its command lines: "$ " prompts and sudo removed, backslash
// continuations joined, "# comments", "> redirections" and "&& more" cut.
// Every line of a sh block is a command but output after a "$ " prompt
// line; in other blocks (unlabelled ones hold output) only lines that
// start with a known program are.
func docCommands(t *testing.T, root string) []docCommand {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files = append([]string{filepath.Join(root, "README.md")}, files...)
	var out []docCommand
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		in, shell, prompt := false, false, false
		var cont *docCommand
		for i, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "```") {
				in, prompt, cont = !in, false, nil
				shell = in && l == "```sh"
				continue
			}
			if !in {
				continue
			}
			if cont != nil {
				cont.text += " " + strings.TrimSpace(strings.TrimSuffix(l, "\\"))
				if !strings.HasSuffix(l, "\\") {
					out = append(out, *cont)
					cont = nil
				}
				continue
			}
			s := strings.TrimSpace(l)
			if strings.HasPrefix(s, "$ ") {
				s, prompt = s[2:], true
			} else if prompt {
				continue // output of the command above
			}
			s = strings.TrimPrefix(s, "sudo ")
			if s == "" || strings.HasPrefix(s, "#") || (!shell && !docProgram.MatchString(s)) {
				continue
			}
			c := docCommand{file: rel, line: i + 1, text: strings.TrimSpace(strings.TrimSuffix(s, "\\"))}
			if strings.HasSuffix(s, "\\") {
				cont = &c
				continue
			}
			out = append(out, c)
		}
	}
	for i := range out {
		s := out[i].text
		for _, cut := range []string{"  #", " # ", " && ", " > "} {
			if j := strings.Index(s, cut); j >= 0 {
				s = s[:j]
			}
		}
		out[i].text = strings.TrimSpace(s)
		out[i].args = strings.Fields(out[i].text)
	}
	return out
}

// docProgram is what a command line of the documentation starts with.
var docProgram = regexp.MustCompile(`^(pxed|go|curl|install|ln|useradd|systemctl|packaging/|dpkg|bench/|PXED_E2E=1|xl|setcap) ?`)

// elsewhere says, for the command lines this test does not run, which test
// or CI step does: a new command in the docs must be run here or listed.
var elsewhere = []struct{ prefix, by string }{
	{"go test", ".ci/run runs the whole suite; docs/development.md's fuzz targets are the suite's Fuzz* seeds"},
	{"PXED_E2E=1 go test", ".ci/run"},
	{"go build -o /usr/local/sbin/pxed", "every e2e test builds cmd/pxed (pxed())"},
	{"go build -ldflags", "TestE2EDebianPackage (build-deb.sh stamps its version so; pxed version checked)"},
	{"pxed lab", "TestE2EPxedLab runs pxed lab"},
	{"go run ./cmd/pxed lab", "TestE2EPxedLab runs pxed lab"},
	{"packaging/build-deb.sh", "TestE2EDebianPackage"},
	{"dpkg -i", "TestE2EDebianPackage"},
	{"install ", "TestE2EDebianPackage installs the same files through the package"},
	{"useradd", "TestE2EDebianPackage (postinst creates the user)"},
	{"systemctl", "TestE2EDebianPackage and TestSystemdUnit (no systemd PID 1 in CI)"},
	{"ln -s pxed", "TestE2EDebianPackage (the package ships the pxed-xenboot link)"},
	{"setcap", "TestE2EUnprivileged (the same capability, through setpriv)"},
	{"bench/", "bench/RESULTS.md records each run with its command"},
	{"xl create", "no Xen here: TestE2EXenBootloader* run the bootloader xl would"},
	{"pxed serve --store etcd://", "TestE2EClusterTwoServers (two pxed on a 3-member etcd; the same flags)"},
	{"pxed store migrate", "TestStoreMigrate (cmd/pxed) migrates into a real etcd"},
	{"pxed inventory push", "TestClusterInventoryAndStates (cmd/pxed) pushes to a real 3-member etcd and serves from two pxed"},
	{"curl -fsS -X POST", "a kickstart template line: TestE2EInventoryNetbootOnce posts the installed callback"},
	{"cp /usr/lib/shim/shimx64.efi.signed", "TestE2EBootSecureBoot serves the same files (lab.PrepareSecureBoot)"},
	{"cp /usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed", "TestE2EBootSecureBoot serves the same files (lab.PrepareSecureBoot)"},
	{"cp /usr/lib/shim/shimaa64.efi.signed", "TestE2EBootARM64 serves the same files (lab.PrepareARM64)"},
	{"cp /usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed", "TestE2EBootARM64 serves the same files (lab.PrepareARM64)"},
}

// Every command of README.md and docs/ is run, as a user would, here or by
// the test its line names: the quickstart's server and its curl commands,
// each pxed command on the example files (paths of a real installation
// mapped onto examples/; an interface a command names exists, on the
// example subnet, in a namespace of its own), each server for real.
func TestE2EDocCommands(t *testing.T) {
	need(t, "curl")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmds := docCommands(t, root)
	if len(cmds) < 20 {
		t.Fatalf("found only %d command lines in README.md and docs/: the reader is broken", len(cmds))
	}
	// A copy of the repository's examples, so the quickstart's state
	// directory (examples/.pxed-state) is not written into the tree.
	work := t.TempDir()
	if out, err := exec.Command("cp", "-a", filepath.Join(root, "examples"), work).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	state := t.TempDir()
	bin := pxed(t)
	nsSeq := 0
	// newNS makes a namespace for one server, with lo up and, when iface
	// is not empty, an interface of that name on the example subnet.
	newNS := func(iface string) string {
		nsSeq++
		ns := fmt.Sprintf("pxdoc-%d-%d", os.Getpid()%100000, nsSeq)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		cmds := [][]string{{"netns", "add", ns}, {"-n", ns, "link", "set", "lo", "up"}}
		if iface != "" && iface != "lo" {
			cmds = append(cmds, []string{"-n", ns, "link", "add", iface, "type", "veth", "peer", "name", "peer0"},
				[]string{"-n", ns, "addr", "add", "192.0.2.166/24", "dev", iface},
				[]string{"-n", ns, "link", "set", iface, "up"}, []string{"-n", ns, "link", "set", "peer0", "up"})
		}
		for _, c := range cmds {
			if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
				t.Fatalf("ip %q: %v %s", c, err, out)
			}
		}
		return ns
	}
	// mapArgs maps a documented command onto the copy: the paths of a
	// real installation onto examples/ and the state directory.
	mapArgs := func(words []string) []string {
		args := slices.Clone(words)
		if args[0] == "go" && len(args) > 2 && args[1] == "run" && args[2] == "./cmd/pxed" {
			args = append([]string{"pxed"}, args[3:]...)
		}
		for i, a := range args {
			a = strings.NewReplacer(
				"/etc/pxed/pxed.yaml", "examples/pxed.yaml",
				"/etc/pxed/inventory.yaml", "examples/inventory.yaml",
				"/etc/dhcp/dhcpd.conf", "examples/dhcpd.conf",
				"/etc/dhcpd.conf", "examples/dhcpd.conf",
				"/var/lib/pxed", state,
				"/OVS/running_pool/pxe/", work+"/",
			).Replace(a)
			if a == "/tftpboot" {
				a = "examples/tftpboot"
			}
			args[i] = a
		}
		if args[0] == "pxed" {
			args[0] = bin
		}
		return args
	}
	// startServe runs a documented serve line in namespace ns until its
	// control socket answers; the returned func stops it.
	startServe := func(c docCommand, ns, sock string) func() {
		args := mapArgs(c.args)
		srv := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
		srv.Dir = work
		log := &testutil.SyncBuffer{}
		srv.Stdout, srv.Stderr = log, log
		srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		stopped := false
		stop := func() {
			if !stopped {
				stopped = true
				syscall.Kill(-srv.Process.Pid, syscall.SIGTERM)
				srv.Wait()
			}
		}
		t.Cleanup(func() {
			syscall.Kill(-srv.Process.Pid, syscall.SIGKILL)
			stop()
			if t.Failed() {
				t.Logf("%s: server log:\n%s", c, log.String())
			}
		})
		deadline := time.Now().Add(20 * time.Second)
		for {
			if conn, err := net.Dial("unix", sock); err == nil {
				conn.Close()
				return stop
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the server did not come up:\n%s", c, log.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// The quickstart's server, first: the curl lines and `pxed host`,
	// `pxed events` and `pxed explain` run against it.
	var serveCmd *docCommand
	for i, c := range cmds {
		if c.text == "go run ./cmd/pxed serve --config examples/pxed.yaml" {
			serveCmd = &cmds[i]
		}
	}
	if serveCmd == nil {
		t.Fatal("README.md's quickstart no longer starts `go run ./cmd/pxed serve --config examples/pxed.yaml`; update this test with it")
	}
	ns := newNS("")
	startServe(*serveCmd, ns, filepath.Join(work, "examples", ".pxed-state", "control.sock"))

	ran := 0
	for _, c := range cmds {
		if c.file == serveCmd.file && c.line == serveCmd.line {
			continue
		}
		if by := elsewhereFor(c.text); by != "" {
			t.Logf("%s: run by %s", c, by)
			continue
		}
		verb := ""
		switch {
		case c.args[0] == "curl":
			verb = "curl"
		case c.args[0] == "pxed":
			verb = c.args[1]
		case len(c.args) > 3 && c.args[0] == "go" && c.args[2] == "./cmd/pxed":
			verb = c.args[3]
		default:
			t.Errorf("%s: neither run by this test nor listed in elsewhere", c)
			continue
		}
		if verb == "serve" {
			// Each other documented server runs for real, in a namespace
			// of its own with the interface it names on the example
			// subnet, and stops; the commands after it read its state
			// (pxed leases after the DHCP server).
			iface := ""
			if i := slices.Index(c.args, "--interface"); i > 0 && i+1 < len(c.args) {
				iface = c.args[i+1]
			}
			if !slices.Contains(c.args, "--state-dir") {
				c.args = append(c.args, "--state-dir", "/var/lib/pxed")
			}
			startServe(c, newNS(iface), filepath.Join(state, "control.sock"))()
			ran++
			continue
		}
		if verb == "curl" {
			c.args = slices.Insert(c.args, 1, "-fsS") // an HTTP error or a TFTP "not found" fails
		}
		if verb == "host" || verb == "events" {
			// Through the quickstart's server (its state directory).
			c.args = append(c.args, "--config", "examples/pxed.yaml")
		}
		in := ns
		if i := slices.Index(c.args, "--interface"); i > 0 && i+1 < len(c.args) {
			in = newNS(c.args[i+1]) // pxed check looks the interface up
		}
		cmd := exec.Command("ip", append([]string{"netns", "exec", in}, mapArgs(c.args)...)...)
		cmd.Dir = work
		b, err := cmd.CombinedOutput()
		out := string(b)
		if verb == "explain" && err != nil && strings.Contains(out, "problem(s) found") {
			// Exit status 1 is explain's answer "found a problem" (the
			// example tree has no pxelinux.0, a syslinux binary), not a
			// failure to run.
			err = nil
		}
		if err != nil || (verb == "curl" && len(out) == 0) {
			t.Errorf("%s: %v\n%s", c, err, out)
			continue
		}
		ran++
	}
	t.Logf("ran %d documented commands", ran)
}

func elsewhereFor(cmd string) string {
	for _, e := range elsewhere {
		if strings.HasPrefix(cmd, e.prefix) {
			return e.by
		}
	}
	return ""
}
