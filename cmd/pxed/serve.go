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
	"path/filepath"
	"syscall"
	"time"

	"pxed/internal/api"
	"pxed/internal/app"
	"pxed/internal/bootfs"
	"pxed/internal/config"
	"pxed/internal/events"
	"pxed/internal/httpboot"
	"pxed/internal/inventory"
	"pxed/internal/metrics"
	"pxed/internal/sdnotify"
	"pxed/internal/tftp"
)

func cmdServe(args []string, stderr io.Writer) int {
	f := newServeFlags(stderr)
	setUsage(f.fs, stderr, serveSynopsis, serveExamples)
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
	// Under systemd (Type=notify), ready once every socket is bound, and
	// stopping from the first signal on.
	ready := func(ln listening) {
		if _, err := sdnotify.Notify(sdnotify.Ready + "\nSTATUS=serving"); err != nil {
			log.Warn("telling systemd pxed is ready", "error", err)
		}
	}
	context.AfterFunc(ctx, func() { sdnotify.Notify(sdnotify.Stopping) })
	if err := serve(ctx, c, log, ready); err != nil {
		log.Error("pxed serve failed", "error", err)
		return 1
	}
	return 0
}

// listening reports the addresses serve bound; tests use it with port 0.
type listening struct {
	TFTP, HTTP net.Addr
}

// serve loads the snapshot, binds every socket, then runs the servers
// under one supervisor until ctx ends, and shuts them down gracefully. A
// configuration error or a socket that cannot be bound fails the whole
// command before any server starts.
func serve(ctx context.Context, c *config.Config, log *slog.Logger, ready func(listening)) error {
	if err := os.MkdirAll(c.StateDir, 0o750); err != nil {
		return fmt.Errorf("state directory: %w (set --state-dir)", err)
	}
	// Held until serve returns: no other server, and no offline `pxed
	// host`, touches the state files meanwhile.
	unlock, err := app.LockStateDir(c.StateDir)
	if errors.Is(err, app.ErrLocked) {
		return fmt.Errorf("another pxed serve is running with state dir %s", c.StateDir)
	}
	if err != nil {
		return err
	}
	defer unlock()
	var tree *bootfs.Tree
	if c.TFTP.Addr != "" || c.HTTP.Addr != "" {
		var err error
		if tree, err = bootfs.Open(c.TFTP.Root); err != nil {
			return fmt.Errorf("%w (set --tftp-root)", err)
		}
		defer tree.Close()
	}
	// In a cluster (store etcd://…) the API token, the host states and the
	// inventory are the cluster's (cluster.go); cl.cli is this server's
	// one etcd client.
	var cl *cluster
	var token string
	var states *inventory.States
	if c.Shared() {
		if cl, err = openCluster(ctx, c, log); err != nil {
			return err
		}
		defer cl.close()
		token, states = cl.token, cl.states
	} else {
		if token, err = app.APIToken(c, true); err != nil {
			return err
		}
		if states, err = app.OpenStates(c, log); err != nil {
			return err
		}
	}
	env := app.Env{Tree: tree, States: states, Logger: log, Events: events.New(0), Inventory: cl.inventory()}
	var m *metrics.Metrics
	if c.Metrics.Addr != "" {
		m = metrics.New()
		env.OnReload = m.Reload
	}
	a, err := app.Load(c, env)
	if err != nil {
		return err
	}
	ob := &observer{m: m, ev: env.Events, a: a}
	snap := a.Current()
	for _, w := range snap.Warnings {
		log.Warn("dhcp config: " + w.String())
	}
	if snap.DHCP == nil {
		log.Info("DHCP off: no subnet configured")
	}
	if c.TFTP.Addr == "" && c.HTTP.Addr == "" && snap.DHCP == nil {
		return errors.New("nothing to serve: no DHCP subnet, and both --tftp-addr and --http-addr are empty")
	}
	var dhcpSvc *dhcpService
	if snap.DHCP != nil {
		if dhcpSvc, err = openDHCP(c, snap.DHCP, a, log, m, ob, cl.etcdClient()); err != nil {
			return err
		}
		defer dhcpSvc.close()
	}
	var files *bootfs.Layered
	if tree != nil {
		files = bootfs.NewLayered(tree, log)
		if snap.Inventory != nil || cl != nil {
			files.SetGenerator(a.Generator())
		}
	}
	ctlLn, err := listenControl(c.StateDir)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	defer ctlLn.Close()

	var ln listening
	var tftpConn *net.UDPConn
	if c.TFTP.Addr != "" {
		if tftpConn, err = listenTFTP(c.TFTP.Addr); err != nil {
			return err
		}
		defer tftpConn.Close()
		ln.TFTP = tftpConn.LocalAddr()
	}
	var httpLn net.Listener
	if c.HTTP.Addr != "" {
		if httpLn, err = listenHTTP(c.HTTP.Addr); err != nil {
			return err
		}
		defer httpLn.Close()
		ln.HTTP = httpLn.Addr()
		a.SetHTTPPort(httpLn.Addr().(*net.TCPAddr).Port)
	}

	var metricsLn net.Listener
	if m != nil && c.Metrics.Addr != config.MetricsOnHTTP {
		if metricsLn, err = net.Listen("tcp", c.Metrics.Addr); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		defer metricsLn.Close()
	}

	g := newGroup(ctx)
	if tftpConn != nil {
		srv := &tftp.Server{
			FS: files, Root: tree.Dir(), Logger: log,
			SinglePort: c.TFTP.SinglePort, NoRing: !c.TFTP.IOURing, RingWorkers: c.TFTP.IOWorkers,
			MaxBlksize: c.TFTP.MaxBlksize, NoMTUClamp: !c.TFTP.MTUClamp, MaxWindowsize: c.TFTP.MaxWindowsize,
			Timeout: c.TFTP.Timeout, MinTimeout: c.TFTP.MinTimeout, Retries: c.TFTP.Retries, MaxTransfers: c.TFTP.MaxTransfers, Grace: c.ShutdownGrace,
			MaxTransfersPerClient: c.TFTP.MaxTransfersPerClient,
		}
		srv.Observer = ob
		g.Go("tftp", func(ctx context.Context) error { return srv.Serve(ctx, tftpConn) })
		log.Info("tftp listening", "addr", ln.TFTP.String(), "root", tree.Dir(), "single-port", c.TFTP.SinglePort)
	}
	svc := a.Service()
	if httpLn != nil {
		h := httpHandler(c, svc, token, files, ob, log)
		lim := httpboot.Limits{MaxConns: c.HTTP.MaxConns, MaxConnsPerIP: c.HTTP.MaxConnsPerIP, MinRate: int64(c.HTTP.MinRate), Logger: log}
		limited := lim.Listener(httpLn)
		g.Go("http", func(ctx context.Context) error { return serveHTTP(ctx, limited, h, c.ShutdownGrace, log) })
		log.Info("http listening", "addr", ln.HTTP.String(), "root", tree.Dir())
	}
	if dhcpSvc != nil {
		g.Go("dhcp", dhcpSvc.serve)
		log.Info("dhcp serving", "interfaces", c.DHCP.Interfaces, "subnets", snap.DHCP.Subnets(), "proxy", snap.DHCP.Proxy, "authoritative", snap.DHCP.Authoritative)
	}
	if metricsLn != nil {
		g.Go("metrics", func(ctx context.Context) error { return serveHTTP(ctx, metricsLn, m.Handler(), time.Second, log) })
		log.Info("metrics listening", "addr", metricsLn.Addr().String())
	} else if m != nil && httpLn == nil {
		log.Info("metrics: not served (HTTP is off); give --metrics-addr HOST:PORT to serve them")
	}
	ctl := api.Handler(svc, api.Options{Trusted: true, Logger: log})
	g.Go("control socket", func(ctx context.Context) error { return serveHTTP(ctx, ctlLn, ctl, time.Second, log) })
	g.Go("reload", func(ctx context.Context) error { a.Watch(ctx, time.Second); return nil })
	if cl != nil {
		cl.run(g, a, log)
	} else if snap.Inventory != nil {
		log.Info("inventory serving", "file", c.Inventory, "hosts", len(snap.Inventory.Hosts), "profiles", len(snap.Inventory.Profiles), "states", states.Path())
	}
	if ready != nil {
		ready(ln)
	}
	// In the group, so that the line is written before serve returns.
	g.Go("shutdown notice", func(ctx context.Context) error {
		<-ctx.Done()
		log.Info("shutting down", "grace", c.ShutdownGrace)
		return nil
	})
	return g.Wait()
}

// serveHTTP serves h on ln until ctx ends, then lets requests in flight
// finish for grace.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration, log *slog.Logger) error {
	hs := httpboot.NewServer(h, log)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return err // never ErrServerClosed: only Shutdown below closes it
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	<-served
	return nil
}

// listenControl opens the control socket, replacing a stale one (the state
// directory's lock says no server uses it). The state directory's and the
// socket's permissions are its access control, so the socket is bound in
// a private directory (0700), made 0600 there and renamed into place: at
// no moment can another user connect, whatever the umask.
func listenControl(stateDir string) (net.Listener, error) {
	path := filepath.Join(stateDir, app.ControlSocket)
	tmp, err := os.MkdirTemp(stateDir, ".ctl-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	bound := filepath.Join(tmp, "sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: bound, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false) // it is unlinked by its final name
	if err := os.Chmod(bound, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	if err := os.Rename(bound, path); err != nil {
		ln.Close()
		return nil, err
	}
	return &controlListener{UnixListener: ln, path: path}, nil
}

// controlListener removes the control socket when it closes.
type controlListener struct {
	*net.UnixListener
	path string
}

func (l *controlListener) Close() error {
	err := l.UnixListener.Close()
	os.Remove(l.path)
	return err
}
