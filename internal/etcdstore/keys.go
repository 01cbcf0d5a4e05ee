package etcdstore

import (
	"net/netip"
	"strings"
)

// Keys is the key layout under one prefix (config.Store.Prefix). Every pxed
// of a cluster, and `pxed store migrate`, use it.
type Keys struct{ Prefix string }

// Lease is the key of the lease record of ip.
func (k Keys) Lease(ip netip.Addr) string { return k.Prefix + "leases/" + ip.String() }

// Leases is the prefix of every lease record.
func (k Keys) Leases() string { return k.Prefix + "leases/" }

// Block is the key of the block of addresses starting at first; its value
// is the owner's server id, under the owner's etcd lease.
func (k Keys) Block(first netip.Addr) string { return k.Prefix + "blocks/" + first.String() }

// Blocks is the prefix of every block key.
func (k Keys) Blocks() string { return k.Prefix + "blocks/" }

// Server is the key a running server announces itself under (under its
// etcd lease).
func (k Keys) Server(id string) string { return k.Prefix + "servers/" + id }

// Servers is the prefix of the server keys.
func (k Keys) Servers() string { return k.Prefix + "servers/" }

// Inventory is the key of the inventory YAML.
func (k Keys) Inventory() string { return k.Prefix + "inventory" }

// Host is the key of a host's run-time state record (by lower-case name).
func (k Keys) Host(name string) string { return k.Prefix + "hosts/" + strings.ToLower(name) }

// Hosts is the prefix of the host state records.
func (k Keys) Hosts() string { return k.Prefix + "hosts/" }

// APIToken is the key of the API token every pxed of the cluster accepts.
func (k Keys) APIToken() string { return k.Prefix + "api-token" }

// addrAfter returns the address after key's prefix p, if key is p + an
// IPv4 address.
func addrAfter(key []byte, p string) (netip.Addr, bool) {
	s := string(key)
	if !strings.HasPrefix(s, p) {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(s[len(p):])
	if err != nil || !ip.Is4() {
		return netip.Addr{}, false
	}
	return ip, true
}
