package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"pxed/internal/config"
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

	bind(f, f.fs.String, "tftp-root", "tftp.root", d.TFTP.Root, "boot tree `dir`ectory served by TFTP and HTTP (a jail, like tftp-hpa --secure)",
		func(c *config.Config) *string { return &c.TFTP.Root })
	bind(f, f.fs.String, "tftp-addr", "tftp.addr", d.TFTP.Addr, "TFTP listen `HOST:PORT` (empty disables TFTP)",
		func(c *config.Config) *string { return &c.TFTP.Addr })
	bind(f, f.fs.String, "http-addr", "http.addr", d.HTTP.Addr, "HTTP listen `HOST:PORT` (empty disables HTTP)",
		func(c *config.Config) *string { return &c.HTTP.Addr })
	bind(f, f.fs.Bool, "strict", "strict", false, "dhcpd.conf statements pxed skips (ISC knows them, pxed does not model them) are errors, not warnings",
		func(c *config.Config) *bool { return &c.Strict })
	bind(f, f.fs.String, "metrics-addr", "metrics.addr", d.Metrics.Addr, "where Prometheus `/metrics` is served: \"http\" on the HTTP listener, a HOST:PORT of its own, empty for none",
		func(c *config.Config) *string { return &c.Metrics.Addr })
	bind(f, f.fs.String, "state-dir", "state-dir", d.StateDir, "`dir`ectory for durable state (leases, host states)",
		func(c *config.Config) *string { return &c.StateDir })
	bind(f, f.fs.String, "store", "store.url", "", "where leases live: `bolt:PATH` (default bolt:<state-dir>/leases.db) or etcd://HOST:PORT[,HOST:PORT...] shared by several pxed",
		func(c *config.Config) *string { return &c.Store.URL })
	bind(f, f.fs.String, "store-prefix", "store.prefix", d.Store.Prefix, "etcd key `prefix` shared by the pxed of one cluster",
		func(c *config.Config) *string { return &c.Store.Prefix })
	bind(f, f.fs.String, "etcd-ca", "store.etcd-ca", "", "PEM `file` of the CA that signed the etcd members' certificates (TLS to etcd)",
		func(c *config.Config) *string { return &c.Store.CA })
	bind(f, f.fs.String, "etcd-cert", "store.etcd-cert", "", "PEM `file` of pxed's client certificate for etcd",
		func(c *config.Config) *string { return &c.Store.Cert })
	bind(f, f.fs.String, "etcd-key", "store.etcd-key", "", "PEM `file` of the key of --etcd-cert",
		func(c *config.Config) *string { return &c.Store.Key })
	bind(f, f.fs.String, "dhcpd-conf", "dhcp.dhcpd-conf", "", "ISC dhcpd.conf `file` to serve DHCP from (read as it is; see pxed check)",
		func(c *config.Config) *string { return &c.DHCP.DHCPDConf })
	bind(f, f.fs.String, "inventory", "inventory", "", "boot inventory `file` (hosts and profiles; reloaded on SIGHUP and on change)",
		func(c *config.Config) *string { return &c.Inventory })
	bind(f, f.fs.String, "http-advertise", "http.advertise", "", "`HOST:PORT` clients should use for HTTP in generated files (default: the address they reached, http port)",
		func(c *config.Config) *string { return &c.HTTP.Advertise })
	bind(f, f.fs.Int, "http-max-conns", "http.max-conns", d.HTTP.MaxConns, "HTTP connections open at once, all clients together; more get a 503",
		func(c *config.Config) *int { return &c.HTTP.MaxConns })
	bind(f, f.fs.Int, "http-max-conns-per-ip", "http.max-conns-per-ip", d.HTTP.MaxConnsPerIP, "HTTP connections one client address (IPv6: one /64) may hold; more get a 503",
		func(c *config.Config) *int { return &c.HTTP.MaxConnsPerIP })
	bind(f, f.fs.Int, "http-min-rate", "http.min-rate", d.HTTP.MinRate, "slowest HTTP download in `bytes/s` (on average, with 30 s of slack); slower clients are dropped",
		func(c *config.Config) *int { return &c.HTTP.MinRate })
	bind(f, f.fs.Bool, "tftp-single-port", "tftp.single-port", d.TFTP.SinglePort, "serve every TFTP transfer from the listening port (for NAT and firewalls)",
		func(c *config.Config) *bool { return &c.TFTP.SinglePort })
	bind(f, f.fs.Bool, "tftp-io-uring", "tftp.io-uring", d.TFTP.IOURing, "drive TFTP transfers from io_uring workers where the kernel has io_uring (false: a goroutine per transfer)",
		func(c *config.Config) *bool { return &c.TFTP.IOURing })
	bind(f, f.fs.Int, "tftp-io-workers", "tftp.io-workers", d.TFTP.IOWorkers, "io_uring worker threads for TFTP (0: one per two CPUs, at most 4)",
		func(c *config.Config) *int { return &c.TFTP.IOWorkers })
	bind(f, f.fs.Int, "tftp-max-blksize", "tftp.max-blksize", d.TFTP.MaxBlksize, "largest TFTP block size granted (8..65464)",
		func(c *config.Config) *int { return &c.TFTP.MaxBlksize })
	bind(f, f.fs.Bool, "tftp-mtu-clamp", "tftp.mtu-clamp", d.TFTP.MTUClamp, "clamp TFTP block size to the MTU of the interface the request came in on",
		func(c *config.Config) *bool { return &c.TFTP.MTUClamp })
	bind(f, f.fs.Int, "tftp-max-windowsize", "tftp.max-windowsize", d.TFTP.MaxWindowsize, "largest RFC 7440 window granted (1..65535)",
		func(c *config.Config) *int { return &c.TFTP.MaxWindowsize })
	bind(f, f.fs.Duration, "tftp-timeout", "tftp.timeout", d.TFTP.Timeout, "TFTP retransmission timeout when the client does not negotiate one",
		func(c *config.Config) *time.Duration { return &c.TFTP.Timeout })
	bind(f, f.fs.Duration, "tftp-min-timeout", "tftp.min-timeout", d.TFTP.MinTimeout, "floor of the adaptive TFTP retransmission timeout (at or above --tftp-timeout: a fixed timeout)",
		func(c *config.Config) *time.Duration { return &c.TFTP.MinTimeout })
	bind(f, f.fs.Int, "tftp-retries", "tftp.retries", d.TFTP.Retries, "TFTP retransmissions before a transfer is abandoned",
		func(c *config.Config) *int { return &c.TFTP.Retries })
	bind(f, f.fs.Int, "tftp-max-transfers", "tftp.max-transfers", d.TFTP.MaxTransfers, "concurrent TFTP transfers before new requests are refused",
		func(c *config.Config) *int { return &c.TFTP.MaxTransfers })
	bind(f, f.fs.Int, "tftp-max-transfers-per-client", "tftp.max-transfers-per-client", d.TFTP.MaxTransfersPerClient, "concurrent TFTP transfers of one client address (IPv6: one /64); at most half of --tftp-max-transfers",
		func(c *config.Config) *int { return &c.TFTP.MaxTransfersPerClient })
	bind(f, f.fs.Duration, "shutdown-grace", "shutdown-grace", d.ShutdownGrace, "on SIGTERM/SIGINT, how long in-flight transfers may finish",
		func(c *config.Config) *time.Duration { return &c.ShutdownGrace })
	bind(f, f.fs.String, "log-level", "log.level", d.Log.Level, "debug, info, warn or error",
		func(c *config.Config) *string { return &c.Log.Level })
	bind(f, f.fs.String, "log-format", "log.format", d.Log.Format, "text or json",
		func(c *config.Config) *string { return &c.Log.Format })

	ifaces := &stringList{}
	f.fs.Var(ifaces, "interface", "network interface `name` to serve DHCP on (repeatable; DHCP never listens on an interface not named)")
	f.keys["interface"] = "dhcp.interfaces"
	f.apply["interface"] = func(c *config.Config) { c.DHCP.Interfaces = append([]string(nil), (*ifaces)...) }
	return f
}

// bind defines flag name with define (f.fs.String, f.fs.Int, ...) and
// records that, when set, it overrides config key through field.
func bind[T any](f *serveFlags, define func(name string, def T, help string) *T, name, key string, def T, help string, field func(*config.Config) *T) {
	v := define(name, def, help)
	f.keys[name] = key
	f.apply[name] = func(c *config.Config) { *field(c) = *v }
}

// load parses args and returns the configuration they and the config file describe.
func (f *serveFlags) load(args []string) (*config.Config, error) {
	c, pos, err := f.loadWithArgs(args)
	if err == nil && len(pos) > 0 {
		return nil, fmt.Errorf("unexpected argument %q", pos[0])
	}
	return c, err
}

// loadWithArgs is load for commands that also take positional arguments
// (a MAC, a host name), before, between or after the flags. It returns them.
func (f *serveFlags) loadWithArgs(args []string) (*config.Config, []string, error) {
	pos, err := parseArgs(f.fs, args)
	if err != nil {
		return nil, nil, err
	}
	f.parsed = true
	c := config.Default()
	if f.configFile != "" {
		if c, err = config.Load(f.configFile); err != nil {
			return nil, nil, err
		}
	}
	f.fs.Visit(func(fl *flag.Flag) {
		if apply, ok := f.apply[fl.Name]; ok {
			apply(c)
			c.SetByFlag(f.keys[fl.Name])
		}
	})
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	return c, pos, nil
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
