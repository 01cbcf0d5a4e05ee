package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"pxed/internal/api"
	"pxed/internal/app"
)

const eventsSynopsis = `usage: pxed events [HOST|MAC|IP] [flags]

Shows the latest boot events the running pxed serve keeps (DHCP answers,
files served over TFTP and HTTP, install callbacks), oldest first: all of
them, or one machine's, named by its inventory name, a MAC or an IP (an
inventory host's events under any of its MACs and its address).
`

const eventsExamples = `  pxed events --config /etc/pxed/pxed.yaml test_hvm
  pxed events --state-dir /var/lib/pxed --limit 20 00:16:3e:72:79:e4
`

// eventsFlags defines the flags of `pxed events` (also read by
// completion and the manual page).
func eventsFlags(fs *flag.FlagSet) (configFile, stateDir *string, limit *int, asJSON *bool) {
	configFile, stateDir, asJSON = leasesFlags(fs)
	limit = fs.Int("limit", 0, "at most this many of the latest events (0: all the server keeps)")
	return
}

// cmdEvents is `pxed events`.
func cmdEvents(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	fs.SetOutput(stderr)
	setUsage(fs, stderr, eventsSynopsis, eventsExamples)
	configFile, stateDir, limit, asJSON := eventsFlags(fs)
	pos, code, ok := parseCommand(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 1 {
		fs.Usage()
		return 2
	}
	var host string
	if len(pos) == 1 {
		host = pos[0]
	}
	dir, err := stateDirOf(fs, *configFile, *stateDir)
	if err != nil {
		fmt.Fprintf(stderr, "pxed events: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evs, err := api.NewSocketClient(filepath.Join(dir, app.ControlSocket)).Events(ctx, host, *limit)
	if err != nil {
		if errors.Is(err, api.ErrNoServer) {
			err = fmt.Errorf("no pxed serve answers on %s (events live in the running server): %w", dir, err)
		}
		fmt.Fprintf(stderr, "pxed events: %v\n", err)
		return 1
	}
	if *asJSON {
		return printJSON(stdout, evs)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tKIND\tHOST\tMAC\tIP\tDETAIL")
	for _, e := range evs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("15:04:05.000"), e.Kind,
			orDash(printable(e.Host)), orDash(e.MAC), orDash(e.IP), printable(e.Detail))
	}
	tw.Flush()
	return 0
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
