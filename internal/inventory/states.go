package inventory

import (
	"crypto/rand"
	"crypto/subtle"
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

// ErrBadToken is returned for an install callback whose token is not the
// host's current one: wrong, already used, from an earlier install, or for
// a host not installing.
var ErrBadToken = errors.New("not the host's current install token")

// States are the hosts' run-time boot states (netboot once, then local),
// kept durably in a StateFile, and the per-install callback tokens. States
// do not hold an inventory: every call takes the one being served, so a
// reload never leaves them looking at an old copy.
type States struct {
	file *StateFile
	log  *slog.Logger
	mu   sync.Mutex // serialises changes
}

// NewStates keeps states in file (nil: in memory only, for tests and
// `pxed explain`).
func NewStates(file *StateFile, log *slog.Logger) *States {
	if file == nil {
		file = &StateFile{recs: map[string]Record{}}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &States{file: file, log: log}
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
// says who asked, for the record and the log. Switching to install starts
// a new install with a new callback token; to local ends it (the token
// goes).
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
	return h, s.set(h, st, by)
}

func (s *States) set(h *Host, st State, by string) error {
	old, _ := s.State(h)
	r := Record{State: st, Declared: h.State, Changed: time.Now(), By: by}
	if st == Install {
		r.Token = newToken()
	}
	if err := s.file.Set(h.Name, r); err != nil {
		return err
	}
	s.log.Info("host state changed", "host", h.Name, "mac", h.MACList(), "from", string(old), "to", string(st), "by", by)
	return nil
}

// Token is the callback token of host h's current install ("" when h is
// not installing, or EnsureTokens has not run since it started).
func (s *States) Token(h *Host) string {
	if st, r := s.State(h); st == Install && r != nil {
		return r.Token
	}
	return ""
}

// EnsureTokens gives every host of inv that installs without a token one,
// durably, in one write: hosts declared install in the file, and hosts a
// new declaration put back there. A server calls it before serving inv.
func (s *States) EnsureTokens(inv *Inventory) error {
	if inv == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	recs := map[string]Record{}
	for _, h := range inv.Hosts {
		st, r := s.State(h)
		switch {
		case st != Install || r != nil && r.Token != "":
		case r != nil:
			r.Token = newToken()
			recs[h.Name] = *r
		default:
			recs[h.Name] = Record{State: Install, Declared: h.State, Token: newToken()}
		}
	}
	if len(recs) == 0 {
		return nil
	}
	return s.file.SetAll(recs)
}

// Installed is the install callback of the host of inv given by name or
// MAC with token tok: when tok is its current install's token, the host
// switches to local and the token is spent. Any other case is ErrBadToken,
// unknown hosts included (a token must not tell which hosts exist).
func (s *States) Installed(inv *Inventory, nameOrMAC, tok, by string) (*Host, error) {
	var h *Host
	if inv != nil {
		h = inv.Host(nameOrMAC)
	}
	if h == nil {
		return nil, ErrBadToken
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	want := s.Token(h)
	if want == "" || subtle.ConstantTimeCompare([]byte(want), []byte(tok)) != 1 {
		return nil, ErrBadToken
	}
	return h, s.set(h, Local, by)
}

// newToken is 128 random bits in hex.
func newToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
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
