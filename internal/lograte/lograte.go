// Package lograte spaces log lines about events a client can cause at will
// (refused requests, dropped datagrams, reclaimed offers): one line per
// period at most, carrying how many events it stands for. A flood must not
// become a flood of log lines.
package lograte

import (
	"sync"
	"time"
)

// Limiter lets one log line through per period and counts the events in
// between. The zero value is ready; the first event always gets its line.
// Safe for concurrent use.
type Limiter struct {
	mu   sync.Mutex
	n    uint64
	next time.Time
}

// Tick counts one event at now. When a line may be logged — none was in
// the period before now — it returns true and the number of events since
// the previous line, this one included.
func (e *Limiter) Tick(now time.Time, period time.Duration) (uint64, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if now.Before(e.next) {
		return 0, false
	}
	n := e.n
	e.n, e.next = 0, now.Add(period)
	return n, true
}
