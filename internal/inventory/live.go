package inventory

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pxed/internal/bootfs"
	"pxed/internal/pxelinux"
)

// ErrUnknownHost is returned for a name or MAC the inventory does not hold.
var ErrUnknownHost = errors.New("no such host in the inventory")

// Options configure a Live inventory.
type Options struct {
	// HTTPPort is pxed's HTTP port: a client that came over TFTP is told
	// http://<address it reached>:<HTTPPort>. 0: HTTP is off.
	HTTPPort int
	// Server, when set ("boot.example.net:8080"), is the HTTP server named
	// in generated files whatever address the client used.
	Server string
	// LeaseMAC finds the client holding a dynamic lease on an address, so
	// a config named by hex IP can be generated for a host without a fixed
	// address. nil: only fixed addresses are known.
	LeaseMAC func(netip.Addr) (net.HardwareAddr, bool)
	// Secret keys the per-host callback tokens (the API token).
	Secret []byte
	Logger *slog.Logger
}

// Live is the running inventory: the current Inventory (swapped whole on
// reload), the hosts' durable states, and the generated boot files.
type Live struct {
	cur      atomic.Pointer[loaded]
	httpPort atomic.Int32
	leaseMAC atomic.Pointer[func(netip.Addr) (net.HardwareAddr, bool)]
	states   *StateFile
	opts     Options
	mu       sync.Mutex // serialises SetState
}

type loaded struct {
	inv *Inventory
	at  time.Time
}

// NewLive starts serving inv. states may be nil (states then live in
// memory only, for tests and `pxed explain`).
func NewLive(inv *Inventory, states *StateFile, opts Options) *Live {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Live{states: states, opts: opts}
	if l.states == nil {
		l.states = &StateFile{recs: map[string]Record{}}
	}
	if opts.LeaseMAC != nil {
		l.leaseMAC.Store(&opts.LeaseMAC)
	}
	l.httpPort.Store(int32(opts.HTTPPort))
	l.Swap(inv)
	return l
}

// SetHTTPPort changes Options.HTTPPort (when the port is known only once
// the HTTP server is bound, as with port 0).
func (l *Live) SetHTTPPort(p int) { l.httpPort.Store(int32(p)) }

// SetLeaseMAC sets Options.LeaseMAC after the fact (the lease database
// opens after the inventory).
func (l *Live) SetLeaseMAC(f func(netip.Addr) (net.HardwareAddr, bool)) { l.leaseMAC.Store(&f) }

// Inventory is the inventory being served.
func (l *Live) Inventory() *Inventory { return l.cur.Load().inv }

// Swap serves inv from now on.
func (l *Live) Swap(inv *Inventory) {
	l.cur.Store(&loaded{inv: inv, at: time.Now().Truncate(time.Second)})
}

// State is host h's boot state now, and the run-time record behind it if
// one applies.
func (l *Live) State(h *Host) (State, *Record) {
	if r, ok := l.states.Get(h.Name); ok && r.Declared == h.State {
		return r.State, &r
	}
	return h.State, nil
}

// SetState switches a host (by name or MAC) to st, durably. by says who
// asked, for the record and the log.
func (l *Live) SetState(nameOrMAC string, st State, by string) (*Host, error) {
	h := l.Inventory().Host(nameOrMAC)
	if h == nil {
		return nil, fmt.Errorf("%q: %w", nameOrMAC, ErrUnknownHost)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old, _ := l.State(h)
	if err := l.states.Set(h.Name, Record{State: st, Declared: h.State, Changed: time.Now(), By: by}); err != nil {
		return nil, err
	}
	l.opts.Logger.Info("host state changed", "host", h.Name, "mac", macList(h), "from", string(old), "to", string(st), "by", by)
	return h, nil
}

func macList(h *Host) string {
	var s []string
	for _, hw := range h.hw {
		s = append(s, hw.String())
	}
	return strings.Join(s, ",")
}

// HostToken is the token that lets host name (and only it) report itself
// installed: HMAC-SHA256 of the name under the API secret.
func (l *Live) HostToken(name string) string {
	if len(l.opts.Secret) == 0 {
		return ""
	}
	m := hmac.New(sha256.New, l.opts.Secret)
	m.Write([]byte("pxed installed\x00" + strings.ToLower(name)))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// CheckHostToken reports whether tok is host name's callback token.
func (l *Live) CheckHostToken(name, tok string) bool {
	want := l.HostToken(name)
	return want != "" && hmac.Equal([]byte(want), []byte(tok))
}

// Env is the rendering environment for client c and host h.
func (l *Live) Env(c bootfs.Client, h *Host) Env {
	env := Env{Server: l.opts.Server}
	if env.Server == "" {
		switch {
		case c.Host != "":
			env.Server = c.Host
		case c.Local.IsValid() && l.httpPort.Load() > 0:
			env.Server = netip.AddrPortFrom(c.Local.Unmap(), uint16(l.httpPort.Load())).String()
		}
	}
	if h != nil {
		env.InstalledToken = l.HostToken(h.Name)
	}
	return env
}

// Owns reports whether name is one the generator may answer.
func (l *Live) Owns(name string) bool {
	return strings.HasPrefix(name, "pxelinux.cfg/") || strings.HasPrefix(name, "ipxe/") ||
		strings.HasPrefix(name, "ks/") || name == "boot.ipxe"
}

// Generated file kinds.
const (
	KindPXELinux  = "pxelinux"
	KindIPXE      = "ipxe"
	KindKickstart = "kickstart"
)

// Lookup says which host a generated name is for, as client c asks for
// it, and what kind of file it is. h is nil when no host matches (and for
// boot.ipxe, which is the same for everyone).
//
// PXELINUX names: pxelinux.cfg/<uuid> and /01-<mac> name a host outright;
// the 8-digit hex IP names the host with that fixed address or the one
// holding its lease. The shorter hex prefixes and "default" are answered
// only for the client asking: PXELINUX asks for them when the longer names
// failed, and a prefix is shared by many addresses.
func (l *Live) Lookup(c bootfs.Client, name string) (h *Host, kind string) {
	inv := l.Inventory()
	switch {
	case strings.HasPrefix(name, "pxelinux.cfg/"):
		x := strings.TrimPrefix(name, "pxelinux.cfg/")
		switch {
		case len(x) == 36 && strings.Count(x, "-") == 4:
			if x == strings.ToLower(x) {
				h = inv.ByUUID(x)
			}
		case strings.HasPrefix(x, "01-") && len(x) == 20:
			if hw, err := ParseMAC(x[3:]); err == nil && x == pxelinux.MACName(hw) {
				h = inv.ByMAC(hw)
			}
		case len(x) == 8 && isUpperHex(x):
			u, _ := strconv.ParseUint(x, 16, 32)
			h = l.hostAt(inv, netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)}))
		case (len(x) < 8 && isUpperHex(x)) || x == "default":
			if c.Addr.IsValid() {
				if ch := l.hostAt(inv, c.Addr.Unmap()); ch != nil && (x == "default" || strings.HasPrefix(pxelinux.HexIP(c.Addr), x)) {
					h = ch
				}
			}
		}
		if h != nil {
			return h, KindPXELinux
		}
	case strings.HasPrefix(name, "ipxe/"):
		x := strings.TrimSuffix(strings.TrimPrefix(name, "ipxe/"), ".ipxe")
		if hw, err := ParseMAC(x); err == nil {
			return inv.ByMAC(hw), KindIPXE
		}
	case name == "boot.ipxe":
		return nil, KindIPXE
	case strings.HasPrefix(name, "ks/"):
		if h = inv.Host(strings.TrimPrefix(name, "ks/")); h != nil {
			return h, KindKickstart
		}
	}
	return nil, ""
}

func (l *Live) hostAt(inv *Inventory, a netip.Addr) *Host {
	if h := inv.ByIP(a); h != nil {
		return h
	}
	if f := l.leaseMAC.Load(); f != nil {
		if hw, ok := (*f)(a); ok {
			return inv.ByMAC(hw)
		}
	}
	return nil
}

// Generate implements bootfs.Generator.
func (l *Live) Generate(c bootfs.Client, name string) ([]byte, time.Time, bool) {
	if !l.Owns(name) {
		return nil, time.Time{}, false
	}
	cur := l.cur.Load()
	h, kind := l.Lookup(c, name)
	mod := cur.at
	if kind == "" {
		return nil, time.Time{}, false
	}
	var st State
	if h != nil {
		var rec *Record
		st, rec = l.State(h)
		if rec != nil && rec.Changed.After(mod) {
			mod = rec.Changed.Truncate(time.Second)
		}
	}
	var data []byte
	var err error
	switch kind {
	case KindPXELinux:
		data, err = h.PXELinux(st, l.Env(c, h))
	case KindIPXE:
		switch {
		case name == "boot.ipxe":
			// Chain by MAC, so one DHCP boot file serves every host.
			data = []byte("#!ipxe\n# generated by pxed: fetch this machine's own script\nchain --autofree /ipxe/${mac:hexhyp}\n")
		case h == nil:
			// Unknown machines fall through to their next boot device
			// instead of hanging on an error.
			data = []byte("#!ipxe\n# generated by pxed\necho pxed: ${mac} is not in the inventory; add it to boot from the network\nsleep 3\nexit 1\n")
		default:
			data, err = h.IPXE(st, l.Env(c, h))
		}
	case KindKickstart:
		var ok bool
		data, ok, err = h.Kickstart(l.Env(c, h))
		if !ok {
			return nil, time.Time{}, false
		}
	}
	if err != nil {
		l.opts.Logger.Error("generating boot file failed", "name", name, "host", h.Name, "mac", macList(h), "error", err)
		return nil, time.Time{}, false
	}
	attrs := []any{"name", name, "client", c.Addr.String()}
	if h != nil {
		attrs = append(attrs, "host", h.Name, "mac", macList(h), "state", string(st))
	}
	l.opts.Logger.Debug("generated boot file", attrs...)
	return data, mod, true
}

func isUpperHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Names are the PXELINUX config names generated for h regardless of who
// asks (UUID, each MAC, fixed IP), in PXELINUX's search order.
func (h *Host) Names() []string {
	var out []string
	if h.uuid != "" {
		out = append(out, "pxelinux.cfg/"+h.uuid)
	}
	for _, hw := range h.hw {
		out = append(out, "pxelinux.cfg/"+pxelinux.MACName(hw))
	}
	if h.addr.IsValid() {
		out = append(out, "pxelinux.cfg/"+pxelinux.HexIP(h.addr))
	}
	return out
}
