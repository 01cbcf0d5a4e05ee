package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"

	"pxed/internal/api"
	"pxed/internal/bootfs"
	"pxed/internal/bootplan"
	"pxed/internal/config"
	"pxed/internal/httpboot"
)

// httpHandler is what the HTTP listener serves: the API under /api/,
// /metrics when the metrics are on this listener, the boot tree for the
// rest. Not an http.ServeMux: it would clean "/../x" into "/x" before the
// boot tree's jail could refuse (and log) it.
func httpHandler(c *config.Config, svc api.Service, token string, files *bootfs.Layered, ob *observer, log *slog.Logger) http.Handler {
	var apiH, filesH, metricsH http.Handler = api.Handler(svc, api.Options{Token: token, Logger: log}),
		&httpboot.Files{FS: files, Logger: log, ContentType: bootplan.ContentType}, nil
	m := ob.m
	count := func(route string) func(*http.Request, int) {
		return func(_ *http.Request, code int) {
			if m != nil {
				m.HTTPAnswered(route, code)
			}
		}
	}
	apiH = httpboot.Observe(apiH, count("api"))
	filesH = httpboot.Observe(filesH, func(r *http.Request, code int) {
		count("files")(r, code)
		ob.httpAnswered(r, code)
	})
	if m != nil && c.Metrics.Addr == config.MetricsOnHTTP {
		metricsH = httpboot.Observe(m.Handler(), count("metrics"))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/api/"):
			apiH.ServeHTTP(w, r)
		case metricsH != nil && r.URL.Path == "/metrics":
			metricsH.ServeHTTP(w, r)
		default:
			filesH.ServeHTTP(w, r)
		}
	})
}

func listenTFTP(addr string) (*net.UDPConn, error) {
	network := "udp4"
	if host, _, _ := net.SplitHostPort(addr); strings.Contains(host, ":") {
		network = "udp6"
	}
	ua, err := net.ResolveUDPAddr(network, addr)
	if err != nil {
		return nil, fmt.Errorf("tftp address: %w", err)
	}
	conn, err := net.ListenUDP(network, ua)
	if err != nil {
		return nil, fmt.Errorf("tftp: %w%s", err, portHint(err, ua.Port))
	}
	return conn, nil
}

func listenHTTP(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		port := 0
		if _, p, perr := net.SplitHostPort(addr); perr == nil {
			port, _ = strconv.Atoi(p)
		}
		return nil, fmt.Errorf("http: %w%s", err, portHint(err, port))
	}
	return ln, nil
}

// portHint explains a refused bind to a privileged port.
func portHint(err error, port int) string {
	if port > 0 && port < 1024 && errors.Is(err, syscall.EACCES) {
		return fmt.Sprintf(" (port %d needs root or CAP_NET_BIND_SERVICE: setcap cap_net_bind_service=+ep on the pxed binary, or the systemd unit's AmbientCapabilities)", port)
	}
	return ""
}
