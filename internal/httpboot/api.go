package httpboot

import (
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
)

// Hosts is what the API needs from the inventory.
type Hosts interface {
	// Resolve returns the inventory name of a host given by name or MAC.
	Resolve(nameOrMAC string) (name string, ok bool)
	// SetState switches a host to "install" or "local", durably.
	SetState(name, state, by string) error
	// CheckHostToken reports whether tok is the host's own callback token
	// (good for reporting that host installed, and nothing else).
	CheckHostToken(name, tok string) bool
	// List and Get return JSON-ready views of the hosts.
	List() any
	Get(name string) any
}

// API is pxed's HTTP API under /api/v1/. Every call needs the API token
// (Authorization: Bearer TOKEN); the install callback also accepts the
// host's own token, which kickstarts carry (?token=…).
//
//	GET  /api/v1/hosts                        the hosts and their boot states
//	GET  /api/v1/hosts/{host}                 one host (name or MAC)
//	POST /api/v1/hosts/{host}/installed       the host installed: boot it locally from now on
//	POST /api/v1/hosts/{host}/install         netboot its profile again
type API struct {
	Token  string
	Hosts  Hosts
	Logger *slog.Logger
}

// Handler returns the API's routes.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/hosts", a.wrap(false, func(w http.ResponseWriter, r *http.Request, _ string) (int, any) {
		return http.StatusOK, a.Hosts.List()
	}))
	mux.HandleFunc("GET /api/v1/hosts/{host}", a.wrap(false, func(w http.ResponseWriter, r *http.Request, name string) (int, any) {
		return http.StatusOK, a.Hosts.Get(name)
	}))
	mux.HandleFunc("POST /api/v1/hosts/{host}/installed", a.wrap(true, func(w http.ResponseWriter, r *http.Request, name string) (int, any) {
		return a.setState(r, name, "local")
	}))
	mux.HandleFunc("POST /api/v1/hosts/{host}/install", a.wrap(false, func(w http.ResponseWriter, r *http.Request, name string) (int, any) {
		return a.setState(r, name, "install")
	}))
	return mux
}

type apiError struct {
	Error string `json:"error"`
}

func (a *API) setState(r *http.Request, name, state string) (int, any) {
	if err := a.Hosts.SetState(name, state, "api "+r.RemoteAddr); err != nil {
		return http.StatusInternalServerError, apiError{err.Error()}
	}
	return http.StatusOK, a.Hosts.Get(name)
}

// wrap authenticates, resolves {host} and logs. hostTokenOK: the host's
// own token is accepted as well as the API token.
func (a *API) wrap(hostTokenOK bool, h func(http.ResponseWriter, *http.Request, string) (int, any)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("host")
		status, body := a.serve(w, r, name, hostTokenOK, h)
		writeJSON(w, status, body)
		level := slog.LevelInfo
		attrs := []any{"client", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "status", status}
		if e, ok := body.(apiError); ok {
			level = slog.LevelWarn
			attrs = append(attrs, "reason", e.Error)
		}
		a.logger().Log(r.Context(), level, "api request", attrs...)
	}
}

func (a *API) serve(w http.ResponseWriter, r *http.Request, name string, hostTokenOK bool, h func(http.ResponseWriter, *http.Request, string) (int, any)) (int, any) {
	tok := bearer(r)
	apiOK := a.Token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(a.Token)) == 1
	if name != "" {
		canon, ok := a.Hosts.Resolve(name)
		if !ok {
			// Only the API token may learn that a host does not exist.
			if !apiOK {
				return unauthorized(w)
			}
			return http.StatusNotFound, apiError{"no host " + name + " in the inventory"}
		}
		name = canon
	}
	if !apiOK {
		ht := tok
		if ht == "" {
			ht = r.URL.Query().Get("token")
		}
		if !hostTokenOK || name == "" || !a.Hosts.CheckHostToken(name, ht) {
			return unauthorized(w)
		}
	}
	return h(w, r, name)
}

func unauthorized(w http.ResponseWriter) (int, any) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="pxed"`)
	return http.StatusUnauthorized, apiError{"missing or wrong token (Authorization: Bearer <api token>)"}
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away: nothing to do
}

func (a *API) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.New(slog.DiscardHandler)
}
