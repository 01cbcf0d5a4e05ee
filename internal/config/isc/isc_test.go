package isc

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"pxed/internal/config"
)

func ptr[T any](v T) *T { return &v }

// mustEqual reports got and want when they differ.
func mustEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %#v\n want %#v", what, got, want)
	}
}

// takeEncoded checks the encoded option values of every scope of n against
// the canonical text `pxed import` prints for them (the text must encode to
// the same bytes, so the YAML import sends what the dhcpd.conf sends) and
// that each has a position, then clears them, so that the tests below can
// compare the rest of the model as written.
func takeEncoded(t *testing.T, n *config.Network) {
	t.Helper()
	table, err := n.OptionTable()
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, p *config.Params) {
		if len(p.Encoded) != len(p.Options) {
			t.Errorf("%s: %d encoded options for %d options", what, len(p.Encoded), len(p.Options))
		}
		for name, e := range p.Encoded {
			text, ok := p.Options[name]
			if !ok {
				t.Errorf("%s: option %s encoded but without text", what, name)
				continue
			}
			if e.Pos.File == "" || e.Pos.Line < 1 || e.Pos.Column < 1 {
				t.Errorf("%s: option %s has no position: %+v", what, name, e.Pos)
			}
			if _, b, err := table.Encode(name, text); err != nil || !bytes.Equal(b, e.Data) {
				t.Errorf("%s: option %s: text %q encodes to %x, %v; the file's tokens gave %x", what, name, text, b, err, e.Data)
			}
		}
		p.Encoded = nil
	}
	check("global", &n.Params)
	for i := range n.Subnets {
		s := &n.Subnets[i]
		check("subnet "+s.Network, &s.Params)
		for j := range s.Pools {
			check(fmt.Sprintf("subnet %s pool %d", s.Network, j), &s.Pools[j].Params)
		}
	}
	for i := range n.Hosts {
		check("host "+n.Hosts[i].Name, &n.Hosts[i].Params)
	}
}

func TestSeedXenPXE(t *testing.T) {
	const file = "testdata/seed-xen-pxe.conf"
	n, warns, err := ParseFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if e := n.Subnets[0].Encoded["routers"]; !bytes.Equal(e.Data, []byte{192, 168, 1, 166}) || e.Pos != (config.Pos{File: file, Line: 5, Column: 1}) {
		t.Errorf("routers encoded as %+v", e)
	}
	takeEncoded(t, n)
	pos := func(line, col int) config.Pos { return config.Pos{File: file, Line: line, Column: col} }
	want := &config.Network{
		Params: config.Params{
			AllowBooting: ptr(true),
			AllowBootp:   ptr(true),
		},
		Subnets: []config.Subnet{{
			Network: "192.168.1.0/24",
			Params: config.Params{
				DefaultLeaseTime: 120,
				MaxLeaseTime:     120,
				NextServer:       "192.168.1.166",
				Filename:         ptr("pxelinux.0"),
				Options: map[string]string{
					"routers":             "192.168.1.166",
					"subnet-mask":         "255.255.255.0",
					"nis-domain":          "example.com",
					"domain-name":         "example.com",
					"domain-name-servers": "192.168.1.166",
					"time-offset":         "-18000",
				},
			},
			Pools: []config.Pool{{
				Ranges: []config.Range{{Start: "192.168.1.199", End: "192.168.1.254", DynamicBootp: true, Pos: pos(16, 1)}},
				Pos:    pos(15, 1),
			}},
			Pos: pos(4, 1),
		}},
		Hosts: []config.Host{
			{Name: "test_pvm", MAC: "00:16:3e:72:79:e3", FixedAddresses: []string{"192.168.1.199"}, Pos: pos(19, 1)},
			{Name: "test_hvm", MAC: "00:16:3e:72:79:e4", FixedAddresses: []string{"192.168.1.177"}, Pos: pos(23, 1)},
			{Name: "dell_optiplex_745", MAC: "00:19:b9:41:2c:b9", FixedAddresses: []string{"192.168.1.188"}, Pos: pos(27, 1)},
		},
	}
	mustEqual(t, "global params", n.Params, want.Params)
	mustEqual(t, "authoritative/ping-check/proxy", []bool{n.Authoritative, n.PingCheck, n.Proxy}, []bool{false, false, false})
	mustEqual(t, "option definitions", n.OptionDefs, want.OptionDefs)
	mustEqual(t, "subnets", n.Subnets, want.Subnets)
	mustEqual(t, "hosts", n.Hosts, want.Hosts)
	mustEqual(t, "network", n, want)

	// test_pvm's fixed address is the first address of the dynamic-bootp
	// pool: it stays a fixed address, not a pool member (dhcp.Compile warns
	// about the overlap, as ISC does).
	if len(warns) != 0 {
		t.Errorf("warnings = %v", warns)
	}
}

func TestSeedBrokenSubnet(t *testing.T) {
	const file = "testdata/seed-broken-subnet.conf"
	n, _, err := ParseFile(file)
	if n != nil {
		t.Errorf("got a network with an error: %+v", n)
	}
	var es config.Errors
	if !errors.As(err, &es) || len(es) != 1 {
		t.Fatalf("error = %#v, want one config.Errors entry", err)
	}
	want := &config.Error{File: file, Line: 6, Column: 8, Msg: `expected IP address after "subnet", got "netmask"`}
	mustEqual(t, "error", es[0], want)
	if got := err.Error(); got != file+`:6:8: expected IP address after "subnet", got "netmask"` {
		t.Errorf("Error() = %q", got)
	}
}

func TestAllStatements(t *testing.T) {
	const file = "testdata/all.conf"
	n, warns, err := ParseFile(file)
	if err != nil {
		t.Fatal(err)
	}
	takeEncoded(t, n)
	stripPos(n)
	mustEqual(t, "classes, conditionals and permits", takeConds(n), []string{
		`class pxeclients: match if substring (option vendor-class-identifier, 0, 9) = "PXEClient" {next-server 192.0.2.10}`,
		`global: if exists user-class and option user-class = "iPXE" {filename http://boot/ipxe} elsif option arch = 00:07 {filename x64.efi} else {filename undionly.kpxe}`,
		`global: {deny unknown-clients}`,
		`pool 2 of 192.0.2.0/24: allow members of "pxeclients"`,
	})
	want := &config.Network{
		Params: config.Params{
			DefaultLeaseTime: 600,
			MaxLeaseTime:     7200,
			NextServer:       "tftp.example.com",
			Filename:         ptr("pxelinux.0"),
			ServerName:       ptr("boot.example.com"),
			AllowBooting:     ptr(true),
			AllowBootp:       ptr(false),
			Options: map[string]string{
				"domain-name":             "example.com",
				"domain-name-servers":     "192.0.2.53, 192.0.2.54",
				"vendor-class-identifier": "PXEClient",
				"dhcp-lease-time":         "3600",
				"ntp-servers":             "192.0.2.123", // include/global.conf
				"log-servers":             "192.0.2.124", // include/more.conf
			},
		},
		Authoritative: true,
		PingCheck:     true,
		OptionDefs: []config.OptionDef{
			{Name: "arch", Code: 93, Type: "unsigned integer 16"},
			{Name: "pxelinux-configfile", Code: 209, Type: "text"},
			{Name: "rfc3442-classless-static-routes", Code: 121, Type: "array of integer 8"},
		},
		Subnets: []config.Subnet{
			{
				Network: "192.0.2.0/24",
				Params: config.Params{
					NextServer: "192.0.2.10",
					Options: map[string]string{
						"routers":                         "192.0.2.1",
						"subnet-mask":                     "255.255.255.0",
						"rfc3442-classless-static-routes": "24, 10, 1, 2, 192, 0, 2, 1",
						"domain-search":                   "example.com, lab.example.com",
						"ip-forwarding":                   "false",
						"time-offset":                     "-3600",
					},
				},
				Pools: []config.Pool{
					{Ranges: []config.Range{{Start: "192.0.2.20", End: "192.0.2.29"}}},
					{Ranges: []config.Range{{Start: "192.0.2.30", End: "192.0.2.30", DynamicBootp: true}}},
					{
						Params: config.Params{DefaultLeaseTime: 300, Options: map[string]string{"arch": "7"}},
						Ranges: []config.Range{
							{Start: "192.0.2.100", End: "192.0.2.149"},
							{Start: "192.0.2.150", End: "192.0.2.160"},
						},
					},
				},
			},
			{
				// In a group: the group's parameters are the subnet's.
				Network: "198.51.100.0/24",
				Params: config.Params{
					NextServer: "198.51.100.1",
					Filename:   ptr("outer.0"),
					Options:    map[string]string{"routers": "198.51.100.1", "root-path": "/outer"},
				},
			},
			{
				Network: "203.0.113.0/25",
				Params:  config.Params{Options: map[string]string{"domain-name": "lab.example.com"}},
				Pools:   []config.Pool{{Ranges: []config.Range{{Start: "203.0.113.10", End: "203.0.113.20"}}}},
			},
			{
				Network: "203.0.113.128/25",
				Params:  config.Params{Filename: ptr("upper.0"), Options: map[string]string{"domain-name": "lab.example.com"}},
				Pools:   []config.Pool{{Ranges: []config.Range{{Start: "203.0.113.200", End: "203.0.113.210"}}}},
			},
		},
		Hosts: []config.Host{
			// In a subnet: nothing of the subnet's or the global scope.
			{Name: "in-subnet", MAC: "00:16:3e:00:00:01", FixedAddresses: []string{"192.0.2.5"}},
			// In a group in a subnet: the group's filename.
			{Name: "in-subnet-group", MAC: "00:16:3e:00:00:02", FixedAddresses: []string{"192.0.2.6"},
				Params: config.Params{Filename: ptr("group-in-subnet.efi")}},
			// Host over inner group over outer group.
			{Name: "nested", MAC: "aa:bb:cc:dd:ee:ff", ClientID: "01:aa:bb:cc:dd:ee:ff",
				FixedAddresses: []string{"192.0.2.7", "198.51.100.7"},
				Params: config.Params{
					Filename:     ptr("host.0"),
					MaxLeaseTime: 100,
					NextServer:   "198.51.100.1",
					AllowBooting: ptr(false),
					Options:      map[string]string{"host-name": "nested", "root-path": "/outer"},
				}},
			{Name: "by-uid", ClientID: "63:6c:69:65:6e:74:2d:37", FixedAddresses: []string{"198.51.100.8"},
				Params: config.Params{
					Filename:   ptr("outer.0"),
					NextServer: "198.51.100.1",
					Options:    map[string]string{"root-path": "/outer"},
				}},
			{Name: "global", MAC: "52:54:00:12:34:56",
				Params: config.Params{
					ServerName: ptr("boot2"),
					NextServer: "203.0.113.1",
					AllowBootp: ptr(true),
					Options:    map[string]string{"option-250": "raw", "pxelinux-configfile": "pxelinux.cfg/global"},
				}},
		},
	}
	mustEqual(t, "global params", n.Params, want.Params)
	mustEqual(t, "option definitions", n.OptionDefs, want.OptionDefs)
	if len(n.Subnets) != len(want.Subnets) {
		t.Fatalf("%d subnets, want %d", len(n.Subnets), len(want.Subnets))
	}
	for i := range want.Subnets {
		mustEqual(t, "subnet "+want.Subnets[i].Network, n.Subnets[i], want.Subnets[i])
	}
	if len(n.Hosts) != len(want.Hosts) {
		t.Fatalf("%d hosts, want %d", len(n.Hosts), len(want.Hosts))
	}
	for i := range want.Hosts {
		mustEqual(t, "host "+want.Hosts[i].Name, n.Hosts[i], want.Hosts[i])
	}
	mustEqual(t, "network", n, want)

	checkWarnings(t, warns, []string{
		"all.conf:2: ddns-update-style interim: pxed does no dynamic DNS updates",
		"include/more.conf:2: \"use-host-decl-names\" is not supported",
		"all.conf:55: not authoritative in a subnet",
		"all.conf:83: shared-network lab: pxed has no shared networks; its 2 subnets",
		"all.conf:97: hardware token-ring: pxed matches only ethernet",
		"all.conf:112: \"on\" is not supported",
		"all.conf:113: \"failover\" is not supported",
		"all.conf:114: \"key\" is not supported",
		"all.conf:115: \"zone\" is not supported",
		"all.conf:116: \"log-facility\" is not supported",
		"all.conf:117: option space: option spaces are not supported",
		"all.conf:118: option pxelinux.magic: option space \"pxelinux\" is not supported by pxed; definition skipped",
		"all.conf:119: option pxelinux.magic: option space \"pxelinux\" is not supported by pxed; statement skipped",
	})
}

// takeConds renders n's classes, conditionals and pool permits compactly
// and removes them, so that the rest of the model compares as before.
func takeConds(n *config.Network) []string {
	var out []string
	var params func(p *config.Params) string
	params = func(p *config.Params) string {
		var s []string
		if p.Filename != nil {
			s = append(s, "filename "+*p.Filename)
		}
		if p.NextServer != "" {
			s = append(s, "next-server "+p.NextServer)
		}
		if p.ServerName != nil {
			s = append(s, "server-name "+*p.ServerName)
		}
		if p.BootUnknownClients != nil && !*p.BootUnknownClients {
			s = append(s, "deny unknown-clients")
		}
		for _, c := range p.Conds {
			s = append(s, cond(c, params))
		}
		return "{" + strings.Join(s, "; ") + "}"
	}
	scope := func(what string, p *config.Params) {
		for _, c := range p.Conds {
			out = append(out, what+": "+cond(c, params))
		}
		p.Conds, p.BootUnknownClients = nil, nil
	}
	for _, cl := range n.Classes {
		s := "class " + cl.Name + ":"
		if cl.Match != nil {
			s += " match if " + cl.Match.Text
		}
		if cl.Submatch != nil {
			s += " match " + cl.Submatch.Text
		}
		out = append(out, s+" "+params(&cl.Params))
		for _, sc := range cl.Subclasses {
			out = append(out, fmt.Sprintf("subclass %s %q %s", cl.Name, sc.Key, params(&sc.Params)))
		}
	}
	n.Classes = nil
	scope("global", &n.Params)
	for i := range n.Subnets {
		s := &n.Subnets[i]
		scope("subnet "+s.Network, &s.Params)
		for j := range s.Pools {
			scope(fmt.Sprintf("pool %d of %s", j, s.Network), &s.Pools[j].Params)
			for _, pm := range s.Pools[j].Permits {
				out = append(out, fmt.Sprintf("pool %d of %s: %s", j, s.Network, pm.Text))
			}
			s.Pools[j].Permits = nil
		}
	}
	for i := range n.Hosts {
		scope("host "+n.Hosts[i].Name, &n.Hosts[i].Params)
	}
	return out
}

func cond(c config.Cond, params func(*config.Params) string) string {
	var s []string
	for _, b := range c.Branches {
		w := b.Keyword
		if b.If != nil {
			w += " " + b.If.Text
		}
		if w != "" {
			w += " "
		}
		s = append(s, w+params(&b.Params))
	}
	return strings.Join(s, " ")
}

// checkWarnings wants exactly one warning containing each string, in order.
func checkWarnings(t *testing.T, warns []Warning, want []string) {
	t.Helper()
	var got []string
	for _, w := range warns {
		got = append(got, w.String())
	}
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = containsParts(got[i], want[i])
	}
	if !ok {
		t.Errorf("warnings:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// containsParts reports whether s contains the parts of pattern separated
// by "…", in order.
func containsParts(s, pattern string) bool {
	for part := range strings.SplitSeq(pattern, "…") {
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	return true
}

func stripPos(n *config.Network) {
	for i := range n.OptionDefs {
		n.OptionDefs[i].Pos = config.Pos{}
	}
	for i := range n.Subnets {
		s := &n.Subnets[i]
		s.Pos = config.Pos{}
		for j := range s.Pools {
			s.Pools[j].Pos = config.Pos{}
			for k := range s.Pools[j].Ranges {
				s.Pools[j].Ranges[k].Pos = config.Pos{}
			}
		}
	}
	for i := range n.Hosts {
		n.Hosts[i].Pos = config.Pos{}
	}
}

func TestPositions(t *testing.T) {
	n, _, err := ParseFile("testdata/all.conf")
	if err != nil {
		t.Fatal(err)
	}
	p := func(file string, line, col int) config.Pos { return config.Pos{File: file, Line: line, Column: col} }
	const f = "testdata/all.conf"
	mustEqual(t, "option def", n.OptionDefs[0].Pos, p(f, 14, 1))
	mustEqual(t, "subnet", n.Subnets[0].Pos, p(f, 27, 1))
	mustEqual(t, "bare range pool", n.Subnets[0].Pools[0].Pos, p(f, 35, 3))
	mustEqual(t, "bare range", n.Subnets[0].Pools[0].Ranges[0].Pos, p(f, 35, 3))
	mustEqual(t, "pool", n.Subnets[0].Pools[2].Pos, p(f, 37, 3))
	mustEqual(t, "pool range", n.Subnets[0].Pools[2].Ranges[1].Pos, p(f, 39, 5))
	mustEqual(t, "shared pool split", n.Subnets[3].Pools[0].Pos, p(f, 89, 3))
	mustEqual(t, "host", n.Hosts[2].Pos, p(f, 64, 5))
	mustEqual(t, "global option", n.Encoded["domain-name"].Pos, p(f, 12, 1))
	mustEqual(t, "included option", n.Encoded["log-servers"].Pos, p("testdata/include/more.conf", 1, 1))
	mustEqual(t, "subnet option", n.Subnets[0].Encoded["routers"].Pos, p(f, 28, 3))
	mustEqual(t, "pool option", n.Subnets[0].Pools[2].Encoded["arch"].Pos, p(f, 41, 5))
	mustEqual(t, "host option", n.Hosts[2].Encoded["host-name"].Pos, p(f, 68, 7))
	mustEqual(t, "option inherited from a group", n.Hosts[2].Encoded["root-path"].Pos, p(f, 60, 3))
}

// memFS is an in-memory readInclude.
type memFS map[string]string

func (m memFS) read(path string) ([]byte, error) {
	s, ok := m[filepath.ToSlash(path)]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
	}
	return []byte(s), nil
}

func parseMem(m memFS, file string) (*config.Network, []Warning, error) {
	return Parse(file, []byte(m[file]), m.read)
}

func TestInclude(t *testing.T) {
	t.Run("relative and nested in a block", func(t *testing.T) {
		m := memFS{
			"etc/dhcpd.conf": "subnet 10.0.0.0 netmask 255.0.0.0 {\n  include \"sub/hosts.conf\";\n}\n",
			"etc/sub/hosts.conf": "option routers 10.0.0.1;\n" +
				"include \"../more.conf\";\n" +
				"host a { hardware ethernet 00:00:00:00:00:01; }\n",
			"etc/more.conf": "range 10.0.0.10 10.0.0.20;\n",
		}
		n, _, err := parseMem(m, "etc/dhcpd.conf")
		if err != nil {
			t.Fatal(err)
		}
		s := n.Subnets[0]
		if s.Options["routers"] != "10.0.0.1" || len(s.Pools) != 1 || s.Pools[0].Ranges[0].Start != "10.0.0.10" {
			t.Errorf("subnet = %+v", s)
		}
		if s.Pools[0].Ranges[0].Pos.File != filepath.FromSlash("etc/more.conf") {
			t.Errorf("range position = %v", s.Pools[0].Ranges[0].Pos)
		}
		if len(n.Hosts) != 1 || n.Hosts[0].Pos != (config.Pos{File: filepath.FromSlash("etc/sub/hosts.conf"), Line: 3, Column: 1}) {
			t.Errorf("hosts = %+v", n.Hosts)
		}
	})
	t.Run("absolute", func(t *testing.T) {
		m := memFS{"a.conf": "include \"/etc/dhcp/b.conf\";", "/etc/dhcp/b.conf": "authoritative;"}
		n, _, err := parseMem(m, "a.conf")
		if err != nil || !n.Authoritative {
			t.Fatalf("%v %+v", err, n)
		}
	})
	errCases := []struct {
		name string
		m    memFS
		want string
	}{
		{"missing file", memFS{"dhcpd.conf": "authoritative;\n  include \"nope.conf\";\n"},
			"dhcpd.conf:2:3: include \"nope.conf\": open nope.conf: file does not exist"},
		{"cycle", memFS{"dhcpd.conf": "include \"b.conf\";", "b.conf": "\n\ninclude \"dhcpd.conf\";"},
			"b.conf:3:1: include \"dhcpd.conf\" makes a cycle: dhcpd.conf → b.conf → dhcpd.conf"},
		{"self", memFS{"dhcpd.conf": "# me\ninclude \"./dhcpd.conf\";"},
			"dhcpd.conf:2:1: include \"./dhcpd.conf\" makes a cycle: dhcpd.conf → dhcpd.conf"},
		{"error inside", memFS{"dhcpd.conf": "include \"b.conf\";", "b.conf": "option routers x;"},
			"b.conf:1:16: option routers: \"x\" is not an IPv4 address"},
		{"close brace in include", memFS{"dhcpd.conf": "group {\ninclude \"b.conf\";\n}", "b.conf": "}\n"},
			"b.conf:1:1: unexpected \"}\": an included file must close every block it opens"},
		{"unclosed block in include", memFS{"dhcpd.conf": "include \"b.conf\";\n}", "b.conf": "group {\n"},
			"b.conf:2:1: unexpected end of file: missing \"}\" to close the group block opened at line 1"},
		{"unquoted", memFS{"dhcpd.conf": "include b.conf;"},
			"dhcpd.conf:1:9: expected quoted file name after \"include\", got \"b.conf\""},
	}
	for _, c := range errCases {
		t.Run(c.name, func(t *testing.T) {
			n, _, err := parseMem(c.m, "dhcpd.conf")
			if n != nil || err == nil || !strings.Contains(filepath.ToSlash(err.Error()), c.want) {
				t.Errorf("error = %v, want %q", err, c.want)
			}
		})
	}
	t.Run("too deep", func(t *testing.T) {
		m := memFS{}
		for i := range 20 {
			m[fmt.Sprintf("f%d.conf", i)] = fmt.Sprintf("include \"f%d.conf\";", i+1)
		}
		m["f20.conf"] = "authoritative;"
		_, _, err := parseMem(m, "f0.conf")
		if err == nil || !strings.Contains(err.Error(), "f15.conf:1:1: include \"f16.conf\": includes nested more than 16 deep") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("nil reader", func(t *testing.T) {
		_, _, err := Parse("x.conf", []byte(`include "y.conf";`), nil)
		if err == nil || !strings.Contains(err.Error(), "x.conf:1:1: include \"y.conf\": includes cannot be read here") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("ParseFile on disk", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "conf.d"), 0o755); err != nil {
			t.Fatal(err)
		}
		write := func(name, s string) {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("dhcpd.conf", "include \"conf.d/a.conf\";\n")
		write("conf.d/a.conf", "include \"b.conf\";\n")
		write("conf.d/b.conf", "ping-check on;\n")
		n, _, err := ParseFile(filepath.Join(dir, "dhcpd.conf"))
		if err != nil || !n.PingCheck {
			t.Errorf("%v %+v", err, n)
		}
		if _, _, err := ParseFile(filepath.Join(dir, "absent.conf")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing top-level file: %v", err)
		}
	})
}

func TestWarningsForUnsupported(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string
	}{
		{"log-facility", "\n\nlog-facility local7;\n", []string{"f.conf:3: \"log-facility\" is not supported"}},
		{"class without match", "class \"c\" {\n  filename \"x\";\n}\n", []string{"f.conf:1: class c has no match statement"}},
		{"ddns in a class", "class \"c\" {\n  match if known;\n  ddns-updates off;\n}\n", []string{"f.conf:3: \"ddns-updates\" is not supported by pxed; statement skipped"}},
		{"known but unsupported", "one-lease-per-client true;", []string{"f.conf:1: \"one-lease-per-client\" is not supported by pxed; statement skipped"}},
		{"key with trailing semicolon", "key k { secret \"x\"; };\nauthoritative;", []string{"f.conf:1: \"key\" is not supported"}},
		{"in host", "host h {\n  hardware ethernet 0:1:2:3:4:5;\n  ddns-hostname \"h\";\n}", []string{"f.conf:3: \"ddns-hostname\" is not supported"}},
		{"ddns none", "ddns-update-style none;", nil},
		{"protocol option kept for the server to judge", "option dhcp-server-identifier 192.0.2.1;", nil},
		{"ddns ad-hoc", "ddns-update-style ad-hoc;", []string{"f.conf:1: ddns-update-style ad-hoc: pxed does no dynamic DNS updates"}},
		{"authoritative in subnet", "subnet 10.0.0.0 netmask 255.0.0.0 {\n authoritative;\n}", []string{"f.conf:2: authoritative in a subnet"}},
		{"ping-check in group", "group {\n ping-check false;\n}", []string{"f.conf:2: ping-check in a group"}},
		{"hardware fddi", "host h {\n hardware fddi 1:2:3:4:5:6;\n}", []string{"f.conf:2: hardware fddi: pxed matches only ethernet"}},
		{"empty pool", "subnet 10.0.0.0 netmask 255.0.0.0 {\n pool { }\n}", []string{"f.conf:2: pool without a range"}},
		{"duplicate option", "option domain-name \"a\";\noption domain-name \"b\";", []string{"f.conf:2: option domain-name is set twice in the global scope"}},
		{"zero lease", "default-lease-time 0;", []string{"f.conf:1: default-lease-time 0: pxed treats 0 as unset"}},
		{"subnet6", "subnet6 2001:db8::/64 { range6 2001:db8::1 2001:db8::9; }", []string{"f.conf:1: \"subnet6\" is not supported by pxed: pxed serves DHCPv4 only"}},
		{"second hardware", "host h {\n hardware ethernet 0:1:2:3:4:5;\n hardware ethernet 0:1:2:3:4:6;\n}", []string{"f.conf:3: host h has a second hardware ethernet statement; the last one (00:01:02:03:04:06) wins"}},
		{"standard redefined", "option domain-search code 119 = text;", []string{"f.conf:1: option domain-search code 119 redefines the standard option"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, warns, err := Parse("f.conf", []byte(c.src), nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(warns) != len(c.want) {
				t.Fatalf("warnings = %v, want %d", warns, len(c.want))
			}
			for i, w := range c.want {
				if !containsParts(warns[i].String(), w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, warns[i].String(), w)
				}
			}
		})
	}
}

func TestErrors(t *testing.T) {
	cases := []struct {
		src       string
		line, col int
		msg       string
	}{
		{"host h {\n  fixed-address;\n}", 2, 16, `expected IP address after "fixed-address", got ";"`},
		// Typos ISC dhcpd refuses too.
		{"defualt-lease-time 5;", 1, 1, `unknown statement "defualt-lease-time": not an ISC dhcpd statement (dhcpd refuses it too; a typo?)`},
		{"subnet 192.0.2.0 netmask 255.255.255.0 {\n  next-sever 192.0.2.1;\n}", 2, 3, `unknown statement "next-sever"`},
		{"host h {\n  hardware ethernet 0:1:2:3:4:5;\n  filname \"pxelinux.0\";\n}", 3, 3, `unknown statement "filname"`},
		{"host h { fixed-address boot.example.com; }", 1, 24, "fixed-address boot.example.com: pxed does not resolve host names in fixed-address; write the IPv4 address"},
		{"host h { fixed-address 10.0.0.1 10.0.0.2; }", 1, 33, `expected "," or ";" after a fixed-address, got "10.0.0.2"`},
		{"subnet 10.0.0.0 netmask 255.0.0.0 { range a.example b.example; }", 1, 43, "range a.example: pxed does not resolve host names in range"},
		{"subnet 10.0.0.5 netmask 255.255.255.0 { }", 1, 8, "subnet 10.0.0.5 netmask 255.255.255.0: the address has host bits set (did you mean subnet 10.0.0.0?)"},
		{"subnet 10.0.0.0 netmask 255.0.255.0 { }", 1, 25, "netmask 255.0.255.0 is not a valid netmask"},
		{"subnet 10.0.0.0 mask 255.0.0.0 { }", 1, 17, `expected "netmask" after the subnet address, got "mask"`},
		{"subnet 10.0.0.0 netmask 255.0.0.0 ;", 1, 35, `expected "{" after "subnet 10.0.0.0 netmask 255.0.0.0", got ";"`},
		{"subnet 10.0.0.0 netmask 255.0.0.0 {\n range 10.0.0.1 10.0.0.9 }", 2, 26, `expected ";" after the range's addresses, got "}"`},
		{"subnet 10.0.0.0 netmask 255.255.255.0 {\n range 10.0.1.1 10.0.1.9;\n}", 2, 2, "range 10.0.1.1 10.0.1.9 is not inside subnet 10.0.0.0/24"},
		{"subnet 10.0.0.0 netmask 255.0.0.0 {\n range dynamic-bootp;\n}", 2, 21, `expected IP address after "range", got ";"`},
		{"option routers 10.0.0.1 10.0.0.2;", 1, 25, `expected "," or ";" between values of option routers, got "10.0.0.2"`},
		{"option routers 10.0.0.1,, 10.0.0.2;", 1, 25, "empty value in the list for option routers"},
		{"option routers;", 1, 15, `expected a value for option routers, got ";"`},
		{"option routers gw.example.com;", 1, 16, `option routers: "gw.example.com" is not an IPv4 address (pxed does not resolve host names here`},
		{"option subnet-mask 255.255.255.0, 255.0.0.0;", 1, 33, "option subnet-mask takes a single ip-address, not a list"},
		{"option time-offset abc;", 1, 20, `option time-offset: "abc" is not an integer`},
		{"option interface-mtu 70000;", 1, 22, "option interface-mtu: 70000 is outside 0..65535"},
		{"option ip-forwarding yes;", 1, 22, `option ip-forwarding: "yes" is not a boolean`},
		{"option vendor-class-identifier PXEClient;", 1, 32, "expected a quoted string or colon-separated hex bytes (like 01:02:ab) for option vendor-class-identifier, got \"PXEClient\""},
		{"option domain-search \"a..b\";", 1, 22, `option domain-search: domain name "a..b": empty label`},
		{"\n  option pxe-foo 1;", 2, 10, `unknown option "pxe-foo" (declare it first with: option pxe-foo code NUMBER = TYPE;)`},
		{"option domain-name \"x\"", 1, 23, `expected ";" at the end of option domain-name, got end of file`},
		{"option domain-name \"unterminated;\n", 1, 20, `unterminated string`},
		{"option foo code 0 = text;", 1, 1, "option foo: code 0 is outside 1..254"},
		{"option foo code 200 = { ip-address, text };", 1, 1, "option foo: record option types"},
		{"option foo code x = text;", 1, 17, `expected option code number after "code", got "x"`},
		{"option foo code 200 = ;", 1, 23, `expected an option type after "=", got ";"`},
		{"option foo code 200 = text;\noption foo code 200 = string;", 2, 1, "option foo: already declared at f.conf:1:1 as code 200 = text"},
		{"option routers code 200 = text;", 1, 1, "routers is the standard option with code 3"},
		{"filename pxelinux.0;", 1, 10, `expected quoted file name after "filename", got "pxelinux.0"`},
		{"server-name ;", 1, 13, `expected quoted server name after "server-name", got ";"`},
		{"filename \"a\"", 1, 13, `expected ";" after filename "a", got end of file`},
		{"default-lease-time ten;", 1, 20, `expected a number of seconds after "default-lease-time", got "ten"`},
		{"max-lease-time -5;", 1, 16, `expected a number of seconds after "max-lease-time", got "-5"`},
		{"max-lease-time 99999999999;", 1, 16, "max-lease-time 99999999999 is too large"},
		{"next-server \"boot\";", 1, 13, `expected IP address or host name after "next-server", got string "boot"`},
		{"next-server 10.0.0.300;", 1, 13, `next-server "10.0.0.300" is neither an IPv4 address nor a host name`},
		{"host h { hardware ethernet 00:11:22:33:44; }", 1, 28, "hardware ethernet 00:11:22:33:44 is not an Ethernet address"},
		{"host h { hardware ethernet; }", 1, 27, `expected Ethernet address (like 00:16:3e:72:79:e3) after "hardware ethernet", got ";"`},
		{"hardware ethernet 00:11:22:33:44:55;", 1, 1, `"hardware" is only allowed in a host declaration, not in the global scope`},
		{"subnet 10.0.0.0 netmask 255.0.0.0 {\n  fixed-address 10.0.0.1;\n}", 2, 3, `"fixed-address" is only allowed in a host declaration, not in a subnet`},
		{"subnet 10.0.0.0 netmask 255.0.0.0 {\n", 2, 1, `unexpected end of file: missing "}" to close the subnet block opened at line 1`},
		{"authoritative;\n}", 2, 1, `unexpected "}" with no block open`},
		{"\"string\";", 1, 1, `expected a statement (a keyword such as "option", "subnet" or "host"), got string "string"`},
		{"{ }", 1, 1, `expected a statement (a keyword such as "option", "subnet" or "host"), got "{"`},
		{"pool { range 10.0.0.1; }", 1, 1, "a pool cannot be declared in the global scope; it belongs in a subnet or shared-network"},
		{"range 10.0.0.1;", 1, 1, "a range cannot be declared in the global scope"},
		{"host a {\n  host b { }\n}", 2, 3, "a host cannot be declared inside a host declaration"},
		{"subnet 10.0.0.0 netmask 255.0.0.0 {\n subnet 11.0.0.0 netmask 255.0.0.0 { }\n}", 2, 2, "a subnet cannot be declared inside a subnet"},
		{"subnet 10.0.0.0 netmask 255.0.0.0 {\n shared-network x { }\n}", 2, 2, "a shared-network cannot be declared inside a subnet"},
		{"subnet 10.0.0.0 netmask 255.0.0.0 { pool {\n group { } } }", 2, 2, "a group cannot be declared inside a pool"},
		{"shared-network s {\n subnet 10.0.0.0 netmask 255.0.0.0 { }\n pool {\n  range 11.0.0.1 11.0.0.2;\n }\n}", 4, 3, "range 11.0.0.1 11.0.0.2 is not inside any subnet of shared-network s"},
		{"shared-network s {\n range 10.0.0.1;\n}", 2, 2, "a range cannot be declared in a shared-network"},
		{"ping-check maybe;", 1, 12, `expected true or false after "ping-check", got "maybe"`},
		{"not foo;", 1, 5, `expected "authoritative" after "not", got "foo"`},
		{"authoritative", 1, 14, `expected ";" after "authoritative", got end of file`},
		{"log-facility local7", 1, 20, `unexpected end of file in the "log-facility" statement that starts at line 1`},
		{"group {\n log-facility local7 }", 2, 22, `expected ";" to end the "log-facility" statement, got "}"`},
		{"allow;", 1, 6, `expected what to allow (booting, bootp, …) after "allow", got ";"`},
		{"host { }", 1, 6, `expected a host name after "host", got "{"`},
		{"host h { uid 1:2:zz; }", 1, 14, "uid 1:2:zz is neither a quoted string nor colon-separated hex bytes"},
		{"option domain-name \"a\" {", 1, 24, `expected ";" at the end of option domain-name, got "{"`},
		{strings.Repeat("group {\n", 200), 101, 7, "blocks nested more than 100 deep"},
		{"ddns-update-style;", 1, 18, `expected a style (none, interim, standard) after "ddns-update-style", got ";"`},
	}
	for _, c := range cases {
		n, _, err := Parse("f.conf", []byte(c.src), nil)
		if n != nil {
			t.Errorf("%q: got a network with an error", c.src)
		}
		var es config.Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Errorf("%q: error = %v, want config.Errors", c.src, err)
			continue
		}
		e := es[0]
		if e.File != "f.conf" || e.Line != c.line || e.Column != c.col || !strings.Contains(e.Msg, c.msg) {
			t.Errorf("%q:\n got  %s\n want f.conf:%d:%d: …%s…", c.src, e, c.line, c.col, c.msg)
		}
	}
}

func TestSeveralErrors(t *testing.T) {
	src := "host a { fixed-address a.example; }\nhost b { fixed-address b.example; }\noption routers x.y;\n"
	_, _, err := Parse("f.conf", []byte(src), nil)
	var es config.Errors
	if !errors.As(err, &es) || len(es) != 3 || es[0].Line != 1 || es[1].Line != 2 || es[2].Line != 3 {
		t.Fatalf("errors = %v", err)
	}
	// A flood of errors stops at maxErrors.
	src = strings.Repeat("option routers x.y;\n", 100)
	_, _, err = Parse("f.conf", []byte(src), nil)
	if !errors.As(err, &es) || len(es) != maxErrors {
		t.Fatalf("got %d errors, want %d", len(es), maxErrors)
	}
}

func TestLexer(t *testing.T) {
	src := "a-b_c.d 01:0A \"x\\ty\\\"z\\101\\x41\\q\" # comment ; {\n\t{ } ; , = ! \"multi\nline\"\r\nend"
	l := newLexer("f", []byte(src))
	type tk struct {
		kind      tokKind
		val       string
		line, col int
	}
	want := []tk{
		{tWord, "a-b_c.d", 1, 1}, {tWord, "01:0A", 1, 9}, {tString, "x\ty\"zAAq", 1, 15},
		{tPunct, "{", 2, 2}, {tPunct, "}", 2, 4}, {tPunct, ";", 2, 6}, {tPunct, ",", 2, 8},
		{tPunct, "=", 2, 10}, {tPunct, "!", 2, 12}, {tString, "multi\nline", 2, 14},
		{tWord, "end", 4, 1}, {tEOF, "", 4, 4},
	}
	for i, w := range want {
		got, err := l.next()
		if err != nil {
			t.Fatalf("token %d: %v", i, err.msg)
		}
		if got.kind != w.kind || got.val != w.val || got.pos.Line != w.line || got.pos.Column != w.col || got.pos.File != "f" {
			t.Errorf("token %d = %+v, want %+v", i, got, w)
		}
	}
	for _, bad := range []string{`"abc`, `"abc\`, `"\777"`} {
		if _, err := newLexer("f", []byte(bad)).next(); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestOptionValues(t *testing.T) {
	src := `
option domain-name-servers 10.0.0.1,10.0.0.2 , 10.0.0.3;
option vendor-class-identifier "ab";
option vendor-encapsulated-options 01:4:0:0:0:0:FF;
option dhcp-client-identifier "\001abc";
option time-offset 0x10;
option ip-forwarding on;
option domain-search "a.example.", b.example;
option user-class "iPXE";
option root-path "10.0.0.1:/srv/root, with comma";
option option-200 "raw text";
option option-201 0:1;
option Domain-Name "case";
`
	n, _, err := Parse("f.conf", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"domain-name-servers":         "10.0.0.1, 10.0.0.2, 10.0.0.3",
		"vendor-class-identifier":     "61:62", // text that reads as hex is kept as hex
		"vendor-encapsulated-options": "01:04:00:00:00:00:ff",
		"dhcp-client-identifier":      "01:61:62:63",
		"time-offset":                 "16",
		"ip-forwarding":               "true",
		"domain-search":               "a.example, b.example",
		"user-class":                  "iPXE",
		"root-path":                   "10.0.0.1:/srv/root, with comma",
		"option-200":                  "raw text",
		"option-201":                  "00:01",
		"domain-name":                 "case",
	}
	mustEqual(t, "options", n.Options, want)
}

func TestWarningString(t *testing.T) {
	for _, c := range []struct {
		w    Warning
		want string
	}{
		{Warning{Pos: config.Pos{File: "a.conf", Line: 3, Column: 7}, Msg: "m"}, "a.conf:3: m"},
		{Warning{Pos: config.Pos{File: "a.conf"}, Msg: "m"}, "a.conf: m"},
		{Warning{Msg: "m"}, "m"},
	} {
		if got := c.w.String(); got != c.want {
			t.Errorf("%+v.String() = %q, want %q", c.w, got, c.want)
		}
	}
}

// TestNoSharedMaps checks that hosts merged from one group do not share an
// Options map.
func TestNoSharedMaps(t *testing.T) {
	src := "group { option root-path \"/r\"; host a { hardware ethernet 0:0:0:0:0:1; } host b { hardware ethernet 0:0:0:0:0:2; } }"
	n, _, err := Parse("f.conf", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	n.Hosts[0].Options["x"] = "y"
	if _, ok := n.Hosts[1].Options["x"]; ok {
		t.Error("hosts share an Options map")
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.conf")
	incs, _ := filepath.Glob("testdata/include/*.conf")
	for _, name := range append(files, incs...) {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("include \"x\";\nif a { } else { } elsif"))
	f.Add([]byte("if not (exists a or known) and substring(hardware, 1, 3) != 00:16:3e { } else if binary-to-ascii(10, 8, \".\", option x) = \"\" { }"))
	f.Add([]byte("class \"c\" { match if option vendor-class-identifier = \"x\"; spawn with option host-name; lease limit 2; }\nsubclass \"c\" \"k\" { }"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Any include reads the input itself again: cycles and depth must
		// be caught.
		read := func(path string) ([]byte, error) {
			if strings.HasSuffix(path, "missing") {
				return nil, fmt.Errorf("no such file")
			}
			return data, nil
		}
		n, warns, err := Parse("fuzz.conf", data, read)
		if err != nil {
			if n != nil {
				t.Fatal("network returned with an error")
			}
			var es config.Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %v is not config.Errors", err)
			}
			for _, e := range es {
				if e.Line < 1 || e.Column < 1 || e.File == "" {
					t.Fatalf("error without a position: %v", e)
				}
			}
			return
		}
		retyped := false
		for _, w := range warns {
			if w.Pos.Line < 1 {
				t.Fatalf("warning without a line: %v", w)
			}
			retyped = retyped || strings.Contains(w.Msg, "changes the type of an option already set")
		}
		// What pxed import prints for each option must encode to the bytes
		// the file's tokens gave (unless a definition retyped an option
		// after it was set, which the parser warns about).
		if !retyped {
			takeEncoded(t, n)
		}
	})
}

// TestOptionBytes checks the wire bytes the parser encodes straight from the
// file's tokens, for values a round trip through text could mistake: text
// and data strings holding ", ", quotes or colon hex, escapes, signed octets
// above 127, lists. The options are set in every kind of scope, site
// options declared in the file before they are used.
func TestOptionBytes(t *testing.T) {
	src := `option note code 224 = text;
option blob code 225 = string;
option routes code 121 = array of integer 8;
option note "a, \"b\"; c";
option blob "01:02";
option routers 192.0.2.1, 192.0.2.2;
option option-201 " x, y ";
option routes 24, 200, 10;
shared-network lan {
  option root-path "10.0.0.1:/srv/root, with comma";
  subnet 192.0.2.0 netmask 255.255.255.0 {
    option note "01:02";
    option blob 01:02;
    pool {
      option domain-search "a.example.", b.example;
      range 192.0.2.10 192.0.2.20;
    }
  }
}
group {
  option vendor-class-identifier "\000x\xff";
  host h {
    hardware ethernet 00:16:3e:00:00:01;
    option host-name "h, \"quoted\"";
  }
}
`
	n, _, err := Parse("f.conf", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	at := func(line, col int) config.Pos { return config.Pos{File: "f.conf", Line: line, Column: col} }
	for _, c := range []struct {
		scope string
		p     config.Params
		name  string
		want  []byte
		pos   config.Pos
	}{
		{"global", n.Params, "note", []byte(`a, "b"; c`), at(4, 1)},
		{"global", n.Params, "blob", []byte("01:02"), at(5, 1)},
		{"global", n.Params, "routers", []byte{192, 0, 2, 1, 192, 0, 2, 2}, at(6, 1)},
		{"global", n.Params, "option-201", []byte(" x, y "), at(7, 1)},
		{"global", n.Params, "routes", []byte{24, 200, 10}, at(8, 1)},
		{"subnet (shared-network)", n.Subnets[0].Params, "root-path", []byte("10.0.0.1:/srv/root, with comma"), at(10, 3)},
		{"subnet", n.Subnets[0].Params, "note", []byte("01:02"), at(12, 5)},
		{"subnet", n.Subnets[0].Params, "blob", []byte{1, 2}, at(13, 5)},
		{"pool", n.Subnets[0].Pools[0].Params, "domain-search", []byte("\x01a\x07example\x00\x01b\x07example\x00"), at(15, 7)},
		{"host (group)", n.Hosts[0].Params, "vendor-class-identifier", []byte{0, 'x', 0xff}, at(21, 3)},
		{"host", n.Hosts[0].Params, "host-name", []byte(`h, "quoted"`), at(24, 5)},
	} {
		e, ok := c.p.Encoded[c.name]
		if !ok {
			t.Errorf("%s: option %s not encoded (encoded: %v)", c.scope, c.name, c.p.Encoded)
			continue
		}
		if !bytes.Equal(e.Data, c.want) || e.Pos != c.pos {
			t.Errorf("%s: option %s = %q at %s, want %q at %s", c.scope, c.name, e.Data, e.Pos, c.want, c.pos)
		}
	}
	// The text pxed import prints encodes to the same bytes.
	takeEncoded(t, n)
}

// TestOptionErrorsEveryScope: a bad option value fails the parse at the
// value, in every scope that can carry options.
func TestOptionErrorsEveryScope(t *testing.T) {
	for _, c := range []struct {
		scope, src, want string
	}{
		{"global", "option routers 300.1.2.3;\n",
			`f.conf:1:16: option routers: "300.1.2.3" is not an IPv4 address`},
		{"shared-network", "shared-network s {\n  option domain-name-servers 192.0.2.1, bogus;\n  subnet 192.0.2.0 netmask 255.255.255.0 { }\n}\n",
			`f.conf:2:41: option domain-name-servers: "bogus" is not an IPv4 address (pxed does not resolve host names here; write the address)`},
		{"subnet", "subnet 192.0.2.0 netmask 255.255.255.0 {\n  option interface-mtu 70000;\n}\n",
			"f.conf:2:24: option interface-mtu: 70000 is outside 0..65535 (unsigned integer 16)"},
		{"pool", "subnet 192.0.2.0 netmask 255.255.255.0 {\n  pool {\n    option ip-forwarding maybe;\n    range 192.0.2.10 192.0.2.20;\n  }\n}\n",
			`f.conf:3:26: option ip-forwarding: "maybe" is not a boolean: expected true, false, on or off`},
		{"group", "group {\n  option domain-search \"a..b\";\n}\n",
			`f.conf:2:24: option domain-search: domain name "a..b": empty label`},
		{"host", "host h {\n  hardware ethernet 00:16:3e:00:00:01;\n  option time-offset 1.5;\n}\n",
			`f.conf:3:22: option time-offset: "1.5" is not an integer`},
		{"site option declared in the file", "option arch code 93 = unsigned integer 16;\nhost h {\n  option arch 65536;\n}\n",
			"f.conf:3:15: option arch: 65536 is outside 0..65535 (unsigned integer 16)"},
		{"site option used before its declaration", "option arch 7;\noption arch code 93 = unsigned integer 16;\n",
			`f.conf:1:8: unknown option "arch" (declare it first with: option arch code NUMBER = TYPE;)`},
		{"included file", "subnet 192.0.2.0 netmask 255.255.255.0 {\n  include \"inc.conf\";\n}\n",
			`inc.conf:1:16: option routers: "192.0.2" is not an IPv4 address`},
	} {
		t.Run(c.scope, func(t *testing.T) {
			read := memFS{"inc.conf": "option routers 192.0.2;\n"}.read
			n, _, err := Parse("f.conf", []byte(c.src), read)
			if err == nil || n != nil {
				t.Fatalf("no error (network %v)", n)
			}
			var es config.Errors
			if !errors.As(err, &es) || len(es) != 1 || es[0].Error() != c.want {
				t.Errorf("error = %q, want %q", err, c.want)
			}
		})
	}
}

// TestRetypeAfterUse: a definition that changes the type of an option
// already set warns; the earlier value keeps the bytes it was written as.
func TestRetypeAfterUse(t *testing.T) {
	src := "option domain-search \"a.example\";\noption domain-search code 119 = text;\noption domain-name \"x\";\n"
	n, warns, err := Parse("f.conf", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	checkWarnings(t, warns, []string{
		"f.conf:2: option domain-search code 119 redefines the standard option",
		"f.conf:2: option domain-search code 119 = text changes the type of an option already set at f.conf:1:1 as domain-list",
	})
	if got := n.Encoded["domain-search"].Data; !bytes.Equal(got, []byte("\x01a\x07example\x00")) {
		t.Errorf("domain-search = %q", got)
	}
}
