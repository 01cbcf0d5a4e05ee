// Package isc reads an ISC dhcpd.conf into pxed's DHCP model
// (config.Network).
//
// It understands the statements a network-boot setup uses — subnets, pools,
// ranges, groups, hosts, shared networks, includes, options (standard and
// site-defined), lease times, next-server, filename, server-name, allow/deny
// booting and bootp, authoritative, ping-check — with ISC's meaning, and
// the classes, conditionals and pool permits PXE sites write (classes.go,
// expr.go). Statements ISC has that do not change what a client is served
// (failover, DDNS keys and zones, …) are skipped whole, braces and all,
// with a Warning naming it and its line; what would change it and pxed does
// not evaluate (log, execute, spawning classes, concat, regex matches, …)
// is an error. Nothing is dropped silently. Malformed input is a
// config.Errors whose entries give file:line:column.
package isc

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"pxed/internal/config"
	"pxed/internal/dhcpopt"
)

// Warning is something in the file that pxed reads but does not act on the
// way ISC dhcpd would, typically an unsupported statement it skipped.
type Warning struct {
	Pos config.Pos
	Msg string
}

// String formats the warning as "file:line: msg".
func (w Warning) String() string {
	switch {
	case w.Pos.File == "" && w.Pos.Line == 0:
		return w.Msg
	case w.Pos.Line == 0:
		return w.Pos.File + ": " + w.Msg
	default:
		return w.Pos.File + ":" + strconv.Itoa(w.Pos.Line) + ": " + w.Msg
	}
}

// ParseFile reads the dhcpd.conf at path, with its includes read from disk.
func ParseFile(path string) (*config.Network, []Warning, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return Parse(path, data, os.ReadFile)
}

// maxErrors stops parsing after this many errors.
const maxErrors = 20

// maxIncludeDepth bounds nested includes, and maxIncludes all of them (a
// file included twice counts twice).
const (
	maxIncludeDepth = 16
	maxIncludes     = 10000
	maxBlockDepth   = 100
)

// Parse reads a dhcpd.conf held in data; file names it in positions and is
// the base for relative includes. readInclude reads an included file by the
// path Parse resolved (relative to the including file's directory); with a
// nil readInclude every include is an error.
//
// On success it returns the network and the warnings. On failure the error
// is a config.Errors (every entry a *config.Error with file, line and
// column), the network is nil and the warnings are those found so far.
func Parse(file string, data []byte, readInclude func(path string) ([]byte, error)) (*config.Network, []Warning, error) {
	table, err := dhcpopt.NewTable(nil)
	if err != nil {
		return nil, nil, err
	}
	p := &parser{
		lx:          newLexer(file, data),
		readInclude: readInclude,
		files:       []string{filepath.Clean(file)},
		table:       table,
		net:         &config.Network{},
	}
	p.run()
	if len(p.errs) > 0 {
		return nil, p.warns, p.errs
	}
	return p.net, p.warns, nil
}

// bailout unwinds the parser after an error it cannot continue from.
type bailout struct{}

type parser struct {
	lx          *lexer
	peeked      *token
	last        token // the token next returned last
	exprTerms   int   // in the expression being read
	readInclude func(string) ([]byte, error)
	files       []string // include stack, outermost first
	nIncludes   int
	depth       int // open blocks
	table       *dhcpopt.Table

	net *config.Network
	// used: the options set so far, with the definition their first value
	// was encoded with.
	used    map[string]firstUse
	subnets []*subnetDecl
	hosts   []*hostDecl
	errs    config.Errors
	warns   []Warning
}

// firstUse is where an option was first set, and the definition its value
// was encoded with.
type firstUse struct {
	def dhcpopt.Def
	pos config.Pos
}

type scopeKind uint8

const (
	scGlobal scopeKind = iota
	scShared
	scSubnet
	scPool
	scGroup
	scHost
	scClass // a class or subclass body
	scCond  // an if, elsif or else branch
)

// scope is a block being parsed.
type scope struct {
	kind   scopeKind
	parent *scope
	params *config.Params // the block's own parameters
	open   token          // the keyword that opened it
	subnet *subnetDecl    // the enclosing subnet, if any
	shared *sharedDecl    // the enclosing shared-network, if any
	pool   *config.Pool   // for scPool
	host   *hostDecl      // for scHost
	class  *config.Class  // for scClass of a class (not a subclass)
}

// what names the scope for messages: "a host declaration".
func (s *scope) what() string {
	switch s.kind {
	case scGlobal:
		return "the global scope"
	case scShared:
		return "a shared-network"
	case scSubnet:
		return "a subnet"
	case scPool:
		return "a pool"
	case scGroup:
		if s.subnet != nil {
			return "a group inside a subnet"
		}
		if s.shared != nil {
			return "a group inside a shared-network"
		}
		return "a group"
	case scClass:
		return "a class declaration"
	case scCond:
		return "a conditional statement"
	default:
		return "a host declaration"
	}
}

// target is where a parameter statement of sc goes: the scope's own
// Params, or, after a conditional in the same scope, an unconditional block
// after it (ISC executes a scope's statements in order).
func (sc *scope) target() *config.Params {
	c := sc.params.Conds
	if len(c) == 0 {
		return sc.params
	}
	if last := &c[len(c)-1]; len(last.Branches) == 1 && last.Branches[0].Keyword == "" {
		return &last.Branches[0].Params
	}
	sc.params.Conds = append(c, config.Cond{Branches: []config.Branch{{}}})
	return &sc.params.Conds[len(c)].Branches[0].Params
}

type subnetDecl struct {
	sub    config.Subnet
	prefix netip.Prefix
	chain  []*config.Params // enclosing groups and shared-networks, inner first
}

type hostDecl struct {
	host  config.Host
	chain []*config.Params // enclosing groups up to the subnet, inner first
}

type sharedDecl struct {
	name    string
	subnets []*subnetDecl
	pools   []*config.Pool // declared directly in the shared-network
}

func (p *parser) run() {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(bailout); !ok {
				panic(r)
			}
		}
	}()
	global := &scope{kind: scGlobal, params: &p.net.Params}
	p.statements(global, nil)
	if len(p.errs) == 0 {
		p.finish()
	}
}

// errorAt records an error and goes on parsing.
func (p *parser) errorAt(pos config.Pos, format string, args ...any) {
	p.errs = append(p.errs, &config.Error{File: pos.File, Line: pos.Line, Column: pos.Column, Msg: fmt.Sprintf(format, args...)})
	if len(p.errs) >= maxErrors {
		panic(bailout{})
	}
}

// fail records an error and stops parsing.
func (p *parser) fail(pos config.Pos, format string, args ...any) {
	p.errs = append(p.errs, &config.Error{File: pos.File, Line: pos.Line, Column: pos.Column, Msg: fmt.Sprintf(format, args...)})
	panic(bailout{})
}

func (p *parser) warn(pos config.Pos, format string, args ...any) {
	p.warns = append(p.warns, Warning{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) next() token {
	if t := p.peeked; t != nil {
		p.peeked = nil
		p.last = *t
		return *t
	}
	t, err := p.lx.next()
	if err != nil {
		p.fail(err.pos, "%s", err.msg)
	}
	p.last = t
	return t
}

// peek returns the next token without consuming it.
func (p *parser) peek() token {
	if p.peeked == nil {
		last := p.last
		t := p.next()
		p.peeked, p.last = &t, last
	}
	return *p.peeked
}

// expect consumes the punctuation want or fails: `expected ";" after X, got Y`.
func (p *parser) expect(want, after string) token {
	t := p.next()
	if !t.is(want) {
		p.fail(t.pos, "expected %q after %s, got %s", want, after, t.describe())
	}
	return t
}

// statements parses statements until the "}" closing open, or until the end
// of the current file when open is nil.
func (p *parser) statements(sc *scope, open *token) {
	for {
		t := p.peek()
		switch {
		case t.kind == tEOF:
			if open != nil {
				p.fail(t.pos, "unexpected end of file: missing \"}\" to close the %s block opened at line %d", sc.open.val, open.pos.Line)
			}
			return
		case t.is("}"):
			if open == nil {
				if len(p.files) > 1 {
					p.fail(t.pos, "unexpected \"}\": an included file must close every block it opens and no other")
				}
				p.fail(t.pos, "unexpected \"}\" with no block open")
			}
			p.next()
			return
		}
		p.statement(sc)
	}
}

// block consumes "{", the statements and the closing "}".
func (p *parser) block(sc *scope, after string) {
	open := p.expect("{", after)
	if p.depth++; p.depth > maxBlockDepth {
		p.fail(open.pos, "blocks nested more than %d deep", maxBlockDepth)
	}
	p.statements(sc, &open)
	p.depth--
}

func (p *parser) statement(sc *scope) {
	kw := p.next()
	switch kw.kind {
	case tPunct:
		if kw.is(";") {
			return // an empty statement
		}
		p.fail(kw.pos, "expected a statement (a keyword such as \"option\", \"subnet\" or \"host\"), got %s", kw.describe())
	case tString:
		p.fail(kw.pos, "expected a statement (a keyword such as \"option\", \"subnet\" or \"host\"), got %s", kw.describe())
	}
	name := strings.ToLower(kw.val)
	if (sc.kind == scCond || sc.kind == scClass) && declarations[name] {
		p.errorAt(kw.pos, "%q cannot be declared inside %s", kw.val, sc.what())
		p.skip(kw)
		return
	}
	switch name {
	case "if":
		p.ifStmt(sc, kw)
	case "elsif", "else":
		p.fail(kw.pos, "%q without an \"if\" before it", kw.val)
	case "class":
		p.class(sc, kw)
	case "subclass":
		p.subclass(sc, kw)
	case "match", "spawn", "lease":
		p.classStmt(sc, kw)
	case "include":
		p.include(sc, kw)
	case "option":
		p.option(sc, kw)
	case "subnet":
		p.subnet(sc, kw)
	case "shared-network":
		p.sharedNetwork(sc, kw)
	case "pool":
		p.pool(sc, kw)
	case "range":
		p.rangeStmt(sc, kw)
	case "group":
		p.group(sc, kw)
	case "host":
		p.hostStmt(sc, kw)
	case "hardware":
		p.hardware(sc, kw)
	case "fixed-address":
		p.fixedAddress(sc, kw)
	case "uid":
		p.uid(sc, kw)
	case "default-lease-time", "max-lease-time":
		p.leaseTime(sc, kw)
	case "next-server":
		p.nextServer(sc, kw)
	case "filename", "server-name":
		p.bootString(sc, kw)
	case "allow", "deny", "ignore":
		p.permit(sc, kw)
	case "authoritative":
		p.expect(";", `"authoritative"`)
		p.authoritative(sc, kw, true)
	case "not":
		t := p.next()
		if t.kind != tWord || !strings.EqualFold(t.val, "authoritative") {
			p.fail(t.pos, "expected \"authoritative\" after \"not\", got %s", t.describe())
		}
		p.expect(";", `"not authoritative"`)
		p.authoritative(sc, kw, false)
	case "ping-check":
		p.pingCheck(sc, kw)
	case "ddns-update-style":
		t := p.next()
		if t.kind != tWord {
			p.fail(t.pos, "expected a style (none, interim, standard) after \"ddns-update-style\", got %s", t.describe())
		}
		p.expect(";", `"ddns-update-style `+t.val+`"`)
		if !strings.EqualFold(t.val, "none") {
			p.warn(kw.pos, "ddns-update-style %s: pxed does no dynamic DNS updates; ignored", t.val)
		}
	default:
		p.unsupported(kw)
	}
}

// hints for statements pxed knows ISC has but does not support.
var unsupportedHints = map[string]string{
	"failover":            "DHCP failover is not supported",
	"key":                 "pxed does no dynamic DNS updates",
	"zone":                "pxed does no dynamic DNS updates",
	"on":                  "event hooks (on commit/release/expiry) are not supported",
	"log-facility":        "pxed logs through its own logger",
	"subnet6":             "pxed serves DHCPv4 only",
	"range6":              "pxed serves DHCPv4 only",
	"prefix6":             "pxed serves DHCPv4 only",
	"fixed-address6":      "pxed serves DHCPv4 only",
	"fixed-prefix6":       "pxed serves DHCPv4 only",
	"min-lease-time":      "pxed has no minimum lease time; clients get at least default-lease-time",
	"lease-file-name":     "pxed keeps leases in its own state directory",
	"pid-file-name":       "pxed does not write a pid file",
	"vendor-option-space": "option spaces are not supported",
	"site-option-space":   "option spaces are not supported",
	"use-host-decl-names": "host names are not sent as option host-name; set option host-name in the host instead",
	"server-identifier":   "pxed uses the address of the interface it answers on",
	"local-address":       "use pxed's interfaces setting",
	"local-port":          "pxed listens on the standard ports",
	"omapi-port":          "OMAPI is not supported",
	"omapi-key":           "OMAPI is not supported",
	"host-identifier":     "hosts are matched by hardware ethernet or dhcp-client-identifier only",
}

// iscStatements are other statements ISC dhcpd has; an unknown word gets a
// message saying it may be a typo.
var iscStatements = map[string]bool{
	"ddns-updates": true, "ddns-domainname": true, "ddns-rev-domainname": true,
	"ddns-hostname": true, "ddns-ttl": true, "update-optimization": true, "update-conflict-detection": true,
	"update-static-leases": true, "one-lease-per-client": true, "get-lease-hostnames": true,
	"use-lease-addr-for-default-route": true, "ignore-client-uids": true, "min-secs": true,
	"dynamic-bootp-lease-cutoff": true, "dynamic-bootp-lease-length": true, "boot-unknown-clients": true,
	"stash-agent-options": true, "always-reply-rfc1048": true, "always-broadcast": true, "server-duid": true,
	"remote-port": true, "db-time-format": true, "infinite-is-reserved": true, "abandon-lease-time": true,
	"adaptive-lease-time-threshold": true, "log-threshold-high": true, "log-threshold-low": true,
	"leasequery": true, "delayed-ack": true, "max-ack-delay": true, "dont-use-fsync": true, "lease": true,
	"limit-addrs-per-ia": true, "limit-prefs-per-ia": true, "preferred-lifetime": true,
	"authoring-byte-order": true, "lease-id-format": true, "ping-timeout": true, "ping-cltt-secs": true,
	"ping-timeout-ms": true, "do-forward-updates": true, "client-updates": true, "update-static-leases-on": true,
	"filename-prefix": true, "persist-eui-64-leases": true, "release-on-roam": true, "local-address6": true,
	"bind-local-address6": true, "dhcpv6-lease-file-name": true, "dhcpv6-pid-file-name": true,
	"dhcpv6-set-tee-times": true, "prefix-length-mode": true, "check-secs-byte-order": true,
}

// executable are ISC's executable statements pxed does not evaluate.
var executable = map[string]bool{
	"set": true, "unset": true, "log": true, "execute": true, "eval": true, "return": true,
	"define": true, "switch": true, "case": true, "default": true, "add": true, "break": true,
	"known": true, "supersede": true, "prepend": true, "append": true,
}

// declarations may not appear inside a class or a conditional.
var declarations = map[string]bool{
	"subnet": true, "shared-network": true, "pool": true, "range": true, "group": true,
	"host": true, "class": true, "subclass": true, "failover": true, "key": true, "zone": true,
	"subnet6": true, "range6": true,
}

// unsupported skips the statement kw begins — up to its ";" or through its
// braces (and, for if, its elsif/else parts) — and warns.
func (p *parser) unsupported(kw token) {
	end := p.skip(kw)
	name := strings.ToLower(kw.val)
	lines := ""
	if end.Line > kw.pos.Line {
		lines = fmt.Sprintf(", lines %d-%d", kw.pos.Line, end.Line)
	}
	switch {
	case executable[name]:
		// These change what a client gets, or run something: skipping
		// one would serve differently from dhcpd.
		p.errorAt(kw.pos, "%q is not supported by pxed: it evaluates if/elsif/else, classes and pool permits, not %s statements; rewrite it with those or remove it", kw.val, kw.val)
	case unsupportedHints[name] != "":
		p.warn(kw.pos, "%q is not supported by pxed: %s; statement skipped%s", kw.val, unsupportedHints[name], lines)
	case iscStatements[name]:
		p.warn(kw.pos, "%q is not supported by pxed; statement skipped%s", kw.val, lines)
	default:
		// ISC dhcpd refuses a statement it does not know, and so does
		// pxed: a typo (next-sever, filname) must not serve a network
		// without what it was meant to set.
		p.errorAt(kw.pos, "unknown statement %q: not an ISC dhcpd statement (dhcpd refuses it too; a typo?)", kw.val)
	}
}

// skip consumes the rest of a statement whose first token kw is already
// read: up to a ";" outside braces, or through a brace block; an if
// statement's elsif and else blocks are skipped with it. It returns the
// position of the last token skipped.
func (p *parser) skip(kw token) config.Pos {
	isIf := strings.EqualFold(kw.val, "if") || strings.EqualFold(kw.val, "elsif") || strings.EqualFold(kw.val, "else")
	depth := 0
	for {
		t := p.next()
		switch {
		case t.kind == tEOF:
			p.fail(t.pos, "unexpected end of file in the %q statement that starts at line %d", kw.val, kw.pos.Line)
		case t.is("{"):
			depth++
		case t.is("}"):
			if depth == 0 {
				p.fail(t.pos, "expected \";\" to end the %q statement, got \"}\"", kw.val)
			}
			depth--
			if depth == 0 {
				if n := p.peek(); isIf && n.kind == tWord && (strings.EqualFold(n.val, "else") || strings.EqualFold(n.val, "elsif")) {
					continue
				}
				return t.pos
			}
		case t.is(";") && depth == 0:
			return t.pos
		}
	}
}

func (p *parser) include(sc *scope, kw token) {
	t := p.next()
	if t.kind != tString {
		p.fail(t.pos, "expected quoted file name after \"include\", got %s", t.describe())
	}
	p.expect(";", `include "`+t.val+`"`)
	path := t.val
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(p.lx.file), path)
	}
	path = filepath.Clean(path)
	for i, f := range p.files {
		if f == path {
			p.errorAt(kw.pos, "include %q makes a cycle: %s → %s", t.val, strings.Join(p.files[i:], " → "), path)
			return
		}
	}
	if len(p.files) >= maxIncludeDepth {
		p.errorAt(kw.pos, "include %q: includes nested more than %d deep", t.val, maxIncludeDepth)
		return
	}
	if p.nIncludes++; p.nIncludes > maxIncludes {
		p.fail(kw.pos, "include %q: more than %d includes", t.val, maxIncludes)
	}
	if p.readInclude == nil {
		p.errorAt(kw.pos, "include %q: includes cannot be read here", t.val)
		return
	}
	data, err := p.readInclude(path)
	if err != nil {
		p.errorAt(kw.pos, "include %q: %v", t.val, err)
		return
	}
	savedLx, savedPeek := p.lx, p.peeked
	p.lx, p.peeked = newLexer(path, data), nil
	p.files = append(p.files, path)
	p.statements(sc, nil)
	p.files = p.files[:len(p.files)-1]
	p.lx, p.peeked = savedLx, savedPeek
}

func (p *parser) authoritative(sc *scope, kw token, on bool) {
	if sc.kind != scGlobal {
		stmt := "authoritative"
		if !on {
			stmt = "not authoritative"
		}
		p.warn(kw.pos, "%s in %s: pxed supports it only at global scope; ignored here", stmt, sc.what())
		return
	}
	p.net.Authoritative = on
}

func (p *parser) pingCheck(sc *scope, kw token) {
	t := p.next()
	on, ok := parseBool(t)
	if !ok {
		p.fail(t.pos, "expected true or false after \"ping-check\", got %s", t.describe())
	}
	p.expect(";", `"ping-check `+t.val+`"`)
	if sc.kind != scGlobal {
		p.warn(kw.pos, "ping-check in %s: pxed supports it only at global scope; ignored here", sc.what())
		return
	}
	p.net.PingCheck = on
}

func parseBool(t token) (value, ok bool) {
	if t.kind != tWord {
		return false, false
	}
	switch strings.ToLower(t.val) {
	case "true", "on":
		return true, true
	case "false", "off":
		return false, true
	}
	return false, false
}

func (p *parser) permit(sc *scope, kw token) {
	t := p.next()
	if t.kind != tWord {
		p.fail(t.pos, "expected what to %s (booting, bootp, …) after %q, got %s", strings.ToLower(kw.val), kw.val, t.describe())
	}
	what := strings.ToLower(t.val)
	allow := strings.EqualFold(kw.val, "allow")
	if what == "booting" || what == "bootp" {
		p.expect(";", fmt.Sprintf("%q", kw.val+" "+t.val))
		if what == "booting" {
			sc.target().AllowBooting = &allow
		} else {
			sc.target().AllowBootp = &allow
		}
		return
	}
	if sc.kind == scPool {
		p.poolPermit(sc, kw, t)
		return
	}
	if what == "unknown-clients" {
		// Outside a pool: ISC's boot-unknown-clients, which answers
		// (or not) clients without a host declaration at all.
		p.expect(";", fmt.Sprintf("%q", kw.val+" "+t.val))
		sc.target().BootUnknownClients = &allow
		return
	}
	p.skip(t)
	stmt := kw.val + " " + t.val
	switch what {
	case "known-clients", "known", "members", "all", "dynamic", "authenticated", "unauthenticated", "after":
		p.errorAt(kw.pos, "%q is a pool permit: it is allowed only inside a pool (dhcpd refuses it here too)", stmt)
	default:
		p.warn(kw.pos, "%q is not supported by pxed; statement skipped", stmt)
	}
}

func (p *parser) leaseTime(sc *scope, kw token) {
	t := p.next()
	var n uint64
	var err error
	if t.kind == tWord {
		n, err = strconv.ParseUint(t.val, 10, 64)
	}
	if t.kind != tWord || err != nil && !isRangeErr(err) {
		p.fail(t.pos, "expected a number of seconds after %q, got %s", kw.val, t.describe())
	}
	p.expect(";", fmt.Sprintf("%q", kw.val+" "+t.val))
	switch {
	case err != nil || n > 1<<31-1:
		p.errorAt(t.pos, "%s %s is too large (at most 2147483647 seconds)", kw.val, t.val)
		return
	case n == 0:
		p.warn(kw.pos, "%s 0: pxed treats 0 as unset and inherits the enclosing scope's value", kw.val)
	}
	if strings.EqualFold(kw.val, "default-lease-time") {
		sc.target().DefaultLeaseTime = int(n)
	} else {
		sc.target().MaxLeaseTime = int(n)
	}
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

func (p *parser) nextServer(sc *scope, kw token) {
	t := p.next()
	if t.kind != tWord {
		p.fail(t.pos, "expected IP address or host name after \"next-server\", got %s", t.describe())
	}
	p.expect(";", `"next-server `+t.val+`"`)
	if a, err := dhcpopt.ParseIPv4(t.val); err == nil {
		sc.target().NextServer = a.String()
		return
	}
	if !isHostName(t.val) {
		p.errorAt(t.pos, "next-server %q is neither an IPv4 address nor a host name", t.val)
		return
	}
	sc.target().NextServer = t.val // a name: the server resolves it
}

// isHostName accepts RFC 1123 host names (letters, digits, hyphens, dots;
// labels not starting or ending with a hyphen) that are not all digits.
func isHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	letter := false
	for l := range strings.SplitSeq(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
				letter = true
			case c >= '0' && c <= '9', c == '-':
			default:
				return false
			}
		}
	}
	return letter
}

// bootString is filename or server-name.
func (p *parser) bootString(sc *scope, kw token) {
	t := p.next()
	if t.kind != tString {
		what := "file name"
		if strings.EqualFold(kw.val, "server-name") {
			what = "server name"
		}
		p.fail(t.pos, "expected quoted %s after %q, got %s", what, kw.val, t.describe())
	}
	p.expect(";", fmt.Sprintf("%s %q", kw.val, t.val))
	s := t.val
	if strings.EqualFold(kw.val, "filename") {
		if len(s) > 127 {
			p.warn(kw.pos, "filename is %d bytes; the BOOTP file field holds 127, so it is sent only as option 67 to clients that ask", len(s))
		}
		sc.target().Filename = &s
	} else {
		sc.target().ServerName = &s
	}
}

// ipArg reads an IPv4 address argument. Anything but an address is a
// syntax error, except that where ISC would resolve a host name (names is
// true) a name is recorded as an error and ok is false.
func (p *parser) ipArg(t token, after string, names bool) (netip.Addr, bool) {
	if t.kind != tWord {
		p.fail(t.pos, "expected IP address after %q, got %s", after, t.describe())
	}
	a, err := dhcpopt.ParseIPv4(t.val)
	if err != nil {
		if !names {
			p.fail(t.pos, "expected IP address after %q, got %s", after, t.describe())
		}
		if isHostName(t.val) {
			p.errorAt(t.pos, "%s %s: pxed does not resolve host names in %s; write the IPv4 address", after, t.val, after)
		} else {
			p.errorAt(t.pos, "expected IP address after %q, got %s", after, t.describe())
		}
		return netip.Addr{}, false
	}
	return a, true
}

func (p *parser) subnet(sc *scope, kw token) {
	if sc.subnet != nil || sc.kind == scPool || sc.kind == scHost {
		p.errorAt(kw.pos, "a subnet cannot be declared inside %s", sc.what())
		p.skip(kw)
		return
	}
	addrTok := p.next()
	addr, _ := p.ipArg(addrTok, "subnet", false)
	nm := p.next()
	if nm.kind != tWord || !strings.EqualFold(nm.val, "netmask") {
		p.fail(nm.pos, "expected \"netmask\" after the subnet address, got %s", nm.describe())
	}
	maskTok := p.next()
	mask, _ := p.ipArg(maskTok, "netmask", false)
	ones := maskBits(mask)
	if ones < 0 {
		p.errorAt(maskTok.pos, "netmask %s is not a valid netmask (its one bits must be contiguous)", mask)
	}
	d := &subnetDecl{}
	d.sub.Pos = kw.pos
	if ones >= 0 {
		d.prefix = netip.PrefixFrom(addr, ones)
		if m := d.prefix.Masked(); m.Addr() != addr {
			p.errorAt(addrTok.pos, "subnet %s netmask %s: the address has host bits set (did you mean subnet %s?)", addr, mask, m.Addr())
			d.prefix = m
		}
		d.sub.Network = d.prefix.String()
	}
	for s := sc; s != nil && (s.kind == scGroup || s.kind == scShared); s = s.parent {
		d.chain = append(d.chain, s.params)
	}
	p.subnets = append(p.subnets, d)
	if sc.shared != nil {
		sc.shared.subnets = append(sc.shared.subnets, d)
	}
	inner := &scope{kind: scSubnet, parent: sc, params: &d.sub.Params, open: kw, subnet: d, shared: sc.shared}
	p.block(inner, fmt.Sprintf("\"subnet %s netmask %s\"", addrTok.val, maskTok.val))
}

// maskBits returns the prefix length of a contiguous netmask, or -1.
func maskBits(m netip.Addr) int {
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for v&(1<<31) != 0 {
		v <<= 1
		n++
	}
	if v != 0 {
		return -1
	}
	return n
}

func (p *parser) sharedNetwork(sc *scope, kw token) {
	if sc.subnet != nil || sc.shared != nil || sc.kind == scPool || sc.kind == scHost {
		p.errorAt(kw.pos, "a shared-network cannot be declared inside %s", sc.what())
		p.skip(kw)
		return
	}
	name := p.next()
	if name.kind != tWord && name.kind != tString {
		p.fail(name.pos, "expected a name after \"shared-network\", got %s", name.describe())
	}
	sh := &sharedDecl{name: name.val}
	inner := &scope{kind: scShared, parent: sc, params: &config.Params{}, open: kw, shared: sh}
	p.block(inner, fmt.Sprintf("\"shared-network %s\"", name.val))
	p.warn(kw.pos, "shared-network %s: pxed has no shared networks; its %d subnets are served as separate subnets", name.val, len(sh.subnets))
	// Pools written directly in the shared-network go to the subnet that
	// holds their ranges.
	for _, pool := range sh.pools {
		bySubnet := map[*subnetDecl][]config.Range{}
		var order []*subnetDecl
		for _, r := range pool.Ranges {
			var home *subnetDecl
			for _, s := range sh.subnets {
				if inPrefix(s.prefix, r.Start) && inPrefix(s.prefix, r.End) {
					home = s
					break
				}
			}
			if home == nil {
				p.errorAt(r.Pos, "range %s %s is not inside any subnet of shared-network %s", r.Start, r.End, name.val)
				continue
			}
			if bySubnet[home] == nil {
				order = append(order, home)
			}
			bySubnet[home] = append(bySubnet[home], r)
		}
		for _, s := range order {
			np := config.Pool{Params: cloneParams(pool.Params), Ranges: bySubnet[s], Permits: pool.Permits, Pos: pool.Pos}
			s.sub.Pools = append(s.sub.Pools, np)
		}
	}
}

func inPrefix(pfx netip.Prefix, s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && pfx.IsValid() && pfx.Contains(a)
}

func (p *parser) pool(sc *scope, kw token) {
	if sc.kind != scSubnet && sc.kind != scShared {
		p.errorAt(kw.pos, "a pool cannot be declared in %s; it belongs in a subnet or shared-network", sc.what())
		p.skip(kw)
		return
	}
	pool := &config.Pool{Pos: kw.pos}
	inner := &scope{kind: scPool, parent: sc, params: &pool.Params, open: kw, pool: pool, subnet: sc.subnet, shared: sc.shared}
	p.block(inner, `"pool"`)
	if len(pool.Ranges) == 0 {
		p.warn(kw.pos, "pool without a range has no addresses to offer; ignored")
		return
	}
	if sc.kind == scSubnet {
		sc.subnet.sub.Pools = append(sc.subnet.sub.Pools, *pool)
	} else {
		sc.shared.pools = append(sc.shared.pools, pool)
	}
}

func (p *parser) rangeStmt(sc *scope, kw token) {
	if sc.kind != scSubnet && sc.kind != scPool {
		p.errorAt(kw.pos, "a range cannot be declared in %s; it belongs in a subnet or a pool", sc.what())
		p.skip(kw)
		return
	}
	r := config.Range{Pos: kw.pos}
	t := p.next()
	if t.kind == tWord && strings.EqualFold(t.val, "dynamic-bootp") {
		r.DynamicBootp = true
		t = p.next()
	}
	start, ok1 := p.ipArg(t, "range", true)
	end, ok2 := start, ok1
	if t = p.next(); !t.is(";") {
		end, ok2 = p.ipArg(t, "range", true)
		if t = p.next(); !t.is(";") {
			p.fail(t.pos, "expected \";\" after the range's addresses, got %s", t.describe())
		}
	}
	if !ok1 || !ok2 {
		return
	}
	if end.Less(start) {
		start, end = end, start // ISC takes the range either way round
	}
	r.Start, r.End = start.String(), end.String()
	if sc.subnet != nil {
		pfx := sc.subnet.prefix
		if pfx.IsValid() && (!pfx.Contains(start) || !pfx.Contains(end)) {
			p.errorAt(kw.pos, "range %s %s is not inside subnet %s", r.Start, r.End, pfx)
			return
		}
	}
	if sc.kind == scPool {
		sc.pool.Ranges = append(sc.pool.Ranges, r)
		return
	}
	sc.subnet.sub.Pools = append(sc.subnet.sub.Pools, config.Pool{Ranges: []config.Range{r}, Pos: kw.pos})
}

func (p *parser) group(sc *scope, kw token) {
	if sc.kind == scPool || sc.kind == scHost {
		p.errorAt(kw.pos, "a group cannot be declared inside %s", sc.what())
		p.skip(kw)
		return
	}
	if n := p.peek(); n.kind == tWord || n.kind == tString {
		p.next() // ISC allows a group name; it has no effect here
	}
	inner := &scope{kind: scGroup, parent: sc, params: &config.Params{}, open: kw, subnet: sc.subnet, shared: sc.shared}
	p.block(inner, `"group"`)
}

func (p *parser) hostStmt(sc *scope, kw token) {
	if sc.kind == scPool || sc.kind == scHost {
		p.errorAt(kw.pos, "a host cannot be declared inside %s", sc.what())
		p.skip(kw)
		return
	}
	name := p.next()
	if name.kind != tWord && name.kind != tString {
		p.fail(name.pos, "expected a host name after \"host\", got %s", name.describe())
	}
	h := &hostDecl{host: config.Host{Name: name.val, Pos: kw.pos}}
	for s := sc; s != nil && s.kind == scGroup; s = s.parent {
		h.chain = append(h.chain, s.params)
	}
	p.hosts = append(p.hosts, h)
	inner := &scope{kind: scHost, parent: sc, params: &h.host.Params, open: kw, host: h, subnet: sc.subnet, shared: sc.shared}
	p.block(inner, fmt.Sprintf("\"host %s\"", name.val))
}

// hostOnly reports (and skips) a host statement outside a host.
func (p *parser) hostOnly(sc *scope, kw token) bool {
	if sc.kind == scHost {
		return true
	}
	p.errorAt(kw.pos, "%q is only allowed in a host declaration, not in %s", kw.val, sc.what())
	p.skip(kw)
	return false
}

func (p *parser) hardware(sc *scope, kw token) {
	if !p.hostOnly(sc, kw) {
		return
	}
	typ := p.next()
	if typ.kind != tWord {
		p.fail(typ.pos, "expected a hardware type (ethernet) after \"hardware\", got %s", typ.describe())
	}
	if !strings.EqualFold(typ.val, "ethernet") {
		p.skip(typ)
		p.warn(kw.pos, "hardware %s: pxed matches only ethernet addresses; statement skipped", typ.val)
		return
	}
	t := p.next()
	if t.kind != tWord {
		p.fail(t.pos, "expected Ethernet address (like 00:16:3e:72:79:e3) after \"hardware ethernet\", got %s", t.describe())
	}
	p.expect(";", `"hardware ethernet `+t.val+`"`)
	b, ok := dhcpopt.ParseHex(t.val)
	if !ok || len(b) != 6 {
		p.errorAt(t.pos, "hardware ethernet %s is not an Ethernet address (six hex bytes separated by colons, like 00:16:3e:72:79:e3)", t.val)
		return
	}
	h := sc.host
	if h.host.MAC != "" {
		p.warn(kw.pos, "host %s has a second hardware ethernet statement; the last one (%s) wins", h.host.Name, dhcpopt.HexString(b))
	}
	h.host.MAC = dhcpopt.HexString(b)
}

func (p *parser) fixedAddress(sc *scope, kw token) {
	if !p.hostOnly(sc, kw) {
		return
	}
	var addrs []string
	bad := false
	for {
		a, ok := p.ipArg(p.next(), "fixed-address", true)
		if ok {
			addrs = append(addrs, a.String())
		} else {
			bad = true
		}
		t := p.next()
		if t.is(";") {
			break
		}
		if !t.is(",") {
			p.fail(t.pos, "expected \",\" or \";\" after a fixed-address, got %s", t.describe())
		}
	}
	if bad {
		return
	}
	h := sc.host
	if len(h.host.FixedAddresses) > 0 {
		p.warn(kw.pos, "host %s has a second fixed-address statement; the last one wins", h.host.Name)
	}
	h.host.FixedAddresses = addrs
}

// uid is ISC's older spelling of option dhcp-client-identifier in a host.
func (p *parser) uid(sc *scope, kw token) {
	if !p.hostOnly(sc, kw) {
		return
	}
	t := p.next()
	var b []byte
	switch t.kind {
	case tString:
		b = []byte(t.val)
	case tWord:
		var ok bool
		if b, ok = dhcpopt.ParseHex(t.val); !ok {
			p.errorAt(t.pos, "uid %s is neither a quoted string nor colon-separated hex bytes", t.val)
		}
	default:
		p.fail(t.pos, "expected a client identifier (quoted string or hex bytes) after \"uid\", got %s", t.describe())
	}
	p.expect(";", `"uid"`)
	if b != nil {
		p.setClientID(sc.host, kw, b)
	}
}

func (p *parser) setClientID(h *hostDecl, kw token, b []byte) {
	if h.host.ClientID != "" {
		p.warn(kw.pos, "host %s has a second client identifier; the last one wins", h.host.Name)
	}
	h.host.ClientID = dhcpopt.HexString(b)
}

func (p *parser) option(sc *scope, kw token) {
	name := p.next()
	if name.kind != tWord {
		p.fail(name.pos, "expected option name after \"option\", got %s", name.describe())
	}
	if strings.EqualFold(name.val, "space") {
		p.skip(name)
		p.warn(kw.pos, "option space: option spaces are not supported by pxed; statement skipped")
		return
	}
	optName := strings.ToLower(name.val)
	space := ""
	if i := strings.LastIndexByte(optName, '.'); i >= 0 {
		space, optName = optName[:i], optName[i+1:]
		if space == "dhcp" {
			space = ""
		}
	}
	if n := p.peek(); n.kind == tWord && strings.EqualFold(n.val, "code") {
		p.next()
		p.optionDef(kw, name, space, optName)
		return
	}
	if space != "" {
		p.skip(name)
		p.warn(kw.pos, "option %s: option space %q is not supported by pxed; statement skipped", name.val, space)
		return
	}
	if n := p.peek(); n.is("=") {
		p.skip(name)
		// It changes what a client gets: skipping it would serve
		// differently from dhcpd.
		p.errorAt(kw.pos, "option %s = …: option expressions are not supported by pxed; write a constant (option %s VALUE;), inside if/elsif/else or a class if it depends on the client", name.val, name.val)
		return
	}
	def, ok := p.table.Lookup(optName)
	if !ok {
		p.skip(name)
		p.errorAt(name.pos, "unknown option %q (declare it first with: option %s code NUMBER = TYPE;)", name.val, name.val)
		return
	}
	canon, data, ok := p.optionValue(name, def)
	if !ok {
		return
	}
	// Protocol options (def.Protocol) are kept: the server warns that it
	// overrides them, for YAML and dhcpd.conf alike.
	if sc.kind == scHost && def.Name == "dhcp-client-identifier" {
		p.setClientID(sc.host, kw, data)
		return
	}
	tp := sc.target()
	if tp.Options == nil {
		tp.Options = map[string]string{}
		tp.Encoded = map[string]config.EncodedOption{}
	}
	if _, dup := tp.Options[def.Name]; dup {
		p.warn(kw.pos, "option %s is set twice in %s; the last value wins", def.Name, sc.what())
	}
	tp.Options[def.Name] = canon
	tp.Encoded[def.Name] = config.EncodedOption{Data: data, Pos: kw.pos}
	if p.used == nil {
		p.used = map[string]firstUse{}
	}
	if _, seen := p.used[def.Name]; !seen {
		p.used[def.Name] = firstUse{def, kw.pos}
	}
}

// optionDef reads the rest of "option NAME code N = TYPE;".
func (p *parser) optionDef(kw, name token, space, optName string) {
	num := p.next()
	code, err := strconv.Atoi(num.val)
	if num.kind != tWord || err != nil {
		p.fail(num.pos, "expected option code number after \"code\", got %s", num.describe())
	}
	p.expect("=", fmt.Sprintf("\"option %s code %s\"", name.val, num.val))
	var words []string
	first := p.peek()
	for {
		t := p.next()
		if t.is(";") {
			break
		}
		if t.kind == tEOF {
			p.fail(t.pos, "expected \";\" at the end of the definition of option %s, got end of file", name.val)
		}
		if t.kind == tString {
			p.fail(t.pos, "expected an option type after \"=\", got %s", t.describe())
		}
		words = append(words, t.val)
	}
	if len(words) == 0 {
		p.fail(first.pos, "expected an option type after \"=\", got %s", first.describe())
	}
	if space != "" {
		p.warn(kw.pos, "option %s: option space %q is not supported by pxed; definition skipped", name.val, space)
		return
	}
	def := config.OptionDef{Name: optName, Code: code, Type: strings.Join(words, " "), Pos: kw.pos}
	_, known := p.table.Lookup(optName)
	site := false
	for _, d := range p.net.OptionDefs {
		site = site || d.Name == optName
	}
	if err := p.table.Define(def.Site()); err != nil {
		p.errs = append(p.errs, err.(*config.Error))
		if len(p.errs) >= maxErrors {
			panic(bailout{})
		}
		return
	}
	if !site {
		p.net.OptionDefs = append(p.net.OptionDefs, def)
	}
	if known && !site {
		p.warn(kw.pos, "option %s code %d redefines the standard option %s", optName, code, optName)
	}
	if u, ok := p.used[optName]; ok {
		if nd, _ := p.table.Lookup(optName); nd.Type != u.def.Type {
			p.warn(kw.pos, "option %s code %d = %s changes the type of an option already set at %s as %s; values set before this line keep the old encoding (declare options before using them)", optName, code, nd.Type, u.pos, u.def.Type)
		}
	}
}

// optionValue reads an option's value up to ";" and returns it as canonical
// text with its encoding; ok is false when an error was recorded.
func (p *parser) optionValue(name token, def dhcpopt.Def) (canon string, data []byte, ok bool) {
	var elems [][]token
	var commas []token
	var cur []token
	for {
		t := p.next()
		if t.is(";") {
			if len(elems) == 0 && len(cur) == 0 {
				p.fail(t.pos, "expected a value for option %s, got \";\"", def.Name)
			}
			elems = append(elems, cur)
			break
		}
		if t.kind == tEOF || t.is("{") || t.is("}") {
			p.fail(t.pos, "expected \";\" at the end of option %s, got %s", def.Name, t.describe())
		}
		if t.is(",") {
			elems = append(elems, cur)
			commas = append(commas, t)
			cur = nil
			continue
		}
		cur = append(cur, t)
	}
	typ := def.Type
	list := typ.Array || typ.Kind == dhcpopt.KindDomainList
	if !list && len(elems) > 1 {
		p.errorAt(commas[0].pos, "option %s takes a single %s, not a list", def.Name, typ)
		return "", nil, false
	}
	elemType := typ
	elemType.Array = false
	vals := make([]string, 0, len(elems))
	for i, e := range elems {
		if len(e) == 0 {
			p.errorAt(commas[min(i, len(commas)-1)].pos, "empty value in the list for option %s", def.Name)
			return "", nil, false
		}
		if len(e) > 1 {
			if list {
				p.errorAt(e[1].pos, "expected \",\" or \";\" between values of option %s, got %s", def.Name, e[1].describe())
			} else {
				p.errorAt(e[1].pos, "expected \";\" after the value of option %s, got %s", def.Name, e[1].describe())
			}
			return "", nil, false
		}
		t := e[0]
		// The element's bytes come from the token itself; its canonical
		// text (v, then c) is only what `pxed import` prints.
		var v string
		var err error
		switch typ.Kind {
		case dhcpopt.KindText, dhcpopt.KindDomainList:
			if t.kind != tWord && t.kind != tString {
				p.errorAt(t.pos, "expected quoted text for option %s, got %s", def.Name, t.describe())
				return "", nil, false
			}
			v = t.val
		case dhcpopt.KindString:
			switch {
			case t.kind == tString:
				v = dhcpopt.DataString([]byte(t.val))
			case t.kind == tWord && dhcpopt.IsHex(t.val):
				b, _ := dhcpopt.ParseHex(t.val)
				v = dhcpopt.HexString(b)
			default:
				p.errorAt(t.pos, "expected a quoted string or colon-separated hex bytes (like 01:02:ab) for option %s, got %s", def.Name, t.describe())
				return "", nil, false
			}
		default:
			if t.kind != tWord {
				p.errorAt(t.pos, "expected %s for option %s, got %s", elemType, def.Name, t.describe())
				return "", nil, false
			}
			v = t.val
		}
		if data, err = elemType.AppendValue(data, t.val, t.kind == tString); err != nil {
			p.errorAt(t.pos, "option %s: %v", def.Name, err)
			return "", nil, false
		}
		c, err := elemType.Canonical(v)
		if err != nil {
			p.errorAt(t.pos, "option %s: %v", def.Name, err)
			return "", nil, false
		}
		vals = append(vals, c)
	}
	return strings.Join(vals, ", "), data, true
}

// finish resolves scopes into the model and checks hosts against subnets.
func (p *parser) finish() {
	for _, d := range p.subnets {
		s := d.sub
		for _, g := range d.chain {
			s.Params = s.Params.Over(*g)
		}
		s.Params = cloneParams(s.Params)
		p.net.Subnets = append(p.net.Subnets, s)
	}
	for _, d := range p.hosts {
		h := d.host
		for _, g := range d.chain {
			h.Params = h.Params.Over(*g)
		}
		h.Params = cloneParams(h.Params)
		// Whether a host can match a client and where its fixed addresses
		// fall are checked by dhcp.Compile, for YAML and dhcpd.conf alike.
		p.net.Hosts = append(p.net.Hosts, h)
	}
}

// cloneParams copies p's maps so that scopes merged from the same group do
// not share them.
func cloneParams(p config.Params) config.Params {
	if p.Options != nil {
		m := make(map[string]string, len(p.Options))
		for k, v := range p.Options {
			m[k] = v
		}
		p.Options = m
	}
	if p.Encoded != nil {
		m := make(map[string]config.EncodedOption, len(p.Encoded))
		for k, v := range p.Encoded {
			m[k] = v
		}
		p.Encoded = m
	}
	if p.BootFiles != nil {
		m := make(map[string]string, len(p.BootFiles))
		for k, v := range p.BootFiles {
			m[k] = v
		}
		p.BootFiles = m
	}
	return p
}
