package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"pxed/internal/bootfs"
	"pxed/internal/config"
	"pxed/internal/httpboot"
	"pxed/internal/lease"
	"pxed/internal/tftp"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// serveFlags binds every `pxed serve` flag to a config key. A flag the user
// sets overrides the config file; one left alone does not.
type serveFlags struct {
	fs         *flag.FlagSet
	configFile string
	parsed     bool
	apply      map[string]func(*config.Config) // flag name -> override
	keys       map[string]string               // flag name -> config key, for errors
}

func newServeFlags(stderr io.Writer) *serveFlags {
	f := &serveFlags{fs: flag.NewFlagSet("serve", flag.ContinueOnError), apply: map[string]func(*config.Config){}, keys: map[string]string{}}
	f.fs.SetOutput(stderr)
	d := config.Default()
	f.fs.StringVar(&f.configFile, "config", "", "native YAML config `file` (optional; flags override it)")

	str := func(name, key, def, help string, set func(*config.Config, string)) {
		v := f.fs.String(name, def, help)
		f.keys[name] = key
		f.apply[name] = func(c *config.Config) { set(c, *v) }
	}
	integer := func(name, key string, def int, help string, set func(*config.Config, int)) {
		v := f.fs.Int(name, def, help)
		f.keys[name] = key
		f.apply[name] = func(c *config.Config) { set(c, *v) }
	}
	boolean := func(name, key string, def bool, help string, set func(*config.Config, bool)) {
		v := f.fs.Bool(name, def, help)
		f.keys[name] = key
		f.apply[name] = func(c *config.Config) { set(c, *v) }
	}
	duration := func(name, key string, def time.Duration, help string, set func(*config.Config, time.Duration)) {
		v := f.fs.Duration(name, def, help)
		f.keys[name] = key
		f.apply[name] = func(c *config.Config) { set(c, *v) }
	}

	str("tftp-root", "tftp.root", d.TFTP.Root, "boot tree `dir`ectory served by TFTP and HTTP (a jail, like tftp-hpa --secure)",
		func(c *config.Config, v string) { c.TFTP.Root = v })
	str("tftp-addr", "tftp.addr", d.TFTP.Addr, "TFTP listen `HOST:PORT` (empty disables TFTP)",
		func(c *config.Config, v string) { c.TFTP.Addr = v })
	str("http-addr", "http.addr", d.HTTP.Addr, "HTTP listen `HOST:PORT` (empty disables HTTP)",
		func(c *config.Config, v string) { c.HTTP.Addr = v })
	str("state-dir", "state-dir", d.StateDir, "`dir`ectory for durable state (leases, host states)",
		func(c *config.Config, v string) { c.StateDir = v })
	str("dhcpd-conf", "dhcp.dhcpd-conf", "", "ISC dhcpd.conf `file` to serve DHCP from (read as it is; see pxed check)",
		func(c *config.Config, v string) { c.DHCP.DHCPDConf = v })
	str("inventory", "inventory", "", "boot inventory `file` (hosts and profiles; reloaded on SIGHUP and on change)",
		func(c *config.Config, v string) { c.Inventory = v })
	str("http-advertise", "http.advertise", "", "`HOST:PORT` clients should use for HTTP in generated files (default: the address they reached, http port)",
		func(c *config.Config, v string) { c.HTTP.Advertise = v })
	boolean("tftp-single-port", "tftp.single-port", d.TFTP.SinglePort, "serve every TFTP transfer from the listening port (for NAT and firewalls)",
		func(c *config.Config, v bool) { c.TFTP.SinglePort = v })
	boolean("tftp-io-uring", "tftp.io-uring", d.TFTP.IOURing, "drive TFTP transfers from io_uring workers where the kernel has io_uring (false: a goroutine per transfer)",
		func(c *config.Config, v bool) { c.TFTP.IOURing = v })
	integer("tftp-io-workers", "tftp.io-workers", d.TFTP.IOWorkers, "io_uring worker threads for TFTP (0: one per two CPUs, at most 4)",
		func(c *config.Config, v int) { c.TFTP.IOWorkers = v })
	integer("tftp-max-blksize", "tftp.max-blksize", d.TFTP.MaxBlksize, "largest TFTP block size granted (8..65464)",
		func(c *config.Config, v int) { c.TFTP.MaxBlksize = v })
	boolean("tftp-mtu-clamp", "tftp.mtu-clamp", d.TFTP.MTUClamp, "clamp TFTP block size to the MTU of the interface the request came in on",
		func(c *config.Config, v bool) { c.TFTP.MTUClamp = v })
	integer("tftp-max-windowsize", "tftp.max-windowsize", d.TFTP.MaxWindowsize, "largest RFC 7440 window granted (1..65535)",
		func(c *config.Config, v int) { c.TFTP.MaxWindowsize = v })
	duration("tftp-timeout", "tftp.timeout", d.TFTP.Timeout, "TFTP retransmission timeout when the client does not negotiate one",
		func(c *config.Config, v time.Duration) { c.TFTP.Timeout = v })
	integer("tftp-retries", "tftp.retries", d.TFTP.Retries, "TFTP retransmissions before a transfer is abandoned",
		func(c *config.Config, v int) { c.TFTP.Retries = v })
	integer("tftp-max-transfers", "tftp.max-transfers", d.TFTP.MaxTransfers, "concurrent TFTP transfers before new requests are refused",
		func(c *config.Config, v int) { c.TFTP.MaxTransfers = v })
	duration("shutdown-grace", "shutdown-grace", d.ShutdownGrace, "on SIGTERM/SIGINT, how long in-flight transfers may finish",
		func(c *config.Config, v time.Duration) { c.ShutdownGrace = v })
	str("log-level", "log.level", d.Log.Level, "debug, info, warn or error",
		func(c *config.Config, v string) { c.Log.Level = v })
	str("log-format", "log.format", d.Log.Format, "text or json",
		func(c *config.Config, v string) { c.Log.Format = v })

	ifaces := &stringList{}
	f.fs.Var(ifaces, "interface", "network interface `name` to serve DHCP on (repeatable; DHCP never listens on an interface not named)")
	f.keys["interface"] = "dhcp.interfaces"
	f.apply["interface"] = func(c *config.Config) { c.DHCP.Interfaces = append([]string(nil), (*ifaces)...) }
	return f
}

// load parses args and returns the configuration they and the config file describe.
func (f *serveFlags) load(args []string) (*config.Config, error) {
	if err := f.fs.Parse(args); err != nil {
		return nil, err
	}
	f.parsed = true
	if f.fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", f.fs.Arg(0))
	}
	c := config.Default()
	if f.configFile != "" {
		var err error
		if c, err = config.Load(f.configFile); err != nil {
			return nil, err
		}
	}
	f.fs.Visit(func(fl *flag.Flag) {
		if apply, ok := f.apply[fl.Name]; ok {
			apply(c)
			c.SetByFlag(f.keys[fl.Name])
		}
	})
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// loadWithArgs is load for commands that also take positional arguments
// (a MAC, a host name), before or after the flags. It returns them.
func (f *serveFlags) loadWithArgs(args []string) (*config.Config, []string, error) {
	var pos, rest []string
	for i, a := range args {
		if !strings.HasPrefix(a, "-") && (i == 0 || !needsValue(f.fs, args[i-1])) {
			pos = append(pos, a)
			continue
		}
		rest = append(rest, a)
	}
	c, err := f.load(rest)
	return c, pos, err
}

// needsValue reports whether arg is a flag that takes the next argument
// as its value ("--config F"), so F is not a positional argument.
func needsValue(fs *flag.FlagSet, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	if strings.Contains(name, "=") {
		return false
	}
	fl := fs.Lookup(name)
	if fl == nil {
		return false
	}
	if b, ok := fl.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return false
	}
	return true
}

// loadFailed reports a load error of command cmd and returns its exit
// status: 0 for -h, 2 otherwise (the flag package has already printed its
// own errors).
func (f *serveFlags) loadFailed(cmd string, err error, stderr io.Writer) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if f.parsed {
		fmt.Fprintf(stderr, "pxed %s: %v\n", cmd, err)
	}
	return 2
}

func newLogger(c *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func cmdServe(args []string, stderr io.Writer) int {
	f := newServeFlags(stderr)
	c, err := f.load(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if !f.parsed {
			return 2 // the flag package has already said what is wrong
		}
		fmt.Fprintf(stderr, "pxed serve: %v\n", err)
		return 2
	}
	log := newLogger(c, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The first signal starts a graceful shutdown; from then on the default
	// action is back, so a second Ctrl-C ends pxed at once.
	context.AfterFunc(ctx, stop)
	if err := serve(ctx, c, log, nil); err != nil {
		log.Error("pxed serve failed", "error", err)
		return 1
	}
	return 0
}

// listening reports the addresses serve bound; tests use it with port 0.
type listening struct {
	TFTP, HTTP net.Addr
}

// serve runs the configured servers until ctx ends, then shuts them down
// gracefully. Every socket is bound before any server starts, so a bad
// address fails the whole command instead of leaving half a server running.
func serve(ctx context.Context, c *config.Config, log *slog.Logger, ready func(listening)) error {
	if err := os.MkdirAll(c.StateDir, 0o750); err != nil {
		return fmt.Errorf("state directory: %w (set --state-dir)", err)
	}
	inv, err := loadInventory(c)
	if err != nil {
		return err
	}
	var tree *bootfs.Tree
	if c.TFTP.Addr != "" || c.HTTP.Addr != "" {
		if tree, err = bootfs.Open(c.TFTP.Root); err != nil {
			return fmt.Errorf("%w (set --tftp-root)", err)
		}
		defer tree.Close()
	}
	plan, warns, err := compileNetwork(c, inv, tree)
	for _, w := range warns {
		log.Warn("dhcp config: " + w.String())
	}
	if err != nil {
		return err
	}
	if plan == nil {
		log.Info("DHCP off: no subnet configured")
	}
	if c.TFTP.Addr == "" && c.HTTP.Addr == "" && plan == nil {
		return errors.New("nothing to serve: no DHCP subnet, and both --tftp-addr and --http-addr are empty")
	}
	var boot *bootInventory
	if inv != nil {
		if boot, err = openBootInventory(c, inv, tree, log); err != nil {
			return err
		}
	}
	var dhcpSvc *dhcpService
	if plan != nil {
		if dhcpSvc, err = openDHCP(c, plan, log); err != nil {
			return err
		}
		defer dhcpSvc.close()
		if boot != nil {
			boot.useLeases(dhcpSvc.alloc)
			boot.setPlan = dhcpSvc.srv.SetPlan
		}
	}
	var files *bootfs.Layered
	if tree != nil {
		files = bootfs.NewLayered(tree, log)
		if boot != nil {
			files.SetGenerator(boot.live)
		}
	}
	var hosts *apiHosts
	if boot != nil {
		hosts = &apiHosts{live: boot.live}
	}
	var ctlLn net.Listener
	if dhcpSvc != nil || boot != nil {
		if ctlLn, err = listenControl(c.StateDir); err != nil {
			return fmt.Errorf("control socket: %w", err)
		}
		defer ctlLn.Close()
	}

	var ln listening
	var tftpConn *net.UDPConn
	if c.TFTP.Addr != "" {
		network := "udp4"
		if host, _, _ := net.SplitHostPort(c.TFTP.Addr); strings.Contains(host, ":") {
			network = "udp6"
		}
		ua, err := net.ResolveUDPAddr(network, c.TFTP.Addr)
		if err != nil {
			return fmt.Errorf("tftp address: %w", err)
		}
		if tftpConn, err = net.ListenUDP(network, ua); err != nil {
			return fmt.Errorf("tftp: %w", err)
		}
		ln.TFTP = tftpConn.LocalAddr()
	}
	var httpLn net.Listener
	if c.HTTP.Addr != "" {
		if httpLn, err = net.Listen("tcp", c.HTTP.Addr); err != nil {
			if tftpConn != nil {
				tftpConn.Close()
			}
			return fmt.Errorf("http: %w", err)
		}
		ln.HTTP = httpLn.Addr()
		if boot != nil {
			boot.live.SetHTTPPort(httpLn.Addr().(*net.TCPAddr).Port)
		}
	}

	// A server that fails stops the others: half a boot server is worse than none.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	fail := func(err error) { errs <- err; cancel() }
	if tftpConn != nil {
		srv := &tftp.Server{
			FS:            files,
			Root:          tree.Dir(),
			Logger:        log,
			SinglePort:    c.TFTP.SinglePort,
			NoRing:        !c.TFTP.IOURing,
			RingWorkers:   c.TFTP.IOWorkers,
			MaxBlksize:    c.TFTP.MaxBlksize,
			NoMTUClamp:    !c.TFTP.MTUClamp,
			MaxWindowsize: c.TFTP.MaxWindowsize,
			Timeout:       c.TFTP.Timeout,
			Retries:       c.TFTP.Retries,
			MaxTransfers:  c.TFTP.MaxTransfers,
			Grace:         c.ShutdownGrace,
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ctx, tftpConn); err != nil {
				fail(err)
			}
		}()
		log.Info("tftp listening", "addr", ln.TFTP.String(), "root", tree.Dir(), "single-port", c.TFTP.SinglePort)
	}
	if httpLn != nil {
		var handler http.Handler = &httpboot.Files{FS: files, Logger: log}
		if boot != nil {
			mux := http.NewServeMux()
			mux.Handle("/api/", (&httpboot.API{Token: boot.token, Hosts: hosts, Logger: log}).Handler())
			mux.Handle("/", handler)
			handler = mux
		}
		hs := &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       60 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := hs.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fail(fmt.Errorf("http: %w", err))
			}
		}()
		go func() {
			defer wg.Done()
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownGrace)
			defer cancel()
			if err := hs.Shutdown(sctx); err != nil {
				hs.Close()
			}
		}()
		log.Info("http listening", "addr", ln.HTTP.String(), "root", tree.Dir())
	}
	if dhcpSvc != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := dhcpSvc.serve(ctx); err != nil {
				fail(fmt.Errorf("dhcp: %w", err))
			}
		}()
		log.Info("dhcp serving", "interfaces", c.DHCP.Interfaces, "subnets", plan.Subnets(), "proxy", plan.Proxy, "authoritative", plan.Authoritative)
	}
	if ctlLn != nil {
		var alloc *lease.Allocator
		if dhcpSvc != nil {
			alloc = dhcpSvc.alloc
		}
		ctl := &http.Server{Handler: controlHandler(alloc, hosts), ReadHeaderTimeout: 5 * time.Second}
		go ctl.Serve(ctlLn)
	}
	if boot != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			boot.watch(ctx, time.Second)
		}()
		log.Info("inventory serving", "file", c.Inventory, "hosts", len(inv.Hosts), "profiles", len(inv.Profiles), "states", boot.states.Path())
	}
	if ready != nil {
		ready(ln)
	}
	<-ctx.Done()
	log.Info("shutting down", "grace", c.ShutdownGrace)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}
