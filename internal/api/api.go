package api

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Sentinel errors a [Service] returns (wrapped or not) and a [Client]'s
// errors match with errors.Is.
var (
	// ErrNotFound: no such host in the inventory (404).
	ErrNotFound = errors.New("no such host in the inventory")
	// ErrNoInventory: the server runs without an inventory (404).
	ErrNoInventory = errors.New("the running pxed has no inventory")
	// ErrNoDHCP: the server runs with DHCP off, so it has no leases (404).
	ErrNoDHCP = errors.New("the running pxed has DHCP off: no leases")
	// ErrBadRequest: the request cannot be done, such as a state a host
	// cannot take (400).
	ErrBadRequest = errors.New("bad request")
)

// ErrBadToken is a [Service]'s answer to an install callback whose token is
// not the host's current one; the handler answers it 401, like no token.
var ErrBadToken = errors.New("not the host's current install token")

// ErrNoServer is returned (wrapped) by a [Client] when nothing listens at
// its address: the socket file is missing or stale, or the connection is
// refused. A caller of the control socket can then work on the state files
// itself. Other failures (permission denied, timeouts, server errors) are
// not ErrNoServer.
var ErrNoServer = errors.New("no pxed server is listening")

// Service is what the handlers need from the running server. Methods that
// take a host accept its inventory name or one of its MACs.
type Service interface {
	// Hosts lists the inventory hosts; ErrNoInventory without one.
	Hosts(ctx context.Context) ([]HostView, error)
	// Host returns one host; ErrNotFound or ErrNoInventory.
	Host(ctx context.Context, nameOrMAC string) (HostView, error)
	// SetHostState switches a host to "install" or "local", durably,
	// recording who did it, and returns the host as it is now. ErrNotFound,
	// ErrNoInventory, or ErrBadRequest for a state the host cannot take.
	SetHostState(ctx context.Context, nameOrMAC, state, by string) (HostView, error)
	// Installed is the install callback made with the host's own token:
	// when token is the callback token of the host's current install, the
	// host switches to "local" and the token is spent. ErrBadToken for any
	// other token, or an unknown host (no telling which hosts exist).
	Installed(ctx context.Context, nameOrMAC, token, by string) (HostView, error)
	// Leases lists the DHCP leases; ErrNoDHCP with DHCP off.
	Leases(ctx context.Context) ([]LeaseView, error)
	// Events lists the latest boot events, oldest first, of the host
	// named by host (an inventory name, a MAC or an IP; "" all), at most
	// limit (<= 0: all the ring keeps).
	Events(ctx context.Context, host string, limit int) ([]EventView, error)
}

// EventView is one boot event: a DHCP answer, a file served, an install
// callback.
type EventView struct {
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"` // dhcp, tftp, http, installed
	MAC    string    `json:"mac,omitempty"`
	IP     string    `json:"ip,omitempty"`
	Host   string    `json:"host,omitempty"`
	Detail string    `json:"detail"`
}

// HostView is an inventory host as the API and `pxed host list` show it.
type HostView struct {
	Name     string     `json:"name"`
	MACs     []string   `json:"macs"`
	IP       string     `json:"ip,omitempty"`
	UUID     string     `json:"uuid,omitempty"`
	Profile  string     `json:"profile"`
	State    string     `json:"state"`    // what it boots now: install or local
	Declared string     `json:"declared"` // the state the inventory declares
	Changed  *time.Time `json:"changed,omitempty"`
	By       string     `json:"by,omitempty"` // who changed it last
}

// LeaseView is a DHCP lease as the API and `pxed leases` show it.
type LeaseView struct {
	IP       string    `json:"ip"`
	MAC      string    `json:"mac"`
	Client   string    `json:"client"`
	State    string    `json:"state"`
	Start    time.Time `json:"start"`
	Expiry   time.Time `json:"expiry"` // zero: never (BOOTP)
	Hostname string    `json:"hostname,omitempty"`
	UUID     string    `json:"uuid,omitempty"`
}

// errorBody is every error answer.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
}

// Error codes besides the sentinels'.
const (
	codeUnauthorized = "unauthorized"
	codeNoRoute      = "no_route"
	codeMethod       = "method_not_allowed"
	codeTooLarge     = "too_large"
	codeTimeout      = "timeout"
	codeInternal     = "internal"
)

// sentinels maps the Service's errors to statuses and codes, both ways.
var sentinels = []struct {
	err    error
	status int
	code   string
}{
	{ErrNotFound, http.StatusNotFound, "not_found"},
	{ErrNoInventory, http.StatusNotFound, "no_inventory"},
	{ErrNoDHCP, http.StatusNotFound, "no_dhcp"},
	{ErrBadRequest, http.StatusBadRequest, "bad_request"},
}
