package app

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Watch reloads on SIGHUP and when a file the snapshot was read from
// changes (the inventory, its kickstart templates, the dhcpd.conf), until
// ctx ends. Files are polled every `every`: editors replace files in ways
// an inotify watch of one inode misses.
func (a *App) Watch(ctx context.Context, every time.Duration) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	tick := time.NewTicker(every)
	defer tick.Stop()
	last := a.fingerprint()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			a.Reload("SIGHUP")
			last = a.fingerprint()
		case <-tick.C:
			if fp := a.fingerprint(); fp != last {
				last = fp
				a.Reload("file changed")
			}
		}
	}
}

// Files are the files the current snapshot was read from.
func (a *App) Files() []string {
	var out []string
	if a.cfg.Inventory != "" {
		out = append(out, a.cfg.Inventory)
	}
	if a.cfg.DHCP.DHCPDConf != "" {
		out = append(out, a.cfg.DHCP.DHCPDConf)
	}
	if inv := a.cur.Load().Inventory; inv != nil {
		out = append(out, inv.Templates()...)
	}
	return out
}

// fingerprint identifies the current contents of the watched files.
func (a *App) fingerprint() string {
	var sb strings.Builder
	for _, f := range a.Files() {
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
