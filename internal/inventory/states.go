package inventory

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// ErrUnknownHost is returned for a name or MAC the inventory does not hold.
var ErrUnknownHost = errors.New("no such host in the inventory")

// States are the hosts' run-time boot states (netboot once, then local),
// kept durably in a StateFile, and the per-host callback tokens. States do
// not hold an inventory: every call takes the one being served, so a
// reload never leaves them looking at an old copy.
type States struct {
	file   *StateFile
	secret []byte
	log    *slog.Logger
	mu     sync.Mutex // serialises Set
}

// NewStates keeps states in file (nil: in memory only, for tests and
// `pxed explain`). secret keys the per-host callback tokens (the API
// token); without one no host token is valid.
func NewStates(file *StateFile, secret []byte, log *slog.Logger) *States {
	if file == nil {
		file = &StateFile{recs: map[string]Record{}}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &States{file: file, secret: secret, log: log}
}

// Path is the state file's path ("" in memory).
func (s *States) Path() string { return s.file.Path() }

// State is host h's boot state now, and the run-time record behind it if
// one applies (a record made against another declared state does not).
func (s *States) State(h *Host) (State, *Record) {
	if r, ok := s.file.Get(h.Name); ok && r.Declared == h.State {
		return r.State, &r
	}
	return h.State, nil
}

// Set switches the host of inv given by name or MAC to st, durably. by
// says who asked, for the record and the log.
func (s *States) Set(inv *Inventory, nameOrMAC string, st State, by string) (*Host, error) {
	var h *Host
	if inv != nil {
		h = inv.Host(nameOrMAC)
	}
	if h == nil {
		return nil, fmt.Errorf("%q: %w", nameOrMAC, ErrUnknownHost)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, _ := s.State(h)
	if err := s.file.Set(h.Name, Record{State: st, Declared: h.State, Changed: time.Now(), By: by}); err != nil {
		return nil, err
	}
	s.log.Info("host state changed", "host", h.Name, "mac", h.MACList(), "from", string(old), "to", string(st), "by", by)
	return h, nil
}

// HostToken is the token that lets host name (and only it) report itself
// installed: HMAC-SHA256 of the name under the API secret.
func (s *States) HostToken(name string) string {
	if len(s.secret) == 0 {
		return ""
	}
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte("pxed installed\x00" + strings.ToLower(name)))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// CheckHostToken reports whether tok is host name's callback token.
func (s *States) CheckHostToken(name, tok string) bool {
	want := s.HostToken(name)
	return want != "" && hmac.Equal([]byte(want), []byte(tok))
}

// MACList is the host's MACs joined by commas, for logs.
func (h *Host) MACList() string {
	var s []string
	for _, hw := range h.hw {
		s = append(s, hw.String())
	}
	return strings.Join(s, ",")
}

// HasKickstart reports whether the host's profile has a kickstart.
func (h *Host) HasKickstart() bool { return h.prof != nil && h.prof.ksTmpl != nil }

// Multiboot reports whether the host boots a hypervisor (mboot.c32).
func (h *Host) Multiboot() bool { return h.prof != nil && h.prof.Multiboot != nil }
