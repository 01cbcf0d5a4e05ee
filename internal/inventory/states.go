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

// StateStore keeps the Records States read and change: a StateFile on one
// server; etcd's hosts/ keys, shared by a cluster (internal/clusterstate).
type StateStore interface {
	// Get returns the record of a host (by name, any case).
	Get(name string) (Record, bool)
	// Update changes the records of names (at most MaxUpdate) atomically:
	// f gets their current records by lower-case name (a host without
	// one is absent) and returns the records to write, by name. A store
	// shared with other servers calls f again, on fresh records, when one
	// of them changed in between, so no update is lost. An error from f is
	// returned as it is, and nothing is written.
	Update(names []string, f func(cur map[string]Record) (map[string]Record, error)) error
	// Path says where the records are kept: the file, the etcd prefix.
	Path() string
}

// MaxUpdate bounds the names of one StateStore.Update (etcd's transactions
// hold 128 operations by default).
const MaxUpdate = 64

// States are the hosts' run-time boot states (netboot once, then local),
// kept durably in a StateStore, and the per-install callback tokens. States
// do not hold an inventory: every call takes the one being served, so a
// reload never leaves them looking at an old copy.
type States struct {
	store StateStore
	log   *slog.Logger
	mu    sync.Mutex // serialises this server's changes
}

// NewStates keeps states in store (nil: in memory only, for tests and
// `pxed explain`).
func NewStates(store StateStore, log *slog.Logger) *States {
	if store == nil {
		store = &StateFile{recs: map[string]Record{}}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &States{store: store, log: log}
}

// Path says where the states are kept ("" in memory).
func (s *States) Path() string { return s.store.Path() }

// State is host h's boot state now, and the run-time record behind it if
// one applies (a record made against another declared state does not).
func (s *States) State(h *Host) (State, *Record) {
	r, ok := s.store.Get(h.Name)
	return current(h, r, ok)
}

// current is host h's state given its stored record r (ok: there is one).
func current(h *Host, r Record, ok bool) (State, *Record) {
	if ok && r.Declared == h.State {
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
	return h, s.set(h, st, by, nil)
}

// set switches h to st if check (when given) accepts its current state,
// read from the store in the same update.
func (s *States) set(h *Host, st State, by string, check func(State, *Record) error) error {
	key := strings.ToLower(h.Name)
	var old State
	err := s.store.Update([]string{key}, func(cur map[string]Record) (map[string]Record, error) {
		r, ok := cur[key]
		var rec *Record
		old, rec = current(h, r, ok)
		if check != nil {
			if err := check(old, rec); err != nil {
				return nil, err
			}
		}
		r = Record{State: st, Declared: h.State, Changed: time.Now(), By: by}
		if st == Install {
			r.Token = newToken()
		}
		return map[string]Record{key: r}, nil
	})
	if err != nil {
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
// durably: hosts declared install in the file, and hosts a new
// declaration put back there. A server calls it before serving inv. In a
// shared store, a host another server gave a token meanwhile keeps that
// one.
func (s *States) EnsureTokens(inv *Inventory) error {
	if inv == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var need []*Host
	for _, h := range inv.Hosts {
		if st, r := s.State(h); st == Install && (r == nil || r.Token == "") {
			need = append(need, h)
		}
	}
	for len(need) > 0 {
		batch := need[:min(len(need), MaxUpdate)]
		need = need[len(batch):]
		names := make([]string, len(batch))
		for i, h := range batch {
			names[i] = strings.ToLower(h.Name)
		}
		err := s.store.Update(names, func(cur map[string]Record) (map[string]Record, error) {
			recs := map[string]Record{}
			for i, h := range batch {
				r, ok := cur[names[i]]
				st, rec := current(h, r, ok)
				switch {
				case st != Install || rec != nil && rec.Token != "":
				case rec != nil:
					rec.Token = newToken()
					recs[names[i]] = *rec
				default:
					recs[names[i]] = Record{State: Install, Declared: h.State, Token: newToken()}
				}
			}
			return recs, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Installed is the install callback of the host of inv given by name or
// MAC with token tok: when tok is its current install's token, the host
// switches to local and the token is spent. Any other case is ErrBadToken,
// unknown hosts included (a token must not tell which hosts exist). The
// token is checked against the stored record in the same update that
// spends it, so of two servers given one token only one accepts it.
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
	err := s.set(h, Local, by, func(st State, r *Record) error {
		if st != Install || r == nil || r.Token == "" || subtle.ConstantTimeCompare([]byte(r.Token), []byte(tok)) != 1 {
			return ErrBadToken
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return h, nil
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
