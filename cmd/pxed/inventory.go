package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"pxed/internal/bootfs"
	"pxed/internal/config"
	"pxed/internal/dhcp"
	"pxed/internal/inventory"
	"pxed/internal/lease"
)

// hostStateName is the host-state file inside the state directory.
const hostStateName = "hosts.json"

// apiTokenName is the default API token file inside the state directory.
const apiTokenName = "api-token"

// loadInventory reads the configured inventory; nil when none is configured.
func loadInventory(c *config.Config) (*inventory.Inventory, error) {
	if c.Inventory == "" {
		return nil, nil
	}
	return inventory.Load(c.Inventory)
}

// efiBootFiles are the UEFI x64 boot files pxed offers inventory hosts when
// no DHCP scope names one, in order of preference: iPXE works under every
// firmware tested here, syslinux.efi does not (see LAB-NOTES).
var efiBootFiles = []string{"ipxe.efi", "snponly.efi", "syslinux.efi"}

// httpServer is HOST:PORT of the HTTP server for generated files and boot
// file URLs; "{server}" stands for the DHCP server's own address.
func httpServer(c *config.Config) string {
	if c.HTTP.Advertise != "" {
		return c.HTTP.Advertise
	}
	if c.HTTP.Addr == "" {
		return ""
	}
	_, port, _ := net.SplitHostPort(c.HTTP.Addr)
	return "{server}:" + port
}

func httpPort(c *config.Config) int {
	_, port, _ := net.SplitHostPort(c.HTTP.Addr)
	p, _ := strconv.Atoi(port)
	return p
}

// inventoryDHCP says how inventory hosts are announced: iPXE gets the host's
// HTTP script, UEFI x64 firmware an EFI boot file found in the tree.
func inventoryDHCP(c *config.Config, tree *bootfs.Tree) inventory.DHCPOptions {
	var o inventory.DHCPOptions
	if s := httpServer(c); s != "" {
		o.IPXEScript = "http://" + s + "/ipxe/{mac}"
	}
	if tree != nil {
		for _, f := range efiBootFiles {
			if _, err := tree.Stat(f); err == nil {
				o.EFIBootFile = f
				break
			}
		}
	}
	return o
}

// buildNetwork is the DHCP model with the inventory's hosts merged in; nil
// when DHCP is off.
func buildNetwork(c *config.Config, inv *inventory.Inventory, tree *bootfs.Tree) (*config.Network, []dhcp.Warning, error) {
	n, warns, err := loadNetwork(c)
	if err != nil || n == nil || inv == nil {
		if err == nil && n == nil && inv != nil {
			fixed := 0
			for _, h := range inv.Hosts {
				if h.Addr().IsValid() {
					fixed++
				}
			}
			if fixed > 0 {
				warns = append(warns, dhcp.Warning{Pos: config.Pos{File: inv.File}, Msg: fmt.Sprintf("%d host ip(s) are not handed out: pxed's DHCP is off (they still name the hosts' hex-IP configs; your DHCP server must give those addresses)", fixed)})
			}
		}
		return n, warns, err
	}
	m, err := inv.Merge(n, inventoryDHCP(c, tree))
	return m, warns, err
}

// apiToken reads the API token, creating the default token file with a
// random token on first start.
func apiToken(c *config.Config) (string, error) {
	path := c.API.TokenFile
	if path == "" {
		path = filepath.Join(c.StateDir, apiTokenName)
	}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		tok := strings.TrimSpace(string(data))
		if len(tok) < 16 {
			return "", fmt.Errorf("api token %s: shorter than 16 characters", path)
		}
		return tok, nil
	case errors.Is(err, fs.ErrNotExist) && c.API.TokenFile == "":
		b := make([]byte, 24)
		rand.Read(b)
		tok := hex.EncodeToString(b)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", fmt.Errorf("api token: %w", err)
		}
		_, err = f.WriteString(tok + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", fmt.Errorf("api token: %w", err)
		}
		return tok, nil
	default:
		return "", fmt.Errorf("api token: %w", err)
	}
}

// bootInventory is the running inventory and the files it watches.
type bootInventory struct {
	c      *config.Config
	live   *inventory.Live
	states *inventory.StateFile
	token  string
	log    *slog.Logger
	tree   *bootfs.Tree
	// setPlan installs a recompiled DHCP plan (nil without DHCP).
	setPlan func(*dhcp.Plan) error
}

func openBootInventory(c *config.Config, inv *inventory.Inventory, tree *bootfs.Tree, log *slog.Logger) (*bootInventory, error) {
	states, err := inventory.OpenStateFile(filepath.Join(c.StateDir, hostStateName))
	if err != nil {
		return nil, err
	}
	tok, err := apiToken(c)
	if err != nil {
		return nil, err
	}
	b := &bootInventory{c: c, states: states, token: tok, log: log, tree: tree}
	b.live = inventory.NewLive(inv, states, inventory.Options{
		HTTPPort: httpPort(c), Server: c.HTTP.Advertise, Secret: []byte(tok), Logger: log,
	})
	b.reportShadows(inv)
	return b, nil
}

// useLeases lets hex-IP config names find hosts with dynamic addresses.
func (b *bootInventory) useLeases(alloc *lease.Allocator) {
	b.live.SetLeaseMAC(func(a netip.Addr) (net.HardwareAddr, bool) {
		l, ok := alloc.LeaseAt(a)
		if !ok || l.State != lease.Bound {
			return nil, false
		}
		return l.MAC, true
	})
}

// reportShadows warns about files on disk that hide generated configs
// (disk files win, so such a host never sees its inventory entry).
func (b *bootInventory) reportShadows(inv *inventory.Inventory) {
	if b.tree == nil {
		return
	}
	for _, h := range inv.Hosts {
		for _, name := range h.Names() {
			if _, err := b.tree.Stat(name); err == nil {
				b.log.Warn("inventory: a file on disk shadows the generated config; remove it to serve the inventory's", "host", h.Name, "file", filepath.Join(b.tree.Dir(), name))
			}
		}
	}
}

// reload reads the inventory again and, with DHCP, recompiles the plan. A
// bad inventory (or one DHCP cannot take) keeps the running one.
func (b *bootInventory) reload(why string) {
	inv, err := inventory.Load(b.c.Inventory)
	if err == nil && b.setPlan != nil {
		var plan *dhcp.Plan
		var warns []dhcp.Warning
		plan, warns, err = compileNetwork(b.c, inv, b.tree)
		for _, w := range warns {
			b.log.Warn("dhcp config: " + w.String())
		}
		if err == nil && plan == nil {
			err = errors.New("the reloaded configuration has no DHCP subnet; restart pxed to turn DHCP off")
		}
		if err == nil {
			err = b.setPlan(plan)
		}
	}
	if err != nil {
		b.log.Error("inventory reload failed; still serving the previous inventory", "file", b.c.Inventory, "trigger", why, "error", err)
		return
	}
	b.live.Swap(inv)
	b.reportShadows(inv)
	b.log.Info("inventory reloaded", "file", b.c.Inventory, "trigger", why, "hosts", len(inv.Hosts), "profiles", len(inv.Profiles))
}

// watch reloads on SIGHUP and when the inventory file or a kickstart
// template changes (polled: editors replace files in ways inotify watches
// of one inode miss).
func (b *bootInventory) watch(ctx context.Context, every time.Duration) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	tick := time.NewTicker(every)
	defer tick.Stop()
	last := b.fingerprint()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			b.reload("SIGHUP")
			last = b.fingerprint()
		case <-tick.C:
			if fp := b.fingerprint(); fp != last {
				last = fp
				b.reload("file changed")
			}
		}
	}
}

// fingerprint identifies the current contents of the watched files.
func (b *bootInventory) fingerprint() string {
	var sb strings.Builder
	for _, f := range append([]string{b.c.Inventory}, b.live.Inventory().Templates()...) {
		fi, err := os.Stat(f)
		if err != nil {
			fmt.Fprintf(&sb, "%s:missing;", f)
			continue
		}
		var ino uint64
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino = st.Ino
		}
		fmt.Fprintf(&sb, "%s:%d:%d:%d;", f, fi.ModTime().UnixNano(), fi.Size(), ino)
	}
	return sb.String()
}

// apiHosts adapts the live inventory to the HTTP API and control socket.
type apiHosts struct{ live *inventory.Live }

// hostView is a host as the API and `pxed host list` show it.
type hostView struct {
	Name     string     `json:"name"`
	MACs     []string   `json:"macs"`
	IP       string     `json:"ip,omitempty"`
	UUID     string     `json:"uuid,omitempty"`
	Profile  string     `json:"profile"`
	State    string     `json:"state"`
	Declared string     `json:"declared"`
	Changed  *time.Time `json:"changed,omitempty"`
	By       string     `json:"by,omitempty"`
}

func (a apiHosts) view(h *inventory.Host) hostView {
	st, rec := a.live.State(h)
	v := hostView{Name: h.Name, Profile: h.Profile, State: string(st), Declared: string(h.State), UUID: h.CanonicalUUID()}
	for _, hw := range h.HWAddrs() {
		v.MACs = append(v.MACs, hw.String())
	}
	if h.Addr().IsValid() {
		v.IP = h.Addr().String()
	}
	if rec != nil {
		v.Changed, v.By = &rec.Changed, rec.By
	}
	return v
}

func (a apiHosts) Resolve(n string) (string, bool) {
	if h := a.live.Inventory().Host(n); h != nil {
		return h.Name, true
	}
	return "", false
}

func (a apiHosts) SetState(name, state, by string) error {
	st, err := inventory.ParseState(state)
	if err != nil {
		return err
	}
	_, err = a.live.SetState(name, st, by)
	return err
}

func (a apiHosts) CheckHostToken(name, tok string) bool { return a.live.CheckHostToken(name, tok) }

func (a apiHosts) List() any {
	out := []hostView{}
	for _, h := range a.live.Inventory().Hosts {
		out = append(out, a.view(h))
	}
	return out
}

func (a apiHosts) Get(name string) any {
	if h := a.live.Inventory().Host(name); h != nil {
		return a.view(h)
	}
	return nil
}
