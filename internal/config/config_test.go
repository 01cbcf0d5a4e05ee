package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestDefaultsValidate(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	// A few values the rest of pxed and its docs rely on.
	if c.TFTP.Addr != ":69" || c.HTTP.Addr != ":8080" || c.TFTP.Root != "/srv/tftp" {
		t.Errorf("Default() addresses/root = %q %q %q", c.TFTP.Addr, c.HTTP.Addr, c.TFTP.Root)
	}
	if c.TFTP.MaxBlksize != 65464 || !c.TFTP.MTUClamp || c.TFTP.Timeout != time.Second {
		t.Errorf("Default() TFTP = %+v", c.TFTP)
	}
	// Default returns a fresh value each time.
	c.TFTP.Addr = "changed"
	if Default().TFTP.Addr != ":69" {
		t.Error("Default() shares state between calls")
	}
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "pxed.yaml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestLoadOverridesSomeKeys(t *testing.T) {
	file := writeConfig(t, `# pxed test config
state-dir: /tmp/pxed-state
shutdown-grace: 30s
log:
  level: debug
tftp:
  root: /tftpboot
  addr: 127.0.0.1:6969
  single-port: true
  max-blksize: 1468
  mtu-clamp: false
  timeout: 2500ms
  retries: 9
http:
  addr: ""
dhcp:
  dhcpd-conf: /etc/dhcp/dhcpd.conf
  interfaces: [eth0, eth1]
`)
	c, err := Load(file)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Default()
	want.StateDir = "/tmp/pxed-state"
	want.ShutdownGrace = 30 * time.Second
	want.Log.Level = "debug"
	want.TFTP.Root = "/tftpboot"
	want.TFTP.Addr = "127.0.0.1:6969"
	want.TFTP.SinglePort = true
	want.TFTP.MaxBlksize = 1468
	want.TFTP.MTUClamp = false
	want.TFTP.Timeout = 2500 * time.Millisecond
	want.TFTP.Retries = 9
	want.HTTP.Addr = ""
	want.DHCP.DHCPDConf = "/etc/dhcp/dhcpd.conf"
	want.DHCP.Interfaces = []string{"eth0", "eth1"}
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", name, got, want)
		}
	}
	check("StateDir", c.StateDir, want.StateDir)
	check("ShutdownGrace", c.ShutdownGrace, want.ShutdownGrace)
	check("Log", c.Log, want.Log) // format stays the default
	check("TFTP", c.TFTP, want.TFTP)
	check("HTTP", c.HTTP, want.HTTP)
	check("DHCP", c.DHCP, want.DHCP)
	if err := c.Validate(); err != nil {
		t.Errorf("Validate after Load: %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file = %v, want a not-exist error", err)
	}
}

func TestEmptyFileIsDefaults(t *testing.T) {
	for _, text := range []string{"", "\n\n", "# only a comment\n", "---\n", "  \n# x\n"} {
		c, err := Load(writeConfig(t, text))
		if err != nil {
			t.Errorf("Load(%q): %v", text, err)
			continue
		}
		d := Default()
		if c.StateDir != d.StateDir || c.ShutdownGrace != d.ShutdownGrace || c.Log != d.Log ||
			!reflect.DeepEqual(c.TFTP, d.TFTP) || c.HTTP != d.HTTP || !reflect.DeepEqual(c.DHCP, d.DHCP) {
			t.Errorf("Load(%q) = %+v, want the defaults", text, c)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("Load(%q).Validate() = %v", text, err)
		}
	}
}

// errorsOf returns the individual *Error values in err, which must be an
// Errors list.
func errorsOf(t *testing.T, err error) Errors {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %v (%T) is not a config.Errors", err, err)
	}
	if len(es) == 0 {
		t.Fatalf("empty Errors list")
	}
	return es
}

func TestUnknownKey(t *testing.T) {
	tests := []struct {
		text string
		line int
		key  string
	}{
		{"tftp:\n  addr: 127.0.0.1:69\n  blocksize: 1468\n", 3, "blocksize"},
		{"log:\n  level: info\nverbose: true\n", 3, "verbose"},
		{"http:\n  addr: :80\n  tls: true\n", 3, "tls"},
		{"tftp-root: /srv/tftp\n", 1, "tftp-root"}, // the flag name, not the key
	}
	for _, tt := range tests {
		file := writeConfig(t, tt.text)
		_, err := Load(file)
		if err == nil {
			t.Errorf("Load(%q) accepted an unknown key", tt.text)
			continue
		}
		msg := err.Error()
		pos := file + ":" + itoa(tt.line) + ":"
		if !strings.HasPrefix(msg, pos) {
			t.Errorf("Load(%q) = %q, want it to start with %q", tt.text, msg, pos)
		}
		if !strings.Contains(msg, tt.key) {
			t.Errorf("Load(%q) = %q does not name %q", tt.text, msg, tt.key)
		}
		// The keys that are known there, and no Go type names.
		if !strings.Contains(msg, "(known: ") || strings.Contains(msg, "config.") || strings.Contains(msg, "not found in type") {
			t.Errorf("Load(%q) = %q: want the known keys listed and no Go type", tt.text, msg)
		}
		es := errorsOf(t, err)
		if es[0].File != file || es[0].Line != tt.line {
			t.Errorf("Load(%q): error at %s:%d, want %s:%d", tt.text, es[0].File, es[0].Line, file, tt.line)
		}
	}
}

func TestWrongType(t *testing.T) {
	tests := []struct {
		text string
		line int
		want string // in the message
	}{
		{"tftp:\n  retries: many\n", 2, "many"},
		{"tftp:\n  max-blksize: 1468 bytes\n", 2, "1468 bytes"},
		{"tftp:\n  single-port: sometimes\n", 2, "sometimes"},
		{"tftp:\n  timeout: 5\n", 2, `tftp.timeout: "5" is not a duration: write it with a unit, like 5s`}, // a bare number is not a duration
		{"tftp:\n  timeout: fast\n", 2, "fast"},
		{"state-dir: /x\nshutdown-grace: [1]\n", 2, "!!seq"},
		{"dhcp:\n  interfaces: eth0\n", 2, "eth0"},
		{"tftp: /srv/tftp\n", 1, "/srv/tftp"},
		{"- serve\n", 1, ""},
	}
	for _, tt := range tests {
		file := writeConfig(t, tt.text)
		_, err := Load(file)
		if err == nil {
			t.Errorf("Load(%q) accepted a value of the wrong type", tt.text)
			continue
		}
		msg := err.Error()
		if pos := file + ":" + itoa(tt.line) + ":"; !strings.HasPrefix(msg, pos) {
			t.Errorf("Load(%q) = %q, want it to start with %q", tt.text, msg, pos)
		}
		if !strings.Contains(msg, tt.want) {
			t.Errorf("Load(%q) = %q does not mention %q", tt.text, msg, tt.want)
		}
	}
}

func TestSyntaxError(t *testing.T) {
	for _, text := range []string{
		"tftp:\n  addr: [\n",
		"tftp:\n  addr: a\n  addr: b\n", // duplicate key
		"tftp:\n\taddr: x\n",            // tab indentation
	} {
		file := writeConfig(t, text)
		_, err := Load(file)
		if err == nil {
			t.Errorf("Load(%q) succeeded", text)
			continue
		}
		if !regexp.MustCompile(`^` + regexp.QuoteMeta(file) + `:\d+:\d+: `).MatchString(err.Error()) {
			t.Errorf("Load(%q) = %q, want a file:line:col position", text, err)
		}
	}
}

// lineCol finds the line and column (1-based) of the first occurrence of
// value after the key "key:" in text.
func lineCol(t *testing.T, text, key, value string) (int, int) {
	t.Helper()
	for i, line := range strings.Split(text, "\n") {
		k := strings.Index(line, key+":")
		if k < 0 {
			continue
		}
		v := strings.Index(line[k:], value)
		if v < 0 {
			continue
		}
		return i + 1, k + v + 1
	}
	t.Fatalf("%s: %s not in %q", key, value, text)
	return 0, 0
}

func TestInvalidValues(t *testing.T) {
	tests := []struct {
		key, yamlKey, value string
		text                string
	}{
		{"tftp.addr", "addr", "nope", "tftp:\n  root: /srv/tftp\n  addr: nope\n"},
		{"tftp.addr", "addr", "127.0.0.1:99999", "tftp:\n  addr: 127.0.0.1:99999\n"},
		{"tftp.addr", "addr", "localhost:69", "tftp:\n  addr: localhost:69\n"},
		{"http.addr", "addr", "0.0.0.0:http", "http:\n    addr: 0.0.0.0:http\n"},
		{"http.max-conns", "max-conns", "0", "http:\n  max-conns: 0\n"},
		{"http.max-conns-per-ip", "max-conns-per-ip", "2000", "http:\n  max-conns-per-ip: 2000\n"},
		{"http.min-rate", "min-rate", "0", "http:\n  min-rate: 0\n"},
		{"tftp.max-blksize", "max-blksize", "70000", "log:\n  format: json\ntftp:\n  max-blksize: 70000\n"},
		{"tftp.max-blksize", "max-blksize", "7", "tftp: {max-blksize: 7}\n"},
		{"tftp.max-windowsize", "max-windowsize", "0", "tftp:\n  max-windowsize: 0\n"},
		{"tftp.timeout", "timeout", "5m", "tftp:\n  timeout: 5m\n"},
		{"tftp.timeout", "timeout", "1ms", "tftp:\n  timeout: 1ms\n"},
		{"tftp.min-timeout", "min-timeout", "5ms", "tftp:\n  min-timeout: 5ms\n"},
		{"tftp.retries", "retries", "0", "tftp:\n  retries: 0\n"},
		{"tftp.max-transfers", "max-transfers", "-1", "tftp:\n  max-transfers: -1\n"},
		{"tftp.io-workers", "io-workers", "-1", "tftp:\n  io-workers: -1\n"},
		{"tftp.root", "root", `""`, "tftp:\n  root: \"\"\n"},
		{"log.level", "level", "loud", "log:\n  level: loud\n"},
		{"log.format", "format", "xml", "log:\n  format: xml\n"},
		{"state-dir", "state-dir", `""`, "state-dir: \"\"\n"},
		{"shutdown-grace", "shutdown-grace", "-1s", "shutdown-grace: -1s\n"},
		{"dhcp.interfaces[1]", "interfaces", "[", "dhcp:\n  interfaces: [eth0, \"\"]\n"},
	}
	for _, tt := range tests {
		file := writeConfig(t, tt.text)
		_, err := Load(file)
		if err == nil {
			t.Errorf("Load(%q) accepted an invalid %s", tt.text, tt.key)
			continue
		}
		es := errorsOf(t, err)
		if len(es) != 1 {
			t.Errorf("Load(%q) = %d errors, want 1: %v", tt.text, len(es), err)
		}
		line, col := lineCol(t, tt.text, tt.yamlKey, tt.value)
		wantPrefix := file + ":" + itoa(line) + ":" + itoa(col) + ": " + tt.key + ": "
		if msg := es[0].Error(); !strings.HasPrefix(msg, wantPrefix) {
			t.Errorf("Load(%q) = %q, want it to start with %q", tt.text, msg, wantPrefix)
		}
	}
}

func TestSeveralErrorsReportedTogether(t *testing.T) {
	text := "log:\n  level: loud\ntftp:\n  addr: nope\n  max-blksize: 70000\n"
	file := writeConfig(t, text)
	_, err := Load(file)
	es := errorsOf(t, err)
	if len(es) != 3 {
		t.Fatalf("got %d errors, want 3: %v", len(es), err)
	}
	want := []string{
		file + ":2:10: log.level: ",
		file + ":4:9: tftp.addr: ",
		file + ":5:16: tftp.max-blksize: ",
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("Error() has %d lines, want %d:\n%s", len(lines), len(want), err)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d = %q, want prefix %q", i+1, lines[i], want[i])
		}
	}
}

func TestValidAddresses(t *testing.T) {
	for _, addr := range []string{"", ":69", "0.0.0.0:69", "127.0.0.1:0", "[::]:69", "[::1]:6969", "[::ffff:10.0.0.1]:69"} {
		c := Default()
		c.TFTP.Addr = addr
		c.HTTP.Addr = addr
		if err := c.Validate(); err != nil {
			t.Errorf("addr %q: %v", addr, err)
		}
	}
	// Both servers off: the root need not be set.
	c := Default()
	c.TFTP.Addr, c.HTTP.Addr, c.TFTP.Root = "", "", ""
	if err := c.Validate(); err != nil {
		t.Errorf("both off, no root: %v", err)
	}
}

func TestSetByFlagUnpositioned(t *testing.T) {
	text := "tftp:\n  addr: 127.0.0.1:69\n  max-blksize: 1468\n"
	file := writeConfig(t, text)
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}

	// A bad value in the file is positioned ...
	c.TFTP.MaxBlksize = 70000
	es := errorsOf(t, c.Validate())
	if es[0].File != file || es[0].Line != 3 {
		t.Errorf("file value: error %q, want it at %s:3", es[0], file)
	}

	// ... but once a flag set it, the file is not to blame.
	c.SetByFlag("tftp.max-blksize")
	es = errorsOf(t, c.Validate())
	if len(es) != 1 {
		t.Fatalf("got %d errors, want 1: %v", len(es), es)
	}
	e := es[0]
	if e.File != "" || e.Line != 0 || e.Column != 0 {
		t.Errorf("flag value: error at %q:%d:%d, want no position", e.File, e.Line, e.Column)
	}
	if msg := e.Error(); !strings.HasPrefix(msg, "tftp.max-blksize: ") || strings.Contains(msg, file) {
		t.Errorf("flag value: error %q, want it to start with the key and not name the file", msg)
	}

	// A flag for a key the file does not have.
	c = Default()
	c.Log.Level = "loud"
	c.SetByFlag("log.level")
	es = errorsOf(t, c.Validate())
	if msg := es[0].Error(); !strings.HasPrefix(msg, "log.level: ") {
		t.Errorf("defaults + flag: error %q, want it to start with the key", msg)
	}

	// SetByFlag on one key leaves the others positioned.
	c, err = Parse("x.yaml", []byte("log:\n  level: info\ntftp:\n  addr: 127.0.0.1:69\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.Log.Level = "loud"
	c.TFTP.Addr = "nope"
	c.SetByFlag("log.level")
	es = errorsOf(t, c.Validate())
	if len(es) != 2 {
		t.Fatalf("got %d errors, want 2: %v", len(es), es)
	}
	if got := es[0].Error(); !strings.HasPrefix(got, "log.level: ") {
		t.Errorf("flag error = %q, want unpositioned", got)
	}
	if got := es[1].Error(); !strings.HasPrefix(got, "x.yaml:4:9: tftp.addr: ") {
		t.Errorf("file error = %q, want x.yaml:4:9", got)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{Msg: "m"}, "m"},
		{Error{File: "f.yaml", Msg: "m"}, "f.yaml: m"},
		{Error{File: "f.yaml", Line: 3, Column: 7, Msg: "m"}, "f.yaml:3:7: m"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q, want %q", tt.e, got, tt.want)
		}
	}
	es := Errors{{Msg: "a"}, {File: "f", Line: 1, Column: 2, Msg: "b"}}
	if got := es.Error(); got != "a\nf:1:2: b" {
		t.Errorf("Errors.Error() = %q", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestOptionErrorsAtLoad: a bad option value or definition in the inline
// DHCP model fails Load itself, at the option's key (or the definition),
// in every scope that carries options.
func TestOptionErrorsAtLoad(t *testing.T) {
	for _, tt := range []struct {
		name, text, want string // want: the error after "FILE:"
	}{
		{"global", "dhcp:\n  options:\n    routers: 300.1.2.3\n",
			`3:5: global scope: option routers: "300.1.2.3" is not an IPv4 address`},
		{"subnet", "dhcp:\n  subnets:\n    - network: 192.0.2.0/24\n      options:\n        domain-name: example.com\n        routers: \"not-an-ip\"\n",
			`6:9: subnet 192.0.2.0/24: option routers: "not-an-ip" is not an IPv4 address (pxed does not resolve host names here; write the address)`},
		{"pool", "dhcp:\n  subnets:\n    - network: 192.0.2.0/24\n      pools:\n        - ranges: [{start: 192.0.2.10, end: 192.0.2.20}]\n          options: {interface-mtu: 70000}\n",
			"6:21: pool 1 of subnet 192.0.2.0/24: option interface-mtu: 70000 is outside 0..65535 (unsigned integer 16)"},
		{"host", "dhcp:\n  hosts:\n    - name: pvm\n      mac: 00:16:3e:72:79:e3\n      options:\n        ip-forwarding: maybe\n",
			`6:9: host pvm: option ip-forwarding: "maybe" is not a boolean: expected true, false, on or off`},
		{"unknown option", "dhcp:\n  options:\n    no-such-option: 1\n",
			`3:5: global scope: unknown option "no-such-option" (a site option must be declared under dhcp.option-definitions)`},
		{"site option", "dhcp:\n  option-definitions:\n    - {name: arch, code: 93, type: unsigned integer 16}\n  hosts:\n    - name: a\n      options: {arch: 65536}\n",
			"6:17: host a: option arch: 65536 is outside 0..65535 (unsigned integer 16)"},
		{"bad definition", "dhcp:\n  option-definitions:\n    - name: arch\n      code: 0\n      type: text\n  options:\n    arch: x\n",
			"3:7: option arch: code 0 is outside 1..254 (0 is pad and 255 is end)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := writeConfig(t, tt.text)
			c, err := Load(file)
			if c != nil {
				t.Error("a config came back with an error")
			}
			es := errorsOf(t, err)
			if len(es) != 1 || es[0].Error() != file+":"+tt.want {
				t.Errorf("Load = %v\nwant %s:%s", err, file, tt.want)
			}
		})
	}
	// Site options are usable, and good values load.
	file := writeConfig(t, "dhcp:\n  option-definitions:\n    - {name: arch, code: 93, type: unsigned integer 16}\n"+
		"  options: {routers: \"192.0.2.1, 192.0.2.2\", domain-search: \"a.example, b.example\"}\n"+
		"  subnets:\n    - network: 192.0.2.0/24\n      options: {arch: 7, root-path: \"/a, b\"}\n")
	if _, err := Load(file); err != nil {
		t.Fatal(err)
	}
}

// TestPathsRelativeToTheFile: relative paths a config file gives are
// relative to the file's directory; absolute ones and the defaults stay.
func TestPathsRelativeToTheFile(t *testing.T) {
	file := writeConfig(t, "state-dir: state\ntftp:\n  root: ../tree\ninventory: /etc/pxed/inventory.yaml\ndhcp:\n  dhcpd-conf: dhcpd.conf\n")
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(file)
	for name, got := range map[string][2]string{
		"state-dir":       {c.StateDir, filepath.Join(dir, "state")},
		"tftp.root":       {c.TFTP.Root, filepath.Join(filepath.Dir(dir), "tree")},
		"inventory":       {c.Inventory, "/etc/pxed/inventory.yaml"},
		"dhcp.dhcpd-conf": {c.DHCP.DHCPDConf, filepath.Join(dir, "dhcpd.conf")},
		"api.token-file":  {c.API.TokenFile, ""},
	} {
		if got[0] != got[1] {
			t.Errorf("%s = %q, want %q", name, got[0], got[1])
		}
	}
}
