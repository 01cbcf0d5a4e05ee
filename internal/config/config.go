// Package config is pxed's native YAML configuration: the model, its
// defaults, and validation whose errors name file:line:column.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"pxed/internal/pos"
)

// Config is everything `pxed serve` needs. Its YAML form uses the same names
// as the command-line flags.
type Config struct {
	StateDir      string        `yaml:"state-dir"`
	ShutdownGrace time.Duration `yaml:"shutdown-grace"`
	Log           Log           `yaml:"log"`
	TFTP          TFTP          `yaml:"tftp"`
	HTTP          HTTP          `yaml:"http"`
	DHCP          DHCP          `yaml:"dhcp"`
	// Inventory is the boot inventory file (hosts and profiles); empty:
	// none. It is reloaded on SIGHUP and when the file changes.
	Inventory string  `yaml:"inventory"`
	API       API     `yaml:"api"`
	Metrics   Metrics `yaml:"metrics"`
	// Store is where leases live (bolt by default, or a shared etcd).
	Store Store `yaml:"store"`
	// Strict makes the dhcpd.conf statements pxed does not model (ISC
	// dhcpd knows them; pxed skips them with a warning) errors.
	Strict bool `yaml:"strict"`

	// file is where the config came from, for messages; empty for defaults.
	file     string
	root     *yaml.Node
	fromFlag map[string]bool
}

// SetByFlag records that the value at a dotted key path ("tftp.addr") came
// from a command-line flag, so that errors about it do not point into the file.
func (c *Config) SetByFlag(path string) {
	if c.fromFlag == nil {
		c.fromFlag = map[string]bool{}
	}
	c.fromFlag[path] = true
}

// Log selects the log format and level.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// TFTP configures the TFTP server.
type TFTP struct {
	Root          string        `yaml:"root"`
	Addr          string        `yaml:"addr"` // empty disables TFTP
	SinglePort    bool          `yaml:"single-port"`
	IOURing       bool          `yaml:"io-uring"`   // drive ephemeral-port transfers with io_uring where the kernel has it
	IOWorkers     int           `yaml:"io-workers"` // io_uring worker threads; 0: one per two CPUs, 1..4
	MaxBlksize    int           `yaml:"max-blksize"`
	MTUClamp      bool          `yaml:"mtu-clamp"`
	MaxWindowsize int           `yaml:"max-windowsize"`
	Timeout       time.Duration `yaml:"timeout"`
	MinTimeout    time.Duration `yaml:"min-timeout"` // floor of the adaptive timeout; >= Timeout: fixed
	Retries       int           `yaml:"retries"`
	MaxTransfers  int           `yaml:"max-transfers"`
	// MaxTransfersPerClient caps the transfers of one client address (an
	// IPv6 /64) at once; at most half of MaxTransfers applies.
	MaxTransfersPerClient int `yaml:"max-transfers-per-client"`
}

// HTTP configures the HTTP boot server.
type HTTP struct {
	Addr string `yaml:"addr"` // empty disables HTTP
	// Advertise is HOST:PORT of the HTTP server as clients should reach it,
	// written into generated files (kickstart URLs, iPXE boot files).
	// Empty: the address each client reached pxed on, with Addr's port.
	Advertise string `yaml:"advertise"`
	// MaxConns caps the connections open at once, all clients together;
	// MaxConnsPerIP those of one client address (an IPv6 /64). Connections
	// over a cap get a 503 and are closed at once.
	MaxConns      int `yaml:"max-conns"`
	MaxConnsPerIP int `yaml:"max-conns-per-ip"`
	// MinRate (bytes/s) is the slowest a response may be taken: a client
	// must keep up with it on average, with 30 s of slack, or be dropped.
	MinRate int `yaml:"min-rate"`
}

// API configures pxed's HTTP API (/api/v1/, served on http.addr).
type API struct {
	// TokenFile holds the API token. Empty: <state-dir>/api-token, created
	// with a random token (mode 0600) on first start.
	TokenFile string `yaml:"token-file"`
}

// Metrics configures the Prometheus metrics.
type Metrics struct {
	// Addr is where /metrics is served: MetricsOnHTTP (the default) on
	// the HTTP listener, a HOST:PORT of its own, or empty for none.
	Addr string `yaml:"addr"`
}

// MetricsOnHTTP is Metrics.Addr for /metrics on the HTTP listener.
const MetricsOnHTTP = "http"

// DHCP configures the DHCP server: either an ISC dhcpd.conf (DHCPDConf) or
// the same model written inline (Network). DHCP is off when no subnet is
// configured.
type DHCP struct {
	DHCPDConf  string   `yaml:"dhcpd-conf"`
	Interfaces []string `yaml:"interfaces"`
	Network    `yaml:",inline"`
}

// Default returns the configuration used when neither a file nor a flag says
// otherwise.
func Default() *Config {
	return &Config{
		StateDir:      "/var/lib/pxed",
		ShutdownGrace: 5 * time.Second,
		Log:           Log{Level: "info", Format: "text"},
		TFTP: TFTP{
			Root:          "/srv/tftp",
			Addr:          ":69",
			MaxBlksize:    65464,
			MTUClamp:      true,
			IOURing:       true,
			MaxWindowsize: 64,
			Timeout:       time.Second,
			MinTimeout:    50 * time.Millisecond,
			Retries:       5,
			MaxTransfers:  10000,

			MaxTransfersPerClient: 16,
		},
		HTTP:    HTTP{Addr: ":8080", MaxConns: 1024, MaxConnsPerIP: 32, MinRate: 4096},
		Metrics: Metrics{Addr: MetricsOnHTTP},
		Store:   Store{Prefix: DefaultStorePrefix},
	}
}

// Error is a configuration error with its position (see package pos).
type Error = pos.Error

// Errors is a list of configuration errors, reported together.
type Errors = pos.Errors

// Load reads a YAML config file over the defaults. Unknown keys, wrong types
// and invalid values are errors that name file:line:column.
func Load(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return Parse(file, data)
}

var yamlLineRe = regexp.MustCompile(`^\s*line (\d+): (.*)$`)

// Parse is Load on bytes already read; file names them in errors.
func Parse(file string, data []byte) (*Config, error) {
	c := Default()
	c.file = file
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return c, nil // an empty file is the defaults
		}
		return nil, yamlError(file, err)
	}
	c.root = &root
	if es := CheckKeys(file, &root, c); len(es) > 0 {
		return nil, es
	}
	dec = yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return nil, yamlError(file, err)
	}
	c.positionNetwork()
	c.resolvePaths(filepath.Dir(file))
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// resolvePaths makes the relative paths the file gives relative to the
// file's directory, dir, as a reader of the file expects (a flag's path
// stays relative to the directory pxed runs in: flags override after
// Load). Paths the file does not set keep their defaults.
func (c *Config) resolvePaths(dir string) {
	for key, p := range map[string]*string{
		"state-dir": &c.StateDir, "tftp.root": &c.TFTP.Root, "inventory": &c.Inventory,
		"dhcp.dhcpd-conf": &c.DHCP.DHCPDConf, "api.token-file": &c.API.TokenFile,
		"store.etcd-ca": &c.Store.CA, "store.etcd-cert": &c.Store.Cert, "store.etcd-key": &c.Store.Key,
	} {
		if *p != "" && !filepath.IsAbs(*p) && c.inFile(key) {
			*p = filepath.Join(dir, *p)
		}
	}
}

// inFile reports whether the dotted key path is set in the file.
func (c *Config) inFile(path string) bool {
	if c.root == nil || len(c.root.Content) == 0 {
		return false
	}
	n := c.root.Content[0]
	for _, k := range strings.Split(path, ".") {
		if n = mapValue(n, k); n == nil {
			return false
		}
	}
	return true
}

// positionNetwork records where each subnet, pool, range, host and option
// definition of the inline DHCP model was written, so that the DHCP
// compiler's errors about them name file:line:column as they do for a
// dhcpd.conf.
func (c *Config) positionNetwork() {
	dhcp := c.node("dhcp")
	if dhcp == nil {
		return
	}
	pos := func(n *yaml.Node) Pos { return Pos{File: c.file, Line: n.Line, Column: n.Column} }
	items := func(parent *yaml.Node, key string) []*yaml.Node { return seqItems(mapValue(parent, key)) }
	n := &c.DHCP.Network
	for i, sn := range items(dhcp, "subnets") {
		if i >= len(n.Subnets) {
			break
		}
		n.Subnets[i].Pos = pos(sn)
		for j, pl := range items(sn, "pools") {
			if j >= len(n.Subnets[i].Pools) {
				break
			}
			n.Subnets[i].Pools[j].Pos = pos(pl)
			for k, r := range items(pl, "ranges") {
				if k < len(n.Subnets[i].Pools[j].Ranges) {
					n.Subnets[i].Pools[j].Ranges[k].Pos = pos(r)
				}
			}
		}
	}
	for i, h := range items(dhcp, "hosts") {
		if i < len(n.Hosts) {
			n.Hosts[i].Pos = pos(h)
		}
	}
	for i, d := range items(dhcp, "option-definitions") {
		if i < len(n.OptionDefs) {
			n.OptionDefs[i].Pos = pos(d)
		}
	}
}

// node returns the value of a top-level key of the file, nil if absent.
func (c *Config) node(key string) *yaml.Node {
	if c.root == nil || len(c.root.Content) == 0 {
		return nil
	}
	return mapValue(c.root.Content[0], key)
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
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

// YAMLError is yamlError for other YAML files pxed reads (the inventory).
func YAMLError(file string, err error) error { return yamlError(file, err) }

// yamlError turns yaml.v3's messages ("yaml: line 3: ...", or a TypeError
// with one "line N: ..." per problem) into positioned Errors.
func yamlError(file string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var es Errors
		for _, m := range te.Errors {
			es = append(es, positioned(file, m))
		}
		return es
	}
	return Errors{positioned(file, strings.TrimPrefix(err.Error(), "yaml: "))}
}

func positioned(file, msg string) *Error {
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: line, Column: 1, Msg: m[2]}
	}
	return &Error{File: file, Msg: msg}
}

// Validate checks values that YAML types cannot: addresses, ranges, the
// DHCP option definitions and every option value of the inline DHCP model.
// It is called by Load and must be called again after flags override a
// Config.
func (c *Config) Validate() error {
	var es Errors
	bad := func(path string, format string, args ...any) {
		line, col := c.position(path)
		file := c.file
		if line == 0 {
			file = "" // set by a flag, not by the file
		}
		es = append(es, &Error{File: file, Line: line, Column: col, Msg: fmt.Sprintf(path+": "+format, args...)})
	}
	checkAddr := func(path, addr string) {
		if addr == "" {
			return
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			bad(path, "%q is not HOST:PORT (%v)", addr, err)
			return
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			bad(path, "port %q is not a number in 0..65535", port)
		}
		if host != "" && net.ParseIP(strings.Trim(host, "[]")) == nil {
			bad(path, "host %q must be an IP address (or empty for all addresses)", host)
		}
	}
	if c.StateDir == "" {
		bad("state-dir", "must not be empty")
	}
	if c.ShutdownGrace <= 0 {
		bad("shutdown-grace", "must be positive, e.g. 5s")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not text or json", c.Log.Format)
	}
	checkAddr("tftp.addr", c.TFTP.Addr)
	checkAddr("http.addr", c.HTTP.Addr)
	if a := c.HTTP.Advertise; a != "" {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			bad("http.advertise", "%q is not HOST:PORT", a)
		}
	}
	if c.HTTP.MaxConns < 1 {
		bad("http.max-conns", "must be at least 1")
	} else if c.HTTP.MaxConnsPerIP < 1 || c.HTTP.MaxConnsPerIP > c.HTTP.MaxConns {
		bad("http.max-conns-per-ip", "%d is outside 1..http.max-conns (%d)", c.HTTP.MaxConnsPerIP, c.HTTP.MaxConns)
	}
	if c.HTTP.MinRate < 1 || c.HTTP.MinRate > 1<<30 {
		bad("http.min-rate", "%d is outside 1..1073741824 bytes per second", c.HTTP.MinRate)
	}
	if (c.TFTP.Addr != "" || c.HTTP.Addr != "") && c.TFTP.Root == "" {
		bad("tftp.root", "must be set when TFTP or HTTP is enabled")
	}
	if c.TFTP.MaxBlksize < 8 || c.TFTP.MaxBlksize > 65464 {
		bad("tftp.max-blksize", "%d is outside 8..65464 (RFC 2348)", c.TFTP.MaxBlksize)
	}
	if c.TFTP.MaxWindowsize < 1 || c.TFTP.MaxWindowsize > 65535 {
		bad("tftp.max-windowsize", "%d is outside 1..65535 (RFC 7440)", c.TFTP.MaxWindowsize)
	}
	if c.TFTP.Timeout < 10*time.Millisecond || c.TFTP.Timeout > 255*time.Second {
		bad("tftp.timeout", "%s is outside 10ms..255s", c.TFTP.Timeout)
	}
	if c.TFTP.MinTimeout < 10*time.Millisecond || c.TFTP.MinTimeout > 255*time.Second {
		bad("tftp.min-timeout", "%s is outside 10ms..255s", c.TFTP.MinTimeout)
	}
	if c.TFTP.Retries < 1 || c.TFTP.Retries > 100 {
		bad("tftp.retries", "%d is outside 1..100", c.TFTP.Retries)
	}
	if c.TFTP.MaxTransfers < 1 {
		bad("tftp.max-transfers", "must be at least 1")
	}
	if c.TFTP.MaxTransfersPerClient < 1 {
		bad("tftp.max-transfers-per-client", "must be at least 1")
	}
	if c.TFTP.IOWorkers < 0 || c.TFTP.IOWorkers > 64 {
		bad("tftp.io-workers", "%d is outside 0..64 (0: one per two CPUs)", c.TFTP.IOWorkers)
	}
	for i, ifname := range c.DHCP.Interfaces {
		if ifname == "" {
			bad(fmt.Sprintf("dhcp.interfaces[%d]", i), "empty interface name")
		}
	}
	c.checkStore(bad)
	es = append(es, c.checkOptions()...)
	if len(es) > 0 {
		return es
	}
	return nil
}

// checkOptions checks the option definitions and every option value of the
// inline DHCP model (global scope, subnets, pools, hosts) against the option
// table, so that a bad value fails Load at its key rather than later when
// the DHCP server compiles the model.
func (c *Config) checkOptions() Errors {
	n := &c.DHCP.Network
	table, err := n.OptionTable()
	if err != nil {
		var es Errors
		if errors.As(err, &es) {
			return es
		}
		return Errors{{File: c.file, Msg: "dhcp.option-definitions: " + err.Error()}}
	}
	var es Errors
	// check reports the bad values of p; node is the YAML mapping p was
	// read from (nil when unknown), where each option's key is.
	check := func(p *Params, node *yaml.Node, what string, scopePos Pos) {
		names := make([]string, 0, len(p.Options))
		for name := range p.Options {
			if _, done := p.Encoded[name]; !done {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		opts := mapValue(node, "options")
		for _, name := range names {
			at := scopePos
			if k := mapKey(opts, name); k != nil {
				at = Pos{File: c.file, Line: k.Line, Column: k.Column}
			}
			def, ok := table.Lookup(name)
			if !ok {
				es = append(es, at.Errorf("%s: unknown option %q (a site option must be declared under dhcp.option-definitions)", what, name))
				continue
			}
			if _, err := def.Type.Encode(p.Options[name]); err != nil {
				es = append(es, at.Errorf("%s: option %s: %v", what, name, err))
			}
		}
	}
	dhcp := c.node("dhcp")
	check(&n.Params, dhcp, "global scope", Pos{})
	subnets := seqItems(mapValue(dhcp, "subnets"))
	for i := range n.Subnets {
		s := &n.Subnets[i]
		sn := item(subnets, i)
		check(&s.Params, sn, "subnet "+s.Network, s.Pos)
		pools := seqItems(mapValue(sn, "pools"))
		for j := range s.Pools {
			check(&s.Pools[j].Params, item(pools, j), fmt.Sprintf("pool %d of subnet %s", j+1, s.Network), s.Pools[j].Pos)
		}
	}
	hosts := seqItems(mapValue(dhcp, "hosts"))
	for i := range n.Hosts {
		h := &n.Hosts[i]
		check(&h.Params, item(hosts, i), "host "+h.Name, h.Pos)
	}
	return es
}

// seqItems returns the items of a YAML sequence, nil for anything else.
func seqItems(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

func item(items []*yaml.Node, i int) *yaml.Node {
	if i < len(items) {
		return items[i]
	}
	return nil
}

// mapKey returns the key node of key in the mapping n, nil if absent.
func mapKey(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i]
		}
	}
	return nil
}

// position finds the line and column of a dotted key path ("tftp.addr") in
// the YAML the config came from; 0, 0 when the key is not in the file.
func (c *Config) position(path string) (int, int) {
	path, _, _ = strings.Cut(path, "[")
	if c.root == nil || len(c.root.Content) == 0 || c.fromFlag[path] {
		return 0, 0
	}
	n := c.root.Content[0]
	for _, key := range strings.Split(path, ".") {
		if n.Kind != yaml.MappingNode {
			return 0, 0
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			return 0, 0
		}
		n = next
	}
	return n.Line, n.Column
}
