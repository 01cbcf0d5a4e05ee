package isc

import (
	"strconv"
	"strings"

	"pxed/internal/config"
	"pxed/internal/dhcpopt"
)

// Expressions (dhcp-eval(5)), the subset pxed evaluates:
//
//	boolean: E or E, E and E, not B, D = D, D != D, exists OPTION, known, ( B )
//	data:    option NAME, hardware, substring(D, N, N),
//	         binary-to-ascii(N, N, "SEP", D), "text", 01:02:03, ( D )
//
// "or" binds loosest, then "and", then = and !=; "not" applies to what
// follows it directly, as in ISC's parser. Anything else ISC has is an
// error that names it.

// maxExprDepth bounds nesting (parentheses, not, function arguments).
const maxExprDepth = 64

// unsupportedFuncs are dhcp-eval(5) names pxed does not evaluate.
var unsupportedFuncs = map[string]bool{
	"concat": true, "pick-first-value": true, "encode-int": true, "extract-int": true,
	"suffix": true, "lcase": true, "ucase": true, "packet": true, "reverse": true,
	"leased-address": true, "host-decl-name": true, "config-option": true, "static": true,
	"client-state": true, "lease-time": true, "gethostname": true, "split": true,
	"null": true, "defined": true, "dns-update": true, "dns-delete": true, "ns-update": true,
	"pick": true, "v6relay": true, "filename": true, "server-name": true, "leased": true,
	"exists-option": true, "iregex": true, "regex": true, "check": true, "encapsulate": true,
	"option-name": true, "zerolen": true, "ddns-fwd-name": true, "ddns-rev-name": true,
}

// boolExpr reads a boolean expression after what ("if", "match if").
func (p *parser) boolExpr(what string) *config.Expr {
	e := p.expr()
	if !e.Boolean() {
		p.fail(e.Pos, "%s needs a condition (=, !=, and, or, not, exists, known), got the data expression %s", what, e.Text)
	}
	return e
}

// maxExprTerms bounds the operators and operands of one expression.
const maxExprTerms = 1000

// expr reads one expression.
func (p *parser) expr() *config.Expr {
	p.exprTerms = 0
	return p.exprDepth(0)
}

func (p *parser) exprDepth(depth int) *config.Expr {
	first := p.peek()
	if depth > maxExprDepth {
		p.fail(first.pos, "expression nested more than %d deep", maxExprDepth)
	}
	return p.orExpr(depth)
}

// binary builds Args[0] op Args[1], both boolean (and, or) or both data
// (=, !=).
func (p *parser) binary(op config.ExprOp, word token, l, r *config.Expr) *config.Expr {
	wantBool := op == config.ExprAnd || op == config.ExprOr
	for _, side := range []*config.Expr{l, r} {
		if side.Boolean() != wantBool {
			kind := "data (option, substring, a constant…)"
			if wantBool {
				kind = "conditions"
			}
			p.fail(side.Pos, "%q compares %s; %s is not one", word.val, kind, side.Text)
		}
	}
	return &config.Expr{Op: op, Args: []*config.Expr{l, r}, Pos: l.Pos, Text: shorten(l.Text + " " + word.val + " " + r.Text)}
}

// maxText bounds an expression's text (a chain of a million "or"s is
// shown by its start).
const maxText = 200

func shorten(s string) string {
	if len(s) > maxText {
		s = strings.ToValidUTF8(s[:maxText], "") + "…"
	}
	return s
}

func (p *parser) orExpr(depth int) *config.Expr {
	l := p.andExpr(depth)
	for {
		t := p.peek()
		if t.kind != tWord || !strings.EqualFold(t.val, "or") {
			return l
		}
		p.next()
		l = p.binary(config.ExprOr, t, l, p.andExpr(depth))
	}
}

func (p *parser) andExpr(depth int) *config.Expr {
	l := p.cmpExpr(depth)
	for {
		t := p.peek()
		if t.kind != tWord || !strings.EqualFold(t.val, "and") {
			return l
		}
		p.next()
		l = p.binary(config.ExprAnd, t, l, p.cmpExpr(depth))
	}
}

func (p *parser) cmpExpr(depth int) *config.Expr {
	l := p.unary(depth)
	t := p.peek()
	switch {
	case t.is("="):
		p.next()
		return p.binary(config.ExprEqual, t, l, p.unary(depth))
	case t.is("!"):
		p.next()
		if eq := p.next(); !eq.is("=") {
			p.fail(t.pos, "expected \"!=\", got \"!\" followed by %s", eq.describe())
		}
		t.val = "!="
		return p.binary(config.ExprNotEqual, t, l, p.unary(depth))
	case t.is("~"):
		p.fail(t.pos, "regular expression matches (~= and ~~) are not supported by pxed; compare with = and substring")
	case t.is("+") || t.is("-") || t.is("*") || t.is("/") || t.is("%") || t.is("&") || t.is("|") || t.is("^"):
		p.fail(t.pos, "arithmetic (%s) is not supported by pxed in expressions", t.val)
	}
	return l
}

// unary reads a primary expression, or not and what follows it.
func (p *parser) unary(depth int) *config.Expr {
	t := p.next()
	if p.exprTerms++; p.exprTerms > maxExprTerms {
		p.fail(t.pos, "expression with more than %d terms", maxExprTerms)
	}
	e := &config.Expr{Pos: t.pos}
	defer func() { e.Text = p.textFrom(t) }()
	switch {
	case t.kind == tString:
		e.Op, e.Data = config.ExprConst, []byte(t.val)
		return e
	case t.is("("):
		inner := p.exprDepth(depth + 1)
		p.expect(")", "the expression in parentheses")
		e = inner
		return e
	case t.kind != tWord:
		p.fail(t.pos, "expected an expression, got %s", t.describe())
	}
	word := strings.ToLower(t.val)
	switch word {
	case "not":
		arg := p.unaryDepth(depth + 1)
		if !arg.Boolean() {
			p.fail(arg.Pos, "\"not\" applies to a condition; %s is data (write not (A = B) or A != B)", arg.Text)
		}
		e.Op, e.Args = config.ExprNot, []*config.Expr{arg}
	case "known":
		e.Op = config.ExprKnown
	case "hardware":
		e.Op = config.ExprHardware
	case "exists":
		e.Op = config.ExprExists
		e.Code, e.Name = p.exprOption("exists")
	case "option":
		e.Op = config.ExprOption
		e.Code, e.Name = p.exprOption("option")
	case "substring":
		p.expect("(", "\"substring\"")
		e.Op, e.Args = config.ExprSubstring, []*config.Expr{p.dataArg(depth, "substring")}
		p.expect(",", "substring's data")
		e.Off = p.number("substring's offset", 0, 1<<30)
		p.expect(",", "substring's offset")
		e.Len = p.number("substring's length", 0, 1<<30)
		p.expect(")", "substring's length")
	case "binary-to-ascii":
		p.expect("(", "\"binary-to-ascii\"")
		e.Op = config.ExprBinToASCII
		e.Base = p.number("binary-to-ascii's base", 2, 16)
		p.expect(",", "binary-to-ascii's base")
		w := p.peek()
		e.Width = p.number("binary-to-ascii's width", 8, 32)
		if e.Width != 8 && e.Width != 16 && e.Width != 32 {
			p.errorAt(w.pos, "binary-to-ascii's width must be 8, 16 or 32, not %d", e.Width)
		}
		p.expect(",", "binary-to-ascii's width")
		sep := p.next()
		if sep.kind != tString {
			p.fail(sep.pos, "expected binary-to-ascii's separator as a quoted string, got %s", sep.describe())
		}
		e.Data = []byte(sep.val)
		p.expect(",", "binary-to-ascii's separator")
		e.Args = []*config.Expr{p.dataArg(depth, "binary-to-ascii")}
		p.expect(")", "binary-to-ascii's data")
	default:
		switch {
		case strings.Contains(t.val, ":") && dhcpopt.IsHex(t.val):
			e.Op = config.ExprConst
			e.Data, _ = dhcpopt.ParseHex(t.val)
		case isDigits(t.val):
			p.fail(t.pos, "%s is a number, not data: write the bytes as colon-separated hex (00:07) or a quoted string", t.val)
		case unsupportedFuncs[word] || p.peek().is("("):
			p.fail(t.pos, "%q is not supported by pxed in expressions (it evaluates option, exists, known, hardware, substring, binary-to-ascii, =, !=, and, or, not)", t.val)
		default:
			p.fail(t.pos, "unknown name %q in an expression (pxed does not evaluate variables; options are written \"option NAME\")", t.val)
		}
	}
	return e
}

func (p *parser) unaryDepth(depth int) *config.Expr {
	if depth > maxExprDepth {
		p.fail(p.peek().pos, "expression nested more than %d deep", maxExprDepth)
	}
	return p.unary(depth)
}

// dataArg reads a data expression as a function's argument.
func (p *parser) dataArg(depth int, fn string) *config.Expr {
	a := p.exprDepth(depth + 1)
	if a.Boolean() {
		p.fail(a.Pos, "%s takes data, not the condition %s", fn, a.Text)
	}
	return a
}

// textFrom is the source text from token first to the last token read.
func (p *parser) textFrom(first token) string {
	last := p.last
	if first.pos.File != last.pos.File || last.end < first.off || last.end > len(p.lx.data) {
		return first.val
	}
	end := min(last.end, first.off+2*maxText)
	return shorten(strings.Join(strings.Fields(string(p.lx.data[first.off:end])), " "))
}

// exprOption reads the option name after "option" or "exists".
func (p *parser) exprOption(after string) (int, string) {
	t := p.next()
	if t.kind != tWord {
		p.fail(t.pos, "expected an option name after %q, got %s", after, t.describe())
	}
	name := strings.ToLower(t.val)
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		if name[:i] != "dhcp" {
			p.fail(t.pos, "option %s: option space %q is not supported by pxed", t.val, name[:i])
		}
		name = name[i+1:]
	}
	def, ok := p.table.Lookup(name)
	if !ok {
		p.fail(t.pos, "unknown option %q (declare it first with: option %s code NUMBER = TYPE;)", t.val, t.val)
	}
	return int(def.Code), def.Name
}

// number reads a decimal constant in [lo, hi].
func (p *parser) number(what string, lo, hi int) int {
	t := p.next()
	n, err := strconv.Atoi(t.val)
	if t.kind != tWord || !isDigits(t.val) || err != nil || n < lo || n > hi {
		if t.kind == tWord && !isDigits(t.val) {
			p.fail(t.pos, "expected %s as a number, got %s (pxed evaluates only constant numbers here)", what, t.describe())
		}
		p.fail(t.pos, "expected %s as a number from %d to %d, got %s", what, lo, hi, t.describe())
	}
	return n
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
