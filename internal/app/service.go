package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"

	"pxed/internal/api"
	"pxed/internal/config"
	"pxed/internal/events"
	"pxed/internal/inventory"
	"pxed/internal/lease"
	"pxed/internal/lease/bolt"
)

// State files inside the state directory.
const (
	LeaseDBName   = "leases.db"
	HostStateName = "hosts.json"
	APITokenName  = "api-token"
	ControlSocket = "control.sock"
)

// Service is the control API (internal/api) over the app: host states of
// the current inventory, and the running DHCP server's leases.
func (a *App) Service() api.Service { return service{a: a} }

type service struct{ a *App }

func (s service) inv() (*inventory.Inventory, error) {
	inv := s.a.cur.Load().Inventory
	if inv == nil {
		return nil, api.ErrNoInventory
	}
	return inv, nil
}

func (s service) Hosts(context.Context) ([]api.HostView, error) {
	inv, err := s.inv()
	if err != nil {
		return nil, err
	}
	return HostViews(inv, s.a.env.States), nil
}

func (s service) Host(_ context.Context, n string) (api.HostView, error) {
	inv, err := s.inv()
	if err != nil {
		return api.HostView{}, err
	}
	h := inv.Host(n)
	if h == nil {
		return api.HostView{}, fmt.Errorf("%q: %w", n, api.ErrNotFound)
	}
	return HostView(h, s.a.env.States), nil
}

func (s service) SetHostState(_ context.Context, n, state, by string) (api.HostView, error) {
	inv, err := s.inv()
	if err != nil {
		return api.HostView{}, err
	}
	return SetHostState(inv, s.a.env.States, n, state, by)
}

func (s service) Installed(_ context.Context, n, tok, by string) (api.HostView, error) {
	inv, err := s.inv()
	if err != nil {
		return api.HostView{}, err
	}
	h, err := s.a.env.States.Installed(inv, n, tok, by)
	if errors.Is(err, inventory.ErrBadToken) {
		return api.HostView{}, api.ErrBadToken
	}
	if err != nil {
		return api.HostView{}, err
	}
	if ring := s.a.env.Events; ring != nil {
		ev := events.Event{Kind: "installed", Host: h.Name, Detail: "install callback: now boots locally (" + by + ")"}
		if hws := h.HWAddrs(); len(hws) > 0 {
			ev.MAC = hws[0].String()
		}
		if h.Addr().IsValid() {
			ev.IP = h.Addr().String()
		}
		ring.Add(ev)
	}
	return HostView(h, s.a.env.States), nil
}

func (s service) Leases(context.Context) ([]api.LeaseView, error) {
	alloc := s.a.alloc.Load()
	if alloc == nil {
		return nil, api.ErrNoDHCP
	}
	return LeaseViews(alloc.List()), nil
}

// SetHostState switches host n of inv to state, durably.
func SetHostState(inv *inventory.Inventory, states *inventory.States, n, state, by string) (api.HostView, error) {
	st, err := inventory.ParseState(state)
	if err != nil {
		return api.HostView{}, fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	}
	h, err := states.Set(inv, n, st, by)
	if errors.Is(err, inventory.ErrUnknownHost) {
		return api.HostView{}, fmt.Errorf("%v: %w", err, api.ErrNotFound)
	}
	if err != nil {
		return api.HostView{}, err
	}
	return HostView(h, states), nil
}

// HostView is h as the API shows it.
func HostView(h *inventory.Host, states *inventory.States) api.HostView {
	st, rec := states.State(h)
	v := api.HostView{Name: h.Name, Profile: h.Profile, State: string(st), Declared: string(h.State), UUID: h.CanonicalUUID(), MACs: []string{}}
	for _, hw := range h.HWAddrs() {
		v.MACs = append(v.MACs, hw.String())
	}
	if h.Addr().IsValid() {
		v.IP = h.Addr().String()
	}
	if rec != nil && !rec.Changed.IsZero() {
		v.Changed, v.By = &rec.Changed, rec.By
	}
	return v
}

// HostViews are all hosts of inv, in file order.
func HostViews(inv *inventory.Inventory, states *inventory.States) []api.HostView {
	out := []api.HostView{}
	for _, h := range inv.Hosts {
		out = append(out, HostView(h, states))
	}
	return out
}

// LeaseViews are leases as the API shows them.
func LeaseViews(ls []lease.Lease) []api.LeaseView {
	out := make([]api.LeaseView, 0, len(ls))
	for _, l := range ls {
		out = append(out, api.LeaseView{IP: l.IP.String(), MAC: l.MAC.String(), Client: string(l.Client), State: l.State.String(),
			Start: l.Start, Expiry: l.Expiry, Hostname: l.Hostname, UUID: l.UUID})
	}
	return out
}

// OfflineLeases reads the bolt lease database at path, which no server
// holds, read-only.
func OfflineLeases(path string) ([]api.LeaseView, error) {
	st, err := bolt.OpenReadOnly(path)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	ls, err := st.Load(context.Background())
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ls, func(a, b lease.Lease) int { return a.IP.Compare(b.IP) })
	return LeaseViews(ls), nil
}

// OpenStates opens the host-state file of c's state directory.
func OpenStates(c *config.Config, log *slog.Logger) (*inventory.States, error) {
	sf, err := inventory.OpenStateFile(filepath.Join(c.StateDir, HostStateName))
	if err != nil {
		return nil, err
	}
	return inventory.NewStates(sf, log), nil
}
