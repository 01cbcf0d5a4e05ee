package api

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// fakeService is an inventory of two hosts (test_pvm has no profile, so it
// cannot install) and optional leases. It records every host name it was
// asked about.
type fakeService struct {
	mu       sync.Mutex
	hosts    map[string]*HostView // nil: no inventory
	leases   []LeaseView          // nil with dhcp false: DHCP off
	dhcp     bool
	by       string
	asked    []string
	breakSet bool // SetHostState fails with an internal error
}

func newFake() *fakeService {
	return &fakeService{
		hosts: map[string]*HostView{
			"test_hvm": {Name: "test_hvm", MACs: []string{"00:16:3e:72:79:e4"}, Profile: "alma9", State: "install", Declared: "install"},
			"test_pvm": {Name: "test_pvm", MACs: []string{"00:16:3e:00:00:02"}, State: "local", Declared: "local"},
		},
		dhcp: true,
		leases: []LeaseView{{IP: "192.0.2.10", MAC: "00:16:3e:72:79:e4", Client: "01:00:16:3e:72:79:e4", State: "bound",
			Start: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Expiry: time.Date(2025, 1, 2, 4, 4, 5, 0, time.UTC), Hostname: "test-hvm"}},
	}
}

func (f *fakeService) lookup(n string) (*HostView, error) {
	f.asked = append(f.asked, n)
	if f.hosts == nil {
		return nil, ErrNoInventory
	}
	if h, ok := f.hosts[n]; ok {
		return h, nil
	}
	for _, h := range f.hosts {
		for _, m := range h.MACs {
			if strings.EqualFold(m, n) {
				return h, nil
			}
		}
	}
	return nil, ErrNotFound
}

func (f *fakeService) Hosts(context.Context) ([]HostView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hosts == nil {
		return nil, ErrNoInventory
	}
	var out []HostView
	for _, n := range slices.Sorted(maps.Keys(f.hosts)) {
		out = append(out, *f.hosts[n])
	}
	return out, nil
}

func (f *fakeService) Host(_ context.Context, n string) (HostView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, err := f.lookup(n)
	if err != nil {
		return HostView{}, err
	}
	return *h, nil
}

func (f *fakeService) SetHostState(_ context.Context, n, state, by string) (HostView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, err := f.lookup(n)
	if err != nil {
		return HostView{}, err
	}
	if f.breakSet {
		return HostView{}, errors.New("writing hosts.json: disk full")
	}
	if state == "install" && h.Profile == "" {
		return HostView{}, fmt.Errorf("%w: host %s has no profile to install", ErrBadRequest, h.Name)
	}
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	h.State, h.Changed, h.By = state, &now, by
	f.by = by
	return *h, nil
}

// Installed takes "host-NAME" as the token of NAME's install, good while
// NAME installs (the real service's tokens also change per install).
func (f *fakeService) Installed(_ context.Context, n, tok, by string) (HostView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, err := f.lookup(n)
	if errors.Is(err, ErrNotFound) {
		return HostView{}, ErrBadToken
	}
	if err != nil {
		return HostView{}, err
	}
	if tok != "host-"+h.Name || h.State != "install" {
		return HostView{}, ErrBadToken
	}
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	h.State, h.Changed, h.By = "local", &now, by
	f.by = by
	return *h, nil
}

func (f *fakeService) Events(_ context.Context, host string, limit int) ([]EventView, error) {
	ev := []EventView{{Kind: "dhcp", MAC: "00:16:3e:72:79:e4", IP: "192.0.2.10", Host: "pvm", Detail: "ack"},
		{Kind: "tftp", IP: "192.0.2.10", Host: "pvm", Detail: "pxelinux.0"}, {Kind: "dhcp", Host: "other", Detail: "offer"}}
	var out []EventView
	for _, e := range ev {
		if host == "" || e.Host == host || e.MAC == host || e.IP == host {
			out = append(out, e)
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

func (f *fakeService) Leases(context.Context) ([]LeaseView, error) {
	if !f.dhcp {
		return nil, ErrNoDHCP
	}
	return f.leases, nil
}

func (f *fakeService) state(n string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hosts[n].State
}

// longest is the longest host name the service was asked about.
func (f *fakeService) longest() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, a := range f.asked {
		n = max(n, len(a))
	}
	return n
}

func (f *fakeService) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.asked)
}

var _ Service = (*fakeService)(nil)
