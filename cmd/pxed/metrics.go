package main

import (
	"net/netip"

	"pxed/internal/dhcp"
	"pxed/internal/lease"
	"pxed/internal/metrics"
)

// poolUsage reports, for the metrics, each subnet's dynamic pool size and
// how many of its addresses are bound, from the allocator's leases.
func poolUsage(plan *dhcp.Plan, alloc *lease.Allocator) func() []metrics.PoolUsage {
	return func() []metrics.PoolUsage {
		subnets := plan.Subnets()
		usage := make([]metrics.PoolUsage, len(subnets))
		var ranges []lease.Range
		var of []int // the subnet of each range
		for i, sn := range subnets {
			usage[i].Subnet = sn.String()
		}
		for _, p := range plan.Pools() {
			for _, r := range p.Ranges {
				for i, sn := range subnets {
					if sn.Contains(r.Start) {
						usage[i].Size += rangeSize(r)
						ranges, of = append(ranges, r), append(of, i)
						break
					}
				}
			}
		}
		for _, l := range alloc.List() {
			if l.State != lease.Bound {
				continue
			}
			for j, r := range ranges {
				if inRange(l.IP, r) {
					usage[of[j]].Leased++
					break
				}
			}
		}
		return usage
	}
}

func rangeSize(r lease.Range) int {
	s, e := r.Start.As4(), r.End.As4()
	a := int(s[0])<<24 | int(s[1])<<16 | int(s[2])<<8 | int(s[3])
	b := int(e[0])<<24 | int(e[1])<<16 | int(e[2])<<8 | int(e[3])
	return max(b-a+1, 0)
}

func inRange(ip netip.Addr, r lease.Range) bool {
	return r.Start.Compare(ip) <= 0 && ip.Compare(r.End) <= 0
}
