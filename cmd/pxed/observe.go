package main

import (
	"fmt"
	"net/http"
	"net/netip"

	"pxed/internal/app"
	"pxed/internal/dhcp"
	"pxed/internal/events"
	"pxed/internal/metrics"
	"pxed/internal/tftp"
)

// observer hears the servers (dhcp.Observer, tftp.Observer, HTTP answers)
// and tells the metrics (nil: off) and the boot events ring.
type observer struct {
	m  *metrics.Metrics
	ev *events.Ring
	a  *app.App
}

// DHCPMessage implements dhcp.Observer.
func (o *observer) DHCPMessage(msg dhcp.Message) {
	if o.m != nil {
		o.m.DHCPMessage(msg.Type, msg.Outcome, msg.Decide)
	}
	if msg.Outcome == "dropped" || msg.Outcome == "none" {
		return // no answer: nothing happened to the machine
	}
	e := events.Event{Kind: "dhcp", Host: msg.Host, Detail: msg.Type + " → " + msg.Outcome}
	if msg.MAC != nil {
		e.MAC = msg.MAC.String()
	}
	if msg.IP.IsValid() {
		e.IP = msg.IP.String()
		e.Detail += " " + e.IP
	}
	if e.Host == "" && msg.IP.IsValid() {
		_, e.Host = o.a.Client(msg.IP)
	}
	o.ev.Add(e)
}

// TransferStarted implements tftp.Observer.
func (o *observer) TransferStarted() {
	if o.m != nil {
		o.m.TransferStarted()
	}
}

// TransferDone implements tftp.Observer.
func (o *observer) TransferDone(t tftp.TransferEnd) {
	if o.m != nil {
		o.m.TransferDone(t.Bytes, t.Retransmits, t.Err)
	}
	result := "ok"
	if t.Err != nil {
		result = t.Err.Error()
	}
	o.file("tftp", t.Client.Addr(), fmt.Sprintf("%s %d bytes %s", t.File, t.Bytes, result))
}

// httpAnswered records a file the HTTP server answered for.
func (o *observer) httpAnswered(r *http.Request, code int) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return
	}
	o.file("http", ap.Addr(), fmt.Sprintf("%s %d", r.URL.Path, code))
}

// file adds a file event for the client at ip, named as App.Client
// names it.
func (o *observer) file(kind string, ip netip.Addr, detail string) {
	e := events.Event{Kind: kind, IP: ip.Unmap().String(), Detail: detail}
	mac, host := o.a.Client(ip)
	if mac != nil {
		e.MAC = mac.String()
	}
	e.Host = host
	o.ev.Add(e)
}
