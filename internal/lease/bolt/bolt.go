// Package bolt stores leases in an embedded bbolt file under the server's
// state directory. It implements lease.Store.
//
// Layout: bucket "leases" maps a 4-byte IPv4 address to the lease record
// (encoding in codec.go); bucket "meta" holds "schema" (the layout version,
// 4 bytes big-endian) and "rev" (the last revision given out, 8 bytes
// big-endian). Every Put is one write transaction, fsynced before it
// returns, and gives all its records the same new revision.
//
// Only one process may open the file for writing: a second Open fails after
// a short wait with an error wrapping ErrLocked.
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"

	"pxed/internal/lease"
	"pxed/internal/lease/record"
)

// SchemaVersion is the layout version this package writes and reads.
const SchemaVersion = 1

// DefaultLockTimeout is how long Open waits for another process to release
// the file.
const DefaultLockTimeout = time.Second

var (
	// ErrLocked: another process has the database open.
	ErrLocked = errors.New("lease database is locked by another process (is pxed serve already running with this state dir?)")
	// ErrReadOnly: Put on a store opened with OpenReadOnly.
	ErrReadOnly = errors.New("lease database is open read-only")
)

var (
	bucketLeases = []byte("leases")
	bucketMeta   = []byte("meta")
	keySchema    = []byte("schema")
	keyRev       = []byte("rev")
)

// Store is a lease.Store in a bbolt file. Put must not be called
// concurrently with itself (the Allocator's committer is its only caller);
// Load may be.
type Store struct {
	db       *bbolt.DB
	path     string
	readOnly bool
}

var _ lease.Store = (*Store)(nil)

// Option changes how Open and OpenReadOnly open the file.
type Option func(*options)

type options struct {
	lockTimeout time.Duration
	mode        os.FileMode
}

// LockTimeout sets how long to wait for another process to release the
// file (default DefaultLockTimeout; it must be positive).
func LockTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.lockTimeout = d
		}
	}
}

// FileMode sets the permissions of a new file (default 0600).
func FileMode(m os.FileMode) Option {
	return func(o *options) { o.mode = m }
}

// Open opens (creating if needed) the lease database at path for reading and
// writing. The directory must exist.
func Open(path string, opts ...Option) (*Store, error) {
	return open(path, false, opts)
}

// OpenReadOnly opens an existing lease database for reading, as `pxed
// leases` does when the server is not running (while it runs, the file is
// locked and OpenReadOnly fails with ErrLocked). Put returns ErrReadOnly.
func OpenReadOnly(path string, opts ...Option) (*Store, error) {
	return open(path, true, opts)
}

func open(path string, readOnly bool, opts []Option) (*Store, error) {
	o := options{lockTimeout: DefaultLockTimeout, mode: 0o600}
	for _, f := range opts {
		f(&o)
	}
	if readOnly {
		// bbolt would report a missing file less clearly.
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("open lease database: %w", err)
		}
	}
	db, err := bbolt.Open(path, o.mode, &bbolt.Options{
		Timeout:        o.lockTimeout,
		ReadOnly:       readOnly,
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, bberrors.ErrTimeout) {
			return nil, fmt.Errorf("open %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open lease database %s: %w", path, err)
	}
	s := &Store{db: db, path: path, readOnly: readOnly}
	if err := s.init(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("lease database %s: %w", path, err)
	}
	return s, nil
}

// init checks the schema version, creating the buckets in a new file.
func (s *Store) init() error {
	check := func(tx *bbolt.Tx) (fresh bool, err error) {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if tx.Bucket(bucketLeases) != nil {
				return false, errors.New("bucket meta is missing")
			}
			return true, nil
		}
		v := meta.Get(keySchema)
		if len(v) != 4 {
			return false, fmt.Errorf("meta key schema: bad value %x", v)
		}
		if n := binary.BigEndian.Uint32(v); n != SchemaVersion {
			return false, fmt.Errorf("schema version %d, this pxed reads version %d (written by a newer pxed?)", n, SchemaVersion)
		}
		if v := meta.Get(keyRev); v != nil && len(v) != 8 {
			return false, fmt.Errorf("meta key rev: bad value %x", v)
		}
		return false, nil
	}
	if s.readOnly {
		return s.db.View(func(tx *bbolt.Tx) error {
			_, err := check(tx)
			return err
		})
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		fresh, err := check(tx)
		if err != nil || !fresh {
			return err
		}
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketLeases); err != nil {
			return err
		}
		return meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion))
	})
}

// Path returns the file's path.
func (s *Store) Path() string { return s.path }

// Load returns every stored lease. A record it cannot decode fails the load
// with an error naming its key: data is never dropped silently.
func (s *Store) Load(ctx context.Context) ([]lease.Lease, error) {
	var out []lease.Lease
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketLeases)
		if b == nil {
			return nil
		}
		out = make([]lease.Lease, 0, b.Stats().KeyN)
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(out)%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			l, err := record.Decode(k, v)
			if err != nil {
				return err
			}
			out = append(out, l)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load leases from %s: %w", s.path, err)
	}
	return out, nil
}

// Put writes batch in one fsynced transaction, giving every record the same
// new revision. Revisions are not checked: this process is the only writer.
func (s *Store) Put(ctx context.Context, batch []lease.Lease) ([]lease.Lease, error) {
	if s.readOnly {
		return nil, ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(batch) == 0 {
		return nil, nil
	}
	// Encode first, into one arena (bbolt needs keys and values to stay
	// valid until the commit), and write in key order.
	type kv struct{ k, v []byte }
	recs := make([]kv, len(batch))
	arena := make([]byte, 0, len(batch)*96)
	for i, l := range batch {
		if !l.IP.Unmap().Is4() {
			return nil, fmt.Errorf("put lease for %v: not an IPv4 address", l.IP)
		}
		if !l.State.Persistent() {
			return nil, fmt.Errorf("put lease for %v: state %v cannot be stored", l.IP, l.State)
		}
		if max(len(l.Client), len(l.MAC), len(l.Hostname), len(l.UUID)) > record.MaxField {
			return nil, fmt.Errorf("put lease for %v: a field is longer than %d bytes", l.IP, record.MaxField)
		}
		k := l.IP.Unmap().As4()
		start := len(arena)
		arena = append(arena, k[:]...)
		arena = record.Append(arena, l)
		recs[i] = kv{k: arena[start : start+4 : start+4], v: arena[start+4 : len(arena) : len(arena)]}
	}
	// The arena may have grown: slices taken before point to old arrays,
	// which stay valid and unchanged.
	order := make([]int, len(recs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int { return bytes.Compare(recs[i].k, recs[j].k) })

	var rev uint64
	err := s.db.Update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		b := tx.Bucket(bucketLeases)
		if v := meta.Get(keyRev); v != nil {
			rev = binary.BigEndian.Uint64(v)
		}
		rev++
		for _, i := range order {
			r := recs[i]
			binary.BigEndian.PutUint64(r.v[record.RevOffset:], rev)
			if err := b.Put(r.k, r.v); err != nil {
				return fmt.Errorf("put %v: %w", batch[i].IP, err)
			}
		}
		return meta.Put(keyRev, binary.BigEndian.AppendUint64(nil, rev))
	})
	if err != nil {
		return nil, fmt.Errorf("write %d leases to %s: %w", len(batch), s.path, err)
	}
	out := make([]lease.Lease, len(batch))
	for i, l := range batch {
		l.Rev = rev
		out[i] = l
	}
	return out, nil
}

// Close closes the file.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close %s: %w", s.path, err)
	}
	return nil
}
