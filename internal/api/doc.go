// Package api is pxed's control API: one set of routes, one error shape and
// one set of views, served on two transports that differ only in how a
// caller is trusted.
//
//	GET  /api/v1/hosts                   the inventory hosts and their boot states
//	GET  /api/v1/hosts/{host}            one host, by name or MAC
//	POST /api/v1/hosts/{host}/installed  the host installed: boot it locally from now on
//	POST /api/v1/hosts/{host}/install    netboot its profile at the next boot
//	POST /api/v1/hosts/{host}/local      boot its local disk from now on
//	GET  /api/v1/leases                  the DHCP leases
//
// Answers are JSON views ([HostView], [LeaseView]); errors are always JSON
// {"error": "a sentence", "code": "not_found"} with the matching status and
// Cache-Control: no-store. Requests carry no body: one over a few KiB is
// refused (413), one not received within Options.BodyTimeout too (408).
//
// # Trust modes
//
// On TCP (Options.Trusted false) every call needs the API token,
// "Authorization: Bearer TOKEN", compared in constant time; with no token
// configured nothing is allowed. The one exception is the install callback,
// POST .../{host}/installed, which kickstarts make with the host's own token
// (?token=… or as the bearer): that token is good for that route, that host
// and its current install, once (a new install has a new token; the call
// spends it). A caller without the API token cannot tell an unknown host
// from a wrong or spent token (all 401). State changes are recorded as made by
// "api ADDR" (the caller's address).
//
// On the Unix control socket (Options.Trusted true) the socket's file
// permissions are the access control (0600 in the 0750 state directory), so
// no token is asked for. State changes are recorded as made by the name the
// caller gives in the X-Pxed-By header ("pxed host" from [NewSocketClient]),
// or "control socket".
//
// [Client] is the same API's client, over either transport.
package api
