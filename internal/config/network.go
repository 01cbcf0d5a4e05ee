package config

import (
	"pxed/internal/dhcpopt"
	"pxed/internal/pos"
)

// The DHCP network model: what an ISC dhcpd.conf describes (internal/config/isc
// parses into it) and what the native YAML `dhcp:` section describes. Both
// front ends produce the same values; the DHCP server reads only this.
//
// Scoping follows ISC dhcpd: a host inherits from its enclosing groups, then
// from the subnet its address lies in, then from the global scope. The model
// keeps each scope's own Params; Resolve-style merging happens in the server
// (Params.Over), so `pxed import` can print the file as the operator wrote it.

// Network is the whole DHCP model.
type Network struct {
	// Params is the global scope.
	Params `yaml:",inline"`

	// Authoritative: NAK requests for addresses that are wrong for the
	// client's network (ISC `authoritative;`). Non-authoritative servers
	// stay silent instead.
	Authoritative bool `yaml:"authoritative,omitempty"`
	// PingCheck: probe an address with ICMP echo before offering it
	// (ISC `ping-check true;`).
	PingCheck bool `yaml:"ping-check,omitempty"`
	// Proxy: proxyDHCP mode — answer PXE clients with boot information only
	// (ports 67 and 4011), next to another DHCP server that assigns
	// addresses. Subnets then need no pools.
	Proxy bool `yaml:"proxy,omitempty"`

	// OptionDefs are site options declared with `option NAME code N = TYPE;`.
	OptionDefs []OptionDef `yaml:"option-definitions,omitempty"`
	Subnets    []Subnet    `yaml:"subnets,omitempty"`
	// Hosts are all host declarations, wherever they were written; each
	// carries the Params of its own block merged over its enclosing groups'
	// (not the subnet's or the global scope's).
	Hosts []Host `yaml:"hosts,omitempty"`
	// Classes are ISC client classes, in declaration order (dhcpd.conf
	// only; see classes.go).
	Classes []Class `yaml:"-"`
}

// Params are the statements every scope (global, subnet, pool, group, host)
// may carry. A zero or nil field means "inherit".
type Params struct {
	// DefaultLeaseTime and MaxLeaseTime are in seconds.
	DefaultLeaseTime int `yaml:"default-lease-time,omitempty"`
	MaxLeaseTime     int `yaml:"max-lease-time,omitempty"`
	// NextServer is the TFTP server (siaddr), an IPv4 address.
	NextServer string `yaml:"next-server,omitempty"`
	// Filename is the boot file (BOOTP file field / option 67).
	Filename *string `yaml:"filename,omitempty"`
	// ServerName is the BOOTP sname field (option 66 when asked).
	ServerName *string `yaml:"server-name,omitempty"`
	// AllowBootp / AllowBooting: ISC `allow|deny bootp|booting`.
	AllowBootp   *bool `yaml:"allow-bootp,omitempty"`
	AllowBooting *bool `yaml:"allow-booting,omitempty"`
	// Options maps an option name (standard, e.g. "routers", or declared in
	// Network.OptionDefs, or "option-N" for a bare code) to its value in
	// canonical text: ISC syntax without quotes around text, arrays as
	// "a, b", data strings as quoted-free text or colon hex ("01:02:0a").
	// It is the YAML form: Load checks every value against the option
	// table; the DHCP compiler encodes a value from this text only when
	// Encoded has no entry for its name.
	Options map[string]string `yaml:"options,omitempty"`
	// Encoded holds option values a front end has already encoded, by
	// option name: the dhcpd.conf reader encodes each value straight from
	// the file's tokens and keeps here the bytes and where the option was
	// set, and the canonical text in Options only so that `pxed import` can
	// print YAML. The DHCP compiler sends these bytes as they are. Every
	// name in Encoded is also in Options.
	Encoded map[string]EncodedOption `yaml:"-"`

	// Native-only boot selection (a dhcpd.conf says the same with
	// conditionals or classes on options 93 and 77, see classes.go):
	// BootFiles maps a client architecture (bios, efi-ia32, efi-x64,
	// efi-arm64, efi-x64-http, efi-arm64-http) to its boot file or URL;
	// it wins over Filename for clients that send option 93.
	BootFiles map[string]string `yaml:"boot-files,omitempty"`
	// IPXEScript is given instead of the boot file to clients whose user
	// class (option 77) is "iPXE", so iPXE does not chainload itself.
	// In every boot file, "{server}" stands for the DHCP server's own
	// address on the client's network ("http://{server}:8080/boot.ipxe").
	IPXEScript string `yaml:"ipxe-script,omitempty"`

	// BootUnknownClients: ISC `allow|deny|ignore unknown-clients` outside a
	// pool (boot-unknown-clients): false answers only clients with a host
	// declaration. dhcpd.conf only.
	BootUnknownClients *bool `yaml:"-"`
	// Conds are the scope's conditional statements, in file order, applied
	// after the fields above (see classes.go). dhcpd.conf only.
	Conds []Cond `yaml:"-"`
}

// EncodedOption is an option value in its wire form.
type EncodedOption struct {
	// Data is the option's bytes, possibly longer than 255 (the server
	// splits long options, RFC 3396).
	Data []byte
	// Pos is where the option was set.
	Pos Pos
}

// OptionDef declares a site option.
type OptionDef struct {
	Name string `yaml:"name"`
	Code int    `yaml:"code"`
	// Type in ISC syntax: "ip-address", "array of ip-address", "text",
	// "string", "boolean", "unsigned integer 32", "signed integer 16",
	// "integer 8", "domain-list", …
	Type string `yaml:"type"`
	Pos  Pos    `yaml:"-"`
}

// Site returns d as the option codec takes it.
func (d OptionDef) Site() dhcpopt.SiteDef {
	return dhcpopt.SiteDef{Name: d.Name, Code: d.Code, Type: d.Type, Pos: d.Pos}
}

// OptionTable returns the standard options plus n's site definitions.
// Errors are Errors, one per bad definition, at the definition.
func (n *Network) OptionTable() (*dhcpopt.Table, error) {
	site := make([]dhcpopt.SiteDef, len(n.OptionDefs))
	for i, d := range n.OptionDefs {
		site[i] = d.Site()
	}
	return dhcpopt.NewTable(site)
}

// Subnet is a `subnet A netmask M { }` block.
type Subnet struct {
	// Network in CIDR form, e.g. "192.0.2.0/24".
	Network string `yaml:"network"`
	Params  `yaml:",inline"`
	// Pools hold the dynamic ranges; a range written outside any pool is a
	// pool of its own with no parameters.
	Pools []Pool `yaml:"pools,omitempty"`
	Pos   Pos    `yaml:"-"`
}

// Pool is a `pool { }` block.
type Pool struct {
	Params `yaml:",inline"`
	Ranges []Range `yaml:"ranges"`
	// Permits are the pool's allow/deny access rules (dhcpd.conf only).
	Permits []Permit `yaml:"-"`
	Pos     Pos      `yaml:"-"`
}

// Range is `range [dynamic-bootp] START [END];` (END defaults to START).
type Range struct {
	Start        string `yaml:"start"`
	End          string `yaml:"end"`
	DynamicBootp bool   `yaml:"dynamic-bootp,omitempty"`
	Pos          Pos    `yaml:"-"`
}

// Host is a `host NAME { }` block.
type Host struct {
	Name string `yaml:"name"`
	// MAC is the `hardware ethernet` address, "00:16:3e:72:79:e3".
	MAC string `yaml:"mac,omitempty"`
	// ClientID is option 61 (`option dhcp-client-identifier`), colon hex,
	// matched before MAC when the client sends one.
	ClientID string `yaml:"client-id,omitempty"`
	// FixedAddresses: ISC allows several, one per subnet the host may be on.
	FixedAddresses []string `yaml:"fixed-address,omitempty"`
	Params         `yaml:",inline"`
	Pos            Pos `yaml:"-"`
}

// Pos is where a declaration was written, for messages (see package pos).
type Pos = pos.Pos

// Over returns p with every field p leaves unset taken from outer: the
// inheritance rule of ISC scopes (host over group over subnet over global).
// Options and BootFiles merge key by key.
func (p Params) Over(outer Params) Params {
	r := p
	if r.DefaultLeaseTime == 0 {
		r.DefaultLeaseTime = outer.DefaultLeaseTime
	}
	if r.MaxLeaseTime == 0 {
		r.MaxLeaseTime = outer.MaxLeaseTime
	}
	if r.NextServer == "" {
		r.NextServer = outer.NextServer
	}
	if r.Filename == nil {
		r.Filename = outer.Filename
	}
	if r.ServerName == nil {
		r.ServerName = outer.ServerName
	}
	if r.AllowBootp == nil {
		r.AllowBootp = outer.AllowBootp
	}
	if r.AllowBooting == nil {
		r.AllowBooting = outer.AllowBooting
	}
	if r.IPXEScript == "" {
		r.IPXEScript = outer.IPXEScript
	}
	if r.BootUnknownClients == nil {
		r.BootUnknownClients = outer.BootUnknownClients
	}
	r.Conds = mergeConds(p, outer)
	r.Options = mergeMap(p.Options, outer.Options)
	r.Encoded = mergeEncoded(p, outer)
	r.BootFiles = mergeMap(p.BootFiles, outer.BootFiles)
	return r
}

func mergeMap(inner, outer map[string]string) map[string]string {
	if len(outer) == 0 {
		return inner
	}
	if len(inner) == 0 {
		return outer
	}
	m := make(map[string]string, len(inner)+len(outer))
	for k, v := range outer {
		m[k] = v
	}
	for k, v := range inner {
		m[k] = v
	}
	return m
}

// mergeEncoded is Over for Encoded: an option the inner scope sets wins with
// its encoding, or without one (a text value) over the outer one's.
func mergeEncoded(inner, outer Params) map[string]EncodedOption {
	if len(outer.Encoded) == 0 {
		return inner.Encoded
	}
	if len(inner.Options) == 0 && len(inner.Encoded) == 0 {
		return outer.Encoded
	}
	m := make(map[string]EncodedOption, len(inner.Encoded)+len(outer.Encoded))
	for k, v := range outer.Encoded {
		if _, set := inner.Options[k]; !set {
			m[k] = v
		}
	}
	for k, v := range inner.Encoded {
		m[k] = v
	}
	return m
}
