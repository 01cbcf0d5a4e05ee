// Package events keeps what happened to the machines pxed boots — DHCP
// answers, files served, install callbacks — in a bounded ring: the
// timeline `pxed events` shows for a host. Old events are overwritten once
// the ring is full, so a flood costs a fixed amount of memory.
package events

import (
	"sync"
	"time"
)

// Event is one thing that happened to a client.
type Event struct {
	Time time.Time `json:"time"`
	// Kind is "dhcp", "tftp", "http" or "installed".
	Kind string `json:"kind"`
	// MAC and IP identify the client, as far as pxed knows them; Host is
	// its inventory or host declaration name ("" unknown).
	MAC  string `json:"mac,omitempty"`
	IP   string `json:"ip,omitempty"`
	Host string `json:"host,omitempty"`
	// Detail says what: "ACK 192.0.2.50", "pxelinux.0 23 KiB ok", …
	Detail string `json:"detail"`
}

// DefaultSize is the number of events a ring keeps.
const DefaultSize = 4096

// Ring is a bounded, concurrency-safe list of the latest events.
type Ring struct {
	mu   sync.Mutex
	buf  []Event
	next int
	full bool
}

// New makes a ring of n events (DefaultSize when n <= 0).
func New(n int) *Ring {
	if n <= 0 {
		n = DefaultSize
	}
	return &Ring{buf: make([]Event, n)}
}

// Add records e, overwriting the oldest event when the ring is full.
func (r *Ring) Add(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	r.mu.Lock()
	r.buf[r.next] = e
	r.next = (r.next + 1) % len(r.buf)
	r.full = r.full || r.next == 0
	r.mu.Unlock()
}

// List returns the events match accepts (nil: all), oldest first, at most
// the limit latest of them (limit <= 0: all).
func (r *Ring) List(match func(Event) bool, limit int) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	n, start := r.next, 0
	if r.full {
		n, start = len(r.buf), r.next
	}
	for i := range n {
		e := r.buf[(start+i)%len(r.buf)]
		if match == nil || match(e) {
			out = append(out, e)
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}
