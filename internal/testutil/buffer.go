// Package testutil holds helpers shared by tests of several packages. It is
// imported only from _test.go files.
package testutil

import (
	"bytes"
	"strings"
	"sync"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writers: a slog handler
// written from a server's goroutines, exec's stdout/stderr copiers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Lines returns the lines written so far, without the trailing empty one.
func (s *SyncBuffer) Lines() []string {
	out := strings.TrimSuffix(s.String(), "\n")
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

// Count returns how many lines written so far contain sub.
func (s *SyncBuffer) Count(sub string) int {
	n := 0
	for _, line := range s.Lines() {
		if strings.Contains(line, sub) {
			n++
		}
	}
	return n
}
