package inventory

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Record is a host's boot state as changed at run time (by the install
// callback or `pxed host`), and the callback token of its current install,
// kept across restarts.
type Record struct {
	State State `json:"state"`
	// Declared is the host's state in the inventory file when the change
	// was made. When the file later declares something else, the operator
	// changed their mind after the fact and the file wins.
	Declared State `json:"declared"`
	// Changed is when State was set (zero: never changed at run time, the
	// record only holds the token of the declared install).
	Changed time.Time `json:"changed"`
	// By says who changed it: "api 192.0.2.10", "pxed host", ...
	By string `json:"by,omitempty"`
	// Token is the install callback's token while State is install: random,
	// new for every install, cleared when the host reports it installed.
	Token string `json:"token,omitempty"`
}

// StateFile keeps Records in one JSON file, rewritten atomically (write,
// fsync, rename, fsync the directory) on every change, so a crash leaves
// either the old file or the new one.
type StateFile struct {
	path string
	mu   sync.Mutex
	recs map[string]Record // by lower-case host name
}

// stateFileVersion guards the format.
const stateFileVersion = 1

type stateDoc struct {
	Version int               `json:"version"`
	Hosts   map[string]Record `json:"hosts"`
}

// OpenStateFile reads path (a missing file is an empty state).
func OpenStateFile(path string) (*StateFile, error) {
	s := &StateFile{path: path, recs: map[string]Record{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("host states: %w", err)
	}
	var doc stateDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("host states %s: %w (move the file away to start with every host in its declared state)", path, err)
	}
	if doc.Version != stateFileVersion {
		return nil, fmt.Errorf("host states %s: version %d, this pxed reads %d", path, doc.Version, stateFileVersion)
	}
	for k, r := range doc.Hosts {
		if _, err := ParseState(string(r.State)); err != nil {
			return nil, fmt.Errorf("host states %s: host %s: %w", path, k, err)
		}
		s.recs[k] = r
	}
	return s, nil
}

// Path is the file's path.
func (s *StateFile) Path() string { return s.path }

// Names returns the (lower-case) names of the hosts with a record, sorted.
func (s *StateFile) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.recs))
}

// Get returns the record of a host (by name, any case).
func (s *StateFile) Get(name string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[strings.ToLower(name)]
	return r, ok
}

// Update changes the records of names in one durable write: all or none
// (StateStore). f runs once, under the file's lock.
func (s *StateFile) Update(names []string, f func(cur map[string]Record) (map[string]Record, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := map[string]Record{}
	for _, n := range names {
		if r, ok := s.recs[strings.ToLower(n)]; ok {
			cur[strings.ToLower(n)] = r
		}
	}
	recs, err := f(cur)
	if err != nil || len(recs) == 0 {
		return err
	}
	type prev struct {
		r   Record
		had bool
	}
	old := map[string]prev{}
	for name, r := range recs {
		key := strings.ToLower(name)
		o, had := s.recs[key]
		old[key] = prev{o, had}
		s.recs[key] = r
	}
	if s.path == "" {
		return nil // in memory only (tests, pxed explain)
	}
	if err := s.write(); err != nil {
		for key, o := range old {
			if o.had {
				s.recs[key] = o.r
			} else {
				delete(s.recs, key)
			}
		}
		return err
	}
	return nil
}

func (s *StateFile) write() error {
	data, err := json.MarshalIndent(stateDoc{Version: stateFileVersion, Hosts: s.recs}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(s.path)
	tmp, err := os.CreateTemp(dir, ".hosts-*.tmp")
	if err != nil {
		return fmt.Errorf("host states: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("host states: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("host states: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("host states: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("host states: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
