package dhcpopt

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"pxed/internal/pos"
)

// Def is one option definition.
type Def struct {
	// Name is the ISC name ("routers"), a site option's declared name, or
	// "option-N" for a code known only by number.
	Name string
	Code uint8
	Type Type
	// Protocol marks the options the DHCP server itself sets or reads
	// (lease time, server identifier, message type…): a value configured for
	// one of them is overridden or has no effect.
	Protocol bool
	// Pos is where a site option was declared; zero for standard options.
	Pos pos.Pos
}

// SiteDef declares a site option as a configuration file writes it (ISC
// `option NAME code N = TYPE;`, or the YAML option-definitions); Define
// checks it.
type SiteDef struct {
	Name string
	Code int
	// Type in ISC syntax, as ParseType reads it.
	Type string
	// Pos is where the definition was written; errors about it name it.
	Pos pos.Pos
}

// standard is the DHCPv4 option table: names and codes from RFC 2132 and the
// later RFCs that assign them, types as ISC dhcpd declares them.
var standard = []Def{
	{Name: "subnet-mask", Code: 1, Type: IPAddress},
	{Name: "time-offset", Code: 2, Type: Int32},
	{Name: "routers", Code: 3, Type: IPArray},
	{Name: "time-servers", Code: 4, Type: IPArray},
	{Name: "ien116-name-servers", Code: 5, Type: IPArray},
	{Name: "domain-name-servers", Code: 6, Type: IPArray},
	{Name: "log-servers", Code: 7, Type: IPArray},
	{Name: "cookie-servers", Code: 8, Type: IPArray},
	{Name: "lpr-servers", Code: 9, Type: IPArray},
	{Name: "impress-servers", Code: 10, Type: IPArray},
	{Name: "resource-location-servers", Code: 11, Type: IPArray},
	{Name: "host-name", Code: 12, Type: Text},
	{Name: "boot-size", Code: 13, Type: Uint16},
	{Name: "merit-dump", Code: 14, Type: Text},
	{Name: "domain-name", Code: 15, Type: Text},
	{Name: "swap-server", Code: 16, Type: IPAddress},
	{Name: "root-path", Code: 17, Type: Text},
	{Name: "extensions-path", Code: 18, Type: Text},
	{Name: "ip-forwarding", Code: 19, Type: Boolean},
	{Name: "non-local-source-routing", Code: 20, Type: Boolean},
	{Name: "policy-filter", Code: 21, Type: IPArray}, // address/mask pairs
	{Name: "max-dgram-reassembly", Code: 22, Type: Uint16},
	{Name: "default-ip-ttl", Code: 23, Type: Uint8},
	{Name: "path-mtu-aging-timeout", Code: 24, Type: Uint32},
	{Name: "path-mtu-plateau-table", Code: 25, Type: Type{Kind: KindInt, Bits: 16, Array: true}},
	{Name: "interface-mtu", Code: 26, Type: Uint16},
	{Name: "all-subnets-local", Code: 27, Type: Boolean},
	{Name: "broadcast-address", Code: 28, Type: IPAddress},
	{Name: "perform-mask-discovery", Code: 29, Type: Boolean},
	{Name: "mask-supplier", Code: 30, Type: Boolean},
	{Name: "router-discovery", Code: 31, Type: Boolean},
	{Name: "router-solicitation-address", Code: 32, Type: IPAddress},
	{Name: "static-routes", Code: 33, Type: IPArray}, // destination/router pairs
	{Name: "trailer-encapsulation", Code: 34, Type: Boolean},
	{Name: "arp-cache-timeout", Code: 35, Type: Uint32},
	{Name: "ieee802-3-encapsulation", Code: 36, Type: Boolean},
	{Name: "default-tcp-ttl", Code: 37, Type: Uint8},
	{Name: "tcp-keepalive-interval", Code: 38, Type: Uint32},
	{Name: "tcp-keepalive-garbage", Code: 39, Type: Boolean},
	{Name: "nis-domain", Code: 40, Type: Text},
	{Name: "nis-servers", Code: 41, Type: IPArray},
	{Name: "ntp-servers", Code: 42, Type: IPArray},
	{Name: "vendor-encapsulated-options", Code: 43, Type: String},
	{Name: "netbios-name-servers", Code: 44, Type: IPArray},
	{Name: "netbios-dd-server", Code: 45, Type: IPArray},
	{Name: "netbios-node-type", Code: 46, Type: Uint8},
	{Name: "netbios-scope", Code: 47, Type: Text},
	{Name: "font-servers", Code: 48, Type: IPArray},
	{Name: "x-display-manager", Code: 49, Type: IPArray},
	{Name: "dhcp-requested-address", Code: 50, Type: IPAddress, Protocol: true},
	{Name: "dhcp-lease-time", Code: 51, Type: Uint32, Protocol: true},
	{Name: "dhcp-option-overload", Code: 52, Type: Uint8, Protocol: true},
	{Name: "dhcp-message-type", Code: 53, Type: Uint8, Protocol: true},
	{Name: "dhcp-server-identifier", Code: 54, Type: IPAddress, Protocol: true},
	{Name: "dhcp-parameter-request-list", Code: 55, Type: Type{Kind: KindInt, Bits: 8, Array: true}, Protocol: true},
	{Name: "dhcp-message", Code: 56, Type: Text},
	{Name: "dhcp-max-message-size", Code: 57, Type: Uint16, Protocol: true},
	{Name: "dhcp-renewal-time", Code: 58, Type: Uint32, Protocol: true},
	{Name: "dhcp-rebinding-time", Code: 59, Type: Uint32, Protocol: true},
	{Name: "vendor-class-identifier", Code: 60, Type: String},
	{Name: "dhcp-client-identifier", Code: 61, Type: String},
	{Name: "nwip-domain", Code: 62, Type: String},
	{Name: "nisplus-domain", Code: 64, Type: Text},
	{Name: "nisplus-servers", Code: 65, Type: IPArray},
	{Name: "tftp-server-name", Code: 66, Type: Text},
	{Name: "bootfile-name", Code: 67, Type: Text},
	{Name: "mobile-ip-home-agent", Code: 68, Type: IPArray},
	{Name: "smtp-server", Code: 69, Type: IPArray},
	{Name: "pop-server", Code: 70, Type: IPArray},
	{Name: "nntp-server", Code: 71, Type: IPArray},
	{Name: "www-server", Code: 72, Type: IPArray},
	{Name: "finger-server", Code: 73, Type: IPArray},
	{Name: "irc-server", Code: 74, Type: IPArray},
	{Name: "streettalk-server", Code: 75, Type: IPArray},
	{Name: "streettalk-directory-assistance-server", Code: 76, Type: IPArray},
	{Name: "user-class", Code: 77, Type: String},
	{Name: "nds-servers", Code: 85, Type: IPArray},
	{Name: "nds-tree-name", Code: 86, Type: Text},
	{Name: "nds-context", Code: 87, Type: Text},
	{Name: "pxe-system-type", Code: 93, Type: Type{Kind: KindInt, Bits: 16, Array: true}},
	{Name: "uap-servers", Code: 98, Type: Text},
	{Name: "pcode", Code: 100, Type: Text},
	{Name: "tcode", Code: 101, Type: Text},
	{Name: "netinfo-server-address", Code: 112, Type: IPArray},
	{Name: "netinfo-server-tag", Code: 113, Type: Text},
	{Name: "default-url", Code: 114, Type: Text},
	{Name: "subnet-selection", Code: 118, Type: IPAddress},
	{Name: "domain-search", Code: 119, Type: DomainList},
}

// std is the standard table indexed, built once and never written after.
var std = func() (t struct {
	byName map[string]*Def
	byCode [256]*Def
}) {
	t.byName = make(map[string]*Def, len(standard))
	for i := range standard {
		d := &standard[i]
		if t.byName[d.Name] != nil || t.byCode[d.Code] != nil {
			panic("dhcpopt: duplicate standard option " + d.Name)
		}
		t.byName[d.Name] = d
		t.byCode[d.Code] = d
	}
	return t
}()

// Standard returns the standard option definitions in code order.
func Standard() []Def {
	return append([]Def(nil), standard...)
}

// Table is the standard option table plus a site's own definitions. The
// zero Table, and a nil *Table for lookups, is the standard table alone. A
// Table is not safe for concurrent Define, but Lookup, ByCode, Encode and
// Format may be called concurrently once definition is done.
type Table struct {
	byName map[string]*Def // site definitions only
	byCode [256]*Def       // site definitions only
}

// NewTable returns the standard table plus the site options declared in
// site (ISC `option NAME code N = TYPE;`), checked as Define checks them.
// Errors are *pos.Error positioned at the SiteDef's Pos; all bad
// definitions are reported, as pos.Errors.
func NewTable(site []SiteDef) (*Table, error) {
	t := &Table{byName: map[string]*Def{}}
	var es pos.Errors
	for _, d := range site {
		if e := t.define(d); e != nil {
			es = append(es, e)
		}
	}
	if len(es) > 0 {
		return nil, es
	}
	return t, nil
}

// Define adds a site option definition. The rules, chosen to accept what
// ISC dhcpd accepts without ambiguity:
//
//   - the code must be 1..254 and the type one ParseType reads;
//   - the name must not look like "option-N", which always means a bare code;
//   - a site option may reuse the code of a standard option under its own
//     name (the common `option arch code 93 = unsigned integer 16;`): the
//     site definition then wins for ByCode and Format, and the standard name
//     still resolves to the standard definition;
//   - a site option may redefine a standard name only with the same code
//     (changing its type), except for the protocol options pxed controls;
//   - declaring the same name again is allowed only with the same code and
//     type (as repeated includes do);
//   - several site names may share one code; the last one wins for ByCode.
//
// A non-nil error is a *pos.Error positioned at d.Pos.
func (t *Table) Define(d SiteDef) error {
	if e := t.define(d); e != nil {
		return e
	}
	return nil
}

func (t *Table) define(d SiteDef) *pos.Error {
	bad := func(format string, args ...any) *pos.Error {
		return d.Pos.Errorf("option %s: %s", d.Name, fmt.Sprintf(format, args...))
	}
	if d.Name == "" || strings.ContainsAny(d.Name, " \t\r\n,;{}\"") {
		return bad("bad option name %q", d.Name)
	}
	if _, ok := codeName(d.Name); ok {
		return bad("names of the form option-N are reserved for options known only by code")
	}
	if d.Code < 1 || d.Code > 254 {
		return bad("code %d is outside 1..254 (0 is pad and 255 is end)", d.Code)
	}
	typ, err := ParseType(d.Type)
	if err != nil {
		return bad("%v", err)
	}
	nd := &Def{Name: d.Name, Code: uint8(d.Code), Type: typ, Pos: d.Pos}
	if s := std.byName[d.Name]; s != nil {
		if s.Code != nd.Code {
			return bad("%s is the standard option with code %d; declare code %d under another name", d.Name, s.Code, d.Code)
		}
		if s.Protocol {
			return bad("%s is a protocol option pxed sets itself; it cannot be redefined", d.Name)
		}
	}
	if old := t.byName[d.Name]; old != nil {
		if old.Code != nd.Code || old.Type != nd.Type {
			where := ""
			if p := old.Pos.String(); p != "" {
				where = " at " + p
			}
			return bad("already declared%s as code %d = %s", where, old.Code, old.Type)
		}
		return nil
	}
	if t.byName == nil {
		t.byName = map[string]*Def{}
	}
	t.byName[nd.Name] = nd
	t.byCode[nd.Code] = nd
	return nil
}

// Sites returns the site definitions in code order.
func (t *Table) Sites() []Def {
	var ds []Def
	for _, d := range t.byName {
		ds = append(ds, *d)
	}
	slices.SortFunc(ds, func(a, b Def) int {
		return cmp.Or(cmp.Compare(a.Code, b.Code), strings.Compare(a.Name, b.Name))
	})
	return ds
}

// codeName recognises "option-N" with N in 1..254 written without leading
// zeros.
func codeName(name string) (uint8, bool) {
	s, ok := strings.CutPrefix(name, "option-")
	if !ok || s == "" || s[0] == '0' || len(s) > 3 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 254 {
		return 0, false
	}
	return uint8(n), true
}

// Lookup finds an option by name: a site definition, else a standard one.
// "option-N" (N 1..254) always resolves to code N with type string, even when
// the code has a name, so that raw bytes can be given for any option.
func (t *Table) Lookup(name string) (Def, bool) {
	if t != nil {
		if d := t.byName[name]; d != nil {
			return *d, true
		}
	}
	if d := std.byName[name]; d != nil {
		return *d, true
	}
	if c, ok := codeName(name); ok {
		return Def{Name: name, Code: c, Type: String}, true
	}
	return Def{}, false
}

// ByCode finds an option by code: the last site definition with that code,
// else the standard one. Codes without a definition report false.
func (t *Table) ByCode(code uint8) (Def, bool) {
	if t != nil {
		if d := t.byCode[code]; d != nil {
			return *d, true
		}
	}
	if d := std.byCode[code]; d != nil {
		return *d, true
	}
	return Def{}, false
}

// Encode looks name up and encodes value, in the canonical text form
// described in the package documentation, into the option's bytes. The
// result may be longer than 255 bytes; splitting it (RFC 3396) is the
// caller's business. Errors are plain messages without a position.
func (t *Table) Encode(name, value string) (Def, []byte, error) {
	d, ok := t.Lookup(name)
	if !ok {
		return Def{}, nil, fmt.Errorf("unknown option %q", name)
	}
	b, err := d.Type.Encode(value)
	if err != nil {
		return d, nil, err
	}
	return d, b, nil
}

// Format returns the canonical text of option code's data, as Encode reads
// it. Data that is not a valid value of the option's type (as a client may
// send) is shown as colon hex.
func (t *Table) Format(code uint8, data []byte) string {
	typ := String
	if d, ok := t.ByCode(code); ok {
		typ = d.Type
	}
	s, err := typ.Decode(data)
	if err != nil {
		return HexString(data)
	}
	return s
}
