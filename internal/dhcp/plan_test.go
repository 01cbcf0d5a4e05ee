package dhcp

import (
	"strings"
	"testing"

	"pxed/internal/config"
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
	host := plan.hostScope(plan.byMAC["00:16:3e:72:79:e4"][0], sn)
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
