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
	"strconv"
	"strings"

	"pxed/internal/bootfs"
	"pxed/internal/tftp"
)

// Fetcher gets one file by a name ResolveName gives: a TFTP path on the
// boot server, or a URL. A missing file is an error wrapping
// fs.ErrNotExist.
type Fetcher interface {
	Fetch(ctx context.Context, name string, w io.Writer) error
}

// Source fetches paths and tftp:// URLs over TFTP and http(s) URLs over
// HTTP, as PXELINUX on iPXE does.
type Source struct {
	TFTP   netip.AddrPort // the boot server
	Client tftp.Client
	HTTP   *http.Client // nil: http.DefaultClient
}

// Fetch implements Fetcher.
func (s *Source) Fetch(ctx context.Context, name string, w io.Writer) error {
	if strings.HasPrefix(name, "http://") || strings.HasPrefix(name, "https://") {
		return s.fetchHTTP(ctx, name, w)
	}
	server, path := s.TFTP, name
	if host, p, ok := splitTFTPURL(name); ok {
		a, err := tftpServer(ctx, host, s.TFTP)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		server, path = a, p
	} else if IsURL(name) {
		return fmt.Errorf("%s: only TFTP paths and tftp, http and https URLs can be fetched", name)
	}
	_, err := s.Client.Get(ctx, server, path, w)
	return err
}

func (s *Source) fetchHTTP(ctx context.Context, name string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, name, nil)
	if err != nil {
		return err
	}
	hc := s.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
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
	_, err = io.Copy(w, resp.Body)
	return err
}

// tftpServer is the address of a tftp:// URL's host (port 69 unless
// given); an empty host is the boot server, as in PXELINUX.
func tftpServer(ctx context.Context, host string, boot netip.AddrPort) (netip.AddrPort, error) {
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
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
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
