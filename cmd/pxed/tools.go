package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"

	"pxed/internal/bootfs"
	"pxed/internal/config"
	"pxed/internal/config/isc"
	"pxed/internal/lease"
	"pxed/internal/lease/bolt"
	"pxed/internal/pxelinux"
)

// cmdCheck validates what `pxed serve` would run with the same flags,
// without binding anything.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	f := newServeFlags(stderr)
	f.fs.Init("check", flag.ContinueOnError)
	c, err := f.load(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if f.parsed {
			fmt.Fprintf(stderr, "pxed check: %v\n", err)
		}
		return 1
	}
	inv, err := loadInventory(c)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	var tree *bootfs.Tree
	if t, err := bootfs.Open(c.TFTP.Root); err == nil {
		tree = t
		defer t.Close()
	}
	plan, warns, err := compileNetwork(c, inv, tree)
	for _, w := range warns {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	if inv != nil {
		fmt.Fprintf(stdout, "ok: inventory %s: %d host(s), %d profile(s)\n", c.Inventory, len(inv.Hosts), len(inv.Profiles))
	}
	if plan == nil {
		fmt.Fprintln(stdout, "ok: configuration is valid; DHCP is off (no subnet)")
		return 0
	}
	if len(c.DHCP.Interfaces) == 0 {
		fmt.Fprintln(stderr, "error: subnets are configured but no --interface is named; pxed serve would refuse to start")
		return 1
	}
	fmt.Fprintf(stdout, "ok: %d subnet(s) %v, %d dynamic pool(s), %d fixed address(es); DHCP on %v\n",
		len(plan.Subnets()), plan.Subnets(), len(plan.Pools()), len(plan.Reserved), c.DHCP.Interfaces)
	return 0
}

// cmdImport prints an ISC dhcpd.conf as pxed's native YAML.
func cmdImport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pxed import DHCPD.CONF\n\nPrints the equivalent native YAML (the dhcp: section of a pxed config) on stdout.")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	n, warns, err := isc.ParseFile(fs.Arg(0))
	for _, w := range warns {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(struct {
		DHCP *config.Network `yaml:"dhcp"`
	}{n}); err != nil {
		fmt.Fprintf(stderr, "pxed import: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "# Imported from %s by pxed import.\n# Add `interfaces: [IFACE]` under dhcp:, or pass --interface.\n", fs.Arg(0))
	stdout.Write(out.Bytes())
	return 0
}

// controlSocketName is the Unix socket in the state directory where a
// running `pxed serve` answers local queries (pxed leases). The state
// directory's permissions are its access control.
const controlSocketName = "control.sock"

// controlHandler serves the control socket.
func controlHandler(alloc *lease.Allocator, hosts *apiHosts) http.Handler {
	mux := http.NewServeMux()
	if alloc != nil {
		mux.HandleFunc("GET /leases", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(leaseViews(alloc.List()))
		})
	}
	if hosts != nil {
		mux.HandleFunc("GET /hosts", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(hosts.List())
		})
		// POST /hosts/NAME/state?to=install|local: pxed host install|local.
		mux.HandleFunc("POST /hosts/{host}/state", func(w http.ResponseWriter, r *http.Request) {
			name, ok := hosts.Resolve(r.PathValue("host"))
			if !ok {
				http.Error(w, fmt.Sprintf("no host %q in the inventory", r.PathValue("host")), http.StatusNotFound)
				return
			}
			if err := hosts.SetState(name, r.URL.Query().Get("to"), "pxed host"); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(hosts.Get(name))
		})
	}
	return mux
}

// leaseView is a lease as `pxed leases` prints it and the control socket
// sends it.
type leaseView struct {
	IP       string    `json:"ip"`
	MAC      string    `json:"mac"`
	Client   string    `json:"client"`
	State    string    `json:"state"`
	Start    time.Time `json:"start"`
	Expiry   time.Time `json:"expiry"` // zero: never (BOOTP)
	Hostname string    `json:"hostname,omitempty"`
	UUID     string    `json:"uuid,omitempty"`
}

func leaseViews(ls []lease.Lease) []leaseView {
	out := make([]leaseView, 0, len(ls))
	for _, l := range ls {
		out = append(out, leaseView{IP: l.IP.String(), MAC: l.MAC.String(), Client: string(l.Client), State: l.State.String(),
			Start: l.Start, Expiry: l.Expiry, Hostname: l.Hostname, UUID: l.UUID})
	}
	return out
}

// listenControl opens the control socket, replacing a stale one.
func listenControl(stateDir string) (net.Listener, error) {
	path := filepath.Join(stateDir, controlSocketName)
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("another pxed serve is running with state dir %s", stateDir)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	os.Chmod(path, 0o600)
	return ln, nil
}

// cmdLeases lists leases: from the running server through its control
// socket, or from the database when no server holds it.
func cmdLeases(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("leases", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateDir := fs.String("state-dir", config.Default().StateDir, "pxed's state `dir`ectory")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	leases, err := readLeases(*stateDir)
	if err != nil {
		fmt.Fprintf(stderr, "pxed leases: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(leases)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IP\tMAC\tSTATE\tEXPIRES\tHOSTNAME")
	for _, l := range leases {
		exp := "never"
		if !l.Expiry.IsZero() && l.Expiry.Unix() > 0 {
			exp = l.Expiry.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.IP, l.MAC, l.State, exp, l.Hostname)
	}
	tw.Flush()
	return 0
}

func readLeases(stateDir string) ([]leaseView, error) {
	sock := filepath.Join(stateDir, controlSocketName)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	if resp, err := client.Get("http://pxed/leases"); err == nil {
		defer resp.Body.Close()
		var out []leaseView
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return nil, fmt.Errorf("reading from the running server: %w", err)
		}
		return out, nil
	}
	path := filepath.Join(stateDir, leaseDBName)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no lease database: %w (is --state-dir right?)", err)
	}
	st, err := bolt.OpenReadOnly(path)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	ls, err := st.Load(context.Background())
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ls, func(a, b lease.Lease) int { return a.IP.Compare(b.IP) })
	return leaseViews(ls), nil
}

// cmdHexIP prints each IPv4 address in the upper-case hex form PXELINUX
// looks for in pxelinux.cfg/ (gethostip -x).
func cmdHexIP(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: pxed hexip IP...\n\nPrints each IPv4 address as PXELINUX names its config file: pxed hexip 192.0.2.177 -> C00002B1")
		return 2
	}
	code := 0
	for _, a := range args {
		ip, err := netip.ParseAddr(a)
		if err != nil || !ip.Is4() {
			fmt.Fprintf(stderr, "pxed hexip: %q is not an IPv4 address\n", a)
			code = 1
			continue
		}
		fmt.Fprintln(stdout, pxelinux.HexIP(ip))
	}
	return code
}
