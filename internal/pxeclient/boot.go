package pxeclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"pxed/internal/pxelinux"
	"pxed/internal/tftp"
)

// Fetcher gets one file by the name a PXELINUX config uses: a path on the
// boot server, or a URL.
type Fetcher interface {
	Fetch(ctx context.Context, name string, w io.Writer) error
}

// Source fetches paths over TFTP from one server and URLs over HTTP.
type Source struct {
	TFTP   netip.AddrPort
	Client tftp.Client
	HTTP   *http.Client // nil: http.DefaultClient
}

// Fetch implements Fetcher. A missing file is an error wrapping
// fs.ErrNotExist.
func (s *Source) Fetch(ctx context.Context, name string, w io.Writer) error {
	if strings.HasPrefix(name, "http://") || strings.HasPrefix(name, "https://") {
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
		case resp.StatusCode != http.StatusOK:
			return fmt.Errorf("%s: HTTP %s", name, resp.Status)
		}
		_, err = io.Copy(w, resp.Body)
		return err
	}
	if strings.Contains(name, "://") {
		return fmt.Errorf("%s: only tftp paths and http(s) URLs can be fetched", name)
	}
	_, err := s.Client.Get(ctx, s.TFTP, name, w)
	return err
}

// Server is the boot server a lease names: next-server (siaddr), as
// PXE ROMs and pypxeboot use, else option 66 when it is an address, else
// the DHCP server itself.
func (l *Lease) Server() (netip.Addr, string) {
	switch {
	case l.NextServer.IsValid() && !l.NextServer.IsUnspecified():
		return l.NextServer, "next-server"
	case l.TFTPServer != "":
		if a, err := netip.ParseAddr(l.TFTPServer); err == nil {
			return a, "option 66"
		}
		if addrs, err := net.LookupHost(l.TFTPServer); err == nil && len(addrs) > 0 {
			if a, err := netip.ParseAddr(addrs[0]); err == nil {
				return a, "option 66 (" + l.TFTPServer + ")"
			}
		}
	}
	return l.ServerID, "DHCP server"
}

// Plan is what a PXELINUX configuration boots for this client.
type Plan struct {
	// Config is the configuration file found; Tried every name asked for
	// up to it.
	Config string
	Tried  []string
	Label  string
	Kind   pxelinux.BootKind
	// Kernel and Initrds are names to fetch (boot file directory applied).
	Kernel  string
	Initrds []string
	// Args is the kernel command line: the label's APPEND without its
	// initrd= items, with IPAPPEND's ip=/BOOTIF= added.
	Args string
	// Localboot: the label boots the local disk.
	Localboot bool
}

// maxConfig bounds a configuration file.
const maxConfig = 1 << 20

// Find walks PXELINUX's search (UUID, 01-<mac>, hex IP and its prefixes,
// default) in the boot file's directory, parses the first config found
// (INCLUDEs fetched the same way) and resolves label ("" = the default).
func Find(ctx context.Context, f Fetcher, l *Lease, mac net.HardwareAddr, uuid, label string) (*Plan, error) {
	prefix := dirOf(l.File)
	p := &Plan{}
	var data []byte
	for _, name := range pxelinux.SearchPath(uuid, mac, l.IP) {
		full := prefix + name
		p.Tried = append(p.Tried, full)
		var b bytes.Buffer
		err := f.Fetch(ctx, full, &limitWriter{w: &b, n: maxConfig})
		if err == nil {
			p.Config, data = full, b.Bytes()
			break
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("looking for the PXELINUX config: %w", ctx.Err())
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("fetching %s: %w", full, err)
		}
	}
	if p.Config == "" {
		return nil, fmt.Errorf("no PXELINUX config for %s (%s): tried %s", mac, l.IP, strings.Join(p.Tried, ", "))
	}
	open := func(name string) (io.ReadCloser, error) {
		if name == p.Config {
			return io.NopCloser(bytes.NewReader(data)), nil
		}
		var b bytes.Buffer
		if err := f.Fetch(ctx, resolveName(prefix, name), &limitWriter{w: &b, n: maxConfig}); err != nil {
			return nil, err
		}
		return io.NopCloser(&b), nil
	}
	cfg, err := pxelinux.ParseWithIncludes(p.Config, open, 8)
	if err != nil {
		return nil, err
	}
	b, err := cfg.Resolve(label)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Config, err)
	}
	p.Label, p.Kind = b.Label, b.Kind
	switch b.Kind {
	case pxelinux.KindLocalboot:
		p.Localboot = true
		return p, nil
	case pxelinux.KindLinux:
	default:
		return nil, fmt.Errorf("%s: label %q boots %s (%s), which a Xen PV guest cannot run; choose a Linux label with --label=", p.Config, b.Label, b.Kernel, b.Kind)
	}
	p.Kernel = resolveName(prefix, b.Kernel)
	for _, i := range b.Initrds {
		p.Initrds = append(p.Initrds, resolveName(prefix, i))
	}
	var args []string
	for _, w := range strings.Fields(b.Append) {
		if !strings.HasPrefix(w, "initrd=") {
			args = append(args, w)
		}
	}
	if b.IPAppend&1 != 0 {
		server, _ := l.Server()
		args = append(args, "ip="+l.IP.String()+":"+addrOrEmpty(server)+":"+addrOrEmpty(l.Router)+":"+addrOrEmpty(l.Mask))
	}
	if b.IPAppend&2 != 0 {
		args = append(args, "BOOTIF="+pxelinux.MACName(mac))
	}
	p.Args = strings.Join(args, " ")
	return p, nil
}

func addrOrEmpty(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// dirOf is the directory of the boot file, where PXELINUX looks for
// pxelinux.cfg/ and resolves relative names ("" for the root).
func dirOf(file string) string {
	file = strings.ReplaceAll(file, `\`, "/")
	if i := strings.LastIndexByte(file, '/'); i >= 0 {
		d := file[:i+1]
		if !strings.Contains(d, "://") {
			d = strings.TrimPrefix(d, "/")
		}
		return d
	}
	return ""
}

// resolveName applies PXELINUX's rules: URLs as they are, "::name" and
// "/name" from the root, other names relative to the boot file's directory.
func resolveName(prefix, name string) string {
	switch {
	case strings.Contains(name, "://"):
		return name
	case strings.HasPrefix(name, "::"):
		return strings.TrimLeft(name[2:], "/")
	case strings.HasPrefix(name, "/"):
		return strings.TrimLeft(name, "/")
	case strings.Contains(prefix, "://"):
		return prefix + name
	}
	return path.Clean(prefix + name)
}

// limitWriter fails once more than n bytes were written.
type limitWriter struct {
	w io.Writer
	n int64
}

func (l *limitWriter) Write(b []byte) (int, error) {
	if int64(len(b)) > l.n {
		return 0, errors.New("configuration file larger than " + strconv.Itoa(maxConfig) + " bytes")
	}
	l.n -= int64(len(b))
	return l.w.Write(b)
}
