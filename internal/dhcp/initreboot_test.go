package dhcp

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"pxed/internal/bootplan"
	"pxed/internal/lease"
)

// TestDecideRequestWithoutLease: a REQUEST that verifies or extends a
// lease (INIT-REBOOT, RENEWING, REBINDING) is answered only for a client
// this server has a record of (RFC 2131 §4.3.2). Before, one such datagram
// from any MAC was ACKed and bound a pool address for the whole lease time.
func TestDecideRequestWithoutLease(t *testing.T) {
	const (
		known   = "02:00:00:00:e0:01" // holds 192.0.2.210
		unknown = "02:00:00:00:e0:02"
		pvm     = "00:16:3e:72:79:e3" // seed host test_pvm, fixed 192.0.2.199
	)
	want := func(ip string) map[uint8][]byte { return map[uint8][]byte{optRequestedIP: ip4(ip)} }
	for _, tc := range []struct {
		name    string
		notAuth bool
		m       decMsg
		reply   string // "": silence
		state   string
		commit  bool
	}{
		{name: "INIT-REBOOT, unknown client, free pool address: silence", m: decMsg{typ: msgRequest, mac: unknown, opts: want("192.0.2.220")}},
		{name: "INIT-REBOOT, unknown client, another's address: silence", m: decMsg{typ: msgRequest, mac: unknown, opts: want("192.0.2.210")}},
		{name: "INIT-REBOOT, unknown client, wrong network, authoritative: NAK", m: decMsg{typ: msgRequest, mac: unknown, opts: want("203.0.113.5")}, reply: "NAK"},
		{name: "INIT-REBOOT, unknown client, wrong network, not authoritative: silence", notAuth: true, m: decMsg{typ: msgRequest, mac: unknown, opts: want("203.0.113.5")}},
		{name: "INIT-REBOOT, known client, its address: ACK", m: decMsg{typ: msgRequest, mac: known, opts: want("192.0.2.210")}, reply: "ACK", state: "init-reboot", commit: true},
		{name: "INIT-REBOOT, known client, another address: NAK", m: decMsg{typ: msgRequest, mac: known, opts: want("192.0.2.220")}, reply: "NAK"},
		{name: "INIT-REBOOT, known client, another address, not authoritative: silence", notAuth: true, m: decMsg{typ: msgRequest, mac: known, opts: want("192.0.2.220")}},
		{name: "INIT-REBOOT, fixed host, its address: ACK", m: decMsg{typ: msgRequest, mac: pvm, opts: want("192.0.2.199")}, reply: "ACK", state: "init-reboot"},
		{name: "RENEWING, unknown client: silence", m: decMsg{typ: msgRequest, mac: unknown, ciaddr: "192.0.2.220"}},
		{name: "RENEWING, known client: ACK", m: decMsg{typ: msgRequest, mac: known, ciaddr: "192.0.2.210"}, reply: "ACK", state: "renewing", commit: true},
		{name: "RENEWING, known client, another address: NAK", m: decMsg{typ: msgRequest, mac: known, ciaddr: "192.0.2.220"}, reply: "NAK"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := seedNetwork()
			n.Authoritative = !tc.notAuth
			r := newDecRig(t, n, bootplan.Options{})
			hw, _ := net.ParseMAC(known)
			if err := r.alloc.Commit(lease.Request{Client: lease.Key(nil, hw), MAC: hw, Pools: r.view.Plan.Pools()}, decAddr("192.0.2.210"), time.Hour, nil); err != nil {
				t.Fatal(err)
			}
			o := r.decide(t, tc.m)
			if o.MessageType() != tc.reply {
				t.Fatalf("reply %q (silence: %q), want %q", o.MessageType(), o.Silence, tc.reply)
			}
			if tc.reply == "" && !tc.notAuth && !strings.Contains(o.Silence, "RFC 2131 §4.3.2") {
				t.Fatalf("silence %q, want the RFC's reason", o.Silence)
			}
			if tc.reply == "" && o.SilenceLevel > slog.LevelInfo {
				t.Fatalf("silence logged at %v: a flood of these must not flood the log", o.SilenceLevel)
			}
			if tc.reply == "ACK" && o.State != tc.state {
				t.Fatalf("state %q, want %q", o.State, tc.state)
			}
			if got := o.Action == CommitThenSend; got != tc.commit {
				t.Fatalf("action %v, commit %v", o.Action, tc.commit)
			}
		})
	}
}
