package dhcp

import (
	"context"
	"net/netip"
	"testing"

	"pxed/internal/bootplan"
	"pxed/internal/lease"
	"pxed/internal/lease/leasetest"
)

// TestDecideLoadBalancing: a client another server of the segment answers
// (lease.Options.Balance) gets no OFFER and no answer to its broadcast
// REQUESTs (INIT-REBOOT) until it has been trying for a while (secs); a
// client that chose this server's OFFER is answered whatever its hash.
func TestDecideLoadBalancing(t *testing.T) {
	r := newDecRig(t, seedNetwork(), bootplan.Options{})
	plan := r.view.Plan
	var asked []netip.Prefix
	alloc, err := lease.NewAllocator(context.Background(), leasetest.New(), lease.Options{
		Pools: plan.Pools(), Reserved: plan.Reserved,
		// This server answers nobody before 3 s.
		Balance: func(hw []byte, secs uint16, subnet netip.Prefix) bool {
			asked = append(asked, subnet)
			return secs >= 3
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer alloc.Close()
	r.alloc = alloc
	const mac = "02:00:00:00:ba:01"
	decide := func(m decMsg, secs uint16) Outcome {
		req := r.request(t, m)
		req.Packet.Secs = secs
		return Decide(r.view, req, alloc)
	}
	if o := decide(decMsg{typ: msgDiscover, mac: mac}, 0); o.Reply != nil || o.Silence != notOurs {
		t.Fatalf("DISCOVER of another server's client: reply %v, silence %q", o.Reply != nil, o.Silence)
	}
	if len(asked) != 1 || asked[0] != netip.MustParsePrefix("192.0.2.0/24") {
		t.Fatalf("Balance asked about %v, want the client's directly attached subnet", asked)
	}
	initReboot := map[uint8][]byte{optRequestedIP: ip4("192.0.2.200")}
	if o := decide(decMsg{typ: msgRequest, mac: mac, opts: initReboot}, 0); o.Reply != nil || o.Silence != notOurs {
		t.Fatalf("INIT-REBOOT of another server's client: reply %v, silence %q", o.Reply != nil, o.Silence)
	}
	o := decide(decMsg{typ: msgDiscover, mac: mac}, 3)
	if o.Type != msgOffer {
		t.Fatalf("DISCOVER after 3 s: %q, want an OFFER", o.Silence)
	}
	sel := map[uint8][]byte{optServerID: ip4("192.0.2.1"), optRequestedIP: o.IP.AsSlice()}
	if o := decide(decMsg{typ: msgRequest, mac: mac, opts: sel}, 0); o.Type != msgAck {
		t.Fatalf("REQUEST for this server's OFFER: %q, want an ACK", o.Silence)
	}
}

// TestRequestForAnotherServerWithdrawsOffer: a client that REQUESTs
// another server's OFFER (server identifier not ours) frees ours at once,
// rather than after the offer's hold.
func TestRequestForAnotherServerWithdrawsOffer(t *testing.T) {
	r := newDecRig(t, seedNetwork(), bootplan.Options{})
	const mac = "02:00:00:00:ba:02"
	o := r.decide(t, decMsg{typ: msgDiscover, mac: mac})
	if o.Type != msgOffer {
		t.Fatalf("DISCOVER: %q, want an OFFER", o.Silence)
	}
	if l, ok := r.alloc.LeaseAt(o.IP); !ok || l.State != lease.Offered {
		t.Fatalf("after the OFFER, %v is %+v, want held for the client", o.IP, l)
	}
	other := map[uint8][]byte{optServerID: ip4("192.0.2.250"), optRequestedIP: ip4("192.0.2.240")}
	if o := r.decide(t, decMsg{typ: msgRequest, mac: mac, opts: other}); o.Reply != nil {
		t.Fatal("answered a REQUEST for another server")
	}
	if l, ok := r.alloc.LeaseAt(o.IP); ok && l.State == lease.Offered {
		t.Fatalf("the offer of %v is still held after the client chose another server", o.IP)
	}
}
