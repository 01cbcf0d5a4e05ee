package config

// ISC dhcpd's client classes, conditional statements and pool permits, the
// subset network-boot sites write (dhcp-eval(5), dhcpd.conf(5)). Only the
// dhcpd.conf reader (internal/config/isc) produces them; the DHCP compiler
// (internal/dhcp) evaluates them per request. The native YAML has no form
// for them: see Network.DHCPDOnly.

// Class is `class "NAME" { match if E; … }` or, with subclasses,
// `class "NAME" { match E; }` + `subclass "NAME" KEY { … }`.
type Class struct {
	Name string
	// Match: a client is a member when Match is true (`match if`).
	Match *Expr
	// Submatch: a client is a member of the subclass whose Key equals
	// Submatch's value (`match E`). With Match too, only when Match is true.
	Submatch   *Expr
	Params     Params
	Subclasses []Subclass
	Pos        Pos
}

// Subclass is `subclass "CLASS" KEY [{ … }]`; its Params apply after its
// class's.
type Subclass struct {
	Key    []byte
	Params Params
	Pos    Pos
}

// Cond is one `if … elsif … else …` statement: the first branch whose If
// is true (an else branch has none) applies. A Cond of one branch without
// If and Keyword "" holds the parameters written after a conditional in the
// same scope, which ISC applies after it.
type Cond struct {
	Branches []Branch
}

// Branch is one arm of a Cond.
type Branch struct {
	// Keyword is "if", "elsif", "else", or "" for unconditional statements.
	Keyword string
	If      *Expr
	// Params are the branch's statements; nested conditionals are in
	// Params.Conds.
	Params Params
	Pos    Pos
}

// ExprOp is an expression's operator.
type ExprOp uint8

// The expressions pxed evaluates (dhcp-eval(5) names in comments).
const (
	ExprConst      ExprOp = iota // "text" or 01:02:03: Data
	ExprOption                   // option NAME: the client's option Code
	ExprHardware                 // hardware: htype then chaddr
	ExprSubstring                // substring(Args[0], Off, Len)
	ExprBinToASCII               // binary-to-ascii(Base, Width, Data, Args[0]); Data is the separator
	ExprEqual                    // Args[0] = Args[1]
	ExprNotEqual                 // Args[0] != Args[1]
	ExprAnd                      // Args[0] and Args[1]
	ExprOr                       // Args[0] or Args[1]
	ExprNot                      // not Args[0]
	ExprExists                   // exists NAME: the client sent option Code
	ExprKnown                    // known: the client has a host declaration
)

// Expr is a parsed expression. Boolean operators are ExprEqual and after;
// the others are data expressions.
type Expr struct {
	Op   ExprOp
	Args []*Expr
	Data []byte
	// Code and Name are the option of ExprOption and ExprExists.
	Code int
	Name string
	// Off, Len: substring's; Base, Width: binary-to-ascii's.
	Off, Len    int
	Base, Width int
	// Text is the expression as written, for messages.
	Text string
	Pos  Pos
}

// Boolean reports whether e is a boolean expression.
func (e *Expr) Boolean() bool { return e.Op >= ExprEqual }

// PermitKind is what a pool permit names.
type PermitKind uint8

// The permits of `allow|deny …` in a pool.
const (
	PermitKnown        PermitKind = iota + 1 // known-clients, known clients
	PermitUnknown                            // unknown-clients, unknown clients
	PermitAll                                // all clients
	PermitDynamicBootp                       // dynamic bootp clients
	PermitClass                              // members of "CLASS"
)

// Permit is one `allow|deny WHAT;` of a pool. A pool admits a client that
// no deny permit matches and, when it has allow permits, one of them does.
type Permit struct {
	Deny  bool
	Kind  PermitKind
	Class string // PermitClass
	Text  string // as written: "deny unknown-clients"
	Pos   Pos
}

// mergeConds is Over for Conds: the outer scope's conditionals, then the
// inner scope's own parameters again (ISC executes the inner scope's
// statements after the outer's, so an outer conditional never overrides
// them), then the inner scope's conditionals.
func mergeConds(inner, outer Params) []Cond {
	if len(outer.Conds) == 0 {
		return inner.Conds
	}
	plain := inner
	plain.Conds = nil
	out := make([]Cond, 0, len(outer.Conds)+1+len(inner.Conds))
	out = append(out, outer.Conds...)
	if !plain.IsZero() {
		out = append(out, Cond{Branches: []Branch{{Params: plain}}})
	}
	return append(out, inner.Conds...)
}

// IsZero reports whether p sets nothing.
func (p Params) IsZero() bool {
	return p.DefaultLeaseTime == 0 && p.MaxLeaseTime == 0 && p.NextServer == "" && p.Filename == nil &&
		p.ServerName == nil && p.AllowBootp == nil && p.AllowBooting == nil && len(p.Options) == 0 &&
		len(p.Encoded) == 0 && len(p.BootFiles) == 0 && p.IPXEScript == "" && p.BootUnknownClients == nil &&
		len(p.Conds) == 0
}

// DHCPDOnly returns the position and a description of the first thing in n
// the native YAML cannot express (classes, conditionals, pool permits,
// boot-unknown-clients); ok is false when there is none.
func (n *Network) DHCPDOnly() (at Pos, what string, ok bool) {
	scope := func(p *Params, where Pos) (Pos, string, bool) {
		if len(p.Conds) > 0 {
			b := p.Conds[0].Branches[0]
			return b.Pos, "a conditional statement (" + b.Keyword + ")", true
		}
		if p.BootUnknownClients != nil {
			return where, "allow/deny unknown-clients outside a pool", true
		}
		return Pos{}, "", false
	}
	if len(n.Classes) > 0 {
		return n.Classes[0].Pos, "class " + n.Classes[0].Name, true
	}
	if at, what, ok := scope(&n.Params, Pos{}); ok {
		return at, what, ok
	}
	for i := range n.Subnets {
		s := &n.Subnets[i]
		if at, what, ok := scope(&s.Params, s.Pos); ok {
			return at, what, ok
		}
		for j := range s.Pools {
			pl := &s.Pools[j]
			if len(pl.Permits) > 0 {
				return pl.Permits[0].Pos, pl.Permits[0].Text, true
			}
			if at, what, ok := scope(&pl.Params, pl.Pos); ok {
				return at, what, ok
			}
		}
	}
	for i := range n.Hosts {
		if at, what, ok := scope(&n.Hosts[i].Params, n.Hosts[i].Pos); ok {
			return at, what, ok
		}
	}
	return Pos{}, "", false
}
