package pxelinux

import (
	"net"
	"net/netip"
	"reflect"
	"testing"
)

func TestHexIP(t *testing.T) {
	tests := map[string]string{
		"192.168.200.177":        "C0A8C8B1",
		"192.168.1.199":          "C0A801C7",
		"192.0.2.91":             "C000025B",
		"10.0.0.253":             "0A0000FD",
		"0.0.0.0":                "00000000",
		"255.255.255.255":        "FFFFFFFF",
		"::ffff:192.168.200.177": "C0A8C8B1",
		"2001:db8::1":            "",
	}
	for in, want := range tests {
		if got := HexIP(netip.MustParseAddr(in)); got != want {
			t.Errorf("HexIP(%s) = %q, want %q", in, got, want)
		}
	}
	if got := HexIP(netip.Addr{}); got != "" {
		t.Errorf("HexIP(zero) = %q", got)
	}
}

func TestSearchPath(t *testing.T) {
	mac, _ := net.ParseMAC("00:16:3E:72:79:E3")
	got := SearchPath("B8945908-C6A7-11D3-9F39-0016357A5E0E", mac, netip.MustParseAddr("192.168.200.177"))
	want := []string{
		"pxelinux.cfg/b8945908-c6a7-11d3-9f39-0016357a5e0e",
		"pxelinux.cfg/01-00-16-3e-72-79-e3",
		"pxelinux.cfg/C0A8C8B1",
		"pxelinux.cfg/C0A8C8B",
		"pxelinux.cfg/C0A8C8",
		"pxelinux.cfg/C0A8C",
		"pxelinux.cfg/C0A8",
		"pxelinux.cfg/C0A",
		"pxelinux.cfg/C0",
		"pxelinux.cfg/C",
		"pxelinux.cfg/default",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}

	// Nothing known: just the default.
	if got := SearchPath("", nil, netip.Addr{}); !reflect.DeepEqual(got, []string{"pxelinux.cfg/default"}) {
		t.Errorf("empty = %q", got)
	}
	// A dash-less UUID is put in canonical form; junk (or a path) is skipped.
	if got := SearchPath("B8945908C6A711D39F390016357A5E0E", nil, netip.Addr{})[0]; got != "pxelinux.cfg/b8945908-c6a7-11d3-9f39-0016357a5e0e" {
		t.Errorf("dash-less uuid: %q", got)
	}
	for _, bad := range []string{"../../etc/passwd", "not-a-uuid", "b8945908-c6a7-11d3-9f39-0016357a5e0", "g8945908-c6a7-11d3-9f39-0016357a5e0e"} {
		if got := SearchPath(bad, nil, netip.Addr{}); len(got) != 1 {
			t.Errorf("uuid %q accepted: %q", bad, got)
		}
	}
	// IPv6 has no hex-IP names; other hardware lengths are dash-joined.
	ib := net.HardwareAddr{0xA0, 0, 0, 0xFE, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0xc9, 0x03, 0, 0x2f, 0xa5, 0x91}
	got = SearchPath("", ib, netip.MustParseAddr("2001:db8::1"))
	if len(got) != 2 || got[0] != "pxelinux.cfg/01-a0-00-00-fe-80-00-00-00-00-00-00-00-00-02-c9-03-00-2f-a5-91" {
		t.Errorf("IPv6/long MAC: %q", got)
	}
}
