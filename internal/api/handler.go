package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

const (
	// maxBody bounds a request body: no call needs one.
	maxBody = 4 << 10
	// maxHostName is the longest host name or MAC taken from a path (a DNS
	// name's limit); longer ones are refused without asking the Service.
	maxHostName = 253
	// maxLogPath bounds the path written to the log.
	maxLogPath = 256
	// byHeader names the caller on the trusted transport.
	byHeader = "X-Pxed-By"
	// maxBy bounds the X-Pxed-By name.
	maxBy = 64
	// bodyTimeout is Options.BodyTimeout's default.
	bodyTimeout = 5 * time.Second
)

// Options configure a [Handler].
type Options struct {
	// Token is the API token TCP callers must present as
	// "Authorization: Bearer TOKEN". Empty: every untrusted call is refused,
	// host tokens included. Ignored when Trusted.
	Token string
	// Trusted serves the control socket: no token is needed, the socket's
	// file permissions are the access control.
	Trusted bool
	// Logger gets one line per request; nil discards.
	Logger *slog.Logger
	// BodyTimeout bounds reading a request's body (0: 5 s).
	BodyTimeout time.Duration
}

// Handler serves the API's routes (full paths, /api/v1/…) from svc. Mount it
// at "/api/" on a TCP mux, or serve it as the whole control socket.
func Handler(svc Service, o Options) http.Handler {
	h := &handler{svc: svc, trusted: o.Trusted, log: o.Logger, bodyTimeout: o.BodyTimeout}
	if h.bodyTimeout <= 0 {
		h.bodyTimeout = bodyTimeout
	}
	if o.Token != "" {
		sum := sha256.Sum256([]byte(o.Token))
		h.token = sum[:]
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h
}

type handler struct {
	svc     Service
	token   []byte // SHA-256 of the API token; nil: none configured
	trusted bool
	log     *slog.Logger
	// bodyTimeout bounds reading a request body.
	bodyTimeout time.Duration
}

type op int

const (
	opNone op = iota
	opHosts
	opHost
	opInstalled
	opInstall
	opLocal
	opLeases
	opEvents
)

// route is a parsed request path.
type route struct {
	op   op
	host string // {host}, unescaped
}

func (rt route) methods() string {
	switch rt.op {
	case opInstalled, opInstall, opLocal:
		return http.MethodPost
	default:
		return "GET, HEAD"
	}
}

func (rt route) allows(method string) bool {
	switch rt.op {
	case opInstalled, opInstall, opLocal:
		return method == http.MethodPost
	default:
		return method == http.MethodGet || method == http.MethodHead
	}
}

// parseRoute matches the escaped path segment by segment, unescaping each
// as http.ServeMux does (a host may be written with %2F).
func parseRoute(u *url.URL) route {
	rest, ok := strings.CutPrefix(u.EscapedPath(), "/api/v1/")
	if !ok {
		return route{}
	}
	segs := strings.SplitN(rest, "/", 4)
	for i, s := range segs {
		u, err := url.PathUnescape(s)
		if err != nil {
			return route{}
		}
		segs[i] = u
	}
	switch {
	case len(segs) == 1 && segs[0] == "hosts":
		return route{op: opHosts}
	case len(segs) == 1 && segs[0] == "leases":
		return route{op: opLeases}
	case len(segs) == 1 && segs[0] == "events":
		return route{op: opEvents}
	case len(segs) < 2 || len(segs) > 3 || segs[0] != "hosts" || segs[1] == "":
		return route{}
	case len(segs) == 2:
		return route{op: opHost, host: segs[1]}
	}
	switch segs[2] {
	case "installed":
		return route{op: opInstalled, host: segs[1]}
	case "install":
		return route{op: opInstall, host: segs[1]}
	case "local":
		return route{op: opLocal, host: segs[1]}
	}
	return route{}
}

// reply is a status and a JSON body; reason is set for errors.
type reply struct {
	status int
	body   any
	reason string
}

func fail(status int, code, msg string) reply {
	return reply{status: status, body: errorBody{Error: msg, Code: code}, reason: msg}
}

// failErr maps a Service error to its status; host names the host asked
// about, for a sentence better than the bare sentinel.
func failErr(err error, host string) reply {
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			msg := err.Error()
			if err == ErrNotFound && host != "" {
				msg = fmt.Sprintf("no host %q in the inventory", host)
			}
			return fail(s.status, s.code, msg)
		}
	}
	return fail(http.StatusInternalServerError, codeInternal, err.Error())
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rep := h.serve(w, r)
	writeJSON(w, rep.status, rep.body)
	client := r.RemoteAddr
	if h.trusted && (client == "" || client == "@") {
		client = "control socket"
	}
	path := r.URL.EscapedPath() // never the query: it may hold a host token
	if len(path) > maxLogPath {
		path = path[:maxLogPath] + "…"
	}
	level := slog.LevelInfo
	attrs := []any{"client", client, "method", r.Method, "path", path, "status", rep.status}
	if rep.reason != "" {
		level = slog.LevelWarn
		attrs = append(attrs, "reason", rep.reason)
	}
	h.log.Log(r.Context(), level, "api request", attrs...)
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request) reply {
	if rep, ok := h.readBody(w, r); !ok {
		w.Header().Set("Connection", "close")
		return rep
	}
	rt := parseRoute(r.URL)
	var by string
	switch {
	case h.trusted:
		by = trustedBy(r)
	case h.apiTokenOK(r):
		by = "api " + r.RemoteAddr
	case rt.op == opInstalled && r.Method == http.MethodPost:
		return h.installedByHost(w, r, rt.host)
	default:
		return unauthorized(w)
	}
	if rt.op == opNone {
		return fail(http.StatusNotFound, codeNoRoute, "no such API route (see /api/v1/hosts, /api/v1/leases, /api/v1/events)")
	}
	if !rt.allows(r.Method) {
		w.Header().Set("Allow", rt.methods())
		return fail(http.StatusMethodNotAllowed, codeMethod, fmt.Sprintf("method %s not allowed here (allowed: %s)", safeMethod(r.Method), rt.methods()))
	}
	if rt.host != "" {
		if err := checkHost(rt.host); err != nil {
			return failErr(err, "")
		}
	}
	ctx := r.Context()
	switch rt.op {
	case opHosts:
		v, err := h.svc.Hosts(ctx)
		if v == nil {
			v = []HostView{} // [], not null
		}
		return answer(v, err, "")
	case opHost:
		v, err := h.svc.Host(ctx, rt.host)
		return answer(v, err, rt.host)
	case opInstalled, opLocal:
		v, err := h.svc.SetHostState(ctx, rt.host, "local", by)
		return answer(v, err, rt.host)
	case opInstall:
		v, err := h.svc.SetHostState(ctx, rt.host, "install", by)
		return answer(v, err, rt.host)
	case opLeases:
		v, err := h.svc.Leases(ctx)
		if v == nil {
			v = []LeaseView{}
		}
		return answer(v, err, "")
	case opEvents:
		q := r.URL.Query()
		host := q.Get("host")
		if host != "" {
			if err := checkHost(host); err != nil {
				return failErr(err, "")
			}
		}
		limit := 0
		if l := q.Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil || n < 0 {
				return failErr(fmt.Errorf("%w: limit must be a number of events", ErrBadRequest), "")
			}
			limit = n
		}
		v, err := h.svc.Events(ctx, host, limit)
		if v == nil {
			v = []EventView{}
		}
		return answer(v, err, host)
	}
	return fail(http.StatusNotFound, codeNoRoute, "no such API route")
}

// answer turns a Service answer into a reply; host is the host asked about.
func answer(v any, err error, host string) reply {
	if err != nil {
		return failErr(err, host)
	}
	return reply{status: http.StatusOK, body: v}
}

// installedByHost is the install callback made with the host's own token.
// Every failure is the same 401: a host token must not reveal whether a
// host exists.
func (h *handler) installedByHost(w http.ResponseWriter, r *http.Request, host string) reply {
	if h.token == nil || host == "" || checkHost(host) != nil {
		return unauthorized(w)
	}
	tok := bearer(r)
	if tok == "" {
		tok = r.URL.Query().Get("token")
	}
	if tok == "" {
		return unauthorized(w)
	}
	v, err := h.svc.Installed(r.Context(), host, tok, "api "+r.RemoteAddr)
	if errors.Is(err, ErrBadToken) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrNoInventory) {
		return unauthorized(w)
	}
	return answer(v, err, host)
}

func (h *handler) apiTokenOK(r *http.Request) bool {
	if h.token == nil {
		return false
	}
	tok := bearer(r)
	if tok == "" {
		return false
	}
	// Hashing first makes the comparison independent of the token's length.
	sum := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(sum[:], h.token) == 1
}

func unauthorized(w http.ResponseWriter) reply {
	w.Header().Set("WWW-Authenticate", `Bearer realm="pxed"`)
	return fail(http.StatusUnauthorized, codeUnauthorized, "missing or wrong token (Authorization: Bearer <api token>)")
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// trustedBy is who a control-socket caller says it is, if that is a short
// printable name.
func trustedBy(r *http.Request) string {
	by := strings.TrimSpace(r.Header.Get(byHeader))
	if by == "" || len(by) > maxBy {
		return "control socket"
	}
	for i := 0; i < len(by); i++ {
		if by[i] < 0x20 || by[i] > 0x7e {
			return "control socket"
		}
	}
	return by
}

// checkHost refuses host names no inventory has: too long, not UTF-8, or
// with control characters.
func checkHost(name string) error {
	if len(name) > maxHostName {
		return fmt.Errorf("%w: host name longer than %d bytes", ErrBadRequest, maxHostName)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: host name is not UTF-8", ErrBadRequest)
	}
	if strings.ContainsFunc(name, unicode.IsControl) {
		return fmt.Errorf("%w: control character in host name", ErrBadRequest)
	}
	return nil
}

// readBody reads and drops a request's body, at most maxBody+1 bytes
// within the body timeout: what a handler leaves, net/http reads after it
// with no deadline, so a body announced and never sent would hold the
// connection. ok is false, with the answer, for a body too large or too slow.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) (rep reply, ok bool) {
	tooLarge := fail(http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("request body over %d bytes (the API takes none)", maxBody))
	if r.ContentLength > maxBody {
		return tooLarge, false
	}
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return reply{}, true
	}
	// Not supported by test recorders, whose bodies are in memory.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.bodyTimeout))
	n, err := io.Copy(io.Discard, io.LimitReader(r.Body, maxBody+1))
	switch {
	case n > maxBody:
		return tooLarge, false
	case err != nil:
		return fail(http.StatusRequestTimeout, codeTimeout, fmt.Sprintf("request body not received within %v: %v", h.bodyTimeout, err)), false
	}
	return reply{}, true
}

func safeMethod(m string) string {
	if len(m) > 16 {
		return m[:16] + "…"
	}
	return m
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away: nothing to do
}
