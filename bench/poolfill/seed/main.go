// Command seed pre-fills a DHCP pool for bench/poolfill: it binds n
// addresses of a range to n distinct clients and writes the same bindings
// as a pxed lease database (bbolt) and as a Kea memfile lease file (CSV), so
// that both servers start from one and the same utilisation.
//
//	go run ./bench/poolfill/seed -first 198.18.1.0 -last 198.18.255.254 -n 32000 \
//	    -bolt DIR/state/leases.db -kea DIR/kea-leases4.csv
//
// The addresses are spread over the range at random (a fixed seed: the same
// command writes the same bindings), as a pool that has served for a while
// looks; -layout first takes the lowest n instead. Client i has the
// locally administered MAC 02:f1:00:xx:xx:xx (i in the last three bytes), a
// population that perfdhcp's own MACs (00:0c:01:02:03:04 onwards) never
// meet. Every binding starts now and lasts -lifetime.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"time"

	"pxed/internal/lease"
	"pxed/internal/lease/bolt"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func run() error {
	first := flag.String("first", "", "first address of the range")
	last := flag.String("last", "", "last address of the range")
	n := flag.Int("n", 0, "bindings to write (at most the range's size and 2^24)")
	layout := flag.String("layout", "random", "which addresses: random (spread over the range) or first (the lowest n)")
	lifetime := flag.Duration("lifetime", 12*time.Hour, "length of every binding")
	boltPath := flag.String("bolt", "", "write a pxed lease database here (must not exist)")
	keaPath := flag.String("kea", "", "write a Kea memfile lease file here (must not exist)")
	subnetID := flag.Int("subnet-id", 1, "Kea subnet id of the range")
	flag.Parse()
	if flag.NArg() != 0 {
		return errors.New("no arguments expected")
	}
	lo, err := netip.ParseAddr(*first)
	if err != nil || !lo.Is4() {
		return fmt.Errorf("-first %q: not an IPv4 address", *first)
	}
	hi, err := netip.ParseAddr(*last)
	if err != nil || !hi.Is4() || hi.Less(lo) {
		return fmt.Errorf("-last %q: not an IPv4 address at or after -first", *last)
	}
	size := u32(hi) - u32(lo) + 1
	if *n < 0 || uint64(*n) > uint64(size) || *n > 1<<24 {
		return fmt.Errorf("-n %d: must be 0..%d (the range's size)", *n, size)
	}
	if *lifetime <= 0 {
		return errors.New("-lifetime must be positive")
	}
	if *boltPath == "" && *keaPath == "" {
		return errors.New("nothing to write: give -bolt, -kea or both")
	}
	offs, err := pick(size, *n, *layout)
	if err != nil {
		return err
	}
	start := time.Now().Round(0).Truncate(time.Second)
	leases := make([]lease.Lease, len(offs))
	for i, off := range offs {
		mac := net.HardwareAddr{0x02, 0xf1, 0x00, byte(i >> 16), byte(i >> 8), byte(i)}
		leases[i] = lease.Lease{
			IP:     addr(u32(lo) + off),
			Client: lease.Key(nil, mac),
			MAC:    mac,
			State:  lease.Bound,
			Start:  start,
			Expiry: start.Add(*lifetime),
		}
	}
	if *boltPath != "" {
		if err := writeBolt(*boltPath, leases); err != nil {
			return err
		}
	}
	if *keaPath != "" {
		if err := writeKea(*keaPath, leases, *lifetime, *subnetID); err != nil {
			return err
		}
	}
	return nil
}

// pick returns n distinct offsets below size, in increasing order.
func pick(size uint32, n int, layout string) ([]uint32, error) {
	out := make([]uint32, 0, n)
	switch layout {
	case "first":
		for i := range uint32(n) {
			out = append(out, i)
		}
	case "random":
		// Selection sampling: one walk over the range, each offset taken
		// with probability (still needed) / (still left).
		r := rand.New(rand.NewPCG(17, 1))
		need := n
		for off := uint32(0); off < size && need > 0; off++ {
			if r.Uint64N(uint64(size-off)) < uint64(need) {
				out = append(out, off)
				need--
			}
		}
	default:
		return nil, fmt.Errorf("-layout %q: random or first", layout)
	}
	return out, nil
}

// writeBolt stores leases in a new pxed lease database, in batches.
func writeBolt(path string, leases []lease.Lease) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists", path)
	}
	s, err := bolt.Open(path)
	if err != nil {
		return err
	}
	const batch = 4096
	for i := 0; i < len(leases); i += batch {
		if _, err := s.Put(context.Background(), leases[i:min(i+batch, len(leases))]); err != nil {
			_ = s.Close()
			return err
		}
	}
	return s.Close()
}

// writeKea writes leases in Kea 2.x's memfile CSV format for DHCPv4.
func writeKea(path string, leases []lease.Lease, lifetime time.Duration, subnetID int) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context")
	secs := int64(lifetime / time.Second)
	for _, l := range leases {
		fmt.Fprintf(w, "%s,%s,,%d,%d,%d,0,0,,0,\n", l.IP, l.MAC, secs, l.Expiry.Unix(), subnetID)
	}
	return w.Flush()
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addr(u uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
}
