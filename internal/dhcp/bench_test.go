package dhcp

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"pxed/internal/config"
	"pxed/internal/config/isc"
	"pxed/internal/lease"
	"pxed/internal/lease/leasetest"
)

// nullConn discards replies.
type nullConn struct{}

func (nullConn) ReadFrom([]byte) (int, netip.AddrPort, netip.Addr, error) {
	return 0, netip.AddrPort{}, netip.Addr{}, net.ErrClosed
}
func (nullConn) SendTo([]byte, netip.AddrPort) error { return nil }
func (nullConn) SendL2([]byte, net.HardwareAddr, netip.Addr, netip.Addr, uint16, uint16) error {
	return nil
}
func (nullConn) Close() error { return nil }

// BenchmarkExchange is the server's own cost of one DISCOVER/OFFER +
// REQUEST/ACK (relayed, as perfdhcp sends them), leases in memory: what is
// left when the network and the disk are taken away.
func BenchmarkExchange(b *testing.B) {
	benchExchange(b, &config.Network{
		Authoritative: true,
		Subnets: []config.Subnet{{
			Network: "198.18.0.0/16",
			Params: config.Params{NextServer: "198.18.0.1", Filename: ptr("pxelinux.0"),
				Options: map[string]string{"routers": "198.18.0.1", "domain-name-servers": "198.18.0.1"}},
			Pools: []config.Pool{{Ranges: []config.Range{{Start: "198.18.1.0", End: "198.18.255.254"}}}},
		}},
	}, nil)
}

// BenchmarkExchangeClasses is BenchmarkExchange on a dhcpd.conf that routes
// clients with two classes, an if/elsif/else on option 93 and a pool
// permit, as PXE sites write it: the cost of evaluating them per request.
func BenchmarkExchangeClasses(b *testing.B) {
	n, _, err := isc.Parse("bench.conf", []byte(`authoritative;
option arch code 93 = unsigned integer 16;
class "pxeclients" { match if substring(option vendor-class-identifier, 0, 9) = "PXEClient"; next-server 198.18.0.1; }
class "ipxe" { match if exists user-class and option user-class = "iPXE"; filename "http://198.18.0.1/boot.ipxe"; }
subnet 198.18.0.0 netmask 255.254.0.0 {
  option routers 198.18.0.1;
  option domain-name-servers 198.18.0.1;
  pool { range 198.18.1.0 198.18.255.254; allow members of "pxeclients"; }
  if option arch = 00:07 { filename "ipxe.efi"; } elsif option arch = 00:09 { filename "ipxe.efi"; } else { filename "undionly.kpxe"; }
}
`), nil)
	if err != nil {
		b.Fatal(err)
	}
	benchExchange(b, n, map[uint8][]byte{optVendorClass: []byte("PXEClient:Arch:00007:UNDI:003016"), optClientArch: {0, 7}})
}

// benchExchange runs DISCOVER/OFFER + REQUEST/ACK on n's first subnet;
// extra are options every client sends.
func benchExchange(b *testing.B, n *config.Network, extra map[uint8][]byte) {
	plan, _, err := Compile(n)
	if err != nil {
		b.Fatal(err)
	}
	alloc, err := lease.NewAllocator(context.Background(), leasetest.New(), lease.Options{Pools: plan.Pools(), CallerCommits: true})
	if err != nil {
		b.Fatal(err)
	}
	defer alloc.Close()
	srv := &Server{Plan: plan, Leases: alloc}
	port := &Port{Conn: nullConn{}, Name: "veth0", Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/16")}, MTU: 1500}
	src := netip.MustParseAddrPort("198.18.0.2:67")
	dst := netip.MustParseAddr("198.18.0.1")
	prl := []byte{1, 3, 6, 15, 28, 12, 42}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		i := i % 30000 // perfdhcp -R 30000: clients come back
		mac := net.HardwareAddr{0, 0x0c, 1, 2, byte(i >> 8), byte(i)}.String()
		opts := map[uint8][]byte{optParamRequest: prl}
		for c, v := range extra {
			opts[c] = v
		}
		d := msg{t: msgDiscover, mac: mac, giaddr: "198.18.0.2", opts: opts}.bytes()
		srv.Handle(context.Background(), port, d, src, dst)
		ip, _ := alloc.Offer(lease.Request{Client: lease.Key(nil, mustMAC(mac)), Pools: plan.Pools()})
		ropts := map[uint8][]byte{optParamRequest: prl, optServerID: ip4("198.18.0.1"), optRequestedIP: ip.AsSlice()}
		for c, v := range extra {
			ropts[c] = v
		}
		r := msg{t: msgRequest, mac: mac, giaddr: "198.18.0.2", opts: ropts}.bytes()
		srv.Handle(context.Background(), port, r, src, dst)
		if i%64 == 0 {
			alloc.Flush()
		}
	}
}

func mustMAC(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
