package pxeclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"pxed/internal/bootfs"
	"pxed/internal/tftp"
)

// Fetcher gets one file by a name ResolveName gives: a TFTP path on the
// boot server, or a URL. A missing file is an error wrapping
// fs.ErrNotExist.
type Fetcher interface {
	Fetch(ctx context.Context, name string, w io.Writer) error
}

// ErrTooLarge is wrapped by the error of a fetch into a Limit that the
// file would overrun.
var ErrTooLarge = errors.New("file too large")

// ErrNotAllowed is wrapped by the error of a fetch from a host Source does
// not fetch from, and of an HTTP redirect to another host.
var ErrNotAllowed = errors.New("host not allowed")

// Limit is a writer that passes at most N bytes on to W: a write that would
// go past them writes nothing and fails with an error wrapping ErrTooLarge
// that names the limit (Max bytes, set by What, such as
// "--max-kernel-size"). Source.Fetch into a *Limit also refuses a file
// whose announced size (TFTP tsize, HTTP Content-Length) is over what is
// left, before any data flows.
type Limit struct {
	W    io.Writer
	N    int64 // bytes left
	Max  int64
	What string
}

// NewLimit is a Limit of max bytes on w.
func NewLimit(w io.Writer, max int64, what string) *Limit {
	return &Limit{W: w, N: max, Max: max, What: what}
}

// Write implements io.Writer.
func (l *Limit) Write(b []byte) (int, error) {
	if int64(len(b)) > l.N {
		return 0, l.err()
	}
	n, err := l.W.Write(b)
	l.N -= int64(n)
	return n, err
}

func (l *Limit) err() error {
	return fmt.Errorf("%w: over the limit of %d bytes (%s)", ErrTooLarge, l.Max, l.What)
}

// Source fetches paths and tftp:// URLs over TFTP and http(s) URLs over
// HTTP, as PXELINUX on iPXE does, but only from the hosts it trusts:
//
//   - A host is allowed when it is the boot server (TFTP's address) or in
//     Hosts (addresses or DNS names; "*" allows any host). A name not
//     listed is allowed when every address it resolves to is; HTTP then
//     connects only to an address it checked, without a second lookup.
//   - An HTTP redirect is followed (at most 5) only to the same host, and
//     never from https to http.
//   - HTTP goes through no proxy unless Proxy is set; then the
//     environment's HTTP_PROXY, HTTPS_PROXY and NO_PROXY apply.
//   - Fetching into a *Limit bounds the file (see Limit).
//
// Dial, when set, makes HTTP's connections (to an address already
// checked, or to the proxy); nil is a net.Dialer. Set the fields before
// the first Fetch; a Source may then be used by several goroutines.
type Source struct {
	TFTP   netip.AddrPort // the boot server
	Hosts  []string
	Proxy  bool
	Client tftp.Client
	Dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	// Resolver looks up host names; nil is the host's resolver.
	Resolver *net.Resolver

	once   sync.Once
	any    bool
	names  map[string]bool
	addrs  map[netip.Addr]bool
	client *http.Client
}

// maxRedirects bounds the HTTP redirects of one fetch.
const maxRedirects = 5

func (s *Source) init() {
	s.names, s.addrs = map[string]bool{}, map[netip.Addr]bool{}
	if s.TFTP.IsValid() {
		s.addrs[s.TFTP.Addr().Unmap()] = true
	}
	for _, h := range s.Hosts {
		h = strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
		switch a, err := netip.ParseAddr(h); {
		case h == "*":
			s.any = true
		case err == nil:
			s.addrs[a.Unmap()] = true
		case h != "":
			s.names[h] = true
		}
	}
	tr := &http.Transport{
		DialContext:            s.dial,
		TLSHandshakeTimeout:    10 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		// Bytes as the server sends them: a Limit counts what is stored,
		// and a compressed body is no business of a boot file.
		DisableCompression: true,
	}
	if s.Proxy {
		tr.Proxy = http.ProxyFromEnvironment
	}
	s.client = &http.Client{Transport: tr, CheckRedirect: checkRedirect}
}

// checkRedirect follows a redirect to the same host only, not from https
// to http, and at most maxRedirects times.
func checkRedirect(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	switch {
	case len(via) > maxRedirects:
		return fmt.Errorf("more than %d redirects", maxRedirects)
	case !strings.EqualFold(req.URL.Hostname(), first.Hostname()):
		return fmt.Errorf("%w: redirect from %s to another host, %s", ErrNotAllowed, first.Host, req.URL.Host)
	case first.Scheme == "https" && req.URL.Scheme != "https":
		return fmt.Errorf("%w: redirect from https to %s", ErrNotAllowed, req.URL.Scheme)
	}
	return nil
}

// allowedAddr reports whether a is an address Source fetches from.
func (s *Source) allowedAddr(a netip.Addr) bool {
	return s.any || s.addrs[a.Unmap()]
}

// allowedName reports whether host (a name or an address literal) is
// listed, or is an address that is.
func (s *Source) allowedName(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		return s.allowedAddr(a)
	}
	return s.any || s.names[host]
}

// checkHost returns nil when host may be fetched from: it is allowed by
// name or address, or every address it resolves to is allowed.
func (s *Source) checkHost(ctx context.Context, host string) error {
	if s.allowedName(host) {
		return nil
	}
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err != nil {
		addrs, err := resolver(s.Resolver).LookupNetIP(ctx, "ip", host)
		if err != nil {
			return fmt.Errorf("host %s: %w", host, err)
		}
		ok := len(addrs) > 0
		for _, a := range addrs {
			ok = ok && s.allowedAddr(a)
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("%w: %s is not the boot server (allow it with --allow-host)", ErrNotAllowed, host)
}

// dial connects HTTP without a proxy (or to the proxy, when Proxy is set):
// only to allowed addresses, resolving a name once.
func (s *Source) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	dial := s.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	if s.Proxy {
		return dial(ctx, network, addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var candidates []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		candidates = []netip.Addr{a}
	} else if candidates, err = resolver(s.Resolver).LookupNetIP(ctx, "ip", host); err != nil {
		return nil, err
	}
	var lastErr error = fmt.Errorf("%w: %s is not the boot server (allow it with --allow-host)", ErrNotAllowed, host)
	for _, a := range candidates {
		if !s.allowedAddr(a) && !s.allowedName(host) {
			continue
		}
		c, err := dial(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// Fetch implements Fetcher.
func (s *Source) Fetch(ctx context.Context, name string, w io.Writer) error {
	s.once.Do(s.init)
	if strings.HasPrefix(name, "http://") || strings.HasPrefix(name, "https://") {
		return s.fetchHTTP(ctx, name, w)
	}
	server, path := s.TFTP, name
	if host, p, ok := splitTFTPURL(name); ok {
		a, err := tftpServer(ctx, resolver(s.Resolver), host, s.TFTP)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host != "" && !s.allowedAddr(a.Addr()) && !s.allowedName(host) {
			return fmt.Errorf("%s: %w: %s is not the boot server (allow it with --allow-host)", name, ErrNotAllowed, host)
		}
		server, path = a, p
	} else if IsURL(name) {
		return fmt.Errorf("%s: only TFTP paths and tftp, http and https URLs can be fetched", name)
	}
	c := s.Client
	lim, _ := w.(*Limit)
	if lim != nil {
		// The client refuses by tsize before any data, and stops past it.
		c.MaxSize = max(lim.N, 1)
	}
	_, err := c.Get(ctx, server, path, w)
	if lim != nil && errors.Is(err, tftp.ErrTooLarge) {
		return fmt.Errorf("%s: %w", name, lim.err())
	}
	return err
}

func (s *Source) fetchHTTP(ctx context.Context, name string, w io.Writer) error {
	u, err := url.Parse(name)
	if err != nil {
		return err
	}
	if err := s.checkHost(ctx, u.Hostname()); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, name, nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	case resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s: HTTP %s: %w", name, resp.Status, fs.ErrPermission)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s: HTTP %s", name, resp.Status)
	}
	lim, _ := w.(*Limit)
	if lim != nil && resp.ContentLength > lim.N {
		return fmt.Errorf("%s: announced %d bytes: %w", name, resp.ContentLength, lim.err())
	}
	if _, err = io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// tftpServer is the address of a tftp:// URL's host (port 69 unless
// given); an empty host is the boot server, as in PXELINUX.
func tftpServer(ctx context.Context, r *net.Resolver, host string, boot netip.AddrPort) (netip.AddrPort, error) {
	if host == "" {
		return boot, nil
	}
	port := uint16(69)
	if h, p, err := net.SplitHostPort(host); err == nil {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("bad port %q", p)
		}
		host, port = h, uint16(n)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a, port), nil
	}
	addrs, err := r.LookupNetIP(ctx, "ip4", host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("TFTP server %s: %v", host, err)
	}
	return netip.AddrPortFrom(addrs[0].Unmap(), port), nil
}

// ErrNotInTree is wrapped by TreeFetcher for a URL: the file is not a path
// on the boot server. It wraps fs.ErrNotExist.
var ErrNotInTree = fmt.Errorf("a URL, not in the boot tree: %w", fs.ErrNotExist)

// TreeFetcher fetches from a boot tree offline, as pxed's TFTP server
// would serve it to Client: each name is cleaned as the server cleans it
// (bootfs.CleanName: "bios//images/vmlinuz" is bios/images/vmlinuz) and
// opened with bootfs.OpenFor, so generated files count. URLs are not in
// the tree (ErrNotInTree).
type TreeFetcher struct {
	FS     fs.FS
	Client bootfs.Client
}

// Fetch implements Fetcher.
func (t *TreeFetcher) Fetch(ctx context.Context, name string, w io.Writer) error {
	if IsURL(name) {
		return fmt.Errorf("%s: %w", name, ErrNotInTree)
	}
	root := ""
	if d, ok := t.FS.(interface{ Dir() string }); ok {
		root = d.Dir()
	}
	clean, err := bootfs.CleanName(name, root)
	if err != nil {
		return err
	}
	f, err := bootfs.OpenFor(t.FS, t.Client, clean)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory: %w", clean, fs.ErrNotExist)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err = io.Copy(w, f)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w", clean, err)
	}
	return nil
}
