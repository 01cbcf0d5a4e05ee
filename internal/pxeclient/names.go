package pxeclient

import (
	"net"
	"net/url"
	"strings"
)

// How PXELINUX 6.04 names files, as read in its sources (core/fs/pxe/pxe.c:
// get_prefix, pxe_chdir, __pxe_searchdir; core/fs/pxe/urlparse.c: url_type,
// parse_url; core/fs/pxe/dhcp_option.c: option 210) and observed in QEMU
// boots through pxed (test/e2e/pathprefix_test.go):
//
//   - The path prefix is option 210 when the server sent it, taken verbatim
//     (no slash is added: "pfx" + "ldlinux.c32" asks for "pfxldlinux.c32").
//     Otherwise it is the boot file up to and including the last character
//     that is not a letter, digit, '.' or '-' (usually the last '/', but
//     "bios/pxe_boot.0" gives "bios/pxe_"); none gives "".
//   - A prefix that is a plain path is a TFTP path on the boot server; a URL
//     prefix ("http://host/dir/") is used as it is.
//   - A name is a URL when its first ':' is followed by "//"; it is used as
//     it is ("tftp://host/path" asks host for "path"; other schemes, http://
//     among them, go to the PXE stack, which iPXE serves).
//   - A name whose first ':' is followed by ':' is "host::path", a TFTP path
//     on host ("::path": on the boot server), without the prefix.
//   - Any other name, including one with a leading '/', is appended to the
//     prefix as text: with prefix "bios/", "/images/vmlinuz" asks TFTP for
//     "bios//images/vmlinuz" (pxed's TFTP serves bios/images/vmlinuz).
//   - ldlinux.c32, pxelinux.cfg/..., INCLUDE files, KERNEL, INITRD,
//     initrd= and mboot.c32's modules all follow these rules; INCLUDE
//     names are relative to the prefix, not to the including file.

// PathPrefix is the prefix PXELINUX resolves names against, for boot file
// bootFile and option 210 (option210, "" when the server sent none). The
// result is a TFTP path on the boot server ("bios/", "" for the root) or
// a URL ("http://192.0.2.1:8080/pxe/", "tftp://host/dir/"), ready for
// ResolveName.
func PathPrefix(bootFile, option210 string) string {
	if i := strings.IndexByte(option210, 0); i >= 0 {
		option210 = option210[:i]
	}
	if option210 != "" {
		return normalize(option210)
	}
	i := len(bootFile) - 1
	for ; i >= 0; i-- {
		if !prefixNameChar(bootFile[i]) {
			break
		}
	}
	return normalize(bootFile[:i+1])
}

// prefixNameChar: the characters PXELINUX takes as part of the boot file's
// own name when it cuts the prefix from it.
func prefixNameChar(c byte) bool {
	c |= 0x20
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '.' || c == '-'
}

// ResolveName is the name PXELINUX asks for when a configuration names
// name (KERNEL, INITRD, initrd=, INCLUDE, mboot.c32 modules, ...) and the
// path prefix is prefix (from PathPrefix): a TFTP path on the boot server
// exactly as PXELINUX sends it (not cleaned: "bios//images/vmlinuz"), or a
// URL.
func ResolveName(prefix, name string) string {
	switch urlType(name) {
	case urlNormal:
		return name
	case urlOldTFTP:
		return normalize(name)
	}
	return normalize(prefix) + name
}

type nameType int

const (
	urlSuffix  nameType = iota // a path, relative to the prefix
	urlNormal                  // scheme://...
	urlOldTFTP                 // host::path
)

// urlType classifies name by its first ':' as PXELINUX does.
func urlType(name string) nameType {
	i := strings.IndexByte(name, ':')
	switch {
	case i < 0:
		return urlSuffix
	case strings.HasPrefix(name[i+1:], "//"):
		return urlNormal
	case strings.HasPrefix(name[i+1:], ":"):
		return urlOldTFTP
	}
	return urlSuffix
}

// normalize writes "::path" as "path" and "host::path" as
// "tftp://host/path"; other names are returned as they are.
func normalize(name string) string {
	if urlType(name) != urlOldTFTP {
		return name
	}
	host, p, _ := strings.Cut(name, "::")
	if host == "" {
		return p
	}
	return "tftp://" + host + "/" + p
}

// IsURL reports whether a resolved name is a URL rather than a TFTP path on
// the boot server.
func IsURL(name string) bool { return urlType(name) == urlNormal }

// nameHost is the host a URL or a host::path name names, as Source.Fetch
// reads it: "" for a path (the boot server's) or an unparsable URL.
func nameHost(name string) string {
	switch urlType(name) {
	case urlOldTFTP:
		host, _, _ := strings.Cut(name, "::")
		return host
	case urlNormal:
		if host, _, ok := splitTFTPURL(name); ok {
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			return strings.Trim(host, "[]")
		}
		if u, err := url.Parse(name); err == nil {
			return u.Hostname()
		}
	}
	return ""
}

// splitTFTPURL splits "tftp://host[:port]/path" into host and the path
// PXELINUX sends: the text after the host's '/', cut at '#' and at an
// unescaped ';' (";mode=..."), with %XX escapes decoded.
func splitTFTPURL(u string) (host, path string, ok bool) {
	rest, ok := strings.CutPrefix(u, "tftp://")
	if !ok {
		return "", "", false
	}
	host, path, _ = strings.Cut(rest, "/")
	path, _, _ = strings.Cut(path, "#")
	if i := strings.IndexByte(host, '@'); i >= 0 {
		host = host[i+1:]
	}
	return host, unescape(path, ';'), true
}

// unescape decodes %XX escapes up to an unescaped stop byte.
func unescape(s string, stop byte) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == stop {
			break
		}
		if c == '%' && i+2 < len(s) {
			if x, y := unhex(s[i+1]), unhex(s[i+2]); x >= 0 && y >= 0 {
				b.WriteByte(byte(x<<4 | y))
				i += 2
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c|0x20 >= 'a' && c|0x20 <= 'f':
		return int(c|0x20-'a') + 10
	}
	return -1
}
