package dhcp

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"pxed/internal/config"
	"pxed/internal/dhcpopt"
	"pxed/internal/lease"
)

// Classes, conditionals and pool permits (ISC dhcpd's, as dhcpd.conf
// declares them: config.Class, config.Cond, config.Permit).
//
// A plan with none of them decides exactly as before: every scope is
// compiled once (plan.go). With them, a request's scope is evaluated:
// ISC dhcpd's order (server/dhcp.c ack_lease) is the subnet's statements
// (global, then shared-network, then subnet), the pool's, each matching
// class's (the last matched first, so the first matched wins), then the
// host's; within a scope, statements apply in file order, conditionals
// where they stand. The conditionals' outcome picks a list of parameter
// blocks ("layers"); the scope compiled from that list is cached by it.

// maxClasses is how many classes a client can be in (ISC's
// PACKET_MAX_CLASSES); matches beyond are ignored, as dhcpd does.
const maxClasses = 5

// maxScopeCache bounds the cache of scopes compiled for layer lists.
const maxScopeCache = 4096

// maxB2A bounds what binary-to-ascii produces for one request: longer is
// a failed (null) expression.
const maxB2A = 64 << 10

// layer is one block of parameters and the conditionals after it.
type layer struct {
	id     int
	params config.Params // without Conds
	conds  [][]branch    // each Cond's branches
}

type branch struct {
	keyword string
	expr    *config.Expr // nil: else, or unconditional
	layer   *layer
	pos     config.Pos
}

type class struct {
	name     string
	match    *config.Expr
	submatch *config.Expr
	layer    *layer
	subs     map[string]*subclass
	pos      config.Pos
}

type subclass struct {
	key   []byte
	layer *layer
	pos   config.Pos
}

type permit struct {
	deny  bool
	kind  config.PermitKind
	class string
}

// dynamic is what a plan with classes or conditionals keeps for them.
type dynamic struct {
	classes []*class
	nLayers int
	mu      sync.RWMutex
	cache   map[string]*scope
}

// newLayer compiles p's conditionals into a layer. Its branches (and p
// itself when checkSelf) are compiled over check once here, so errors in
// them are reported when the configuration loads.
func (c *compiler) newLayer(d *dynamic, p config.Params, what string, pos config.Pos, check config.Params, checkSelf bool) *layer {
	l := &layer{id: d.nLayers, params: p}
	d.nLayers++
	l.params.Conds = nil
	for _, cd := range p.Conds {
		var bs []branch
		for _, b := range cd.Branches {
			w := what
			if b.Keyword != "" {
				w = what + ": " + b.Keyword + " at " + b.Pos.String()
			}
			sub := c.newLayer(d, b.Params, w, b.Pos, check, true)
			bs = append(bs, branch{keyword: b.Keyword, expr: b.If, layer: sub, pos: b.Pos})
		}
		l.conds = append(l.conds, bs)
	}
	if checkSelf {
		c.scope(l.params.Over(check), pos, what)
	}
	return l
}

// hasConds reports whether any scope of n has conditionals or any class
// is declared.
func hasConds(n *config.Network) bool {
	if len(n.Classes) > 0 || len(n.Params.Conds) > 0 {
		return true
	}
	for _, s := range n.Subnets {
		if len(s.Params.Conds) > 0 {
			return true
		}
		for _, pl := range s.Pools {
			if len(pl.Params.Conds) > 0 {
				return true
			}
		}
	}
	for _, h := range n.Hosts {
		if len(h.Params.Conds) > 0 {
			return true
		}
	}
	return false
}

func (c *compiler) classes(d *dynamic, n *config.Network) {
	for _, cl := range n.Classes {
		k := &class{name: cl.Name, match: cl.Match, submatch: cl.Submatch, pos: cl.Pos}
		k.layer = c.newLayer(d, cl.Params, "class "+cl.Name, cl.Pos, n.Params, true)
		if len(cl.Subclasses) > 0 {
			k.subs = make(map[string]*subclass, len(cl.Subclasses))
		}
		for _, s := range cl.Subclasses {
			sl := c.newLayer(d, s.Params, "subclass "+cl.Name+" "+keyText(s.Key), s.Pos, cl.Params.Over(n.Params), true)
			k.subs[string(s.Key)] = &subclass{key: s.Key, layer: sl, pos: s.Pos}
		}
		d.classes = append(d.classes, k)
	}
}

// condState is one request's evaluation: its classes and scratch space,
// allocated only for plans with classes or conditionals.
type condState struct {
	classified bool
	classes    [maxClasses]struct {
		c   *class
		sub *subclass
	}
	nClasses int
	hw       [17]byte
	scratch  [256]byte
	buf      []byte
	b2a      int
	// trace: the classes matched (the first nClassTrace lines), then the
	// conditionals of the last scope evaluated.
	trace       []string
	nClassTrace int
	tracing     bool // Request.Trace is set
	pools       [8]*lease.Pool
}

// evaluator evaluates expressions on one packet.
type evaluator struct {
	p     *Packet
	st    *condState
	known bool
}

// truth is a boolean expression's value; ok is false for null (ISC: an
// expression that cannot be evaluated, which if and match take as false).
func (ev *evaluator) truth(e *config.Expr) (v, ok bool) {
	switch e.Op {
	case config.ExprEqual, config.ExprNotEqual:
		l, lok := ev.data(e.Args[0])
		r, rok := ev.data(e.Args[1])
		eq := lok == rok && (!lok || bytes.Equal(l, r))
		return eq == (e.Op == config.ExprEqual), true
	case config.ExprAnd:
		l, lok := ev.truth(e.Args[0])
		if !lok || !l {
			return false, false // ISC: a false or null left side makes and null
		}
		return ev.truth(e.Args[1])
	case config.ExprOr:
		l, lok := ev.truth(e.Args[0])
		if lok && l {
			return true, true
		}
		r, rok := ev.truth(e.Args[1])
		return r, lok || rok
	case config.ExprNot:
		v, ok := ev.truth(e.Args[0])
		return !v && ok, ok
	case config.ExprExists:
		_, ok := ev.p.Options[uint8(e.Code)]
		return ok, true
	case config.ExprKnown:
		return ev.known, true
	}
	return false, false
}

// data is a data expression's value (ok false: null). The bytes may point
// into the packet or the request's scratch space: read, never written.
func (ev *evaluator) data(e *config.Expr) ([]byte, bool) {
	switch e.Op {
	case config.ExprConst:
		return e.Data, true
	case config.ExprOption:
		v, ok := ev.p.Options[uint8(e.Code)]
		return v, ok
	case config.ExprHardware:
		h := &ev.st.hw
		h[0] = ev.p.HType
		n := copy(h[1:], ev.p.CHAddr[:ev.p.HLen])
		return h[:1+n], true
	case config.ExprSubstring:
		d, ok := ev.data(e.Args[0])
		if !ok {
			return nil, false
		}
		if e.Off >= len(d) {
			return d[:0:0], true
		}
		d = d[e.Off:]
		if len(d) > e.Len {
			d = d[:e.Len]
		}
		return d, true
	case config.ExprBinToASCII:
		d, ok := ev.data(e.Args[0])
		if !ok {
			return nil, false
		}
		return ev.binToASCII(e, d)
	}
	return nil, false
}

// binToASCII is ISC's binary-to-ascii: each width-bit number of d in base,
// lower-case digits without leading zeros, separated by e.Data.
func (ev *evaluator) binToASCII(e *config.Expr, d []byte) ([]byte, bool) {
	w := e.Width / 8
	if w == 0 || len(d)%w != 0 {
		return nil, false
	}
	st := ev.st
	if st.buf == nil {
		st.buf = st.scratch[:0]
	}
	start := len(st.buf)
	const digits = "0123456789abcdef"
	var num [32]byte
	for i := 0; i < len(d); i += w {
		var v uint32
		for _, c := range d[i : i+w] {
			v = v<<8 | uint32(c)
		}
		n := len(num)
		for {
			n--
			num[n] = digits[v%uint32(e.Base)]
			v /= uint32(e.Base)
			if v == 0 {
				break
			}
		}
		if st.b2a += len(num) - n + len(e.Data); st.b2a > maxB2A {
			return nil, false
		}
		st.buf = append(st.buf, num[n:]...)
		if i+w < len(d) {
			st.buf = append(st.buf, e.Data...)
		}
	}
	return st.buf[start:len(st.buf):len(st.buf)], true
}

// classify puts the client in the classes whose match is true, as ISC
// does before it looks for the client's host (so known is false here).
func (x *exchange) classify() {
	st := x.cond
	if st.classified {
		return
	}
	st.classified = true
	ev := evaluator{p: x.p, st: st}
	for _, cl := range x.plan.dyn.classes {
		if st.nClasses == maxClasses {
			break
		}
		if cl.match != nil {
			v, ok := ev.truth(cl.match)
			if !v || !ok {
				continue
			}
			if cl.submatch == nil {
				x.addClass(cl, nil, ev)
				continue
			}
		}
		if cl.submatch != nil {
			d, ok := ev.data(cl.submatch)
			if !ok || len(d) == 0 {
				continue
			}
			if sub := cl.subs[string(d)]; sub != nil {
				x.addClass(cl, sub, ev)
			}
		}
	}
	st.nClassTrace = len(st.trace)
}

func (x *exchange) addClass(cl *class, sub *subclass, ev evaluator) {
	st := x.cond
	st.classes[st.nClasses].c, st.classes[st.nClasses].sub = cl, sub
	st.nClasses++
	if !st.tracing {
		return
	}
	if sub != nil {
		st.trace = append(st.trace, fmt.Sprintf("class %s matched: subclass %s (%s), %s", cl.name, keyText(sub.key), sub.pos, inputs(ev, cl.submatch)))
		return
	}
	st.trace = append(st.trace, fmt.Sprintf("class %s matched: %s (match if %s at %s)", cl.name, inputs(ev, cl.match), cl.match.Text, cl.pos))
}

// member reports whether the client is in class name (or a subclass of it).
func (st *condState) member(name string) bool {
	for _, c := range st.classes[:st.nClasses] {
		if c.c.name == name {
			return true
		}
	}
	return false
}

// layers collects the layers that apply, in order, into out.
type layers struct {
	list [64]*layer
	n    int
	over bool // more than fit: not cached
}

func (ls *layers) add(l *layer) {
	if ls.n == len(ls.list) {
		ls.over = true
		return
	}
	ls.list[ls.n] = l
	ls.n++
}

// apply adds l and the branches its conditionals choose.
func (x *exchange) apply(ls *layers, l *layer, ev evaluator, depth int) {
	ls.add(l)
	if ls.over && depth > 0 {
		return
	}
	for _, bs := range l.conds {
		for _, b := range bs {
			v, ok := true, true
			if b.expr != nil {
				v, ok = ev.truth(b.expr)
			}
			taken := v && ok
			if x.cond.tracing && b.keyword != "" {
				x.traceBranch(b, taken, ok)
			}
			if taken {
				x.apply(ls, b.layer, ev, depth+1)
				break
			}
		}
	}
}

// dynScope is the scope for a client of host h (nil: none) with an address
// from pool pl (nil: a fixed address, or none yet).
func (x *exchange) dynScope(h *host, pl *pool) *scope {
	x.classify()
	x.cond.trace = x.cond.trace[:x.cond.nClassTrace]
	ev := evaluator{p: x.p, st: x.cond, known: h != nil}
	var ls layers
	x.apply(&ls, x.sn.layer, ev, 0)
	if pl != nil {
		x.apply(&ls, pl.layer, ev, 0)
	}
	st := x.cond
	for i := st.nClasses - 1; i >= 0; i-- {
		c := st.classes[i]
		x.apply(&ls, c.c.layer, ev, 0)
		if c.sub != nil {
			x.apply(&ls, c.sub.layer, ev, 0)
		}
	}
	if h != nil {
		x.apply(&ls, h.layer, ev, 0)
	}
	return x.plan.dyn.scopeOf(x.plan, &ls)
}

// scopeOf returns the scope the layers make, from the cache when it can.
func (d *dynamic) scopeOf(p *Plan, ls *layers) *scope {
	var kb [256]byte
	key := kb[:0]
	for _, l := range ls.list[:ls.n] {
		key = strconv.AppendInt(key, int64(l.id), 36)
		key = append(key, ',')
	}
	cacheable := !ls.over && len(key) < len(kb)
	if cacheable {
		d.mu.RLock()
		sc := d.cache[string(key)]
		d.mu.RUnlock()
		if sc != nil {
			return sc
		}
	}
	var acc config.Params
	for _, l := range ls.list[:ls.n] {
		acc = l.params.Over(acc)
	}
	c := &compiler{table: p.table}
	sc := c.scope(acc, config.Pos{}, "")
	if cacheable {
		d.mu.Lock()
		if len(d.cache) < maxScopeCache {
			d.cache[string(key)] = sc
		}
		d.mu.Unlock()
	}
	return sc
}

// admits reports whether pool pl lets the client in.
func (x *exchange) admits(pl *pool, known bool) bool {
	return permitted(pl.permits, func(pm permit) bool {
		switch pm.kind {
		case config.PermitKnown:
			return known
		case config.PermitUnknown:
			return !known
		case config.PermitAll:
			return true
		case config.PermitDynamicBootp:
			return x.p.Type() == 0
		case config.PermitClass:
			if x.cond == nil {
				return false
			}
			x.classify()
			return x.cond.member(pm.class)
		}
		return false
	})
}

// permitted is ISC's pool check: no deny permit matches and, if there are
// allow permits, one of them does.
func permitted(permits []permit, match func(permit) bool) bool {
	allows := false
	for _, pm := range permits {
		if pm.deny && match(pm) {
			return false
		}
		allows = allows || !pm.deny
	}
	if !allows {
		return true
	}
	for _, pm := range permits {
		if !pm.deny && match(pm) {
			return true
		}
	}
	return false
}

// traceBranch records a conditional's evaluation for explain.
func (x *exchange) traceBranch(b branch, taken, ok bool) {
	line := b.pos.String() + ": " + b.keyword
	if b.expr != nil {
		v := strconv.FormatBool(taken)
		if !ok {
			v = "false (null: " + x.nullWhy(b.expr) + ")"
		}
		line += " " + b.expr.Text + ": " + v
	}
	if taken {
		line += " → " + summary(b.layer)
	}
	x.cond.trace = append(x.cond.trace, line)
}

func (x *exchange) nullWhy(e *config.Expr) string {
	return inputs(evaluator{p: x.p, st: x.cond}, e)
}

// inputs describes the options and fields e reads, as the client sent them.
func inputs(ev evaluator, e *config.Expr) string {
	var parts []string
	var walk func(e *config.Expr)
	walk = func(e *config.Expr) {
		switch e.Op {
		case config.ExprOption, config.ExprExists:
			s := "option " + e.Name
			if v, ok := ev.p.Options[uint8(e.Code)]; ok {
				s += " " + keyText(v)
			} else {
				s += " not sent"
			}
			if !contains(parts, s) {
				parts = append(parts, s)
			}
		case config.ExprHardware:
			s := "hardware " + dhcpopt.HexString(append([]byte{ev.p.HType}, ev.p.CHAddr[:ev.p.HLen]...))
			if !contains(parts, s) {
				parts = append(parts, s)
			}
		}
		for _, a := range e.Args {
			walk(a)
		}
	}
	walk(e)
	if len(parts) == 0 {
		return "constant"
	}
	return strings.Join(parts, ", ")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// keyText shows data as a quoted string when printable, else colon hex.
func keyText(b []byte) string {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return dhcpopt.HexString(b)
		}
	}
	return strconv.Quote(string(b))
}

// summary lists what a branch sets: `filename "ipxe.efi"; next-server …`.
func summary(l *layer) string {
	p := l.params
	var s []string
	if p.Filename != nil {
		s = append(s, "filename "+strconv.Quote(*p.Filename))
	}
	if p.NextServer != "" {
		s = append(s, "next-server "+p.NextServer)
	}
	if p.ServerName != nil {
		s = append(s, "server-name "+strconv.Quote(*p.ServerName))
	}
	names := make([]string, 0, len(p.Options))
	for name := range p.Options {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s = append(s, "option "+name+" "+p.Options[name])
	}
	if p.AllowBooting != nil && !*p.AllowBooting {
		s = append(s, "deny booting")
	}
	if p.BootUnknownClients != nil && !*p.BootUnknownClients {
		s = append(s, "deny unknown-clients")
	}
	if len(l.conds) > 0 {
		s = append(s, "nested conditionals")
	}
	if len(s) == 0 {
		return "(nothing)"
	}
	return strings.Join(s, "; ")
}
