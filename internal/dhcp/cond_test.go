package dhcp

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"pxed/internal/bootplan"
	"pxed/internal/config"
	"pxed/internal/config/isc"
	"pxed/internal/inventory"
)

// condRig compiles a dhcpd.conf for Decide.
func condRig(t *testing.T, conf string) *decRig {
	t.Helper()
	n, _, err := isc.Parse("dhcpd.conf", []byte(conf), nil)
	if err != nil {
		t.Fatal(err)
	}
	return newDecRig(t, n, bootplan.Options{})
}

func (o *Outcome) opt(code uint8) []byte {
	if o.Reply == nil {
		return nil
	}
	for _, op := range o.Reply.opts {
		if op.code == code {
			return op.data
		}
	}
	return nil
}

const pxeX64 = "PXEClient:Arch:00007:UNDI:003016"

func discover(mac string, opts map[uint8][]byte) decMsg {
	return decMsg{typ: msgDiscover, mac: mac, opts: opts}
}

// deny unknown-clients closes a pool to clients without a host
// declaration; before, pxed skipped it and offered the pool to everybody.
func TestPoolPermits(t *testing.T) {
	r := condRig(t, `
authoritative;
class "pxe" { match if substring(option vendor-class-identifier, 0, 9) = "PXEClient"; }
subnet 192.0.2.0 netmask 255.255.255.0 {
  pool { range 192.0.2.10 192.0.2.19; deny unknown-clients; }
  pool { range 192.0.2.100 192.0.2.109; allow members of "pxe"; deny known clients; }
}
host known { hardware ethernet 00:16:3e:00:00:01; }
`)
	in := func(o Outcome, lo, hi string) bool {
		a := o.YIAddr()
		return a.IsValid() && !a.Less(netip.MustParseAddr(lo)) && !netip.MustParseAddr(hi).Less(a)
	}
	// Known: only the first pool admits it (the second denies known clients).
	o := r.decide(t, discover("00:16:3e:00:00:01", map[uint8][]byte{60: []byte(pxeX64)}))
	if !in(o, "192.0.2.10", "192.0.2.19") {
		t.Errorf("known client: %s %q", o.YIAddr(), o.Silence)
	}
	// Unknown, not PXE: no pool admits it: no address at all, as ISC.
	o = r.decide(t, discover("00:16:3e:00:00:02", nil))
	if o.Reply != nil || !strings.Contains(o.Silence, "no pool of 192.0.2.0/24 admits this client") {
		t.Errorf("unknown client: %s %q", o.YIAddr(), o.Silence)
	}
	// Unknown PXE client: the class pool.
	o = r.decide(t, discover("00:16:3e:00:00:03", map[uint8][]byte{60: []byte(pxeX64)}))
	if !in(o, "192.0.2.100", "192.0.2.109") {
		t.Errorf("unknown PXE client: %s %q", o.YIAddr(), o.Silence)
	}
	// An unknown client REQUESTing an address of the closed pool: the
	// lease may only come from the pools that admit it, so the allocator
	// refuses it and delivery NAKs.
	req := decMsg{typ: msgRequest, mac: "00:16:3e:00:00:04", opts: map[uint8][]byte{50: ip4("192.0.2.12"), 54: ip4("192.0.2.1")}}
	o = r.decide(t, req)
	if o.Action != CommitThenSend || len(o.Lease.Pools) != 0 {
		t.Errorf("REQUEST from an unknown client: action %v, pools %v", o.Action, o.Lease.Pools)
	}
	if err := r.alloc.Commit(o.Lease, netip.MustParseAddr("192.0.2.12"), time.Hour, nil); err == nil || !errUnavailable(err) {
		t.Errorf("commit of a closed pool's address: %v", err)
	}
}

func TestBootUnknownClients(t *testing.T) {
	r := condRig(t, `
subnet 192.0.2.0 netmask 255.255.255.0 {
  range 192.0.2.10 192.0.2.19;
  deny unknown-clients;
}
host fixed { hardware ethernet 00:16:3e:00:00:01; fixed-address 192.0.2.5; }
host dyn { hardware ethernet 00:16:3e:00:00:02; }
`)
	if o := r.decide(t, discover("00:16:3e:00:00:09", nil)); o.Reply != nil || !strings.Contains(o.Silence, "unknown client") {
		t.Errorf("unknown: %s %q", o.YIAddr(), o.Silence)
	}
	if o := r.decide(t, discover("00:16:3e:00:00:01", nil)); o.YIAddr() != netip.MustParseAddr("192.0.2.5") {
		t.Errorf("fixed host: %s %q", o.YIAddr(), o.Silence)
	}
	if o := r.decide(t, discover("00:16:3e:00:00:02", nil)); !o.YIAddr().IsValid() {
		t.Errorf("dynamic host: %q", o.Silence)
	}
}

// The brief's configurations, verbatim, against the clients that meet them.
func TestConditionalsAndClasses(t *testing.T) {
	r := condRig(t, `
option arch code 93 = unsigned integer 16;
class "pxeclients" { match if substring(option vendor-class-identifier, 0, 9) = "PXEClient"; next-server 192.0.2.1; filename "pxelinux.0"; }
class "httpclients" { match if substring(option vendor-class-identifier, 0, 10) = "HTTPClient"; option vendor-class-identifier "HTTPClient"; filename "http://192.0.2.1/shimx64.efi"; }
class "ipxe" { match if exists user-class and option user-class = "iPXE"; filename "http://192.0.2.1/boot.ipxe"; }
class "vendor" { match option vendor-class-identifier; }
subclass "vendor" "PXEClient:Arch:00009:UNDI:003016" { filename "sub.efi"; server-name "subsrv"; }
subnet 192.0.2.0 netmask 255.255.255.0 {
  range 192.0.2.10 192.0.2.50;
  if option arch = 00:07 { filename "ipxe.efi"; } elsif option arch = 00:09 { filename "ipxe9.efi"; } else { filename "undionly.kpxe"; }
  if not exists user-class { server-name "no-uc"; }
  if substring(hardware, 1, 3) = 00:16:3e { option domain-name "xen"; }
}
host known { hardware ethernet 52:54:00:00:00:01; if known { filename "known.0"; } }
`)
	arch := func(a byte) []byte { return []byte{0, a} }
	cases := []struct {
		name              string
		mac               string
		opts              map[uint8][]byte
		file, next, name2 string
		vc                string
		domain            string
	}{
		// The class (executed after the subnet) wins over the subnet's if.
		{"BIOS PXE", "52:54:00:00:00:02", map[uint8][]byte{60: []byte("PXEClient:Arch:00000:UNDI:002001"), 93: arch(0)}, "pxelinux.0", "192.0.2.1", "no-uc", "PXEClient", ""},
		// Two classes: vendor's subclass matched second, so pxeclients
		// (matched first) wins where both set something.
		{"PXE arch 9", "52:54:00:00:00:03", map[uint8][]byte{60: []byte("PXEClient:Arch:00009:UNDI:003016"), 93: arch(9)}, "pxelinux.0", "192.0.2.1", "subsrv", "PXEClient", ""},
		{"HTTP", "52:54:00:00:00:04", map[uint8][]byte{60: []byte("HTTPClient:Arch:00016"), 93: arch(16)}, "http://192.0.2.1/shimx64.efi", "", "no-uc", "HTTPClient", ""},
		{"iPXE", "52:54:00:00:00:05", map[uint8][]byte{77: []byte("iPXE"), 93: arch(7)}, "http://192.0.2.1/boot.ipxe", "", "", "", ""},
		{"plain arch 7", "52:54:00:00:00:06", map[uint8][]byte{93: arch(7)}, "ipxe.efi", "", "no-uc", "", ""},
		{"plain arch 9, Xen MAC", "00:16:3e:00:00:06", map[uint8][]byte{93: arch(9)}, "ipxe9.efi", "", "no-uc", "", "xen"},
		{"no arch", "52:54:00:00:00:07", nil, "undionly.kpxe", "", "no-uc", "", ""},
		// The host's conditional sees known; the host runs last.
		{"known host", "52:54:00:00:00:01", map[uint8][]byte{60: []byte(pxeX64)}, "known.0", "192.0.2.1", "no-uc", "PXEClient", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opts = mapWith(c.opts, 55, []byte{1, 3, 15, 60, 66, 67})
			o := r.decide(t, discover(c.mac, c.opts))
			if o.Reply == nil {
				t.Fatalf("silence: %s", o.Silence)
			}
			next := ""
			if a := o.SIAddr(); a.IsValid() && !a.IsUnspecified() {
				next = a.String()
			}
			if o.File() != c.file || next != c.next || o.Reply.SName != c.name2 || string(o.opt(60)) != c.vc || string(o.opt(15)) != c.domain {
				t.Errorf("file %q next %q sname %q opt60 %q domain %q; want %q %q %q %q %q",
					o.File(), next, o.Reply.SName, o.opt(60), o.opt(15), c.file, c.next, c.name2, c.vc, c.domain)
			}
		})
	}
}

func mapWith(m map[uint8][]byte, code uint8, v []byte) map[uint8][]byte {
	out := map[uint8][]byte{code: v}
	for k, x := range m {
		out[k] = x
	}
	return out
}

// ISC's precedence: host > class > pool > subnet > global; inside a scope,
// statements in file order; an outer scope's conditional never overrides an
// inner scope's statement.
func TestPrecedence(t *testing.T) {
	r := condRig(t, `
filename "global";
if known { filename "global-if"; }
server-name "global";
class "c" { match if option host-name = "c"; filename "class"; }
subnet 192.0.2.0 netmask 255.255.255.0 {
  filename "subnet";
  if option host-name = "subnet-if" or option host-name = "pool" { filename "subnet-if"; }
  pool { range 192.0.2.10 192.0.2.19; if option host-name = "pool" { filename "pool"; } }
}
host h { hardware ethernet 52:54:00:00:00:01; if option host-name = "c" { filename "host-if"; } }
`)
	cases := []struct{ mac, hostname, file string }{
		{"52:54:00:00:00:02", "x", "subnet"},
		{"52:54:00:00:00:02", "subnet-if", "subnet-if"},
		{"52:54:00:00:00:02", "pool", "pool"},
		{"52:54:00:00:00:02", "c", "class"},
		{"52:54:00:00:00:01", "c", "host-if"},
		// The global if (known) is outer: the subnet's filename wins.
		{"52:54:00:00:00:01", "x", "subnet"},
	}
	for _, c := range cases {
		o := r.decide(t, discover(c.mac, map[uint8][]byte{12: []byte(c.hostname)}))
		if o.File() != c.file || o.Reply.SName != "global" {
			t.Errorf("%s %s: file %q sname %q, want %q", c.mac, c.hostname, o.File(), o.Reply.SName, c.file)
		}
	}
}

// Expressions against packets, with dhcp-eval(5)'s null semantics.
func TestEvalSemantics(t *testing.T) {
	pkt := func(opts map[uint8][]byte) *Packet {
		p, err := Parse(ClientMessage(msgDiscover, net.HardwareAddr{0, 0x16, 0x3e, 1, 2, 3}, 1, netip.Addr{}, opts))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	vc := map[uint8][]byte{60: []byte(pxeX64), 93: {0, 7}, 12: {}}
	cases := []struct {
		expr string
		opts map[uint8][]byte
		v    bool
		ok   bool
	}{
		{`option arch = 00:07`, vc, true, true},
		{`option arch = 00:09`, vc, false, true},
		{`option arch = 00:07`, nil, false, true},            // not sent: unequal
		{`option arch != 00:07`, nil, true, true},            // and so !=
		{`option arch = option user-class`, nil, true, true}, // both null: equal (ISC)
		{`substring(option vendor-class-identifier, 0, 9) = "PXEClient"`, vc, true, true},
		{`substring(option vendor-class-identifier, 0, 9) = "PXEClient"`, nil, false, true},
		{`substring(option vendor-class-identifier, 30, 10) = "16"`, vc, true, true}, // beyond the end: what is there
		{`substring(option vendor-class-identifier, 32, 1) = ""`, vc, true, true},    // at the end: empty, not null
		{`substring(option vendor-class-identifier, 99, 1) = ""`, vc, true, true},
		{`substring(hardware, 1, 3) = 00:16:3e`, nil, true, true},
		{`substring(hardware, 0, 2) = 01:00`, nil, true, true}, // htype first
		{`hardware = 01:00:16:3e:01:02:03`, nil, true, true},
		{`binary-to-ascii(16, 8, ":", substring(hardware, 1, 6)) = "0:16:3e:1:2:3"`, nil, true, true},
		{`binary-to-ascii(10, 16, ".", option arch) = "7"`, vc, true, true},
		{`binary-to-ascii(2, 8, "", substring(hardware, 3, 2)) = "1111101"`, nil, true, true},
		{`binary-to-ascii(10, 16, ".", substring(hardware, 0, 3)) = "x"`, nil, false, true}, // 3 bytes, width 2: null = "x" → unequal
		{`exists host-name`, vc, true, true},                                                // zero-length option: it exists
		{`exists user-class`, vc, false, true},
		{`not exists user-class`, vc, true, true},
		{`known`, nil, false, true},
		{`not known`, nil, true, true},
		{`exists arch and option arch = 00:07`, vc, true, true},
		{`exists user-class and option user-class = "iPXE"`, vc, false, false}, // false and …: null (ISC)
		{`not (exists user-class and option user-class = "iPXE")`, vc, false, false},
		{`exists user-class or option arch = 00:07`, vc, true, true},
		{`exists user-class or exists user-class`, vc, false, true},
		{`(exists user-class and known) or known`, vc, false, true},
		{`(exists user-class and known) or (exists user-class and known)`, vc, false, false},
	}
	for _, c := range cases {
		n, _, err := isc.Parse("t.conf", []byte("option arch code 93 = unsigned integer 16;\nclass \"c\" { match if "+c.expr+"; }"), nil)
		if err != nil {
			t.Errorf("%s: %v", c.expr, err)
			continue
		}
		ev := evaluator{p: pkt(c.opts), st: &condState{}}
		v, ok := ev.truth(n.Classes[0].Match)
		if v != c.v || ok != c.ok {
			t.Errorf("%s with %v: %v, %v; want %v, %v", c.expr, c.opts, v, ok, c.v, c.ok)
		}
	}
}

// Hostile input: binary-to-ascii of a long option is bounded, and nothing
// an option holds makes the evaluation panic or grow without bound.
func TestEvalBounded(t *testing.T) {
	n, _, err := isc.Parse("t.conf", []byte(`class "c" { match binary-to-ascii(2, 8, "----------------------------------------------------------------------------------------------------", option user-class); }`), nil)
	if err != nil {
		t.Fatal(err)
	}
	long := make([]byte, 1200)
	p, err := Parse(ClientMessage(msgDiscover, net.HardwareAddr{0, 0x16, 0x3e, 1, 2, 3}, 1, netip.Addr{}, map[uint8][]byte{77: long}))
	if err != nil {
		t.Fatal(err)
	}
	ev := evaluator{p: p, st: &condState{}}
	if d, ok := ev.data(n.Classes[0].Submatch); ok || len(d) != 0 {
		t.Errorf("binary-to-ascii of 1200 bytes with a 100-byte separator: %d bytes, %v; want null (more than %d)", len(d), ok, maxB2A)
	}
}

// explain's trace: which class matched, which branch applied.
func TestTrace(t *testing.T) {
	r := condRig(t, `option arch code 93 = unsigned integer 16;
class "pxeclients" { match if substring(option vendor-class-identifier, 0, 9) = "PXEClient"; }
subnet 192.0.2.0 netmask 255.255.255.0 {
  range 192.0.2.10 192.0.2.50;
  if option arch = 00:07 { filename "ipxe.efi"; } else { filename "undionly.kpxe"; }
}
`)
	var trace []string
	req := r.request(t, discover("52:54:00:00:00:01", map[uint8][]byte{60: []byte(pxeX64), 93: {0, 7}}))
	req.Trace = &trace
	Decide(r.view, req, r.alloc)
	want := []string{
		`class pxeclients matched: option vendor-class-identifier "PXEClient:Arch:00007:UNDI:003016" (match if substring(option vendor-class-identifier, 0, 9) = "PXEClient" at dhcpd.conf:2:1)`,
		`dhcpd.conf:5:3: if option arch = 00:07: true → filename "ipxe.efi"`,
	}
	if !slices.Equal(trace, want) {
		t.Errorf("trace:\n%s\nwant:\n%s", strings.Join(trace, "\n"), strings.Join(want, "\n"))
	}
}

// Classes and conditionals cost nothing when a configuration has none: the
// plan has no dynamic part and the exchange no evaluation state.
func TestNoCondsNoCost(t *testing.T) {
	plan, _, err := Compile(&config.Network{Subnets: []config.Subnet{{Network: "192.0.2.0/24"}}})
	if err != nil || plan.dyn != nil {
		t.Fatalf("plan %+v, %v", plan.dyn, err)
	}
}

// A host without a fixed address gets its pool's parameters under its own
// (ISC runs the pool's statements, then the host's), with or without
// conditionals in the file.
func TestHostOverPool(t *testing.T) {
	for _, extra := range []string{"", "if known { option domain-name \"k\"; }\n"} {
		r := condRig(t, extra+`
subnet 192.0.2.0 netmask 255.255.255.0 {
  filename "subnet";
  pool { range 192.0.2.10 192.0.2.19; filename "pool"; server-name "pool"; }
}
host h { hardware ethernet 52:54:00:00:00:01; server-name "host"; }
`)
		o := r.decide(t, discover("52:54:00:00:00:01", nil))
		if o.File() != "pool" || o.Reply.SName != "host" {
			t.Errorf("%q: file %q sname %q, want pool, host", extra, o.File(), o.Reply.SName)
		}
	}
}

// A host pxed adds from its inventory is known: deny unknown-clients lets
// it into the pool.
func TestInventoryHostIsKnown(t *testing.T) {
	n, _, err := isc.Parse("dhcpd.conf", []byte(`subnet 192.0.2.0 netmask 255.255.255.0 {
  pool { range 192.0.2.10 192.0.2.19; deny unknown-clients; }
}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Parse("inv.yaml", []byte("profiles:\n  p: {kernel: k}\nhosts:\n  - {name: dyn, mac: \"00:16:3e:00:00:02\", profile: p}\n"))
	if err != nil {
		t.Fatal(err)
	}
	merged, err := inv.Merge(n)
	if err != nil {
		t.Fatal(err)
	}
	r := newDecRig(t, merged, bootplan.Options{Inventory: inv})
	if o := r.decide(t, discover("00:16:3e:00:00:02", nil)); !o.YIAddr().IsValid() || o.Host != "dyn" {
		t.Errorf("inventory host: %s %q %q", o.YIAddr(), o.Host, o.Silence)
	}
	if o := r.decide(t, discover("00:16:3e:00:00:03", nil)); o.Reply != nil {
		t.Errorf("unknown client got %s", o.YIAddr())
	}
}

// The pools chosen by known/unknown alone are precomputed; a reload that
// adopts the running plan's lease pools must choose those.
func TestPermitPoolsAfterReload(t *testing.T) {
	conf := `subnet 192.0.2.0 netmask 255.255.255.0 {
  pool { range 192.0.2.10 192.0.2.19; deny unknown-clients; }
  pool { range 192.0.2.20 192.0.2.29; allow unknown clients; }
}`
	compile := func() *Plan {
		n, _, err := isc.Parse("dhcpd.conf", []byte(conf), nil)
		if err != nil {
			t.Fatal(err)
		}
		p, _, err := Compile(n)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	old, p := compile(), compile()
	if err := p.adoptPools(old); err != nil {
		t.Fatal(err)
	}
	sn, osn := p.subnets[0], old.subnets[0]
	if !sn.static || len(sn.byKnown[0]) != 1 || sn.byKnown[0][0] != osn.pools[1].lp || len(sn.byKnown[1]) != 1 || sn.byKnown[1][0] != osn.pools[0].lp {
		t.Errorf("pools by known after adopting: %v %v (running: %p %p)", sn.byKnown[0], sn.byKnown[1], osn.pools[0].lp, osn.pools[1].lp)
	}
}
