package main

import (
	"bytes"
	"flag"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"pxed/internal/config"
)

func loadArgs(t *testing.T, args ...string) (*config.Config, error) {
	t.Helper()
	return newServeFlags(io.Discard).load(args)
}

func TestFlagsOverrideConfigFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pxed.yaml")
	writeFile(t, file, []byte(`state-dir: /var/lib/pxed-file
log:
  level: warn
  format: json
tftp:
  root: /srv/tftp-file
  addr: 127.0.0.1:6969
  max-blksize: 1468
  retries: 7
  timeout: 3s
  mtu-clamp: false
http:
  addr: 127.0.0.1:8081
dhcp:
  interfaces: [eth9]
`))

	// No flags but --config: the file's values.
	c, err := loadArgs(t, "--config", file)
	if err != nil {
		t.Fatal(err)
	}
	if c.TFTP.Addr != "127.0.0.1:6969" || c.HTTP.Addr != "127.0.0.1:8081" || c.TFTP.MaxBlksize != 1468 ||
		c.Log.Level != "warn" || c.TFTP.MTUClamp || c.TFTP.Timeout != 3*time.Second {
		t.Errorf("--config alone: %+v", c)
	}

	c, err = loadArgs(t, "--config", file,
		"--tftp-addr", "127.0.0.1:1069",
		"--log-level", "debug",
		"--tftp-retries", "5", // the default value, set explicitly: it still overrides
		"--tftp-mtu-clamp",
		"--shutdown-grace", "9s",
		"--http-max-conns-per-ip", "8",
		"--interface", "eth0", "--interface", "eth1",
	)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		// Set by flags.
		{"tftp.addr", c.TFTP.Addr, "127.0.0.1:1069"},
		{"log.level", c.Log.Level, "debug"},
		{"tftp.retries", c.TFTP.Retries, 5},
		{"tftp.mtu-clamp", c.TFTP.MTUClamp, true},
		{"shutdown-grace", c.ShutdownGrace, 9 * time.Second},
		{"http.max-conns-per-ip", c.HTTP.MaxConnsPerIP, 8},
		{"dhcp.interfaces", strings.Join(c.DHCP.Interfaces, ","), "eth0,eth1"},
		// Left alone: the file's values, not the flags' defaults.
		{"state-dir", c.StateDir, "/var/lib/pxed-file"},
		{"log.format", c.Log.Format, "json"},
		{"tftp.root", c.TFTP.Root, "/srv/tftp-file"},
		{"tftp.max-blksize", c.TFTP.MaxBlksize, 1468},
		{"tftp.timeout", c.TFTP.Timeout, 3 * time.Second},
		{"http.addr", c.HTTP.Addr, "127.0.0.1:8081"},
		// In neither: the defaults.
		{"tftp.max-windowsize", c.TFTP.MaxWindowsize, config.Default().TFTP.MaxWindowsize},
		{"tftp.single-port", c.TFTP.SinglePort, false},
		{"http.max-conns", c.HTTP.MaxConns, 1024},
		{"http.min-rate", c.HTTP.MinRate, 4096},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}

	// An empty string flag overrides too: it turns the server off.
	c, err = loadArgs(t, "--config", file, "--http-addr", "")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != "" || c.TFTP.Addr != "127.0.0.1:6969" {
		t.Errorf("--http-addr \"\": http %q tftp %q", c.HTTP.Addr, c.TFTP.Addr)
	}
}

func TestFlagsWithoutConfigFile(t *testing.T) {
	c, err := loadArgs(t, "--tftp-root", "/boot-tree", "--tftp-single-port", "--tftp-max-blksize=512")
	if err != nil {
		t.Fatal(err)
	}
	d := config.Default()
	if c.TFTP.Root != "/boot-tree" || !c.TFTP.SinglePort || c.TFTP.MaxBlksize != 512 {
		t.Errorf("flags not applied: %+v", c.TFTP)
	}
	if c.TFTP.Addr != d.TFTP.Addr || c.HTTP.Addr != d.HTTP.Addr || c.StateDir != d.StateDir {
		t.Errorf("defaults not kept: %+v", c)
	}
}

func TestBadFlagValueNamesKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pxed.yaml")
	writeFile(t, file, []byte("tftp:\n  max-blksize: 1468\n"))
	for _, args := range [][]string{
		{"--tftp-max-blksize", "5"},
		{"--config", file, "--tftp-max-blksize", "5"},
	} {
		_, err := loadArgs(t, args...)
		if err == nil {
			t.Errorf("%q accepted", args)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "tftp.max-blksize") {
			t.Errorf("%q: error %q does not name tftp.max-blksize", args, msg)
		}
		// The flag, not the file, is to blame.
		if strings.Contains(msg, file) {
			t.Errorf("%q: error %q points into the config file", args, msg)
		}
	}
}

func TestBadArgs(t *testing.T) {
	for _, args := range [][]string{
		{"--no-such-flag"},
		{"--tftp-max-blksize", "big"},
		{"--tftp-timeout", "5"}, // a duration needs a unit
		{"extra"},
		{"--config", filepath.Join(t.TempDir(), "missing.yaml")},
	} {
		if _, err := loadArgs(t, args...); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

// Flags stand before, between or after a command's words, and "--" ends
// them, for every subcommand alike.
func TestParseArgsInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  []string
		json bool
		dir  string
	}{
		{[]string{"--json", "list"}, []string{"list"}, true, ""},
		{[]string{"list", "--json"}, []string{"list"}, true, ""},
		{[]string{"--state-dir", "/s", "install", "--json", "web1"}, []string{"install", "web1"}, true, "/s"},
		{[]string{"install", "--", "--json"}, []string{"install", "--json"}, false, ""},
		{[]string{"local", "web1", "--state-dir=/x"}, []string{"local", "web1"}, false, "/x"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		asJSON := fs.Bool("json", false, "")
		dir := fs.String("state-dir", "", "")
		pos, err := parseArgs(fs, tc.args)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if !slices.Equal(pos, tc.pos) || *asJSON != tc.json || *dir != tc.dir {
			t.Errorf("%q: positional %q json %v state-dir %q, want %q %v %q", tc.args, pos, *asJSON, *dir, tc.pos, tc.json, tc.dir)
		}
	}
}

// `pxed host --json list` (a flag before the verb) works as
// `pxed host list --json` does, on the same state.
func TestHostFlagBeforeVerb(t *testing.T) {
	root := t.TempDir()
	c := testConfig(t, root)
	c.Inventory = testInventory(t, t.TempDir(), "127.0.0.1")
	common := []string{"--state-dir", c.StateDir, "--inventory", c.Inventory}
	var outs []string
	for _, args := range [][]string{{"--json", "list"}, {"list", "--json"}, append(append([]string{"--json"}, common...), "list")} {
		var out, errb bytes.Buffer
		if rc := cmdHost(append(args, common...), &out, &errb); rc != 0 {
			t.Fatalf("pxed host %q: exit %d: %s", args, rc, errb.String())
		}
		if !strings.HasPrefix(strings.TrimSpace(out.String()), "[") || !strings.Contains(out.String(), `"web1"`) {
			t.Fatalf("pxed host %q: not the JSON host list:\n%s", args, out.String())
		}
		outs = append(outs, out.String())
	}
	if outs[0] != outs[1] || outs[1] != outs[2] {
		t.Errorf("flag position changed the output:\n%s\n%s\n%s", outs[0], outs[1], outs[2])
	}
}
