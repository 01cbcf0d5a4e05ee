// Package clusterstate keeps what every pxed of a cluster must see alike in
// etcd: the inventory (pushed once, validated before it is stored, watched
// by every server), the hosts' run-time states and install tokens (one key
// per host, written with transactions on the key's revision) and the API
// token (created once, by the first server).
//
// Every value read from etcd is checked before use, as a packet would be:
// another pxed, an older one or a hand with etcdctl may have written it.
// The keys are etcdstore.Keys'; docs/architecture.md has the design.
package clusterstate

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"pxed/internal/etcdstore"
	"pxed/internal/inventory"
)

// OpTimeout bounds one request to etcd (a read, a transaction).
const OpTimeout = 10 * time.Second

// maxRecord bounds a host state record's JSON (today's are ~250 bytes).
const maxRecord = 4096

// maxAttempts bounds the retries of an update that lost its comparison to
// another server's change of the same hosts.
const maxAttempts = 16

// nameRe is the host names inventory accepts, in the lower case the keys
// use.
var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// HostStates are the hosts' run-time state records of a cluster, one etcd
// key per host (Keys.Host): an inventory.StateStore. Reads come from a
// local copy, loaded by OpenStates and kept current by Watch; writes are
// transactions on the keys' revisions.
type HostStates struct {
	cli  *clientv3.Client
	keys etcdstore.Keys
	log  *slog.Logger

	mu   sync.RWMutex
	recs map[string]stored // by lower-case host name
	rev  int64             // the store revision the copy is current at
}

// stored is what the copy knows of one host's key.
type stored struct {
	rec   inventory.Record
	valid bool  // rec was read and checked; false: no key, or a bad value
	mod   int64 // the key's ModRevision; 0: no key
	seen  int64 // the revision this is known at
}

// OpenStates reads every host state record of the cluster.
func OpenStates(ctx context.Context, cli *clientv3.Client, keys etcdstore.Keys, log *slog.Logger) (*HostStates, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &HostStates{cli: cli, keys: keys, log: log, recs: map[string]stored{}}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Path is the prefix of the host state keys.
func (s *HostStates) Path() string { return "etcd " + s.keys.Hosts() }

// Get returns the record of a host (by name, any case) as last seen.
func (s *HostStates) Get(name string) (inventory.Record, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.recs[strings.ToLower(name)]
	return st.rec, st.valid
}

// Update changes the records of names in one transaction that compares
// each key's revision with the one f's records were read at; when another
// server changed one of them in between, the keys are read again and f
// runs again (inventory.StateStore).
func (s *HostStates) Update(names []string, f func(cur map[string]inventory.Record) (map[string]inventory.Record, error)) error {
	if len(names) > inventory.MaxUpdate {
		return fmt.Errorf("host states: %d hosts in one update, at most %d", len(names), inventory.MaxUpdate)
	}
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = strings.ToLower(n)
		if !nameRe.MatchString(keys[i]) {
			return fmt.Errorf("host states: %q is not a host name", n)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), OpTimeout)
	defer cancel()
	gets := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		gets[i] = clientv3.OpGet(s.keys.Host(k))
	}
	for attempt := range maxAttempts {
		if attempt > 0 {
			// Lost to another server: let it finish, out of step.
			sleep(ctx, rand.N(min(time.Millisecond<<attempt, 100*time.Millisecond)))
		}
		cur := map[string]inventory.Record{}
		var cmps []clientv3.Cmp
		s.mu.RLock()
		for _, k := range keys {
			st := s.recs[k]
			if st.valid {
				cur[k] = st.rec
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.keys.Host(k)), "=", st.mod))
		}
		s.mu.RUnlock()
		out, err := f(cur)
		if err != nil || len(out) == 0 {
			return err
		}
		var ops []clientv3.Op
		recs := map[string]inventory.Record{} // by lower-case name
		for name, r := range out {
			k := strings.ToLower(name)
			if !slices.Contains(keys, k) {
				return fmt.Errorf("host states: update of %q, which it did not read", name)
			}
			v, err := encodeRecord(r)
			if err != nil {
				return err
			}
			recs[k] = r
			ops = append(ops, clientv3.OpPut(s.keys.Host(k), string(v)))
		}
		// On a failed comparison, the keys as they are now, for the next
		// attempt.
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Else(gets...).Commit()
		if err != nil {
			return fmt.Errorf("host states: %w", err)
		}
		rev := resp.Header.Revision
		s.mu.Lock()
		if resp.Succeeded {
			for k, r := range recs {
				s.put(k, stored{rec: r, valid: true, mod: rev, seen: rev})
			}
			s.mu.Unlock()
			return nil
		}
		for i, r := range resp.Responses {
			if rr := r.GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
				s.put(keys[i], s.decode(rr.Kvs[0], rev))
			} else {
				s.put(keys[i], stored{seen: rev})
			}
		}
		s.mu.Unlock()
	}
	return fmt.Errorf("host states: %d attempts lost to other servers' changes of the same hosts", maxAttempts)
}

// put records st for key k unless the copy already knows a later state.
// s.mu is held.
func (s *HostStates) put(k string, st stored) {
	if old, ok := s.recs[k]; ok && old.seen > st.seen {
		return
	}
	if st.mod == 0 {
		// No key: keep the revision it is known absent at, so that an
		// older read cannot bring a deleted record back.
		st = stored{seen: st.seen}
	}
	s.recs[k] = st
}

// decode checks a key's value; a bad one is logged and reads as no record
// (its revision is kept: a write replaces it).
func (s *HostStates) decode(kv *mvccpb.KeyValue, seen int64) stored {
	st := stored{mod: kv.ModRevision, seen: max(seen, kv.ModRevision)}
	r, err := decodeRecord(kv.Value)
	if err != nil {
		s.log.Error("host states: ignoring a bad record in etcd (the host boots its declared state)", "key", keyText(kv.Key), "revision", kv.ModRevision, "error", err)
		return st
	}
	st.rec, st.valid = r, true
	return st
}

// name is the host name of a key under the hosts prefix ("" when it is
// not one).
func (s *HostStates) name(key []byte) string {
	n, ok := strings.CutPrefix(string(key), s.keys.Hosts())
	if !ok || !nameRe.MatchString(n) {
		return ""
	}
	return n
}

// load reads every record, replacing the copy.
func (s *HostStates) load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.keys.Hosts(), clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("host states: %w", err)
	}
	rev := resp.Header.Revision
	recs := map[string]stored{}
	for _, kv := range resp.Kvs {
		n := s.name(kv.Key)
		if n == "" {
			s.log.Error("host states: ignoring a key that names no host", "key", keyText(kv.Key))
			continue
		}
		recs[n] = s.decode(kv, rev)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, st := range s.recs {
		if st.seen > rev { // written by this server after the read
			recs[k] = st
		}
	}
	s.recs, s.rev = recs, rev
	return nil
}

// Watch keeps the copy current with every server's changes until ctx
// ends: a change made on any pxed is seen here as soon as etcd tells it
// (milliseconds). When the watch breaks (etcd compacted the revision it
// needed, a member went away), every record is read again.
func (s *HostStates) Watch(ctx context.Context) {
	for ctx.Err() == nil {
		s.mu.RLock()
		from := s.rev + 1
		s.mu.RUnlock()
		began := time.Now()
		err := s.watch(ctx, from)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("host states: etcd watch broken; reading every record again", "error", err)
		if time.Since(began) < time.Second {
			sleep(ctx, time.Second) // not in a loop, whatever breaks it
		}
		for ctx.Err() == nil {
			if err := s.load(ctx); err == nil {
				break
			} else {
				s.log.Error("host states: cannot read them from etcd; serving the last ones seen", "error", err)
			}
			sleep(ctx, time.Second)
		}
	}
}

// watch applies the changes from revision from on, until the watch ends.
func (s *HostStates) watch(ctx context.Context, from int64) error {
	return watch(ctx, s.cli, s.keys.Hosts(), from, func(wr clientv3.WatchResponse) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, ev := range wr.Events {
			n := s.name(ev.Kv.Key)
			switch {
			case n == "":
				s.log.Error("host states: ignoring a key that names no host", "key", keyText(ev.Kv.Key))
			case ev.Type == clientv3.EventTypeDelete:
				s.put(n, stored{seen: ev.Kv.ModRevision})
			default:
				s.put(n, s.decode(ev.Kv, ev.Kv.ModRevision))
			}
		}
		s.rev = max(s.rev, wr.Header.Revision)
	}, clientv3.WithPrefix())
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// keyText is a key for a log line, bounded.
func keyText(k []byte) string {
	if len(k) > 200 {
		k = k[:200]
	}
	return fmt.Sprintf("%q", k)
}

// encodeRecord is a record's value in etcd: today's state file entry.
func encodeRecord(r inventory.Record) ([]byte, error) {
	v, err := json.Marshal(r)
	if err == nil && len(v) > maxRecord {
		err = fmt.Errorf("record of %d bytes, at most %d", len(v), maxRecord)
	}
	if err != nil {
		return nil, fmt.Errorf("host states: %w", err)
	}
	return v, nil
}

// decodeRecord reads and checks a record from etcd.
func decodeRecord(v []byte) (inventory.Record, error) {
	var r inventory.Record
	if len(v) > maxRecord {
		return r, fmt.Errorf("%d bytes, at most %d", len(v), maxRecord)
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return r, err
	}
	for what, st := range map[string]inventory.State{"state": r.State, "declared": r.Declared} {
		if st != inventory.Install && st != inventory.Local {
			return r, fmt.Errorf("%s %q is not install or local", what, st)
		}
	}
	if len(r.By) > 256 || strings.ContainsFunc(r.By, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return r, errors.New("by: longer than 256 bytes or holds control characters")
	}
	if r.Token != "" {
		if b, err := hex.DecodeString(r.Token); err != nil || len(b) != 16 {
			return r, errors.New("token is not 32 hex digits")
		}
	}
	return r, nil
}
