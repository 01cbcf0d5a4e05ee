package isc

import (
	"strings"
	"testing"

	"pxed/internal/config"
)

// The PXE sites' constructs, verbatim, parse into the model.
func TestClassesAndConditionals(t *testing.T) {
	src := `option arch code 93 = unsigned integer 16;
class "pxeclients" {
  match if substring(option vendor-class-identifier, 0, 9) = "PXEClient";
  next-server 192.0.2.1;
  filename "pxelinux.0";
}
class "httpclients" {
  match if substring(option vendor-class-identifier, 0, 10) = "HTTPClient";
  option vendor-class-identifier "HTTPClient";
  filename "http://192.0.2.1/shimx64.efi";
}
class "ipxe" { match if exists user-class and option user-class = "iPXE"; filename "http://192.0.2.1/boot.ipxe"; }
class "vendor" { match option vendor-class-identifier; }
subclass "vendor" "PXEClient:Arch:00007:UNDI:003016" { filename "x64.efi"; }
subclass "vendor" 01:02:03;
subnet 192.0.2.0 netmask 255.255.255.0 {
  if option arch = 00:07 { filename "ipxe.efi"; } elsif option arch = 00:09 { filename "ipxe.efi"; } else { filename "undionly.kpxe"; }
  if not exists user-class { server-name "a"; }
  if substring(hardware, 1, 3) = 00:16:3e { next-server 192.0.2.9; } else if known { option host-name "k"; }
  if binary-to-ascii(16, 8, ":", substring(hardware, 1, 6)) != "0:16:3e:0:0:1" and (known or not known) { filename "x"; }
  filename "after";
  pool {
    range 192.0.2.10 192.0.2.20;
    deny unknown-clients;
    allow known clients;
    allow members of "pxeclients";
    deny dynamic bootp clients;
    allow all clients;
  }
}
`
	n, warns, err := Parse("f.conf", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	if len(n.Classes) != 4 || len(n.Classes[3].Subclasses) != 2 || string(n.Classes[3].Subclasses[1].Key) != "\x01\x02\x03" {
		t.Fatalf("classes: %+v", n.Classes)
	}
	if e := n.Classes[0].Match; e.Op != config.ExprEqual || e.Args[0].Op != config.ExprSubstring || e.Args[0].Len != 9 ||
		e.Args[0].Args[0].Op != config.ExprOption || e.Args[0].Args[0].Code != 60 || e.Pos != (config.Pos{File: "f.conf", Line: 3, Column: 12}) {
		t.Errorf("pxeclients match: %+v", e)
	}
	if e := n.Classes[3].Submatch; e.Op != config.ExprOption || e.Code != 60 {
		t.Errorf("vendor submatch: %+v", e)
	}
	got := takeConds(n)
	want := []string{
		`class pxeclients: match if substring(option vendor-class-identifier, 0, 9) = "PXEClient" {filename pxelinux.0; next-server 192.0.2.1}`,
		`class httpclients: match if substring(option vendor-class-identifier, 0, 10) = "HTTPClient" {filename http://192.0.2.1/shimx64.efi}`,
		`class ipxe: match if exists user-class and option user-class = "iPXE" {filename http://192.0.2.1/boot.ipxe}`,
		`class vendor: match option vendor-class-identifier {}`,
		`subclass vendor "PXEClient:Arch:00007:UNDI:003016" {filename x64.efi}`,
		`subclass vendor "\x01\x02\x03" {}`,
		`subnet 192.0.2.0/24: if option arch = 00:07 {filename ipxe.efi} elsif option arch = 00:09 {filename ipxe.efi} else {filename undionly.kpxe}`,
		`subnet 192.0.2.0/24: if not exists user-class {server-name a}`,
		`subnet 192.0.2.0/24: if substring(hardware, 1, 3) = 00:16:3e {next-server 192.0.2.9} elsif known {}`,
		`subnet 192.0.2.0/24: if binary-to-ascii(16, 8, ":", substring(hardware, 1, 6)) != "0:16:3e:0:0:1" and (known or not known) {filename x}`,
		`subnet 192.0.2.0/24: {filename after}`,
		`pool 0 of 192.0.2.0/24: deny unknown-clients`,
		`pool 0 of 192.0.2.0/24: allow known clients`,
		`pool 0 of 192.0.2.0/24: allow members of "pxeclients"`,
		`pool 0 of 192.0.2.0/24: deny dynamic bootp clients`,
		`pool 0 of 192.0.2.0/24: allow all clients`,
	}
	mustEqual(t, "model", got, want)
}

// What pxed does not evaluate is an error at its position, never skipped.
func TestClassErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{"if option host-name = 7 { }", "f.conf:1:23: 7 is a number, not data"},
		{"if concat(\"a\", \"b\") = \"ab\" { }", `f.conf:1:4: "concat" is not supported by pxed in expressions`},
		{"if pick-first-value(option host-name, \"x\") = \"x\" { }", `f.conf:1:4: "pick-first-value" is not supported`},
		{"if option host-name ~= \"x\" { }", "f.conf:1:21: regular expression matches (~= and ~~) are not supported"},
		{"if option host-name ~~ \"x\" { }", "f.conf:1:21: regular expression matches"},
		{"if encode-int(1, 8) = 01 { }", `f.conf:1:4: "encode-int" is not supported`},
		{"if foo { }", `f.conf:1:4: unknown name "foo" in an expression`},
		{"if option nosuch = \"a\" { }", `f.conf:1:11: unknown option "nosuch"`},
		{"if option host-name { }", "f.conf:1:4: if needs a condition"},
		{"if not option host-name { }", `f.conf:1:8: "not" applies to a condition`},
		{"if substring(option host-name, x, 1) = \"a\" { }", "f.conf:1:32: expected substring's offset as a number"},
		{"if binary-to-ascii(10, 12, \".\", hardware) = \"a\" { }", "f.conf:1:24: binary-to-ascii's width must be 8, 16 or 32"},
		{"if binary-to-ascii(1, 8, \".\", hardware) = \"a\" { }", "f.conf:1:20: expected binary-to-ascii's base as a number from 2 to 16"},
		{"if known = \"a\" { }", `f.conf:1:4: "=" compares data`},
		{"if known and option host-name { }", `f.conf:1:14: "and" compares conditions`},
		{"if (known { }", `f.conf:1:11: expected ")" after the expression in parentheses`},
		{"if known { log(info, \"x\"); }", `f.conf:1:12: "log" is not supported by pxed`},
		{"option host-name = concat(\"a\", \"b\");", "f.conf:1:1: option host-name = …: option expressions are not supported by pxed"},
		{"execute(\"/bin/true\");", `f.conf:1:1: "execute" is not supported by pxed`},
		{"if known { subnet 10.0.0.0 netmask 255.0.0.0 { } }", `f.conf:1:12: "subnet" cannot be declared inside a conditional statement`},
		{"else { }", `f.conf:1:1: "else" without an "if"`},
		{"class \"c\" { spawn with option host-name; }", "f.conf:1:13: class c: spawning classes (spawn with) are not supported"},
		{"class \"c\" { match if known; lease limit 4; }", "f.conf:1:29: class c: lease limits are not supported"},
		{"class \"c\" { match if known; }\nclass \"c\" { match if known; }", `f.conf:2:1: class "c" is declared twice`},
		{"subclass \"none\" \"x\";", `f.conf:1:10: no such class "none"`},
		{"class \"c\" { match if known; }\nsubclass \"c\" \"x\";", `f.conf:2:1: class c has no "match EXPRESSION;"`},
		{"match if known;", `f.conf:1:1: "match" is only allowed in a class declaration`},
		{"subnet 10.0.0.0 netmask 255.0.0.0 { class \"x\" { } }", "f.conf:1:37: class x in a subnet: pxed reads classes only at the global scope"},
		{"subnet 10.0.0.0 netmask 255.0.0.0 { pool { range 10.0.0.1; allow members of \"x\"; } }", `f.conf:1:77: no such class "x"`},
		{"subnet 10.0.0.0 netmask 255.0.0.0 { pool { range 10.0.0.1; allow authenticated clients; } }", `f.conf:1:66: "allow authenticated": pxed does not support this pool permit`},
		{"subnet 10.0.0.0 netmask 255.0.0.0 { pool { range 10.0.0.1; allow known; } }", `f.conf:1:71: expected "clients" after "allow known"`},
		{"allow known-clients;", `f.conf:1:1: "allow known-clients" is a pool permit`},
		{"if option agent.circuit-id = \"a\" { }", `f.conf:1:11: option agent.circuit-id: option space "agent" is not supported`},
		{"if ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((known)))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))) { }", "expression nested more than 64 deep"},
	}
	for _, c := range cases {
		_, _, err := Parse("f.conf", []byte(c.src), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s\n  error = %v\n  want  %s", c.src, err, c.want)
		}
	}
}

// A parameter written after a conditional in the same scope applies after
// it (ISC runs a scope's statements in order); before it, before.
func TestStatementOrder(t *testing.T) {
	n, _, err := Parse("f.conf", []byte("filename \"a\";\nif known { filename \"b\"; }\nfilename \"c\";\nnext-server 192.0.2.1;\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if *n.Params.Filename != "a" || len(n.Params.Conds) != 2 {
		t.Fatalf("params %+v", n.Params)
	}
	after := n.Params.Conds[1].Branches[0]
	if after.Keyword != "" || after.If != nil || *after.Params.Filename != "c" || after.Params.NextServer != "192.0.2.1" {
		t.Errorf("statements after the if: %+v", after)
	}
}

// A hostile file: an expression's terms and text are bounded (its tree is
// walked recursively on every request).
func TestLongExpression(t *testing.T) {
	src := "if known" + strings.Repeat(" or known", 999) + " { filename \"x\"; }"
	n, _, err := Parse("f.conf", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	if e := n.Params.Conds[0].Branches[0].If; len(e.Text) > 210 || !strings.HasPrefix(e.Text, "known or known") {
		t.Errorf("text of %d bytes: %.40q", len(e.Text), e.Text)
	}
	_, _, err = Parse("f.conf", []byte("if known"+strings.Repeat(" or known", 200000)+" { }"), nil)
	if err == nil || !strings.Contains(err.Error(), "f.conf:1:9004: expression with more than 1000 terms") {
		t.Errorf("200001 terms: %v", err)
	}
}
