package dhcp

import (
	"bytes"
	"strings"
	"testing"

	"pxed/internal/config"
	"pxed/internal/config/isc"
)

func TestCompileErrorsAndWarnings(t *testing.T) {
	at := config.Pos{File: "f.conf", Line: 7, Column: 3}
	for _, tc := range []struct {
		name     string
		edit     func(n *config.Network)
		wantErr  string // substring of the error, "" for none
		wantWarn string
	}{
		{name: "seed is fine but warns about the fixed address in the pool",
			edit:     func(n *config.Network) {},
			wantWarn: "host test_pvm: fixed-address 192.0.2.199 lies inside a dynamic range of 192.0.2.0/24"},
		{name: "host bits", edit: func(n *config.Network) { n.Subnets[0].Network = "192.0.2.1/24"; n.Subnets[0].Pos = at },
			wantErr: "f.conf:7:3: subnet 192.0.2.1/24: host bits are set (did you mean 192.0.2.0/24?)"},
		{name: "not a network", edit: func(n *config.Network) { n.Subnets[0].Network = "example" }, wantErr: "not an IPv4 network"},
		{name: "range outside subnet", edit: func(n *config.Network) {
			n.Subnets[0].Pools[0].Ranges[0] = config.Range{Start: "198.51.100.1", End: "198.51.100.9", Pos: at}
		}, wantErr: "f.conf:7:3: range 198.51.100.1 198.51.100.9 is not inside subnet 192.0.2.0/24"},
		{name: "range backwards", edit: func(n *config.Network) {
			n.Subnets[0].Pools[0].Ranges[0] = config.Range{Start: "192.0.2.9", End: "192.0.2.1"}
		}, wantErr: "the first address is after the last"},
		{name: "range over broadcast", edit: func(n *config.Network) {
			n.Subnets[0].Pools[0].Ranges[0] = config.Range{Start: "192.0.2.200", End: "192.0.2.255"}
		}, wantErr: "includes the network or broadcast address"},
		{name: "overlapping ranges", edit: func(n *config.Network) {
			n.Subnets[0].Pools = append(n.Subnets[0].Pools, config.Pool{Ranges: []config.Range{{Start: "192.0.2.250", End: "192.0.2.252"}}})
		}, wantErr: "overlaps range 192.0.2.199-192.0.2.254"},
		{name: "overlapping subnets", edit: func(n *config.Network) {
			n.Subnets = append(n.Subnets, config.Subnet{Network: "192.0.2.128/25"})
		}, wantErr: "overlaps subnet 192.0.2.0/24"},
		{name: "bad option value", edit: func(n *config.Network) {
			n.Subnets[0].Options["routers"] = "gateway.example"
			n.Subnets[0].Pos = at
		}, wantErr: "f.conf:7:3: subnet 192.0.2.0/24: option routers"},
		{name: "unknown option", edit: func(n *config.Network) { n.Options = map[string]string{"no-such-option": "1"} }, wantErr: "option no-such-option"},
		{name: "protocol option is ignored with a warning", edit: func(n *config.Network) {
			n.Options = map[string]string{"dhcp-lease-time": "60"}
		}, wantWarn: "option dhcp-lease-time is set by pxed itself"},
		{name: "next-server name", edit: func(n *config.Network) { n.NextServer = "boot.example" }, wantErr: "next-server \"boot.example\" is not an IPv4 address"},
		{name: "bad MAC", edit: func(n *config.Network) { n.Hosts[0].MAC = "00:16:3e" }, wantErr: "hardware ethernet \"00:16:3e\""},
		{name: "fixed address name", edit: func(n *config.Network) { n.Hosts[0].FixedAddresses = []string{"pvm.example"} }, wantErr: "does not resolve names"},
		{name: "fixed address outside every subnet", edit: func(n *config.Network) { n.Hosts[1].FixedAddresses = []string{"198.51.100.7"} },
			wantWarn: "fixed-address 198.51.100.7 is in no declared subnet"},
		{name: "host without MAC", edit: func(n *config.Network) { n.Hosts[1].MAC = "" }, wantWarn: "host test_hvm has neither"},
		{name: "boot-files arch", edit: func(n *config.Network) { n.BootFiles = map[string]string{"efi-x86": "a.efi"} }, wantErr: "unknown architecture \"efi-x86\""},
		{name: "subnet without range", edit: func(n *config.Network) { n.Subnets[0].Pools = nil }, wantWarn: "has no range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := seedNetwork()
			tc.edit(n)
			plan, warns, err := Compile(n)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if plan != nil {
					t.Fatal("a plan came back with an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantWarn != "" {
				found := false
				for _, w := range warns {
					found = found || strings.Contains(w.String(), tc.wantWarn)
				}
				if !found {
					t.Fatalf("warnings %v, want one containing %q", warns, tc.wantWarn)
				}
			}
		})
	}
}

func TestScopeInheritance(t *testing.T) {
	n := seedNetwork()
	n.Params.Options = map[string]string{"domain-name": "global.example", "ntp-servers": "192.0.2.123"}
	n.Subnets[0].Pools[0].Params = config.Params{Filename: ptr("pool.0")}
	n.Hosts[1].Params = config.Params{Filename: ptr("hvm.0"), Options: map[string]string{"host-name": "hvm"}}
	plan, _, err := Compile(n)
	if err != nil {
		t.Fatal(err)
	}
	sn := plan.subnets[0]
	pool := sn.pools[0].scope
	host := plan.hostScope(plan.byMAC["00:16:3e:72:79:e4"][0], sn, nil)
	for _, tc := range []struct {
		name string
		got  string
		want string
	}{
		{"pool filename over subnet", pool.filename, "pool.0"},
		{"subnet option over global", string(pool.byCode[15]), "example.com"},
		{"global option inherited by the pool", string(pool.byCode[42]), string([]byte{192, 0, 2, 123})},
		{"host filename over subnet", host.filename, "hvm.0"},
		{"host option", string(host.byCode[12]), "hvm"},
		{"host inherits subnet routers", string(host.byCode[3]), string([]byte{192, 0, 2, 166})},
		{"host inherits global ntp", string(host.byCode[42]), string([]byte{192, 0, 2, 123})},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if host.defLease != 120e9 || pool.maxLease != 120e9 {
		t.Errorf("lease times: host default %s, pool max %s", host.defLease, pool.maxLease)
	}
}

// TestPlanSendsParsedBytes: options read from a dhcpd.conf reach the plan as
// the bytes the parser encoded from the file's tokens, never re-encoded from
// their text, in every scope. The values are ones a trip through text could
// change: text and data strings holding ", ", quotes or colon hex, a signed
// octet above 127, an array of addresses, and an option whose type a later
// definition changes.
func TestPlanSendsParsedBytes(t *testing.T) {
	const src = `option note code 224 = text;
option blob code 225 = string;
option routes code 121 = array of integer 8;
option domain-search "a.example";
option domain-search code 119 = text;
option note "a, \"b\"";
option dhcp-lease-time 60;
subnet 192.0.2.0 netmask 255.255.255.0 {
  option routers 192.0.2.1, 192.0.2.2;
  option blob "01:02";
  option routes 24, 200, 10;
  pool {
    option note "01:02";
    range 192.0.2.10 192.0.2.20;
  }
  host h {
    hardware ethernet 00:16:3e:00:00:01;
    fixed-address 192.0.2.5;
    option host-name "h, \"q\"";
    option blob 01:02;
  }
}
`
	n, _, err := isc.Parse("f.conf", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, n *config.Network) {
		plan, warns, err := Compile(n)
		if err != nil {
			t.Fatal(err)
		}
		// One warning, at the statement, not one per scope inheriting it.
		var ignored []string
		for _, w := range warns {
			if strings.Contains(w.Msg, "set by pxed itself") {
				ignored = append(ignored, w.String())
			}
		}
		if len(ignored) != 1 || ignored[0] != "f.conf:7:1: global scope: option dhcp-lease-time is set by pxed itself; the configured value is ignored" {
			t.Errorf("warnings about dhcp-lease-time: %q", ignored)
		}
		sn := plan.subnets[0]
		host := plan.hostScope(plan.byMAC["00:16:3e:00:00:01"][0], sn, nil)
		for _, c := range []struct {
			scope string
			sc    *scope
			code  uint8
			want  string
		}{
			{"global", plan.global, 224, `a, "b"`},
			{"global", plan.global, 119, "\x01a\x07example\x00"},
			{"subnet", sn.scope, 3, "\xc0\x00\x02\x01\xc0\x00\x02\x02"},
			{"subnet", sn.scope, 225, "01:02"},
			{"subnet", sn.scope, 121, "\x18\xc8\x0a"},
			{"subnet inherits global", sn.scope, 224, `a, "b"`},
			{"pool", sn.pools[0].scope, 224, "01:02"},
			{"host", host, 12, `h, "q"`},
			{"host", host, 225, "\x01\x02"},
			{"host inherits subnet", host, 121, "\x18\xc8\x0a"},
		} {
			if got := c.sc.byCode[c.code]; !bytes.Equal(got, []byte(c.want)) {
				t.Errorf("%s: option %d = %q, want %q", c.scope, c.code, got, c.want)
			}
		}
		if _, ok := plan.global.byCode[51]; ok {
			t.Error("the protocol option dhcp-lease-time is in the plan")
		}
	}
	t.Run("parsed", func(t *testing.T) { check(t, n) })
	// The text is for pxed import only: garbling it changes nothing.
	garble := func(p *config.Params) {
		for name := range p.Options {
			p.Options[name] = "\x00 not a value, of any type"
		}
	}
	garble(&n.Params)
	garble(&n.Subnets[0].Params)
	garble(&n.Subnets[0].Pools[0].Params)
	garble(&n.Hosts[0].Params)
	t.Run("text garbled", func(t *testing.T) { check(t, n) })
}
