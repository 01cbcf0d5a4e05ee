package etcdstore

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"maps"
	"net/netip"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Load balancing: each server announces itself (servers/<id>, under a short
// etcd lease of its own) with the subnets it serves and the relays it
// hears; the servers that share a subnet or a relay split its clients.

// keepAnnounced keeps this server's key in etcd until ctx ends, writing it
// again whenever its lease is lost or the relays it hears change.
func (s *Leases) keepAnnounced(ctx context.Context) {
	for ctx.Err() == nil {
		id, ch, err := s.announce(ctx)
		if err != nil {
			sleep(ctx, time.Second)
			continue
		}
	alive:
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					break alive
				}
			case <-s.relayed:
				if err := s.putAnnouncement(ctx, id); err != nil {
					break alive // written again under a new lease
				}
			}
		}
	}
}

// announceTTL is the life of a server's key after its last keep-alive:
// short, so that the servers sharing a segment take a dead one's clients
// within seconds (Balance), while its blocks stay under the longer TTL.
const announceTTL = 3 * time.Second

// announce writes this server's key under an etcd lease of its own
// (announceTTL) and keeps it alive until ctx ends; the channel closes
// when that lease is lost.
func (s *Leases) announce(ctx context.Context) (clientv3.LeaseID, <-chan *clientv3.LeaseKeepAliveResponse, error) {
	gctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	g, err := s.cli.Grant(gctx, int64(announceTTL/time.Second))
	if err != nil {
		return 0, nil, err
	}
	if err := s.putAnnouncement(ctx, g.ID); err != nil {
		return 0, nil, err
	}
	ch, err := s.cli.KeepAlive(ctx, g.ID)
	return g.ID, ch, err
}

// putAnnouncement writes this server's key, with the relays heard so far,
// under etcd lease id.
func (s *Leases) putAnnouncement(ctx context.Context, id clientv3.LeaseID) error {
	relays := slices.SortedFunc(maps.Keys(*s.relays.Load()), netip.Addr.Compare)
	info, _ := json.Marshal(announcement{ID: s.opt.ID, Since: s.since, Subnets: s.opt.Subnets, Relays: relays})
	pctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	_, err := s.cli.Put(pctx, s.keys.Server(s.opt.ID), string(info), clientv3.WithLease(id))
	return err
}

// maxRelays bounds the relays a server announces: giaddr comes from the
// network, and a flood of forged ones must not grow the announcement.
// Clients of relays beyond it are answered by every server.
const maxRelays = 64

// heardRelay records that relay forwards clients to this server: it will
// be in the next announcement.
func (s *Leases) heardRelay(relay netip.Addr) {
	// Per relayed request: a read of the set, no lock, once it is known.
	if _, ok := (*s.relays.Load())[relay]; ok {
		return
	}
	s.relayMu.Lock()
	defer s.relayMu.Unlock()
	cur := *s.relays.Load()
	if _, ok := cur[relay]; ok || len(cur) >= maxRelays {
		return
	}
	next := maps.Clone(cur)
	next[relay] = struct{}{}
	s.relays.Store(&next)
	select {
	case s.relayed <- struct{}{}:
	default:
	}
}

// announcement is the value of a server's key: who it is, since when, and
// the subnets it serves directly (on its interfaces), for load balancing.
type announcement struct {
	ID      string         `json:"id"`
	Since   time.Time      `json:"since"`
	Subnets []netip.Prefix `json:"subnets,omitempty"`
	// Relays are the relay agents (giaddr) this server has heard from.
	Relays []netip.Addr `json:"relays,omitempty"`
}

// maxAnnouncement bounds a server key's value read back.
const maxAnnouncement = 4 << 10

// peers is what the server keys say: every server's id (sorted) and the
// subnets each serves directly.
type peers struct {
	ids     []string
	subnets map[string][]netip.Prefix
	relays  map[string][]netip.Addr
}

// refreshPeers reads the server keys, at most every second.
func (s *Leases) refreshPeers(ctx context.Context) {
	if time.Since(s.counted) < time.Second {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	resp, err := s.cli.Get(cctx, s.keys.Servers(), clientv3.WithPrefix())
	if err != nil {
		return
	}
	p := &peers{subnets: map[string][]netip.Prefix{}, relays: map[string][]netip.Addr{}}
	for _, kv := range resp.Kvs {
		var a announcement
		if len(kv.Value) > maxAnnouncement || json.Unmarshal(kv.Value, &a) != nil || a.ID == "" || string(kv.Key) != s.keys.Server(a.ID) {
			s.log.Warn("etcd: ignoring a server key that is not a server's announcement", "key", printable(kv.Key))
			continue
		}
		if len(a.Relays) > maxRelays || len(a.Subnets) > maxRelays {
			s.log.Warn("etcd: ignoring a server announcement with too many subnets or relays", "key", printable(kv.Key))
			continue
		}
		p.ids = append(p.ids, a.ID)
		p.subnets[a.ID] = a.Subnets
		p.relays[a.ID] = a.Relays
	}
	slices.Sort(p.ids)
	s.peers.Store(p)
	s.mu.Lock()
	s.servers = len(p.ids)
	s.mu.Unlock()
	s.counted = time.Now()
}

// balanceMaxSecs is how long a client may have been trying before any
// server answers it, whoever's it is (ISC dhcpd's "load balance max
// seconds", 3 by default): a client whose server died is answered by
// another after its first retransmission.
const balanceMaxSecs = 3

// Balance is the allocator's Options.Balance: the servers that announce a
// subnet (or have heard from a relay) split its clients by a hash of their
// hardware address, as ISC dhcpd's failover peers do (RFC 3074), so that
// one DISCOVER draws one OFFER. via is the client's subnet, or its relay's
// address as a /32. Clients trying for balanceMaxSecs or more, and those
// this server alone is known to receive, are always answered.
func (s *Leases) Balance(hw []byte, secs uint16, via netip.Prefix) bool {
	relayed := via.IsValid() && via.IsSingleIP()
	if relayed {
		s.heardRelay(via.Addr())
	}
	p := s.peers.Load()
	if p == nil || !via.IsValid() || secs >= balanceMaxSecs {
		return true
	}
	shares := func(id string) bool {
		if relayed {
			return slices.Contains(p.relays[id], via.Addr())
		}
		return slices.ContainsFunc(p.subnets[id], via.Overlaps)
	}
	mine := -1
	n := 0
	for _, id := range p.ids {
		if !shares(id) {
			continue
		}
		if id == s.opt.ID {
			mine = n
		}
		n++
	}
	if mine < 0 || n < 2 {
		return true
	}
	h := fnv.New32a()
	h.Write(hw)
	return int(h.Sum32()%256)%n == mine
}
