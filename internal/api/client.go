package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// clientTimeout bounds a whole call.
	clientTimeout = 10 * time.Second
	// maxAnswer bounds an answer read (many leases fit).
	maxAnswer = 64 << 20
	// maxErrorAnswer bounds an error answer read.
	maxErrorAnswer = 64 << 10
)

// Client calls the API over the control socket or TCP.
type Client struct {
	base  string
	token string
	hc    *http.Client
	// By names the caller in a host's state record; only the control
	// socket takes it (TCP records the caller's address). NewSocketClient
	// sets "pxed host".
	By string
}

// NewSocketClient calls the API on the Unix control socket at path.
func NewSocketClient(path string) *Client {
	d := &net.Dialer{Timeout: 2 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := d.DialContext(ctx, "unix", path)
			if err != nil {
				return nil, &dialError{err}
			}
			return c, nil
		},
		MaxIdleConns:          1,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: clientTimeout,
		DisableCompression:    true,
	}
	return &Client{base: "http://pxed", By: "pxed host", hc: newHTTPClient(tr)}
}

// NewClient calls the API at baseURL (http://HOST:PORT, without /api/v1)
// with the API token.
func NewClient(baseURL, token string) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, &dialError{err}
		}
		return c, nil
	}
	tr.ResponseHeaderTimeout = clientTimeout
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, hc: newHTTPClient(tr)}
}

func newHTTPClient(tr http.RoundTripper) *http.Client {
	return &http.Client{
		Transport: tr,
		Timeout:   clientTimeout,
		// The API never redirects; following one could carry the token elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Hosts lists the inventory hosts.
func (c *Client) Hosts(ctx context.Context) ([]HostView, error) {
	var out []HostView
	return out, c.do(ctx, http.MethodGet, "/api/v1/hosts", &out)
}

// Host returns one host, by name or MAC.
func (c *Client) Host(ctx context.Context, nameOrMAC string) (HostView, error) {
	var out HostView
	if nameOrMAC == "" {
		return out, fmt.Errorf("%w: empty host name", ErrBadRequest)
	}
	return out, c.do(ctx, http.MethodGet, "/api/v1/hosts/"+url.PathEscape(nameOrMAC), &out)
}

// SetHostState switches a host to "install" or "local" and returns it as
// it is now.
func (c *Client) SetHostState(ctx context.Context, nameOrMAC, state string) (HostView, error) {
	var out HostView
	if state != "install" && state != "local" {
		return out, fmt.Errorf("%w: state %q: want install or local", ErrBadRequest, state)
	}
	if nameOrMAC == "" {
		return out, fmt.Errorf("%w: empty host name", ErrBadRequest)
	}
	return out, c.do(ctx, http.MethodPost, "/api/v1/hosts/"+url.PathEscape(nameOrMAC)+"/"+state, &out)
}

// Events lists the latest boot events of host ("" all), at most limit
// (<= 0: all).
func (c *Client) Events(ctx context.Context, host string, limit int) ([]EventView, error) {
	var out []EventView
	q := url.Values{}
	if host != "" {
		q.Set("host", host)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/api/v1/events"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return out, c.do(ctx, http.MethodGet, path, &out)
}

// Leases lists the DHCP leases.
func (c *Client) Leases(ctx context.Context) ([]LeaseView, error) {
	var out []LeaseView
	return out, c.do(ctx, http.MethodGet, "/api/v1/leases", &out)
}

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.By != "" {
		req.Header.Set(byHeader, c.By)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return readError(resp)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(out); err != nil {
		return fmt.Errorf("pxed api: reading the answer to %s %s: %w", method, path, err)
	}
	return nil
}

func readError(resp *http.Response) *Error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorAnswer))
	e := &Error{Status: resp.StatusCode}
	var body errorBody
	if json.Unmarshal(data, &body) == nil && body.Error != "" {
		e.Message, e.Code = body.Error, body.Code
	} else {
		e.Message = strings.TrimSpace(string(data))
	}
	return e
}

// Error is an error answer from the server. errors.Is matches it against
// ErrNotFound, ErrNoInventory, ErrNoDHCP and ErrBadRequest by its code.
type Error struct {
	Status  int    // HTTP status
	Code    string // machine-readable: not_found, no_inventory, no_dhcp, bad_request, unauthorized, …
	Message string // the server's sentence
}

func (e *Error) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return fmt.Sprintf("pxed api: %d %s", e.Status, http.StatusText(e.Status))
}

// Is matches the sentinel errors.
func (e *Error) Is(target error) bool {
	for _, s := range sentinels {
		if target == s.err {
			return e.Code == s.code
		}
	}
	return false
}

// dialError is a failure to connect; it is ErrNoServer when nothing
// listens there.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

func (e *dialError) Is(target error) bool {
	return target == ErrNoServer && (errors.Is(e.err, syscall.ENOENT) || errors.Is(e.err, syscall.ECONNREFUSED))
}
