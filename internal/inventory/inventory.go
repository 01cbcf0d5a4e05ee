// Package inventory is pxed's boot inventory: profiles (what to boot) and
// hosts (who boots it, and whether it should install or boot its disk),
// read from a YAML file whose errors name file:line:column.
//
// An Inventory is immutable once loaded. States keep each host's durable
// boot state (netboot once, then local). The content of the files clients
// fetch (PXELINUX configs, iPXE scripts, kickstarts) is rendered here; the
// names they are served under belong to internal/bootplan.
package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"gopkg.in/yaml.v3"

	"pxed/internal/config"
	"pxed/internal/pxelinux"
)

// State is a host's boot state.
type State string

const (
	// Install: the host network-boots its profile.
	Install State = "install"
	// Local: the host boots its own disk (LOCALBOOT / iPXE exit).
	Local State = "local"
)

// ParseState accepts "install" and "local" (any case).
func ParseState(s string) (State, error) {
	switch State(strings.ToLower(strings.TrimSpace(s))) {
	case Install:
		return Install, nil
	case Local:
		return Local, nil
	}
	return "", fmt.Errorf("state %q is not install or local", s)
}

// Inventory is a loaded inventory file.
type Inventory struct {
	// File is where the inventory was read from ("" for bytes).
	File string
	// Profiles by name.
	Profiles map[string]*Profile
	// Hosts in file order.
	Hosts []*Host

	byName map[string]*Host
	byMAC  map[string]*Host // lower-case colon form
	byIP   map[netip.Addr]*Host
	byUUID map[string]*Host // canonical lower-case 8-4-4-4-12
}

// Profile is what a host boots: a Linux kernel, a Xen hypervisor with its
// dom0 (multiboot), or the local disk.
type Profile struct {
	Name string `yaml:"-"`
	// Kernel and Initrd are paths in the boot tree (TFTP/HTTP).
	Kernel string     `yaml:"kernel,omitempty"`
	Initrd stringList `yaml:"initrd,omitempty"`
	// Append is the kernel command line, a Go template (see TemplateData).
	// When the profile has a kickstart and the line has no ks=, pxed adds
	// ks=<kickstart URL>.
	Append string `yaml:"append,omitempty"`
	// IPAppend is PXELINUX's IPAPPEND bit mask (1: ip=, 2: BOOTIF=).
	IPAppend int `yaml:"ipappend,omitempty"`
	// Kickstart is a Go text/template file (relative to the inventory
	// file), rendered per host at http://SERVER/ks/<host>.
	Kickstart string `yaml:"kickstart,omitempty"`
	// Multiboot boots a Xen host: PXELINUX mboot.c32, iPXE kernel/module.
	Multiboot *Multiboot `yaml:"multiboot,omitempty"`
	// Localboot boots the local disk.
	Localboot bool `yaml:"localboot,omitempty"`
	// Loader is the boot loader the profile's UEFI clients get: "" (pxed
	// chooses: iPXE), "ipxe", "grub" (shim and GRUB, Secure Boot) or
	// "pxelinux" (syslinux.efi). BIOS clients get PXELINUX (or their
	// scope's filename) whatever it says; iPXE always gets its script.
	Loader Loader `yaml:"loader,omitempty"`
	// Arch gives the kernel and initrds per client architecture (the
	// names of boot-files: efi-arm64, efi-x64, bios, …) in place of Kernel
	// and Initrd. See ArchFiles for how a loader chooses.
	Arch map[string]*ArchFiles `yaml:"arch,omitempty"`

	Pos config.Pos `yaml:"-"`

	appendTmpl *template.Template
	ksTmpl     *template.Template
	ksFile     string // resolved path of Kickstart (read from disk)
}

// Loader is a profile's boot loader for UEFI clients.
type Loader string

// The loaders a profile may name.
const (
	LoaderIPXE     Loader = "ipxe"
	LoaderGRUB     Loader = "grub"
	LoaderPXELinux Loader = "pxelinux"
)

// Multiboot is a hypervisor, its dom0 kernel and the dom0 initrd(s).
type Multiboot struct {
	// Loader is the PXELINUX multiboot module (default mboot.c32).
	Loader         string     `yaml:"loader,omitempty"`
	Hypervisor     string     `yaml:"hypervisor"`
	HypervisorArgs string     `yaml:"hypervisor-args,omitempty"`
	Kernel         string     `yaml:"kernel"`
	KernelArgs     string     `yaml:"kernel-args,omitempty"` // a template, like Profile.Append
	Initrd         stringList `yaml:"initrd,omitempty"`
}

// Host is one machine of the inventory.
type Host struct {
	Name string `yaml:"name"`
	// MAC and MACs: one or more hardware addresses (any case, ':' or '-').
	MAC  string     `yaml:"mac,omitempty"`
	MACs stringList `yaml:"macs,omitempty"`
	// IP is an optional fixed IPv4 address, served by pxed's DHCP.
	IP      string `yaml:"ip,omitempty"`
	UUID    string `yaml:"uuid,omitempty"`
	Profile string `yaml:"profile"`
	// State is the declared boot state (default install). The running
	// state changes when the host calls back after installing; a change of
	// this declared value in the file wins over that.
	State State             `yaml:"state,omitempty"`
	Vars  map[string]string `yaml:"vars,omitempty"`

	Pos config.Pos `yaml:"-"`

	hw   []net.HardwareAddr
	addr netip.Addr
	uuid string
	prof *Profile
}

// HWAddrs are the host's hardware addresses, parsed.
func (h *Host) HWAddrs() []net.HardwareAddr { return h.hw }

// Addr is the host's fixed address (invalid when it has none).
func (h *Host) Addr() netip.Addr { return h.addr }

// CanonicalUUID is the UUID in PXELINUX's file-name form ("" if none).
func (h *Host) CanonicalUUID() string { return h.uuid }

// ProfileOf is the host's profile.
func (h *Host) ProfileOf() *Profile { return h.prof }

// stringList reads a YAML scalar or sequence of scalars.
type stringList []string

func (s *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = stringList{n.Value}
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return err
	}
	*s = l
	return nil
}

// file is the YAML document.
type file struct {
	Profiles map[string]*Profile `yaml:"profiles"`
	Hosts    []*Host             `yaml:"hosts"`
}

// Load reads and validates an inventory file.
func Load(name string) (*Inventory, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return Parse(name, data)
}

// Parse reads an inventory from bytes; name is used in messages and to
// find kickstart templates (relative to its directory).
func Parse(name string, data []byte) (*Inventory, error) {
	return ParseWith(name, data, nil)
}

// TemplateReader reads the kickstart template a profile names, given as
// the profile writes it.
type TemplateReader func(kickstart string) ([]byte, error)

// DiskTemplates reads kickstart templates from the file system, relative
// names from dir: Parse's reader for an inventory file in dir.
func DiskTemplates(dir string) TemplateReader {
	return func(ks string) ([]byte, error) { return readTemplate(kickstartPath(dir, ks)) }
}

func kickstartPath(dir, ks string) string {
	if filepath.IsAbs(ks) {
		return ks
	}
	return filepath.Join(dir, ks)
}

// ParseWith is Parse with the kickstart templates read by read (nil: from
// disk, as Parse does). An inventory stored in etcd carries its templates;
// only templates read from disk are listed by Templates.
func ParseWith(name string, data []byte, read TemplateReader) (*Inventory, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, config.YAMLError(name, err)
	}
	var f file
	if es := config.CheckKeys(name, &root, &f); len(es) > 0 {
		return nil, es
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, config.YAMLError(name, err)
	}
	inv := &Inventory{File: name, Profiles: f.Profiles, Hosts: f.Hosts}
	if inv.Profiles == nil {
		inv.Profiles = map[string]*Profile{}
	}
	inv.position(&root)
	v := &validator{inv: inv, dir: filepath.Dir(name), read: read}
	v.validate()
	if len(v.errs) > 0 {
		return nil, v.errs
	}
	return inv, nil
}

// position records where each profile (and its arch entries) and host was
// written.
func (inv *Inventory) position(root *yaml.Node) {
	if len(root.Content) == 0 {
		return
	}
	doc := root.Content[0]
	get := func(n *yaml.Node, key string) *yaml.Node {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1]
			}
		}
		return nil
	}
	pos := func(n *yaml.Node) config.Pos { return config.Pos{File: inv.File, Line: n.Line, Column: n.Column} }
	if ps := get(doc, "profiles"); ps != nil && ps.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(ps.Content); i += 2 {
			p := inv.Profiles[ps.Content[i].Value]
			if p == nil {
				continue
			}
			p.Pos = pos(ps.Content[i])
			if as := get(ps.Content[i+1], "arch"); as != nil && as.Kind == yaml.MappingNode {
				for j := 0; j+1 < len(as.Content); j += 2 {
					if a := p.Arch[as.Content[j].Value]; a != nil {
						a.Pos = pos(as.Content[j])
					}
				}
			}
		}
	}
	for name, p := range inv.Profiles {
		if p == nil {
			inv.Profiles[name] = &Profile{}
		}
		inv.Profiles[name].Name = name
	}
	if hs := get(doc, "hosts"); hs != nil && hs.Kind == yaml.SequenceNode {
		for i, n := range hs.Content {
			if i < len(inv.Hosts) && inv.Hosts[i] != nil {
				inv.Hosts[i].Pos = pos(n)
			}
		}
	}
}

type validator struct {
	inv  *Inventory
	dir  string
	read TemplateReader // nil: from disk, relative to dir
	errs config.Errors
}

func (v *validator) bad(p config.Pos, format string, args ...any) {
	v.errs = append(v.errs, &config.Error{File: p.File, Line: p.Line, Column: p.Column, Msg: fmt.Sprintf(format, args...)})
}

// hostNameRe: names appear in URLs (/ks/NAME, /api/v1/hosts/NAME) and logs.
var hostNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// funcs are the template functions of append lines and kickstarts.
var funcs = template.FuncMap{
	"default": func(def, v any) any {
		if s, ok := v.(string); ok && s == "" || v == nil {
			return def
		}
		return v
	},
	"shellquote": ShellQuote,
}

// ShellQuote quotes s as one word of a POSIX shell, nothing in it expanded
// ({{shellquote .InstalledURL}} in a kickstart's %post).
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (v *validator) validate() {
	inv := v.inv
	names := make([]string, 0, len(inv.Profiles))
	for n := range inv.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v.profile(inv.Profiles[n])
	}
	inv.byName = map[string]*Host{}
	inv.byMAC = map[string]*Host{}
	inv.byIP = map[netip.Addr]*Host{}
	inv.byUUID = map[string]*Host{}
	for i, h := range inv.Hosts {
		if h == nil {
			v.bad(config.Pos{File: inv.File}, "hosts[%d] is empty", i)
			continue
		}
		v.host(h)
	}
}

func (v *validator) profile(p *Profile) {
	switch p.Loader {
	case "", LoaderIPXE, LoaderGRUB, LoaderPXELinux:
	default:
		v.bad(p.Pos, "profile %s: loader %q is not one of ipxe, grub, pxelinux", p.Name, p.Loader)
	}
	forms := 0
	if p.Kernel != "" {
		forms++
	}
	if p.Multiboot != nil {
		forms++
	}
	if p.Localboot {
		forms++
	}
	if forms != 1 {
		v.bad(p.Pos, "profile %s: give exactly one of kernel, multiboot or localboot", p.Name)
		return
	}
	if len(p.Arch) > 0 && p.Kernel == "" {
		v.bad(p.Pos, "profile %s: arch gives kernels per architecture: it goes with kernel, not multiboot or localboot", p.Name)
	}
	checkPath := func(what, s string) {
		if s == "" {
			v.bad(p.Pos, "profile %s: %s is empty", p.Name, what)
			return
		}
		if strings.Contains(s, "://") {
			return // a URL (iPXE fetches it as it is)
		}
		for _, e := range strings.Split(strings.ReplaceAll(s, `\`, "/"), "/") {
			if e == ".." {
				v.bad(p.Pos, "profile %s: %s %q leaves the boot tree", p.Name, what, s)
				return
			}
		}
		if strings.ContainsAny(s, " ,") || hasControl(s) {
			v.bad(p.Pos, "profile %s: %s %q contains a space, comma or control character, which PXELINUX cannot pass", p.Name, what, s)
		}
	}
	parse := func(what, text string) *template.Template {
		t, err := template.New(p.Name + " " + what).Funcs(funcs).Option("missingkey=error").Parse(text)
		if err != nil {
			v.bad(p.Pos, "profile %s: %s: %v", p.Name, what, err)
		}
		return t
	}
	switch {
	case p.Kernel != "":
		checkPath("kernel", p.Kernel)
		for _, i := range p.Initrd {
			checkPath("initrd", i)
		}
		p.appendTmpl = parse("append", p.Append)
		v.arch(p, checkPath, parse)
	case p.Multiboot != nil:
		m := p.Multiboot
		if m.Loader == "" {
			m.Loader = "mboot.c32"
		}
		checkPath("multiboot.loader", m.Loader)
		checkPath("multiboot.hypervisor", m.Hypervisor)
		checkPath("multiboot.kernel", m.Kernel)
		for _, i := range m.Initrd {
			checkPath("multiboot.initrd", i)
		}
		if hasControl(m.HypervisorArgs) {
			v.bad(p.Pos, "profile %s: multiboot.hypervisor-args contains a control character", p.Name)
		}
		m.HypervisorArgs = strings.Join(strings.Fields(m.HypervisorArgs), " ")
		if strings.Contains(m.HypervisorArgs+m.KernelArgs, "---") {
			v.bad(p.Pos, "profile %s: multiboot arguments may not contain \"---\" (mboot.c32's module separator)", p.Name)
		}
		if p.Append != "" || len(p.Initrd) > 0 {
			v.bad(p.Pos, "profile %s: with multiboot, use multiboot.kernel-args and multiboot.initrd instead of append and initrd", p.Name)
		}
		p.appendTmpl = parse("multiboot.kernel-args", m.KernelArgs)
	case p.Localboot:
		if p.Append != "" || len(p.Initrd) > 0 || p.Kickstart != "" {
			v.bad(p.Pos, "profile %s: localboot takes no append, initrd or kickstart", p.Name)
		}
	}
	if p.IPAppend < 0 || p.IPAppend > 3 {
		v.bad(p.Pos, "profile %s: ipappend %d is not 0..3", p.Name, p.IPAppend)
	}
	if p.Kickstart != "" {
		read, file := v.read, ""
		if read == nil {
			read, file = DiskTemplates(v.dir), kickstartPath(v.dir, p.Kickstart)
		}
		data, err := read(p.Kickstart)
		if err != nil {
			v.bad(p.Pos, "profile %s: kickstart: %v", p.Name, err)
			return
		}
		t, err := template.New(filepath.Base(p.Kickstart)).Funcs(funcs).Option("missingkey=error").Parse(string(data))
		if err != nil {
			v.bad(p.Pos, "profile %s: kickstart template %v", p.Name, err)
			return
		}
		p.ksTmpl, p.ksFile = t, file
	}
}

func (v *validator) host(h *Host) {
	inv := v.inv
	if !hostNameRe.MatchString(h.Name) {
		v.bad(h.Pos, "host %q: name must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", h.Name)
	} else if o := inv.byName[strings.ToLower(h.Name)]; o != nil {
		v.bad(h.Pos, "host %s: declared twice (first at %s)", h.Name, o.Pos)
	} else {
		inv.byName[strings.ToLower(h.Name)] = h
	}
	macs := append([]string(nil), h.MACs...)
	if h.MAC != "" {
		macs = append([]string{h.MAC}, macs...)
	}
	if len(macs) == 0 {
		v.bad(h.Pos, "host %s: needs a mac", h.Name)
	}
	for _, m := range macs {
		hw, err := ParseMAC(m)
		if err != nil {
			v.bad(h.Pos, "host %s: %v", h.Name, err)
			continue
		}
		key := hw.String()
		if o := inv.byMAC[key]; o != nil {
			v.bad(h.Pos, "host %s: MAC %s is also host %s's (%s)", h.Name, key, o.Name, o.Pos)
			continue
		}
		inv.byMAC[key] = h
		h.hw = append(h.hw, hw)
	}
	if h.IP != "" {
		a, err := netip.ParseAddr(h.IP)
		switch {
		case err != nil || !a.Is4():
			v.bad(h.Pos, "host %s: ip %q is not an IPv4 address", h.Name, h.IP)
		case inv.byIP[a] != nil:
			v.bad(h.Pos, "host %s: ip %s is also host %s's (%s)", h.Name, a, inv.byIP[a].Name, inv.byIP[a].Pos)
		default:
			h.addr = a
			inv.byIP[a] = h
		}
	}
	if h.UUID != "" {
		u := pxelinux.CanonicalUUID(h.UUID)
		switch {
		case u == "":
			v.bad(h.Pos, "host %s: uuid %q is not 32 hex digits", h.Name, h.UUID)
		case inv.byUUID[u] != nil:
			v.bad(h.Pos, "host %s: uuid %s is also host %s's (%s)", h.Name, u, inv.byUUID[u].Name, inv.byUUID[u].Pos)
		default:
			h.uuid = u
			inv.byUUID[u] = h
		}
	}
	if h.Profile == "" {
		v.bad(h.Pos, "host %s: needs a profile", h.Name)
	} else if p := inv.Profiles[h.Profile]; p == nil {
		v.bad(h.Pos, "host %s: unknown profile %q (profiles: %s)", h.Name, h.Profile, strings.Join(inv.profileNames(), ", "))
	} else {
		h.prof = p
	}
	if h.prof != nil {
		// Render now, so that a template that needs a var this host lacks
		// is an error at load time, pointing at the host.
		env := Env{Server: "pxed.invalid:8080", BaseURL: "http://pxed.invalid:8080",
			KickstartURL: "http://pxed.invalid:8080/kickstart", InstalledURL: "http://pxed.invalid:8080/installed"}
		if _, err := h.CommandLine(env); err != nil {
			v.bad(h.Pos, "%v", err)
		}
		for _, cv := range h.prof.variants(true) {
			if _, err := h.commandLine(cv.tmpl, env); err != nil {
				v.bad(h.Pos, "%v (arch %s append)", err, cv.cpu)
			}
		}
		if _, _, err := h.Kickstart(env); err != nil {
			v.bad(h.Pos, "%v", err)
		}
	}
	if h.State == "" {
		h.State = Install
	} else if s, err := ParseState(string(h.State)); err != nil {
		v.bad(h.Pos, "host %s: %v", h.Name, err)
	} else {
		h.State = s
	}
}

func (inv *Inventory) profileNames() []string {
	var out []string
	for n := range inv.Profiles {
		out = append(out, n)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return []string{"none declared"}
	}
	return out
}

// ParseMAC reads an Ethernet address written with ':' or '-' separators,
// in any case ("00:16:3E:72:79:E4", "00-16-3e-72-79-e4").
func ParseMAC(s string) (net.HardwareAddr, error) {
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil || len(hw) != 6 {
		return nil, fmt.Errorf("MAC %q is not an Ethernet address like 00:16:3e:72:79:e4", s)
	}
	return hw, nil
}

// Host returns the host with this name (any case) or MAC, or nil.
func (inv *Inventory) Host(nameOrMAC string) *Host {
	if h := inv.byName[strings.ToLower(nameOrMAC)]; h != nil {
		return h
	}
	if hw, err := ParseMAC(nameOrMAC); err == nil {
		return inv.byMAC[hw.String()]
	}
	return nil
}

// ByMAC returns the host with this hardware address, or nil.
func (inv *Inventory) ByMAC(hw net.HardwareAddr) *Host { return inv.byMAC[hw.String()] }

// ByMACKey returns the host whose MAC in lower-case colon form
// (net.HardwareAddr.String) is key, or nil.
func (inv *Inventory) ByMACKey(key string) *Host { return inv.byMAC[key] }

// ByIP returns the host whose fixed address is a, or nil.
func (inv *Inventory) ByIP(a netip.Addr) *Host { return inv.byIP[a.Unmap()] }

// ByUUID returns the host with this UUID (any form), or nil.
func (inv *Inventory) ByUUID(u string) *Host { return inv.byUUID[pxelinux.CanonicalUUID(u)] }

// Templates lists the kickstart template files the inventory read, so a
// watcher can reload when one changes.
func (inv *Inventory) Templates() []string {
	var out []string
	for _, p := range inv.Profiles {
		if p.ksFile != "" {
			out = append(out, p.ksFile)
		}
	}
	sort.Strings(out)
	return out
}

// hasControl reports a byte below 0x20 or DEL: a line break in a path or
// argument would start a new statement in a generated config.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// maxTemplate bounds a kickstart template.
const maxTemplate = 1 << 20

// readTemplate reads a regular file of at most maxTemplate bytes (a device
// or FIFO named by mistake would block or never end).
func readTemplate(name string) ([]byte, error) {
	// Stat first: opening a FIFO blocks until a writer comes.
	if fi, err := os.Stat(name); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxTemplate+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxTemplate {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxTemplate)
	}
	return data, nil
}
