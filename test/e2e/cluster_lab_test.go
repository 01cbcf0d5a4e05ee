package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pxed/internal/dhcp"
	"pxed/internal/dhcpnet"
	"pxed/internal/testutil"
	"pxed/internal/testutil/etcdtest"
)

// The cluster lab: several pxed on one DHCP segment, sharing an etcd
// cluster over a second network that a test can cut per server.
//
//	            hub namespace: bridges brdhcp and brstore
//	brdhcp  192.0.2.0/24:    server i dhcp0 192.0.2.(1+i); clients dhcp0 192.0.2.250
//	                         (+ 198.18.0.2/15, the relay address perfdhcp sends from)
//	brstore 198.51.100.0/24: server i store0 198.51.100.(21+i);
//	                         store store0 198.51.100.11-13 (the etcd members)
const (
	clusterIface      = "dhcp0"  // DHCP interface in the server and clients namespaces
	clusterStoreIface = "store0" // store interface in the server and store namespaces
	// clusterRelayIP is the clients namespace's address in 198.18.0.0/15:
	// perfdhcp (always a relay agent) sends from it as giaddr, so the
	// servers serve it from the 198.18.0.0/15 subnet of clusterConf, which
	// holds thousands of addresses, and answer it there by unicast.
	clusterRelayIP = "198.18.0.2"
	// clusterMaxServers keeps 192.0.2.(1+i) and 198.51.100.(21+i) in their
	// blocks.
	clusterMaxServers = 8
	// partitionTable is the nftables table partition adds and heal deletes.
	partitionTable = "pxed_partition"
)

// clusterEtcdIPs are the etcd members' addresses in the store namespace.
var clusterEtcdIPs = []string{"198.51.100.11", "198.51.100.12", "198.51.100.13"}

// clusterConf is a dhcpd.conf every server of the cluster lab can share:
// the DHCP segment's own subnet (230 addresses, for clients on the
// segment), and perfdhcp's relayed subnet with 10240 addresses.
const clusterConf = `authoritative;
default-lease-time 3600;
max-lease-time 7200;
subnet 192.0.2.0 netmask 255.255.255.0 {
  range 192.0.2.20 192.0.2.249;
}
subnet 198.18.0.0 netmask 255.254.0.0 {
  range 198.18.1.0 198.18.40.255;
}
`

// clusterNet is the cluster lab's topology (see the drawing above).
type clusterNet struct {
	t                 testing.TB
	hub, clients, sto string // namespace names
	// servers[i] is server i as a lab: srv is its namespace and sif its
	// DHCP interface, cli and cif the clients namespace and interface. So
	// servers[i].startPxed(conf, stateDir, extra...) runs pxed i on
	// 192.0.2.(1+i) (add the store flags to extra), servers[i].in runs a
	// command in its namespace, and any servers[i].perfdhcpIn or
	// servers[i].try(servers[i].cli, ...) runs a client on the segment.
	//
	// perfdhcp runs two ways here. `perfdhcp -l dhcp0` (no server)
	// broadcasts as clients on the segment would: every server sees every
	// DISCOVER, and the fastest OFFER wins (the cluster case; addresses
	// from 192.0.2.0/24). `perfdhcp -l clusterRelayIP <serverIP(i)>`
	// relays to server i alone by unicast (addresses from 198.18.0.0/15).
	servers []*lab
	dir     string
}

// newClusterNet builds the topology with n server namespaces, each with
// its DHCP and store addresses, and deletes every namespace (and so every
// interface and bridge) in Cleanup. It skips, or fails under PXED_E2E=1,
// without root. Nothing runs in it yet: start pxed with
// servers[i].startPxed and etcd with startEtcd.
func newClusterNet(t testing.TB, n int) *clusterNet {
	t.Helper()
	need(t)
	if n < 1 || n > clusterMaxServers {
		t.Fatalf("cluster lab: %d servers, want 1 to %d", n, clusterMaxServers)
	}
	id := fmt.Sprintf("%d-%d", os.Getpid()%100000, labSeq.Add(1))
	cn := &clusterNet{t: t, hub: "pxh-" + id, clients: "pxc-" + id, sto: "pxe-" + id, dir: t.TempDir()}
	all := []string{cn.hub, cn.clients, cn.sto}
	for i := range n {
		l := &lab{t: t, srv: fmt.Sprintf("pxs-%s-%d", id, i), cli: cn.clients, sif: clusterIface, cif: clusterIface, dir: t.TempDir()}
		cn.servers = append(cn.servers, l)
		all = append(all, l.srv)
	}
	l := cn.servers[0]
	t.Cleanup(func() {
		for _, ns := range all {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	for _, ns := range all {
		l.ip("netns", "add", ns)
		l.in(ns, "ip", "link", "set", "lo", "up")
	}
	for _, br := range []string{"brdhcp", "brstore"} {
		l.in(cn.hub, "ip", "link", "add", br, "type", "bridge")
		l.in(cn.hub, "ip", "link", "set", br, "up")
	}
	// port joins ns to bridge br of the hub through a veth: ifname in ns
	// (up, with addrs), port in the hub.
	port := func(ns, ifname, port, br string, addrs ...string) {
		l.ip("link", "add", ifname, "netns", ns, "type", "veth", "peer", "name", port, "netns", cn.hub)
		l.in(cn.hub, "ip", "link", "set", port, "master", br, "up")
		for _, a := range addrs {
			l.in(ns, "ip", "addr", "add", a, "dev", ifname)
		}
		l.in(ns, "ip", "link", "set", ifname, "up")
	}
	port(cn.clients, clusterIface, "c0", "brdhcp", "192.0.2.250/24", clusterRelayIP+"/15")
	var etcdAddrs []string
	for _, ip := range clusterEtcdIPs {
		etcdAddrs = append(etcdAddrs, ip+"/24")
	}
	port(cn.sto, clusterStoreIface, "e0", "brstore", etcdAddrs...)
	for i, s := range cn.servers {
		port(s.srv, clusterIface, fmt.Sprintf("d%d", i), "brdhcp", cn.serverIP(i)+"/24")
		port(s.srv, clusterStoreIface, fmt.Sprintf("s%d", i), "brstore", fmt.Sprintf("198.51.100.%d/24", 21+i))
		// The relay's subnet is on the segment: answers to perfdhcp go
		// straight to it.
		l.in(s.srv, "ip", "route", "add", "198.18.0.0/15", "dev", clusterIface)
	}
	return cn
}

// serverIP is server i's address on the DHCP segment.
func (cn *clusterNet) serverIP(i int) string { return fmt.Sprintf("192.0.2.%d", 1+i) }

// startEtcd runs a 3-member etcd cluster in the store namespace at
// clusterEtcdIPs (o's Members, Netns and IPs are set here; its other
// fields pass through) and returns it; its Endpoints are what the servers
// dial, and its Client reaches it from the test. Stopped in Cleanup.
func (cn *clusterNet) startEtcd(o etcdtest.Options) *etcdtest.Cluster {
	cn.t.Helper()
	o.Members, o.Netns, o.IPs = len(clusterEtcdIPs), cn.sto, clusterEtcdIPs
	return etcdtest.Start(cn.t, o)
}

// partition cuts server i off the store network: nftables rules in its
// namespace drop every packet to or from 198.51.100.0/24, as a failed link
// would (no reset: connections hang until their timeouts). The DHCP
// segment is untouched. It needs nft (the nftables package).
func (cn *clusterNet) partition(i int) {
	cn.t.Helper()
	need(cn.t, "nft")
	rules := fmt.Sprintf(`table inet %s {
	chain in {
		type filter hook input priority 0; policy accept;
		ip saddr 198.51.100.0/24 drop
	}
	chain out {
		type filter hook output priority 0; policy accept;
		ip daddr 198.51.100.0/24 drop
	}
}
`, partitionTable)
	f := filepath.Join(cn.dir, fmt.Sprintf("partition-%d.nft", i))
	if err := os.WriteFile(f, []byte(rules), 0o644); err != nil {
		cn.t.Fatal(err)
	}
	cn.servers[i].in(cn.servers[i].srv, "nft", "-f", f)
}

// heal removes partition's rules from server i's namespace; it fails the
// test if server i was not partitioned.
func (cn *clusterNet) heal(i int) {
	cn.t.Helper()
	cn.servers[i].in(cn.servers[i].srv, "nft", "delete", "table", "inet", partitionTable)
}

// dhcpSeen is one DHCP message that starts or ends a binding, as the
// capture saw it on the clients' interface.
type dhcpSeen struct {
	At   time.Time // when the kernel received the frame
	Kind string    // "ACK" (a server's), "RELEASE" or "DECLINE" (a client's)
	// IP is the ACK's yiaddr, the RELEASE's ciaddr, the DECLINE's
	// option 50.
	IP netip.Addr
	// MAC is the client's chaddr (net.HardwareAddr form). Clients are
	// told apart by chaddr alone, not by a client identifier.
	MAC string
	// Lease is the ACK's option 51 (infiniteLease for 0xffffffff); 0 for
	// the others.
	Lease time.Duration
	// Server is the ACK's server identifier (option 54), or its IP source
	// when it has none.
	Server netip.Addr
}

// infiniteLease stands for option 51's "infinite" (RFC 2131 §3.3).
const infiniteLease = 100 * 365 * 24 * time.Hour

// parseSeen reads a captured Ethernet frame. ok is false for anything but
// a well-formed DHCPACK with an address and a lease time (from port 67), or
// a DHCPRELEASE or DHCPDECLINE (to port 67); malformed is true for a
// frame to or from port 67 that the project's DHCP parser refuses.
func parseSeen(frame []byte, at time.Time) (s dhcpSeen, ok, malformed bool) {
	// A UDP checksum is not checked: frames sent over veth carry only the
	// pseudo-header sum (see ParseEthernetUDP).
	_, src, dst, payload, ok := dhcpnet.ParseEthernetUDP(frame, false)
	if !ok || (src.Port() != 67 && dst.Port() != 67) {
		return s, false, false
	}
	p, err := dhcp.Parse(payload)
	if err != nil {
		return s, false, true
	}
	s = dhcpSeen{At: at, MAC: p.MAC().String()}
	switch {
	case p.Op == 2 && p.Type() == 5:
		lt := p.Options[51]
		if len(lt) != 4 || !p.YIAddr.IsValid() || p.YIAddr.IsUnspecified() {
			return s, false, false // an ACK to an INFORM binds nothing
		}
		s.Kind, s.IP = "ACK", p.YIAddr
		if v := binary.BigEndian.Uint32(lt); v == 0xffffffff {
			s.Lease = infiniteLease
		} else {
			s.Lease = time.Duration(v) * time.Second
		}
		if s.Server = p.Addr(54); !s.Server.IsValid() {
			s.Server = src.Addr()
		}
	case p.Op == 1 && p.Type() == 7:
		s.Kind, s.IP = "RELEASE", p.CIAddr
	case p.Op == 1 && p.Type() == 4:
		s.Kind, s.IP = "DECLINE", p.Addr(50)
		if !s.IP.IsValid() {
			return s, false, true
		}
	default:
		return s, false, false
	}
	return s, true, false
}

// ackCapture records every dhcpSeen crossing the clients namespace's
// interface, where every ACK to a client of the cluster lab arrives: the
// servers answer perfdhcp at the relay address and other clients at their
// MAC or by broadcast, and the bridge floods unicast to a MAC it has not
// learnt (perfdhcp's made-up MACs) to every port.
//
// It reads an AF_PACKET socket itself rather than running tcpdump: the
// frames go straight to the project's own parsers (dhcpnet, dhcp) with the
// kernel's receive timestamps, there is no pcap file to decode, and the
// kernel's drop counter for the socket (PACKET_STATISTICS, what tcpdump
// reports as "dropped by kernel") is read directly.
type ackCapture struct {
	t     testing.TB
	fd    int
	stopc chan struct{}
	done  chan struct{}
	once  sync.Once
	// Written by the reader until done is closed.
	seen      []dhcpSeen
	malformed int
	err       error
	drops     int
}

// Bounds on one capture.
const (
	maxCaptured    = 1 << 20
	maxCaptureTime = 15 * time.Minute
	// captureDrain is how long stop keeps reading frames already queued.
	captureDrain = 2 * time.Second
)

// capture starts an ackCapture on the clients' interface; it is stopped
// in Cleanup if the test has not.
func (cn *clusterNet) capture() *ackCapture {
	cn.t.Helper()
	c := &ackCapture{t: cn.t, fd: -1, stopc: make(chan struct{}), done: make(chan struct{})}
	var err error
	if nerr := testutil.InNetns(cn.clients, func() { c.fd, err = openCapture(clusterIface) }); nerr != nil {
		err = nerr
	}
	if err != nil {
		cn.t.Fatalf("capture on %s in %s: %v", clusterIface, cn.clients, err)
	}
	go c.read()
	cn.t.Cleanup(func() { c.stop() })
	return c
}

// openCapture opens a packet socket on ifname (in the calling thread's
// namespace) for IPv4 frames, in both directions, with kernel timestamps,
// a 100 ms receive timeout and a large buffer.
func openCapture(ifname string) (int, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return -1, err
	}
	// Protocol 0 until bound: no frame of another interface is queued.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	ethIP := int(htons(unix.ETH_P_IP))
	errs := []error{
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20),
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1),
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000}),
		unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC}),
		unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(ethIP), Ifindex: ifi.Index}),
	}
	if err := errors.Join(errs...); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// read runs until stop (then drains what is queued, for at most
// captureDrain), maxCaptureTime, or maxCaptured records.
func (c *ackCapture) read() {
	defer close(c.done)
	defer unix.Close(c.fd)
	buf := make([]byte, 4096)
	oob := make([]byte, 256)
	deadline := time.Now().Add(maxCaptureTime)
	var drainUntil time.Time
	for {
		if drainUntil.IsZero() {
			select {
			case <-c.stopc:
				drainUntil = time.Now().Add(captureDrain)
			default:
			}
		}
		now := time.Now()
		if !drainUntil.IsZero() && now.After(drainUntil) {
			break
		}
		if now.After(deadline) {
			c.err = fmt.Errorf("capture still running after %s", maxCaptureTime)
			break
		}
		n, oobn, flags, _, err := unix.Recvmsg(c.fd, buf, oob, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			if !drainUntil.IsZero() {
				break // nothing left queued
			}
			continue
		}
		if err != nil {
			c.err = err
			break
		}
		if flags&unix.MSG_TRUNC != 0 {
			continue // longer than any DHCP frame
		}
		s, ok, bad := parseSeen(buf[:n], rxTime(oob[:oobn]))
		if bad {
			c.malformed++
		}
		if !ok {
			continue
		}
		if len(c.seen) == maxCaptured {
			c.err = fmt.Errorf("more than %d DHCP messages captured", maxCaptured)
			break
		}
		c.seen = append(c.seen, s)
	}
	if st, err := unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
		c.drops = int(st.Drops)
	} else if c.err == nil {
		c.err = err
	}
}

// rxTime is the kernel's receive timestamp in a control message
// (SO_TIMESTAMPNS), or now if there is none.
func rxTime(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Now()
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS {
			var ts unix.Timespec
			if binary.Read(bytes.NewReader(m.Data), binary.NativeEndian, &ts) == nil {
				return time.Unix(ts.Unix())
			}
		}
	}
	return time.Now()
}

// stop ends the capture after reading what is already queued and returns
// every record in arrival order and the frames the kernel dropped because
// the socket's buffer was full (they may have been ACKs). It fails the test
// if the capture broke or saw DHCP frames the parser refused. Later calls
// return the same.
func (c *ackCapture) stop() (seen []dhcpSeen, drops int) {
	c.t.Helper()
	c.once.Do(func() {
		close(c.stopc)
		<-c.done
		if c.err != nil {
			c.t.Errorf("capture: %v", c.err)
		}
		if c.malformed > 0 {
			c.t.Errorf("capture: %d DHCP frames to or from port 67 did not parse", c.malformed)
		}
	})
	return c.seen, c.drops
}

// ackBinding is the last binding the capture saw for an address.
type ackBinding struct {
	IP     netip.Addr
	MAC    string
	Expiry time.Time // the ACK's arrival plus its lease time
}

// ackSlack is how much two leases of an address may seem to overlap
// without doubleBindings reporting it: the capture dates an ACK on its
// arrival, after the server computed the lease's end, so a server reusing
// an address the moment it expires looks a little late.
const ackSlack = time.Second

// doubleBindings checks that no address was ACKed to two different clients
// while both leases were live. A lease is live from its ACK's arrival for
// the ACK's lease time, until the same client RELEASEs or DECLINEs the
// address; an ACK of the same address to the same client renews it. An
// overlap shorter than ackSlack is not reported. seen need not be sorted.
//
// It returns a line per overlap found (empty: none) and, sorted by
// address, each address's last ACKed binding that was not released or
// declined after it: what the lease store should hold at the end.
func doubleBindings(seen []dhcpSeen) (overlaps []string, final []ackBinding) {
	type live struct {
		ackBinding
		at     time.Time
		server netip.Addr
	}
	byTime := slices.Clone(seen)
	slices.SortStableFunc(byTime, func(a, b dhcpSeen) int { return a.At.Compare(b.At) })
	cur := map[netip.Addr]live{}
	for _, s := range byTime {
		prev, had := cur[s.IP]
		switch s.Kind {
		case "ACK":
			if had && prev.MAC != s.MAC && s.At.Before(prev.Expiry.Add(-ackSlack)) {
				overlaps = append(overlaps, fmt.Sprintf("%s ACKed to %s by %s at %s while %s's lease from %s's ACK at %s ran until %s",
					s.IP, s.MAC, s.Server, s.At.Format(time.StampMicro), prev.MAC, prev.server, prev.at.Format(time.StampMicro), prev.Expiry.Format(time.StampMicro)))
			}
			cur[s.IP] = live{ackBinding{s.IP, s.MAC, s.At.Add(s.Lease)}, s.At, s.Server}
		case "RELEASE", "DECLINE":
			if had && prev.MAC == s.MAC {
				delete(cur, s.IP)
			}
		}
	}
	for _, l := range cur {
		final = append(final, l.ackBinding)
	}
	slices.SortFunc(final, func(a, b ackBinding) int { return a.IP.Compare(b.IP) })
	return overlaps, final
}

// countACKs is the number of ACKs among seen.
func countACKs(seen []dhcpSeen) int {
	n := 0
	for _, s := range seen {
		if s.Kind == "ACK" {
			n++
		}
	}
	return n
}

// TestE2EClusterCaptureOneServer runs the cluster lab's tools against one
// pxed on its default bolt store: perfdhcp makes 3000 relayed exchanges
// (2000 clients, so some are renewals of a client's address), the capture
// sees every ACK perfdhcp received (or as many fewer as the socket
// dropped), none of them binds an address twice, and the store holds what
// the ACKs said.
func TestE2EClusterCaptureOneServer(t *testing.T) {
	need(t, "perfdhcp")
	cn := newClusterNet(t, 1)
	s := cn.servers[0]
	state := t.TempDir()
	s.startPxed(clusterConf, state, "--log-level", "warn")
	capture := cn.capture()
	out, err := s.try(cn.clients, 120*time.Second, "perfdhcp", "-4", "-l", clusterRelayIP,
		"-r", "500", "-n", "3000", "-R", "2000", "-W", "2000000", cn.serverIP(0))
	seen, drops := capture.stop()
	perf := perfdhcpCounts(out)["REQUEST-ACK"]
	acks := countACKs(seen)
	overlaps, final := doubleBindings(seen)
	t.Logf("perfdhcp: %d REQUESTs sent, %d ACKs received (%v); capture: %d ACKs, %d frames dropped, %d addresses bound", perf[0], perf[1], err, acks, drops, len(final))
	if perf[1] < 2000 {
		t.Fatalf("perfdhcp received %d ACKs: not the load this test is about\n%s", perf[1], out)
	}
	// Every ACK perfdhcp counted crossed the interface, and no more ACKs
	// than REQUESTs were sent.
	if acks+drops < perf[1] || acks > perf[0] {
		t.Errorf("captured %d ACKs (%d frames dropped); perfdhcp sent %d REQUESTs and received %d ACKs\n%s", acks, drops, perf[0], perf[1], out)
	}
	for _, o := range overlaps {
		t.Error(o)
	}
	store := s.leases(state)
	for _, b := range final {
		lv, ok := store[b.IP.String()]
		if !ok || lv.MAC != b.MAC || lv.State != "bound" {
			t.Errorf("%s was last ACKed to %s, the store has %+v", b.IP, b.MAC, lv)
			continue
		}
		// The server's clock and the capture's are one; the expiry differs
		// by the ACK's transit, and a store keeping another expiry than the
		// ACK's would be off by its lease time.
		if d := lv.Expiry.Sub(b.Expiry).Abs(); d > time.Minute {
			t.Errorf("%s: the store's lease ends %s, the ACK's at %s", b.IP, lv.Expiry, b.Expiry)
		}
	}
	if len(final) == 0 {
		t.Fatal("no binding captured")
	}
}

// TestE2EClusterCaptureTwoBoltServers is the failure cluster mode exists
// to prevent, seen on the wire: two pxed, each on its own bolt store,
// serve one pool of 50 addresses to 100 broadcasting clients. Once more
// clients hold an ACK than the pool has addresses, some address is bound
// to two of them, and the checker must say which.
func TestE2EClusterCaptureTwoBoltServers(t *testing.T) {
	need(t, "perfdhcp")
	cn := newClusterNet(t, 2)
	const pool = 50
	conf := strings.Replace(clusterConf, "range 192.0.2.20 192.0.2.249;", "range 192.0.2.100 192.0.2.149;", 1)
	for _, s := range cn.servers {
		s.startPxed(conf, t.TempDir(), "--log-level", "warn")
	}
	capture := cn.capture()
	out, _ := cn.servers[0].try(cn.clients, 60*time.Second, "perfdhcp", "-4", "-l", clusterIface,
		"-r", "100", "-n", "100", "-R", "100", "-W", "2000000")
	seen, _ := capture.stop()
	macs := map[string]bool{}
	for _, s := range seen {
		if s.Kind == "ACK" {
			macs[s.MAC] = true
		}
	}
	overlaps, _ := doubleBindings(seen)
	t.Logf("%d clients ACKed from a %d-address pool; %d overlaps, the first: %q", len(macs), pool, len(overlaps), overlaps[:min(1, len(overlaps))])
	if len(macs) <= pool {
		t.Fatalf("only %d clients ACKed: no more than the pool, so no overlap is forced\n%s", len(macs), out)
	}
	// Every 3600 s lease is live to the end: each client beyond the pool's
	// size shares an address with another.
	if len(overlaps) < len(macs)-pool {
		t.Errorf("%d clients on %d addresses, but %d overlaps reported: %q", len(macs), pool, len(overlaps), overlaps)
	}
}

// TestE2EClusterPartition checks the store network and partition: each
// server reaches the etcd members, loses them (and only them) when
// partitioned, and reaches them again when healed.
func TestE2EClusterPartition(t *testing.T) {
	need(t, "nft")
	cn := newClusterNet(t, 2)
	etcd := cn.startEtcd(etcdtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := etcd.Client(t).Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	// A listener on the DHCP segment, in the clients namespace.
	var ln net.Listener
	if err := testutil.InNetns(cn.clients, func() { ln, _ = net.Listen("tcp", "192.0.2.250:0") }); err != nil || ln == nil {
		t.Fatalf("listen in %s: %v", cn.clients, err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dial := func(i int, addr string) error {
		var err error
		if nerr := testutil.InNetns(cn.servers[i].srv, func() {
			var c net.Conn
			if c, err = net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
			}
		}); nerr != nil {
			t.Fatal(nerr)
		}
		return err
	}
	check := func(step string, want map[int]bool) {
		t.Helper()
		for i, reach := range want {
			for _, ep := range append(etcd.Endpoints(), ln.Addr().String()) {
				dhcpSide := ep == ln.Addr().String()
				if err := dial(i, ep); (err == nil) != (reach || dhcpSide) {
					t.Errorf("%s: server %d dialling %s: %v", step, i, ep, err)
				}
			}
		}
	}
	check("before", map[int]bool{0: true, 1: true})
	cn.partition(1)
	check("server 1 partitioned", map[int]bool{0: true, 1: false})
	cn.heal(1)
	check("healed", map[int]bool{0: true, 1: true})
}

// replyFrame is a server's reply of type typ giving ip to mac with a lease
// time, as an Ethernet frame to the relay.
func replyFrame(t *testing.T, typ byte, ip, server string, mac net.HardwareAddr, lease uint32) []byte {
	t.Helper()
	p := doraPacket(typ, 1, mac, []byte{51, 4, byte(lease >> 24), byte(lease >> 16), byte(lease >> 8), byte(lease)}, append([]byte{54, 4}, net.ParseIP(server).To4()...))
	p[0] = 2
	copy(p[16:20], net.ParseIP(ip).To4())
	return frameTo67(t, server, p)
}

func frameTo67(t *testing.T, src string, payload []byte) []byte {
	t.Helper()
	f, err := dhcpnet.AppendEthernetUDP(nil, net.HardwareAddr{2, 0, 0x5e, 0, 0x53, 1}, net.HardwareAddr{2, 0, 0x5e, 0, 0x53, 2},
		netip.MustParseAddr(src), netip.MustParseAddr(clusterRelayIP), 67, 67, 1, payload)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestParseSeen reads the frames the capture keeps and refuses the rest.
func TestParseSeen(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0x5e, 0, 0x53, 7}
	at := time.Unix(1000, 0)
	s, ok, bad := parseSeen(replyFrame(t, 5, "198.18.1.9", "192.0.2.1", mac, 600), at)
	want := dhcpSeen{At: at, Kind: "ACK", IP: netip.MustParseAddr("198.18.1.9"), MAC: mac.String(), Lease: 600 * time.Second, Server: netip.MustParseAddr("192.0.2.1")}
	if !ok || bad || s != want {
		t.Fatalf("ACK: %+v ok=%v malformed=%v, want %+v", s, ok, bad, want)
	}
	if s, ok, _ := parseSeen(replyFrame(t, 5, "198.18.1.9", "192.0.2.1", mac, 0xffffffff), at); !ok || s.Lease != infiniteLease {
		t.Fatalf("infinite ACK: %+v ok=%v", s, ok)
	}
	release := doraPacket(7, 2, mac)
	copy(release[12:16], net.ParseIP("198.18.1.9").To4())
	if s, ok, _ := parseSeen(frameTo67(t, clusterRelayIP, release), at); !ok || s.Kind != "RELEASE" || s.IP.String() != "198.18.1.9" || s.MAC != mac.String() {
		t.Fatalf("RELEASE: %+v ok=%v", s, ok)
	}
	if _, ok, bad := parseSeen(replyFrame(t, 2, "198.18.1.9", "192.0.2.1", mac, 600), at); ok || bad {
		t.Fatalf("OFFER: ok=%v malformed=%v, want neither", ok, bad)
	}
	truncated := replyFrame(t, 5, "198.18.1.9", "192.0.2.1", mac, 600)
	truncated = truncated[:14+28+200] // IP and UDP lengths no longer add up
	if _, ok, _ := parseSeen(truncated, at); ok {
		t.Fatal("truncated frame accepted")
	}
	short := frameTo67(t, "192.0.2.1", make([]byte, 100)) // shorter than a BOOTP header
	if _, ok, bad := parseSeen(short, at); ok || !bad {
		t.Fatalf("100-byte DHCP payload: ok=%v malformed=%v, want malformed", ok, bad)
	}
}

// TestDoubleBindings feeds the checker made-up captures: it must report an
// address ACKed to a second client inside the first's lease, and nothing
// for a renewal, a reuse after expiry or after a RELEASE.
func TestDoubleBindings(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	ack := func(sec int, addr, mac string, lease int) dhcpSeen {
		return dhcpSeen{At: t0.Add(time.Duration(sec) * time.Second), Kind: "ACK", IP: ip(addr), MAC: mac, Lease: time.Duration(lease) * time.Second, Server: ip("192.0.2.1")}
	}
	release := func(sec int, addr, mac string) dhcpSeen {
		return dhcpSeen{At: t0.Add(time.Duration(sec) * time.Second), Kind: "RELEASE", IP: ip(addr), MAC: mac}
	}
	seen := []dhcpSeen{
		// .1: b gets a's address half-way through a's lease (listed out
		// of order: the checker sorts).
		ack(30, "198.18.1.1", "b", 60),
		ack(0, "198.18.1.1", "a", 60),
		// .2: a renews, then c gets it after a's renewed lease ended.
		ack(0, "198.18.1.2", "a", 60),
		ack(30, "198.18.1.2", "a", 60),
		ack(91, "198.18.1.2", "c", 60),
		// .3: a releases it, then b gets it.
		ack(0, "198.18.1.3", "a", 60),
		release(10, "198.18.1.3", "a"),
		ack(20, "198.18.1.3", "b", 60),
		// .4: released by a client that did not hold it: a's lease runs on.
		ack(0, "198.18.1.4", "a", 60),
		release(10, "198.18.1.4", "b"),
		ack(20, "198.18.1.4", "c", 60),
		// .5: released, nothing after.
		ack(0, "198.18.1.5", "a", 60),
		release(5, "198.18.1.5", "a"),
	}
	overlaps, final := doubleBindings(seen)
	if len(overlaps) != 2 {
		t.Fatalf("overlaps: %q, want .1 (b inside a's lease) and .4 (c inside a's)", overlaps)
	}
	for _, want := range []string{"198.18.1.1 ACKed to b", "198.18.1.4 ACKed to c"} {
		if !slices.ContainsFunc(overlaps, func(o string) bool { return strings.HasPrefix(o, want) }) {
			t.Errorf("overlaps %q: none starts %q", overlaps, want)
		}
	}
	wantFinal := []ackBinding{
		{ip("198.18.1.1"), "b", t0.Add(90 * time.Second)},
		{ip("198.18.1.2"), "c", t0.Add(151 * time.Second)},
		{ip("198.18.1.3"), "b", t0.Add(80 * time.Second)},
		{ip("198.18.1.4"), "c", t0.Add(80 * time.Second)},
	}
	if !slices.Equal(final, wantFinal) {
		t.Errorf("final bindings:\n%v\nwant\n%v", final, wantFinal)
	}
	// Within ackSlack of the end of a lease is not an overlap; beyond is.
	for _, c := range []struct {
		at   time.Duration
		want int
	}{{60*time.Second - ackSlack/2, 0}, {60*time.Second - 2*ackSlack, 1}} {
		late := ack(0, "198.18.1.6", "d", 0)
		late.At = t0.Add(c.at)
		if o, _ := doubleBindings([]dhcpSeen{ack(0, "198.18.1.6", "a", 60), late}); len(o) != c.want {
			t.Errorf("second client %v after a 60 s lease began: %d overlaps, want %d", c.at, len(o), c.want)
		}
	}
}
