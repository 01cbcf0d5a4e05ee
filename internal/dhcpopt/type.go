// Package dhcpopt is pxed's table of DHCPv4 options and the codec between an
// option's value as text and its bytes on the wire.
//
// Option values are handled in one canonical text form, the one the
// configuration model keeps for YAML (config.Params.Options):
//
//   - ip-address: dotted quad, "192.0.2.1" (host names are not resolved)
//   - text: the text itself, without quotes
//   - string (a data string): colon-separated hex bytes ("01:02:0a") when the
//     value is entirely such hex groups, otherwise the text's own bytes; so a
//     data string whose bytes spell hex ("ab", "01:02") must be written in hex
//   - boolean: "true" or "false" (Encode also takes "on" and "off")
//   - integers: decimal (Encode also takes 0x hex); like ISC dhcpd, signed
//     types also take values up to the unsigned maximum ("integer 8" takes
//     -128..255) and store them in two's complement, so Format shows 200 as -56
//   - domain-list: names separated by ", " ("example.com, example.org")
//   - arrays: elements separated by ", " ("192.0.2.1, 192.0.2.2")
//
// Format produces this form and Encode reads it, so Encode(Format(x))
// reproduces x for any x that is a valid value of its option's type (a
// compressed domain list comes back uncompressed).
package dhcpopt

import (
	"fmt"
	"strings"
)

// Kind is the scalar kind of an option type.
type Kind uint8

// The kinds of option value pxed can encode.
const (
	KindIP         Kind = iota + 1 // ip-address: 4 bytes
	KindText                       // text: NVT ASCII, no terminator
	KindString                     // string: arbitrary bytes
	KindBool                       // boolean: 1 byte, 0 or 1
	KindInt                        // integer of Type.Bits bits, network order
	KindDomainList                 // domain-list: RFC 1035 names, uncompressed
)

// Type is a parsed ISC option type such as "array of unsigned integer 16".
// The zero Type is invalid.
type Type struct {
	Kind Kind
	// Bits is 8, 16 or 32 for KindInt and 0 otherwise.
	Bits int
	// Signed is true for "integer N" and "signed integer N".
	Signed bool
	// Array is true for "array of …": one or more elements, no separator on
	// the wire.
	Array bool
}

// Common types.
var (
	IPAddress  = Type{Kind: KindIP}
	IPArray    = Type{Kind: KindIP, Array: true}
	Text       = Type{Kind: KindText}
	String     = Type{Kind: KindString}
	Boolean    = Type{Kind: KindBool}
	DomainList = Type{Kind: KindDomainList}
	Uint8      = Type{Kind: KindInt, Bits: 8}
	Uint16     = Type{Kind: KindInt, Bits: 16}
	Uint32     = Type{Kind: KindInt, Bits: 32}
	Int32      = Type{Kind: KindInt, Bits: 32, Signed: true}
)

// String returns the type in ISC syntax, as ParseType reads it.
func (t Type) String() string {
	var s string
	switch t.Kind {
	case KindIP:
		s = "ip-address"
	case KindText:
		s = "text"
	case KindString:
		s = "string"
	case KindBool:
		s = "boolean"
	case KindDomainList:
		s = "domain-list"
	case KindInt:
		if t.Signed {
			s = fmt.Sprintf("signed integer %d", t.Bits)
		} else {
			s = fmt.Sprintf("unsigned integer %d", t.Bits)
		}
	default:
		return "invalid"
	}
	if t.Array {
		s = "array of " + s
	}
	return s
}

// size is the wire size of one element of a fixed-size kind, 0 for the
// variable-size kinds.
func (t Type) size() int {
	switch t.Kind {
	case KindIP:
		return 4
	case KindBool:
		return 1
	case KindInt:
		return t.Bits / 8
	}
	return 0
}

// ParseType reads an option type in ISC dhcpd.conf syntax:
//
//	ip-address | text | string | boolean | domain-list [compressed]
//	[signed | unsigned] integer 8|16|32
//	array of (ip-address | boolean | [signed | unsigned] integer 8|16|32)
//
// "integer N" is signed, as in ISC dhcpd. Words may be separated by any
// white space and are case-insensitive. Records ("{ ip-address, text }"),
// "encapsulate SPACE", "ip6-address", "zerolen" and arrays of variable-size
// types are refused with an error saying so.
func ParseType(isc string) (Type, error) {
	words := strings.Fields(strings.ToLower(isc))
	if len(words) == 0 {
		return Type{}, fmt.Errorf("empty option type")
	}
	if strings.HasPrefix(words[0], "{") || strings.Contains(isc, "{") {
		return Type{}, fmt.Errorf("record option types like %q are not supported by pxed; use string and write the value in hex", strings.Join(strings.Fields(isc), " "))
	}
	var t Type
	if words[0] == "array" {
		if len(words) < 2 || words[1] != "of" {
			return Type{}, fmt.Errorf("%q: expected \"array of TYPE\"", strings.Join(words, " "))
		}
		t.Array = true
		words = words[2:]
		if len(words) == 0 {
			return Type{}, fmt.Errorf("\"array of\" needs an element type")
		}
	}
	switch words[0] {
	case "ip-address":
		t.Kind = KindIP
		words = words[1:]
	case "text":
		t.Kind = KindText
		words = words[1:]
	case "string":
		t.Kind = KindString
		words = words[1:]
	case "boolean":
		t.Kind = KindBool
		words = words[1:]
	case "domain-list":
		t.Kind = KindDomainList
		words = words[1:]
		if len(words) > 0 && words[0] == "compressed" {
			words = words[1:] // pxed sends names uncompressed; both are valid
		}
	case "signed", "unsigned", "integer":
		t.Kind = KindInt
		t.Signed = words[0] != "unsigned"
		if words[0] != "integer" {
			words = words[1:]
			if len(words) == 0 || words[0] != "integer" {
				return Type{}, fmt.Errorf("expected \"integer\" after %q in option type", t.signWord())
			}
		}
		words = words[1:]
		if len(words) == 0 {
			return Type{}, fmt.Errorf("integer option type needs a size: 8, 16 or 32")
		}
		switch words[0] {
		case "8":
			t.Bits = 8
		case "16":
			t.Bits = 16
		case "32":
			t.Bits = 32
		default:
			return Type{}, fmt.Errorf("integer size %q is not 8, 16 or 32", words[0])
		}
		words = words[1:]
	case "encapsulate":
		return Type{}, fmt.Errorf("encapsulated option spaces are not supported by pxed; use string and write the value in hex")
	case "ip6-address", "ipv6-address":
		return Type{}, fmt.Errorf("%s is a DHCPv6 type; pxed serves DHCPv4 only", words[0])
	case "zerolen":
		return Type{}, fmt.Errorf("zerolen options are not supported by pxed")
	case "domain-name":
		return Type{}, fmt.Errorf("domain-name option types are not supported by pxed; use domain-list or text")
	default:
		return Type{}, fmt.Errorf("unknown option type %q", words[0])
	}
	if len(words) > 0 {
		return Type{}, fmt.Errorf("unexpected %q after option type %s", strings.Join(words, " "), t)
	}
	if t.Array && t.size() == 0 {
		return Type{}, fmt.Errorf("arrays of %s are not supported by pxed", Type{Kind: t.Kind})
	}
	return t, nil
}

func (t Type) signWord() string {
	if t.Signed {
		return "signed"
	}
	return "unsigned"
}
