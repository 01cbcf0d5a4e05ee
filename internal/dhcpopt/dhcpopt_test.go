package dhcpopt

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"pxed/internal/pos"
)

func TestParseType(t *testing.T) {
	good := []struct {
		in   string
		want Type
		str  string
	}{
		{"ip-address", IPAddress, "ip-address"},
		{"array of ip-address", IPArray, "array of ip-address"},
		{"  Array   OF\tip-address ", IPArray, "array of ip-address"},
		{"text", Text, "text"},
		{"string", String, "string"},
		{"boolean", Boolean, "boolean"},
		{"domain-list", DomainList, "domain-list"},
		{"domain-list compressed", DomainList, "domain-list"},
		{"integer 8", Type{Kind: KindInt, Bits: 8, Signed: true}, "signed integer 8"},
		{"integer 32", Int32, "signed integer 32"},
		{"signed integer 16", Type{Kind: KindInt, Bits: 16, Signed: true}, "signed integer 16"},
		{"unsigned integer 8", Uint8, "unsigned integer 8"},
		{"unsigned integer 16", Uint16, "unsigned integer 16"},
		{"unsigned integer 32", Uint32, "unsigned integer 32"},
		{"array of integer 8", Type{Kind: KindInt, Bits: 8, Signed: true, Array: true}, "array of signed integer 8"},
		{"array of unsigned integer 16", Type{Kind: KindInt, Bits: 16, Array: true}, "array of unsigned integer 16"},
		{"array of boolean", Type{Kind: KindBool, Array: true}, "array of boolean"},
	}
	for _, c := range good {
		got, err := ParseType(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseType(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
			continue
		}
		if got.String() != c.str {
			t.Errorf("ParseType(%q).String() = %q, want %q", c.in, got.String(), c.str)
		}
		if again, err := ParseType(got.String()); err != nil || again != got {
			t.Errorf("ParseType(%q) does not round-trip: %+v, %v", got.String(), again, err)
		}
	}
	bad := []struct{ in, msg string }{
		{"", "empty"},
		{"ip-addr", "unknown option type"},
		{"integer", "needs a size"},
		{"integer 64", "not 8, 16 or 32"},
		{"unsigned 8", "expected \"integer\""},
		{"signed", "expected \"integer\""},
		{"array ip-address", "array of TYPE"},
		{"array of", "needs an element type"},
		{"array of text", "arrays of text are not supported"},
		{"array of string", "arrays of string are not supported"},
		{"array of domain-list", "arrays of domain-list"},
		{"{ ip-address, text }", "record option types"},
		{"array of { ip-address, ip-address }", "record option types"},
		{"encapsulate pxelinux", "encapsulated option spaces"},
		{"ip6-address", "DHCPv6"},
		{"zerolen", "zerolen"},
		{"text text", "unexpected \"text\""},
		{"unsigned integer 8 16", "unexpected \"16\""},
	}
	for _, c := range bad {
		_, err := ParseType(c.in)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("ParseType(%q) error = %v, want one containing %q", c.in, err, c.msg)
		}
	}
}

func TestStandardTable(t *testing.T) {
	tab, err := NewTable(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name     string
		code     uint8
		typ      string
		protocol bool
	}{
		{"subnet-mask", 1, "ip-address", false},
		{"time-offset", 2, "signed integer 32", false},
		{"routers", 3, "array of ip-address", false},
		{"time-servers", 4, "array of ip-address", false},
		{"name-servers", 0, "", false}, // ISC's name for 5 is ien116-name-servers
		{"ien116-name-servers", 5, "array of ip-address", false},
		{"domain-name-servers", 6, "array of ip-address", false},
		{"log-servers", 7, "array of ip-address", false},
		{"lpr-servers", 9, "array of ip-address", false},
		{"host-name", 12, "text", false},
		{"boot-size", 13, "unsigned integer 16", false},
		{"merit-dump", 14, "text", false},
		{"domain-name", 15, "text", false},
		{"swap-server", 16, "ip-address", false},
		{"root-path", 17, "text", false},
		{"extensions-path", 18, "text", false},
		{"ip-forwarding", 19, "boolean", false},
		{"default-ip-ttl", 23, "unsigned integer 8", false},
		{"interface-mtu", 26, "unsigned integer 16", false},
		{"all-subnets-local", 27, "boolean", false},
		{"broadcast-address", 28, "ip-address", false},
		{"static-routes", 33, "array of ip-address", false},
		{"nis-domain", 40, "text", false},
		{"nis-servers", 41, "array of ip-address", false},
		{"ntp-servers", 42, "array of ip-address", false},
		{"vendor-encapsulated-options", 43, "string", false},
		{"netbios-name-servers", 44, "array of ip-address", false},
		{"netbios-node-type", 46, "unsigned integer 8", false},
		{"netbios-scope", 47, "text", false},
		{"font-servers", 48, "array of ip-address", false},
		{"x-display-manager", 49, "array of ip-address", false},
		{"dhcp-requested-address", 50, "ip-address", true},
		{"dhcp-lease-time", 51, "unsigned integer 32", true},
		{"dhcp-option-overload", 52, "unsigned integer 8", true},
		{"dhcp-message-type", 53, "unsigned integer 8", true},
		{"dhcp-server-identifier", 54, "ip-address", true},
		{"dhcp-parameter-request-list", 55, "array of unsigned integer 8", true},
		{"dhcp-max-message-size", 57, "unsigned integer 16", true},
		{"dhcp-renewal-time", 58, "unsigned integer 32", true},
		{"dhcp-rebinding-time", 59, "unsigned integer 32", true},
		{"vendor-class-identifier", 60, "string", false},
		{"dhcp-client-identifier", 61, "string", false},
		{"nisplus-domain", 64, "text", false},
		{"nisplus-servers", 65, "array of ip-address", false},
		{"tftp-server-name", 66, "text", false},
		{"bootfile-name", 67, "text", false},
		{"smtp-server", 69, "array of ip-address", false},
		{"pop-server", 70, "array of ip-address", false},
		{"www-server", 72, "array of ip-address", false},
		{"user-class", 77, "string", false},
		{"domain-search", 119, "domain-list", false},
	}
	for _, w := range want {
		d, ok := tab.Lookup(w.name)
		if w.code == 0 {
			if ok {
				t.Errorf("Lookup(%q) found %+v, want nothing", w.name, d)
			}
			continue
		}
		if !ok || d.Code != w.code || d.Type.String() != w.typ || d.Protocol != w.protocol || d.Name != w.name {
			t.Errorf("Lookup(%q) = %+v %v, want code %d %s protocol %v", w.name, d, ok, w.code, w.typ, w.protocol)
		}
		if c, ok := tab.ByCode(w.code); !ok || c.Name != w.name {
			t.Errorf("ByCode(%d) = %+v, want %s", w.code, c, w.name)
		}
	}
	for _, d := range Standard() {
		if d.Code == 0 || d.Code == 255 || d.Type.Kind == 0 {
			t.Errorf("bad standard definition %+v", d)
		}
	}
	if _, ok := tab.ByCode(200); ok {
		t.Error("ByCode(200) found an option")
	}

	// The zero Table and a nil *Table are the standard table.
	var nilTab *Table
	if d, ok := nilTab.Lookup("routers"); !ok || d.Code != 3 {
		t.Errorf("nil Table Lookup = %+v, %v", d, ok)
	}
	if s := nilTab.Format(3, []byte{192, 0, 2, 1}); s != "192.0.2.1" {
		t.Errorf("nil Table Format = %q", s)
	}
	var zero Table
	if err := zero.Define(SiteDef{Name: "arch", Code: 93, Type: "unsigned integer 16"}); err != nil {
		t.Fatal(err)
	}
	if d, ok := zero.ByCode(93); !ok || d.Name != "arch" {
		t.Errorf("zero Table ByCode(93) = %+v, %v", d, ok)
	}
}

func TestOptionN(t *testing.T) {
	tab, _ := NewTable(nil)
	for _, c := range []struct {
		name string
		code uint8
		ok   bool
	}{
		{"option-1", 1, true}, {"option-3", 3, true}, {"option-121", 121, true}, {"option-254", 254, true},
		{"option-0", 0, false}, {"option-255", 0, false}, {"option-01", 0, false}, {"option-", 0, false},
		{"option-x", 0, false}, {"option-1000", 0, false}, {"option--1", 0, false},
	} {
		d, ok := tab.Lookup(c.name)
		if ok != c.ok || ok && (d.Code != c.code || d.Type != String || d.Name != c.name) {
			t.Errorf("Lookup(%q) = %+v, %v", c.name, d, ok)
		}
	}
	// option-3 is raw bytes even though 3 is routers.
	_, b, err := tab.Encode("option-3", "c0:00:02:01")
	if err != nil || !bytes.Equal(b, []byte{192, 0, 2, 1}) {
		t.Errorf("Encode(option-3) = %v, %v", b, err)
	}
	if s := tab.Format(250, []byte("abc")); s != "abc" {
		t.Errorf("Format(250) = %q", s)
	}
}

func TestSiteDefinitions(t *testing.T) {
	at := func(line int) pos.Pos { return pos.Pos{File: "dhcpd.conf", Line: line, Column: 1} }
	tab, err := NewTable([]SiteDef{
		{Name: "arch", Code: 93, Type: "unsigned integer 16", Pos: at(1)},
		{Name: "rfc3442-classless-static-routes", Code: 121, Type: "array of integer 8", Pos: at(2)},
		{Name: "pxelinux-configfile", Code: 209, Type: "text", Pos: at(3)},
		{Name: "pxelinux-configfile", Code: 209, Type: "text", Pos: at(4)}, // same again: fine
		{Name: "domain-search", Code: 119, Type: "text", Pos: at(5)},       // retyping a standard name
	})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := tab.ByCode(93); d.Name != "arch" || d.Type != Uint16 || d.Pos != at(1) {
		t.Errorf("ByCode(93) = %+v", d)
	}
	if d, ok := tab.Lookup("pxe-system-type"); !ok || d.Code != 93 || !d.Type.Array {
		t.Errorf("standard name for 93 lost: %+v", d)
	}
	if d, _ := tab.Lookup("domain-search"); d.Type != Text {
		t.Errorf("domain-search not retyped: %+v", d)
	}
	if _, b, err := tab.Encode("rfc3442-classless-static-routes", "24, 192, 168, 1, 192, 168, 1, 1"); err != nil || len(b) != 8 {
		t.Errorf("Encode classless routes = %v, %v", b, err)
	}
	if s := tab.Format(93, []byte{0, 7}); s != "7" {
		t.Errorf("Format(93) = %q", s)
	}
	if ds := tab.Sites(); len(ds) != 4 || ds[0].Name != "arch" || ds[3].Code != 209 {
		t.Errorf("Sites() = %+v", ds)
	}

	bad := []struct {
		def SiteDef
		msg string
	}{
		{SiteDef{Name: "zero", Code: 0, Type: "text"}, "code 0 is outside 1..254"},
		{SiteDef{Name: "end", Code: 255, Type: "text"}, "code 255 is outside"},
		{SiteDef{Name: "big", Code: 300, Type: "text"}, "code 300"},
		{SiteDef{Name: "neg", Code: -1, Type: "text"}, "code -1"},
		{SiteDef{Name: "t", Code: 200, Type: "txt"}, "unknown option type \"txt\""},
		{SiteDef{Name: "r", Code: 200, Type: "{ ip-address, text }"}, "record option types"},
		{SiteDef{Name: "routers", Code: 200, Type: "text"}, "standard option with code 3"},
		{SiteDef{Name: "dhcp-lease-time", Code: 51, Type: "text"}, "protocol option"},
		{SiteDef{Name: "option-200", Code: 200, Type: "text"}, "reserved"},
		{SiteDef{Name: "", Code: 200, Type: "text"}, "bad option name"},
		{SiteDef{Name: "arch", Code: 93, Type: "text"}, "already declared at dhcpd.conf:1:1 as code 93 = unsigned integer 16"},
		{SiteDef{Name: "arch", Code: 94, Type: "unsigned integer 16"}, "already declared"},
	}
	for _, c := range bad {
		c.def.Pos = at(42)
		err := tab.Define(c.def)
		var ce *pos.Error
		if !errors.As(err, &ce) || ce.Line != 42 || ce.File != "dhcpd.conf" || !strings.Contains(ce.Msg, c.msg) {
			t.Errorf("Define(%+v) = %v, want positioned error containing %q", c.def, err, c.msg)
		}
	}
	// NewTable reports every bad definition.
	_, err = NewTable([]SiteDef{
		{Name: "a", Code: 0, Type: "text", Pos: at(1)},
		{Name: "b", Code: 200, Type: "text", Pos: at(2)},
		{Name: "c", Code: 201, Type: "nope", Pos: at(3)},
	})
	var es pos.Errors
	if !errors.As(err, &es) || len(es) != 2 || es[0].Line != 1 || es[1].Line != 3 {
		t.Errorf("NewTable errors = %v", err)
	}
}

func TestEncode(t *testing.T) {
	tab, err := NewTable([]SiteDef{
		{Name: "s8", Code: 200, Type: "integer 8"},
		{Name: "s16", Code: 201, Type: "signed integer 16"},
		{Name: "u32", Code: 202, Type: "unsigned integer 32"},
		{Name: "a8", Code: 203, Type: "array of unsigned integer 8"},
		{Name: "a16", Code: 204, Type: "array of integer 16"},
		{Name: "a32", Code: 205, Type: "array of unsigned integer 32"},
		{Name: "bools", Code: 206, Type: "array of boolean"},
	})
	if err != nil {
		t.Fatal(err)
	}
	good := []struct {
		name, value string
		want        []byte
		canon       string // Format's output; "" means value itself
	}{
		{"subnet-mask", "255.255.255.0", []byte{255, 255, 255, 0}, ""},
		{"subnet-mask", " 255.255.255.0 ", []byte{255, 255, 255, 0}, "255.255.255.0"},
		{"routers", "192.0.2.1", []byte{192, 0, 2, 1}, ""},
		{"routers", "192.0.2.1, 192.0.2.2", []byte{192, 0, 2, 1, 192, 0, 2, 2}, ""},
		{"routers", "192.0.2.1,192.0.2.2", []byte{192, 0, 2, 1, 192, 0, 2, 2}, "192.0.2.1, 192.0.2.2"},
		{"time-offset", "-18000", []byte{0xff, 0xff, 0xb9, 0xb0}, ""},
		{"time-offset", "2147483647", []byte{0x7f, 0xff, 0xff, 0xff}, ""},
		{"time-offset", "-2147483648", []byte{0x80, 0, 0, 0}, ""},
		{"time-offset", "0x10", []byte{0, 0, 0, 16}, "16"},
		{"time-offset", "+5", []byte{0, 0, 0, 5}, "5"},
		{"boot-size", "65535", []byte{0xff, 0xff}, ""},
		{"boot-size", "007", []byte{0, 7}, "7"},
		{"default-ip-ttl", "64", []byte{64}, ""},
		{"default-ip-ttl", "0", []byte{0}, ""},
		{"dhcp-lease-time", "4294967295", []byte{0xff, 0xff, 0xff, 0xff}, ""},
		{"s8", "-128", []byte{0x80}, ""},
		{"s8", "127", []byte{0x7f}, ""},
		{"s8", "200", []byte{200}, "-56"}, // ISC takes unsigned values for signed types
		{"time-offset", "4294967295", []byte{0xff, 0xff, 0xff, 0xff}, "-1"},
		{"s16", "-1", []byte{0xff, 0xff}, ""},
		{"u32", "0", []byte{0, 0, 0, 0}, ""},
		{"a8", "1, 3, 6, 15", []byte{1, 3, 6, 15}, ""},
		{"a16", "-2, 300", []byte{0xff, 0xfe, 1, 44}, ""},
		{"a32", "1", []byte{0, 0, 0, 1}, ""},
		{"ip-forwarding", "true", []byte{1}, ""},
		{"ip-forwarding", "on", []byte{1}, "true"},
		{"ip-forwarding", "OFF", []byte{0}, "false"},
		{"ip-forwarding", "false", []byte{0}, ""},
		{"bools", "true, false, on", []byte{1, 0, 1}, "true, false, true"},
		{"domain-name", "example.com", []byte("example.com"), ""},
		{"domain-name", "", []byte{}, ""},
		{"root-path", "10.0.1.4:/var/tmp/rootfs", []byte("10.0.1.4:/var/tmp/rootfs"), ""},
		{"host-name", "a, b", []byte("a, b"), ""},
		{"vendor-class-identifier", "PXEClient", []byte("PXEClient"), ""},
		{"vendor-class-identifier", "01:02:0a", []byte{1, 2, 10}, ""},
		{"vendor-class-identifier", "1:2:A", []byte{1, 2, 10}, "01:02:0a"},
		{"vendor-class-identifier", "ab", []byte{0xab}, ""},
		{"vendor-class-identifier", "61:62", []byte("ab"), ""},
		{"vendor-class-identifier", "x:y", []byte("x:y"), ""},
		{"vendor-class-identifier", " PXE", []byte(" PXE"), "20:50:58:45"},
		{"vendor-class-identifier", "", []byte{}, ""},
		{"dhcp-client-identifier", "01:00:16:3e:72:79:e3", []byte{1, 0, 0x16, 0x3e, 0x72, 0x79, 0xe3}, ""},
		{"user-class", "iPXE", []byte("iPXE"), ""},
		{"domain-search", "example.com", []byte("\x07example\x03com\x00"), ""},
		{"domain-search", "example.com., a.b", []byte("\x07example\x03com\x00\x01a\x01b\x00"), "example.com, a.b"},
	}
	for _, c := range good {
		d, b, err := tab.Encode(c.name, c.value)
		if err != nil || !bytes.Equal(b, c.want) {
			t.Errorf("Encode(%s, %q) = %v, %v; want %v", c.name, c.value, b, err, c.want)
			continue
		}
		canon := c.canon
		if canon == "" {
			canon = c.value
		}
		if got := tab.Format(d.Code, b); got != canon {
			t.Errorf("Format(%s, %v) = %q, want %q", c.name, b, got, canon)
		}
		if _, again, err := tab.Encode(c.name, tab.Format(d.Code, b)); err != nil || !bytes.Equal(again, b) {
			t.Errorf("round trip of %s %q: %v, %v", c.name, c.value, again, err)
		}
	}

	bad := []struct{ name, value, msg string }{
		{"nonexistent", "1", "unknown option"},
		{"subnet-mask", "", "empty value"},
		{"subnet-mask", "255.255.255", "not an IPv4 address"},
		{"subnet-mask", "255.255.255.0.1", "not an IPv4 address"},
		{"subnet-mask", "::1", "not an IPv4 address"},
		{"subnet-mask", "::ffff:1.2.3.4", "not an IPv4 address"},
		{"subnet-mask", "010.0.0.1", "not an IPv4 address"},
		{"routers", "gw.example.com", "does not resolve host names"},
		{"routers", "192.0.2.1, , 192.0.2.2", "empty element 2"},
		{"routers", "192.0.2.1,", "empty element 2"},
		{"routers", " ", "empty value"},
		{"routers", "192.0.2.1 192.0.2.2", "not an IPv4 address"},
		{"time-offset", "4294967296", "outside -2147483648..4294967295"},
		{"time-offset", "-2147483649", "outside"},
		{"time-offset", "99999999999999999999999", "outside"},
		{"time-offset", "1.5", "not an integer"},
		{"time-offset", "", "not an integer"},
		{"time-offset", "-", "not an integer"},
		{"time-offset", "--1", "not an integer"},
		{"time-offset", "0x", "not an integer"},
		{"time-offset", "1_000", "not an integer"},
		{"boot-size", "65536", "outside 0..65535"},
		{"boot-size", "-1", "outside 0..65535"},
		{"default-ip-ttl", "256", "outside 0..255"},
		{"s8", "256", "outside -128..255"},
		{"s8", "-129", "outside -128..255"},
		{"a8", "1, 2, 300", "outside 0..255"},
		{"a8", "", "empty value"},
		{"ip-forwarding", "yes", "not a boolean"},
		{"ip-forwarding", "1", "not a boolean"},
		{"bools", "true,,false", "empty element"},
		{"domain-search", "", "empty value"},
		{"domain-search", ".", "not a domain name"},
		{"domain-search", "a..b", "empty label"},
		{"domain-search", strings.Repeat("a", 64) + ".com", "longer than 63"},
		{"domain-search", strings.Repeat("abcdefghi.", 26) + "com", "longer than 255"},
		{"domain-search", "a b.com", "has the character"},
		{"domain-search", "ex\\ample.com", "has the character"},
	}
	for _, c := range bad {
		_, b, err := tab.Encode(c.name, c.value)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Encode(%s, %q) = %v, %v; want error containing %q", c.name, c.value, b, err, c.msg)
		}
	}
}

func TestEncodeLong(t *testing.T) {
	tab, _ := NewTable(nil)
	long := strings.Repeat("x", 600)
	_, b, err := tab.Encode("root-path", long)
	if err != nil || len(b) != 600 {
		t.Errorf("Encode of a 600-byte text = %d bytes, %v", len(b), err)
	}
	var addrs []string
	for range 100 {
		addrs = append(addrs, "192.0.2.1")
	}
	if _, b, err := tab.Encode("routers", strings.Join(addrs, ", ")); err != nil || len(b) != 400 {
		t.Errorf("Encode of 100 routers = %d bytes, %v", len(b), err)
	}
}

func TestFormatInvalidData(t *testing.T) {
	tab, _ := NewTable(nil)
	for _, c := range []struct {
		code uint8
		data []byte
		want string
	}{
		{1, []byte{1, 2, 3}, "01:02:03"},             // short address
		{3, []byte{1, 2, 3, 4, 5}, "01:02:03:04:05"}, // not a multiple of 4
		{3, nil, ""},
		{19, []byte{2}, "02"}, // boolean not 0/1
		{13, []byte{1, 2, 3}, "01:02:03"},
		{119, []byte{3, 'a'}, "03:61"},                // truncated label
		{119, []byte{0}, "00"},                        // root
		{119, []byte{0xc0, 0}, "c0:00"},               // pointer to itself
		{119, []byte{1, 'a', 0xc0, 0}, "01:61:c0:00"}, // pointer loop
		{119, []byte{0x40}, "40"},                     // reserved label type
		{119, []byte{1, 'a'}, "01:61"},                // no terminator
		{119, []byte{1, ',', 0}, "01:2c:00"},          // comma in label
	} {
		if got := tab.Format(c.code, c.data); got != c.want {
			t.Errorf("Format(%d, %v) = %q, want %q", c.code, c.data, got, c.want)
		}
	}
}

func TestDomainListCompression(t *testing.T) {
	tab, _ := NewTable(nil)
	// RFC 3397's example: eng.apple.com, marketing.apple.com with a pointer.
	data := []byte("\x03eng\x05apple\x03com\x00\x09marketing\xc0\x04")
	got := tab.Format(119, data)
	if got != "eng.apple.com, marketing.apple.com" {
		t.Fatalf("Format = %q", got)
	}
	_, b, err := tab.Encode("domain-search", got)
	if err != nil {
		t.Fatal(err)
	}
	if again := tab.Format(119, b); again != got {
		t.Errorf("uncompressed round trip = %q", again)
	}
}

func TestDataString(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want string
	}{
		{nil, ""},
		{[]byte("PXEClient:Arch:00007:UNDI:003016"), "PXEClient:Arch:00007:UNDI:003016"},
		{[]byte("ab"), "61:62"},
		{[]byte("1:2"), "31:3a:32"},
		{[]byte{0, 1}, "00:01"},
		{[]byte("tab\there"), "74:61:62:09:68:65:72:65"},
		{[]byte("trailing "), "74:72:61:69:6c:69:6e:67:20"},
		{[]byte("caf\xc3\xa9"), "63:61:66:c3:a9"},
	} {
		got := DataString(c.in)
		if got != c.want {
			t.Errorf("DataString(%q) = %q, want %q", c.in, got, c.want)
		}
		if b, err := String.Encode(got); err != nil || !bytes.Equal(b, c.in) && len(c.in) > 0 {
			t.Errorf("String.Encode(%q) = %v, %v", got, b, err)
		}
	}
}

// TestRoundTripAllTypes checks Encode(Format(x)) == x for valid data of
// every type, built by encoding sample values.
func TestRoundTripAllTypes(t *testing.T) {
	samples := map[string][]string{
		"ip-address":                   {"0.0.0.0", "255.255.255.255", "10.1.2.3"},
		"array of ip-address":          {"1.2.3.4", "1.2.3.4, 5.6.7.8, 9.10.11.12"},
		"text":                         {"", "hello, world", "\x00\xff", "01:02"},
		"string":                       {"", "hello", "00:ff", "a"},
		"boolean":                      {"true", "false"},
		"array of boolean":             {"true, true, false"},
		"domain-list":                  {"a", "example.com, example.org"},
		"integer 8":                    {"-128", "0", "127"},
		"signed integer 16":            {"-32768", "32767"},
		"integer 32":                   {"-2147483648", "2147483647"},
		"unsigned integer 8":           {"0", "255"},
		"unsigned integer 16":          {"0", "65535"},
		"unsigned integer 32":          {"0", "4294967295"},
		"array of integer 8":           {"-1, 1"},
		"array of integer 16":          {"-1, 1"},
		"array of integer 32":          {"-1, 1"},
		"array of unsigned integer 8":  {"1, 2, 3"},
		"array of unsigned integer 16": {"1, 65535"},
		"array of unsigned integer 32": {"1, 4294967295"},
	}
	for typ, values := range samples {
		ty, err := ParseType(typ)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			b, err := ty.Encode(v)
			if err != nil {
				t.Errorf("%s.Encode(%q): %v", typ, v, err)
				continue
			}
			s, err := ty.Decode(b)
			if err != nil {
				t.Errorf("%s.Decode(%v): %v", typ, b, err)
				continue
			}
			b2, err := ty.Encode(s)
			if err != nil || !bytes.Equal(b, b2) {
				t.Errorf("%s: %q -> %v -> %q -> %v, %v", typ, v, b, s, b2, err)
			}
		}
	}
}

// FuzzEncode encodes arbitrary text as every type and formats arbitrary
// bytes as every type; neither may panic, and every success must round-trip.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{"", "1", "-1", "192.0.2.1, 192.0.2.2", "01:02:0a", "true", "example.com, a.b.", "0x10", "PXEClient", "\x07example\x03com\x00\xc0\x00"} {
		f.Add(s)
	}
	types := []Type{IPAddress, IPArray, Text, String, Boolean, DomainList, Uint8, Uint16, Uint32, Int32,
		{Kind: KindInt, Bits: 8, Signed: true}, {Kind: KindInt, Bits: 16, Signed: true},
		{Kind: KindInt, Bits: 8, Array: true}, {Kind: KindInt, Bits: 16, Signed: true, Array: true},
		{Kind: KindInt, Bits: 32, Array: true}, {Kind: KindBool, Array: true}}
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := ParseType(s); err == nil {
			_, _ = NewTable([]SiteDef{{Name: "x", Code: 200, Type: s}})
		}
		for _, ty := range types {
			// A value read from tokens encodes as its canonical text does.
			elem := ty.elem()
			if b, err := elem.AppendValue(nil, s, false); err == nil {
				if b2, err := elem.Encode(s); err != nil || !bytes.Equal(b, b2) {
					t.Fatalf("%s: AppendValue(%q) = %v, Encode = %v, %v", elem, s, b, b2, err)
				}
			}
			if b, err := elem.AppendValue(nil, s, true); err == nil && elem.Kind == KindString {
				if b2, err := elem.Encode(DataString(b)); err != nil || !bytes.Equal(b, b2) {
					t.Fatalf("quoted %q: Encode(DataString) = %v, %v", s, b2, err)
				}
			}
			if b, err := ty.Encode(s); err == nil {
				out, err := ty.Decode(b)
				if err != nil {
					t.Fatalf("%s: Encode(%q) = %v, which does not decode: %v", ty, s, b, err)
				}
				b2, err := ty.Encode(out)
				if err != nil || !bytes.Equal(b, b2) {
					t.Fatalf("%s: %q -> %v -> %q -> %v, %v", ty, s, b, out, b2, err)
				}
			}
			if out, err := ty.Decode([]byte(s)); err == nil {
				b, err := ty.Encode(out)
				if err != nil {
					t.Fatalf("%s: Decode(%q) = %q, which does not encode: %v", ty, s, out, err)
				}
				if ty.Kind != KindDomainList && !bytes.Equal(b, []byte(s)) {
					t.Fatalf("%s: %q -> %q -> %v", ty, s, out, b)
				}
			}
		}
	})
}

// TestAppendValue: values as a configuration file's tokens give them encode
// whole, element by element, without any reading of their text as a list
// or as hex that the file did not ask for.
func TestAppendValue(t *testing.T) {
	for _, c := range []struct {
		typ    Type
		in     []string
		quoted bool
		want   []byte
	}{
		{Text, []string{`a, "b"`}, true, []byte(`a, "b"`)},
		{Text, []string{"01:02"}, true, []byte("01:02")},
		{String, []string{"01:02"}, true, []byte("01:02")},
		{String, []string{"01:02"}, false, []byte{1, 2}},
		{String, []string{" a, b "}, true, []byte(" a, b ")},
		{IPArray, []string{"192.0.2.1", "192.0.2.2"}, false, []byte{192, 0, 2, 1, 192, 0, 2, 2}},
		{Type{Kind: KindInt, Bits: 8, Signed: true, Array: true}, []string{"24", "200", "-1"}, false, []byte{24, 200, 255}},
		{Uint16, []string{"0x10"}, false, []byte{0, 16}},
		{Boolean, []string{"on"}, false, []byte{1}},
		{DomainList, []string{"a.example.", "b"}, true, []byte("\x01a\x07example\x00\x01b\x00")},
	} {
		var b []byte
		var err error
		for _, v := range c.in {
			if b, err = c.typ.elem().AppendValue(b, v, c.quoted); err != nil {
				t.Fatalf("%s: AppendValue(%q): %v", c.typ, v, err)
			}
		}
		if !bytes.Equal(b, c.want) {
			t.Errorf("%s: %q = %q, want %q", c.typ, c.in, b, c.want)
		}
	}
	for _, c := range []struct {
		typ    Type
		in     string
		quoted bool
		err    string
	}{
		{String, "PXEClient", false, "neither a quoted string nor colon-separated hex"},
		{DomainList, "a,b", true, `label "a,b" has the character ','`},
		{IPAddress, "192.0.2.1, 192.0.2.2", false, "is not an IPv4 address"},
		{Uint8, "256", false, "outside 0..255"},
	} {
		if _, err := c.typ.AppendValue(nil, c.in, c.quoted); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: AppendValue(%q) = %v, want an error containing %q", c.typ, c.in, err, c.err)
		}
	}
}

// FuzzFormat decodes arbitrary option data as every option of the standard
// table (what a client sends, shown as text): never a panic, and the text
// stays within a bound of the data (a compressed domain list expands, at
// most 255 bytes a 2-byte pointer).
func FuzzFormat(f *testing.F) {
	for _, b := range [][]byte{nil, {0}, {192, 0, 2, 1}, []byte("\x07example\x03com\x00\xc0\x00"), {0xc0, 0x00}, {1, 0xff, 0xfe}} {
		f.Add(b)
	}
	tab, err := NewTable(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for code := range 256 {
			s := tab.Format(uint8(code), data)
			if len(s) > 128*(len(data)+1) {
				t.Fatalf("option %d: %d bytes of data shown as %d bytes", code, len(data), len(s))
			}
		}
	})
}
