// Package sdnotify tells the service manager how pxed is doing: the
// sd_notify(3) protocol, one datagram of "KEY=VALUE" lines to the Unix
// socket $NOTIFY_SOCKET, which systemd sets for a Type=notify service.
// Without it (not started by systemd), every call does nothing.
package sdnotify

import (
	"net"
	"os"
)

// Standard states (sd_notify(3)).
const (
	Ready     = "READY=1"
	Reloading = "RELOADING=1"
	Stopping  = "STOPPING=1"
)

// Notify sends state ("READY=1", "STATUS=…", several joined by "\n") to
// the service manager. It reports whether a manager was there to tell; an
// error is a socket that could not be written.
func Notify(state string) (bool, error) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return false, nil
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:] // an abstract socket
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return true, err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return true, err
}
