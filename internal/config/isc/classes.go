package isc

import (
	"fmt"
	"strconv"
	"strings"

	"pxed/internal/config"
	"pxed/internal/dhcpopt"
)

// Classes, conditionals and pool permits (dhcpd.conf(5), dhcp-eval(5)):
// read into config.Class, config.Cond and config.Permit; the expressions
// are in expr.go.

// poolPermit reads the rest of `allow|deny|ignore WHAT…;` in a pool (ISC's
// get_permit): known-clients, unknown-clients, known clients, unknown
// clients, all clients, dynamic bootp clients, members of "CLASS".
func (p *parser) poolPermit(sc *scope, kw, t token) {
	pm := config.Permit{Deny: !strings.EqualFold(kw.val, "allow"), Pos: kw.pos}
	words := []string{kw.val, t.val}
	needClients := true
	switch strings.ToLower(t.val) {
	case "known-clients":
		pm.Kind, needClients = config.PermitKnown, false
	case "unknown-clients":
		pm.Kind, needClients = config.PermitUnknown, false
	case "known":
		pm.Kind = config.PermitKnown
	case "unknown":
		pm.Kind = config.PermitUnknown
	case "all":
		pm.Kind = config.PermitAll
	case "dynamic":
		b := p.next()
		if b.kind != tWord || !strings.EqualFold(b.val, "bootp") {
			p.fail(b.pos, "expected \"bootp\" after %q, got %s", kw.val+" dynamic", b.describe())
		}
		pm.Kind = config.PermitDynamicBootp
		words = append(words, b.val)
	case "members":
		of := p.next()
		if of.kind != tWord || !strings.EqualFold(of.val, "of") {
			p.fail(of.pos, "expected \"of\" after %q, got %s", kw.val+" members", of.describe())
		}
		name := p.next()
		if name.kind != tString {
			p.fail(name.pos, "expected a quoted class name after %q, got %s", kw.val+" members of", name.describe())
		}
		if p.classNamed(name.val) == nil {
			p.errorAt(name.pos, "no such class %q (declare the class before the pool that names it)", name.val)
		}
		pm.Kind, pm.Class, needClients = config.PermitClass, name.val, false
		words = append(words, of.val, strconv.Quote(name.val))
	default:
		p.skip(t)
		p.errorAt(t.pos, "%q: pxed does not support this pool permit (it reads known-clients, unknown-clients, known clients, unknown clients, all clients, dynamic bootp clients and members of \"CLASS\")", kw.val+" "+t.val)
		return
	}
	if needClients {
		c := p.next()
		if c.kind != tWord || !strings.EqualFold(c.val, "clients") {
			p.fail(c.pos, "expected \"clients\" after %q, got %s", strings.Join(words, " "), c.describe())
		}
		words = append(words, c.val)
	}
	pm.Text = strings.Join(words, " ")
	p.expect(";", strconv.Quote(pm.Text))
	sc.pool.Permits = append(sc.pool.Permits, pm)
}

func (p *parser) classNamed(name string) *config.Class {
	for i := range p.net.Classes {
		if p.net.Classes[i].Name == name {
			return &p.net.Classes[i]
		}
	}
	return nil
}

// ifStmt reads `if E { … } [elsif E { … }]… [else { … }]`.
func (p *parser) ifStmt(sc *scope, kw token) {
	var c config.Cond
	word := kw
	for {
		b := config.Branch{Keyword: strings.ToLower(word.val), Pos: word.pos}
		if b.Keyword != "else" {
			b.If = p.boolExpr(word.val)
		}
		// The branch's parameters apply on top of the enclosing scope's;
		// declarations are refused in it.
		inner := &scope{kind: scCond, parent: sc, params: &b.Params, open: word, subnet: sc.subnet, shared: sc.shared, pool: sc.pool, host: sc.host}
		p.block(inner, fmt.Sprintf("%q", b.Keyword))
		c.Branches = append(c.Branches, b)
		if b.Keyword == "else" {
			break
		}
		n := p.peek()
		if n.kind != tWord || !strings.EqualFold(n.val, "elsif") && !strings.EqualFold(n.val, "else") {
			break
		}
		word = p.next()
		if strings.EqualFold(word.val, "else") {
			// ISC reads "else if" as elsif.
			if n := p.peek(); n.kind == tWord && strings.EqualFold(n.val, "if") {
				p.next()
				word.val = "elsif"
			}
		}
	}
	sc.params.Conds = append(sc.params.Conds, c)
}

// class reads `class "NAME" { … }`.
func (p *parser) class(sc *scope, kw token) {
	name := p.next()
	if name.kind != tString && name.kind != tWord {
		p.fail(name.pos, "expected a class name after \"class\", got %s", name.describe())
	}
	if sc.kind != scGlobal {
		p.errorAt(kw.pos, "class %s in %s: pxed reads classes only at the global scope", name.val, sc.what())
		p.skip(kw)
		return
	}
	if o := p.classNamed(name.val); o != nil {
		p.errorAt(kw.pos, "class %q is declared twice (first at %s)", name.val, o.Pos)
		p.skip(kw)
		return
	}
	cl := &config.Class{Name: name.val, Pos: kw.pos}
	inner := &scope{kind: scClass, parent: sc, params: &cl.Params, open: kw, class: cl}
	p.block(inner, fmt.Sprintf("\"class %s\"", name.val))
	if cl.Match == nil && cl.Submatch == nil {
		p.warn(kw.pos, "class %s has no match statement: no client is ever its member", name.val)
	}
	p.net.Classes = append(p.net.Classes, *cl)
}

// classStmt reads match, spawn and lease inside a class.
func (p *parser) classStmt(sc *scope, kw token) {
	if sc.kind != scClass || sc.class == nil {
		p.errorAt(kw.pos, "%q is only allowed in a class declaration, not in %s", kw.val, sc.what())
		p.skip(kw)
		return
	}
	cl := sc.class
	switch strings.ToLower(kw.val) {
	case "spawn":
		p.skip(kw)
		p.errorAt(kw.pos, "class %s: spawning classes (spawn with) are not supported by pxed; declare the subclasses with subclass", cl.Name)
	case "lease":
		p.skip(kw)
		p.errorAt(kw.pos, "class %s: lease limits are not supported by pxed", cl.Name)
	default: // match
		if n := p.peek(); n.kind == tWord && strings.EqualFold(n.val, "if") {
			p.next()
			e := p.boolExpr("match if")
			if cl.Match != nil {
				p.errorAt(kw.pos, "class %s has a second \"match if\"", cl.Name)
			}
			cl.Match = e
		} else {
			e := p.expr()
			if e.Boolean() {
				p.fail(e.Pos, "expected a data expression after \"match\" (or \"match if\" before a condition), got %s", e.Text)
			}
			if cl.Submatch != nil {
				p.errorAt(kw.pos, "class %s has a second \"match\"", cl.Name)
			}
			cl.Submatch = e
		}
		p.expect(";", fmt.Sprintf("the match statement of class %s", cl.Name))
	}
}

// subclass reads `subclass "CLASS" KEY;` or `subclass "CLASS" KEY { … }`.
func (p *parser) subclass(sc *scope, kw token) {
	name := p.next()
	if name.kind != tString && name.kind != tWord {
		p.fail(name.pos, "expected a class name after \"subclass\", got %s", name.describe())
	}
	key := p.next()
	var data []byte
	switch {
	case key.kind == tString:
		data = []byte(key.val)
	case key.kind == tWord && dhcpopt.IsHex(key.val):
		data, _ = dhcpopt.ParseHex(key.val)
	default:
		p.fail(key.pos, "expected the subclass's key (a quoted string or colon-separated hex bytes) after \"subclass %s\", got %s", name.val, key.describe())
	}
	sub := config.Subclass{Key: data, Pos: kw.pos}
	if n := p.peek(); n.is("{") {
		inner := &scope{kind: scClass, parent: sc, params: &sub.Params, open: kw}
		p.block(inner, fmt.Sprintf("\"subclass %s\"", name.val))
	} else {
		p.expect(";", fmt.Sprintf("\"subclass %s\"", name.val))
	}
	if sc.kind != scGlobal {
		p.errorAt(kw.pos, "subclass %s in %s: pxed reads subclasses only at the global scope", name.val, sc.what())
		return
	}
	cl := p.classNamed(name.val)
	switch {
	case cl == nil:
		p.errorAt(name.pos, "no such class %q (declare the class before its subclasses)", name.val)
	case cl.Submatch == nil:
		p.errorAt(kw.pos, "class %s has no \"match EXPRESSION;\" to select its subclasses by", name.val)
	default:
		for _, o := range cl.Subclasses {
			if string(o.Key) == string(data) {
				p.errorAt(key.pos, "subclass %s %s is declared twice (first at %s)", name.val, key.val, o.Pos)
				return
			}
		}
		cl.Subclasses = append(cl.Subclasses, sub)
	}
}
