// Package record is the binary form of one lease record, shared by the
// stores (bolt's file, etcd's values).
package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"pxed/internal/lease"
)

// Record encoding, version 1:
//
//	byte 0      record version (1)
//	byte 1      state (lease.State)
//	bytes 2-9   revision, uint64 big-endian
//	varint      start, Unix nanoseconds (0: zero time)
//	varint      expiry, Unix nanoseconds (0: zero time, an infinite lease)
//	4 × (uvarint length, bytes): client key, MAC, hostname, UUID
//
// Nothing may follow. The key is the 4-byte IPv4 address.
const (
	recordVersion = 1
	// RevOffset is where the revision starts in a record.
	RevOffset = 2
	// MaxField bounds each variable-length field.
	MaxField = 1 << 16
)

// Append appends l's record to b.
func Append(b []byte, l lease.Lease) []byte {
	b = append(b, recordVersion, byte(l.State))
	b = binary.BigEndian.AppendUint64(b, l.Rev)
	b = binary.AppendVarint(b, nanos(l.Start))
	b = binary.AppendVarint(b, nanos(l.Expiry))
	for _, f := range [...][]byte{[]byte(l.Client), l.MAC, []byte(l.Hostname), []byte(l.UUID)} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Decode decodes the record v stored under the 4-byte address key k;
// errors name the key.
func Decode(k, v []byte) (lease.Lease, error) {
	l, err := decodeRecord(k, v)
	if err != nil {
		if len(k) == 4 {
			return lease.Lease{}, fmt.Errorf("lease record %v (key %x): %w", netip.AddrFrom4([4]byte(k)), k, err)
		}
		return lease.Lease{}, fmt.Errorf("lease record with key %x: %w", k, err)
	}
	return l, nil
}

func decodeRecord(k, v []byte) (lease.Lease, error) {
	var l lease.Lease
	if len(k) != 4 {
		return l, errors.New("key is not a 4-byte IPv4 address")
	}
	l.IP = netip.AddrFrom4([4]byte(k))
	if len(v) < RevOffset+8 {
		return l, fmt.Errorf("record too short (%d bytes)", len(v))
	}
	if v[0] != recordVersion {
		return l, fmt.Errorf("record version %d, this pxed reads version %d", v[0], recordVersion)
	}
	l.State = lease.State(v[1])
	if !l.State.Persistent() {
		return l, fmt.Errorf("bad state %d", v[1])
	}
	l.Rev = binary.BigEndian.Uint64(v[RevOffset:])
	p := v[RevOffset+8:]
	var times [2]int64
	for i := range times {
		n, w := binary.Varint(p)
		if w <= 0 {
			return l, errors.New("bad time field")
		}
		times[i], p = n, p[w:]
	}
	l.Start, l.Expiry = fromNanos(times[0]), fromNanos(times[1])
	var fields [4][]byte
	for i := range fields {
		n, w := binary.Uvarint(p)
		if w <= 0 || n > MaxField || n > uint64(len(p)-w) {
			return l, fmt.Errorf("bad length of field %d", i)
		}
		fields[i], p = p[w:w+int(n)], p[w+int(n):]
	}
	if len(p) != 0 {
		return l, fmt.Errorf("%d unexpected trailing bytes", len(p))
	}
	l.Client = lease.ClientKey(fields[0])
	if len(fields[1]) > 0 {
		l.MAC = net.HardwareAddr(append([]byte(nil), fields[1]...))
	}
	l.Hostname = string(fields[2])
	l.UUID = string(fields[3])
	return l, nil
}
