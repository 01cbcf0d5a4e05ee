package e2e

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Hostile DHCP clients (issue 13, findings 5 and 6), replayed against the
// real pxed in namespaces while real clients ask for leases.

// sendMain is the "dhcpsend" role: inside the client namespace it sends
// each datagram of the file PXED_E2E_PACKETS (comma-separated hex) PXED_E2E_REPEAT
// times (default 1) to 255.255.255.255:67 (with PXED_E2E_FOR, in rounds
// every PXED_E2E_EVERY until that much time has passed), prints "SENT n",
// then every reply it
// sees within PXED_E2E_WAIT (a duration, default 1s) as "REPLY xid type
// yiaddr".
func sendMain(iface string) int {
	conn, err := doraSocket(iface)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dhcpsend:", err)
		return 1
	}
	list, err := os.ReadFile(os.Getenv("PXED_E2E_PACKETS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "dhcpsend:", err)
		return 1
	}
	var packets [][]byte
	for _, h := range strings.Split(string(list), ",") {
		b, err := hex.DecodeString(h)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dhcpsend:", err)
			return 1
		}
		packets = append(packets, b)
	}
	repeat, _ := strconv.Atoi(os.Getenv("PXED_E2E_REPEAT"))
	wait, _ := time.ParseDuration(os.Getenv("PXED_E2E_WAIT"))
	if wait <= 0 {
		wait = time.Second
	}
	// PXED_E2E_FOR: send in rounds, one every PXED_E2E_EVERY, until this
	// much time has passed (at most 100000 datagrams in all).
	var until time.Time
	if d, err := time.ParseDuration(os.Getenv("PXED_E2E_FOR")); err == nil {
		until = time.Now().Add(d)
	}
	every, _ := time.ParseDuration(os.Getenv("PXED_E2E_EVERY"))
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}
	sent := 0
	for next := time.Now(); sent < 100000; {
		for _, p := range packets {
			for range max(repeat, 1) {
				if _, err := conn.WriteToUDP(p, bcast); err == nil {
					sent++
				}
			}
		}
		next = next.Add(every)
		if until.IsZero() || next.After(until) {
			break
		}
		time.Sleep(time.Until(next))
	}
	fmt.Printf("SENT %d\n", sent)
	conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 1500)
	for {
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			return 0
		}
		if xid, typ, yi, _, ok := doraReply(buf[:n]); ok {
			fmt.Printf("REPLY %08x %d %s\n", xid, typ, yi)
		}
	}
}

// clientPacket is a client message of type t with the broadcast flag, as
// doraPacket, with options given whole (code, data): long data is split
// into instances of at most 255 bytes (RFC 3396).
func clientPacket(t byte, xid uint32, mac net.HardwareAddr, ciaddr string, opts ...[]byte) []byte {
	b := doraPacket(t, xid, mac)
	b = b[:len(b)-1]
	if ciaddr != "" {
		copy(b[12:16], net.ParseIP(ciaddr).To4())
	}
	for _, o := range opts {
		code, data := o[0], o[1:]
		for first := true; first || len(data) > 0; first = false {
			n := min(len(data), 255)
			b = append(append(b, code, byte(n)), data[:n]...)
			data = data[n:]
		}
	}
	return append(b, 255)
}

// sendCmd is the dhcpsend role in the client namespace (under a 60 s
// timeout) for packets, with env added (PXED_E2E_REPEAT, _FOR, _WAIT).
func (l *lab) sendCmd(t *testing.T, packets [][]byte, env ...string) *exec.Cmd {
	t.Helper()
	hexes := make([]string, len(packets))
	for i, p := range packets {
		hexes[i] = hex.EncodeToString(p)
	}
	f, err := os.CreateTemp(l.dir, "packets-")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(strings.Join(hexes, ","))
	f.Close()
	cmd := exec.Command("ip", "netns", "exec", l.cli, "timeout", "60", os.Args[0], "-test.run", "^$")
	cmd.Env = append(append(os.Environ(), roleEnv+"=dhcpsend", "PXED_E2E_IFACE="+l.cif, "PXED_E2E_PACKETS="+f.Name()), env...)
	cmd.Stderr = os.Stderr
	return cmd
}

// sendFrom runs the dhcpsend role in the client namespace and returns the
// replies it saw ("REPLY xid type yiaddr" lines).
func (l *lab) sendFrom(t *testing.T, wait time.Duration, repeat int, packets ...[]byte) []string {
	t.Helper()
	cmd := l.sendCmd(t, packets, "PXED_E2E_REPEAT="+strconv.Itoa(repeat), "PXED_E2E_WAIT="+wait.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dhcpsend: %v\n%s", err, out)
	}
	return strings.Fields(strings.ReplaceAll(string(out), "REPLY", "\nREPLY"))
}

// replies parses sendFrom's output into "type yiaddr" per xid.
func replies(out []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+3 < len(out); i++ {
		if out[i] == "REPLY" {
			m[out[i+1]] = out[i+2] + " " + out[i+3]
		}
	}
	return m
}

func ip4of(s string) []byte { return netip.MustParseAddr(s).AsSlice() }

// TestE2EDHCPConcatenationFlood replays finding 5 over a real socket: for
// 8 seconds a client sends, every second, 20 DISCOVERs of 64 KB made of
// 21750 one-byte option-12 pieces and 20 of 1471 bytes made of 409 pieces.
// Each 64 KB one cost pxed 113 ms and 236 MB of allocation before (20 of
// them delayed a real DISCOVER by 3 s), so the server fell further behind
// every second. Now they are dropped unread: udhcpc, started during the
// attack, gets its lease at once, and the host name pxed stores for the
// attacker stays bounded and printable.
func TestE2EDHCPConcatenationFlood(t *testing.T) {
	need(t, "udhcpc")
	l := newLab(t, "192.0.2.1/24")
	srv := l.startPxed(seedConf, t.TempDir(), "--log-level", "info")
	attacker := net.HardwareAddr{2, 0, 0x5e, 0, 0x53, 0x50}
	big := doraPacket(1, 0x5e000001, attacker)
	big = big[:len(big)-1]
	for range 21750 {
		big = append(big, 12, 1, 'x')
	}
	big = append(big, 255)
	max := doraPacket(1, 0x5e000002, attacker)
	max = max[:len(max)-1]
	for range 409 {
		max = append(max, 12, 1, 'x')
	}
	max = append(max, 255)
	if len(big) > 65507 || len(max) > 1472 {
		t.Fatalf("attack datagrams of %d and %d bytes", len(big), len(max))
	}
	// The attack: 40 datagrams a second for 8 s.
	attack := l.sendCmd(t, [][]byte{big, max}, "PXED_E2E_REPEAT=20", "PXED_E2E_FOR=8s", "PXED_E2E_EVERY=1s", "PXED_E2E_WAIT=1ms")
	var attackOut strings.Builder
	attack.Stdout = &attackOut
	if err := attack.Start(); err != nil {
		t.Fatal(err)
	}
	attackDone := make(chan error, 1)
	go func() { attackDone <- attack.Wait() }()
	t.Cleanup(func() {
		attack.Process.Kill()
		<-attackDone
	})
	time.Sleep(2500 * time.Millisecond) // before the fix, pxed is seconds behind by now
	l.setClientMAC("02:00:5e:00:53:51")
	start := time.Now()
	env, out := l.udhcpc(t)
	took := time.Since(start)
	running := true
	select {
	case <-attackDone:
		running = false
		attackDone <- nil
	default:
	}
	if env == nil {
		t.Fatalf("udhcpc got no lease during the attack:\n%s\npxed log:\n%s", out, srv.log.String())
	}
	if !running {
		t.Errorf("the attack ended before udhcpc got its lease: %s", attackOut.String())
	}
	t.Logf("udhcpc bound %s in %v during the attack (attack still running: %v)", env["ip"], took.Round(time.Millisecond), running)
	if took > 5*time.Second {
		t.Errorf("udhcpc took %v to get a lease during the attack; without it, well under a second", took)
	}
	<-attackDone
	attackDone <- nil
	t.Logf("attacker: %s", strings.Fields(attackOut.String() + " ")[:2])
	if !strings.Contains(srv.log.String(), "dropped datagrams that are not valid DHCP messages") || !strings.Contains(srv.log.String(), "oversized=") {
		t.Errorf("pxed did not report the oversized datagrams it dropped:\n%s", srv.log.String())
	}
	// The host name stored for a lease is bounded and printable: the
	// attacker asks for a lease with 1200 bytes of host name, control
	// characters included.
	name := bytes.Repeat([]byte("\x1b]0;x\x07"), 200)
	mac := net.HardwareAddr{2, 0, 0x5e, 0, 0x53, 0x52}
	got := replies(l.sendFrom(t, 2*time.Second, 1, clientPacket(1, 0x5e000003, mac, "", append([]byte{12}, name...))))
	offer := strings.Fields(got["5e000003"] + " ")
	if len(offer) != 2 || offer[0] != "2" {
		t.Fatalf("no OFFER for the long host name's DISCOVER: %v", got)
	}
	got = replies(l.sendFrom(t, 2*time.Second, 1, clientPacket(3, 0x5e000004, mac, "",
		append([]byte{12}, name...), append([]byte{50}, ip4of(offer[1])...), append([]byte{54}, ip4of("192.0.2.1")...))))
	if got["5e000004"] != "5 "+offer[1] {
		t.Fatalf("no ACK for the long host name's REQUEST: %v", got)
	}
	h := l.leases(srv.stateDir)[offer[1]].Hostname
	if len(h) > 255 || strings.ContainsFunc(h, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		t.Fatalf("stored host name of %d bytes: %q", len(h), h)
	}
	t.Logf("stored host name: %d bytes (%q...)", len(h), h[:24])
}

// TestE2EInitRebootWithoutLease replays finding 6's INIT-REBOOT: one
// REQUEST with a requested address and no server identifier, from a MAC
// pxed has no lease for, was ACKed and bound the address for the whole
// lease time. RFC 2131 §4.3.2: stay silent. A real dhclient that reboots
// with a lease pxed does not know falls back to DISCOVER and is bound.
func TestE2EInitRebootWithoutLease(t *testing.T) {
	need(t, "dhclient")
	l := newLab(t, "192.0.2.1/24")
	conf := "authoritative;\n" + seedConf
	srv := l.startPxed(conf, t.TempDir())
	var pkts [][]byte
	for i := range 50 {
		mac := net.HardwareAddr{2, 0, 0x5e, 0, 0x54, byte(i)}
		pkts = append(pkts, clientPacket(3, 0x5e100000+uint32(i), mac, "", append([]byte{50}, ip4of(fmt.Sprintf("192.0.2.%d", 200+i))...)))
	}
	// And REBINDING (ciaddr, broadcast) from unknown clients.
	for i := range 4 {
		mac := net.HardwareAddr{2, 0, 0x5e, 0, 0x55, byte(i)}
		pkts = append(pkts, clientPacket(3, 0x5e200000+uint32(i), mac, fmt.Sprintf("192.0.2.%d", 250+i)))
	}
	if got := replies(l.sendFrom(t, 1500*time.Millisecond, 1, pkts...)); len(got) != 0 {
		t.Errorf("pxed answered REQUESTs from clients it has no lease for: %v", got)
	}
	for ip, lv := range l.leases(srv.stateDir) {
		t.Errorf("lease %s after REQUESTs from unknown clients: %+v", ip, lv)
	}
	if !strings.Contains(srv.log.String(), "RFC 2131 §4.3.2 says stay silent") {
		t.Errorf("pxed did not say why it stayed silent:\n%s", srv.log.String())
	}
	// A wrong network, authoritative: NAK.
	mac := net.HardwareAddr{2, 0, 0x5e, 0, 0x56, 1}
	if got := replies(l.sendFrom(t, 1500*time.Millisecond, 1, clientPacket(3, 0x5e300000, mac, "", append([]byte{50}, ip4of("203.0.113.5")...)))); got["5e300000"] != "6 0.0.0.0" {
		t.Errorf("INIT-REBOOT for another network (authoritative): %v, want a NAK", got)
	}
	// dhclient, rebooting with a lease of 192.0.2.254 pxed never gave.
	l.setClientMAC("02:00:5e:00:53:57")
	os.WriteFile(filepath.Join(l.dir, "dhclient.leases"), []byte(fmt.Sprintf(`lease {
  interface "%s";
  fixed-address 192.0.2.254;
  option subnet-mask 255.255.255.0;
  option dhcp-server-identifier 192.0.2.1;
  renew 4 2037/01/01 00:00:00;
  rebind 4 2037/01/01 00:00:00;
  expire 4 2037/01/01 00:00:00;
}
`, l.cif)), 0o644)
	l.dhclientConf = "reboot 3;\n"
	start := time.Now()
	env := l.dhclient(t) // fails unless dhclient went through DISCOVER (BOUND, not REBOOT)
	t.Logf("dhclient bound %s after %v (its INIT-REBOOT unanswered)", env["new_ip_address"], time.Since(start).Round(time.Millisecond))
}

// perfdhcpIn starts perfdhcp in the client namespace under timeout(1);
// the returned function stops it (if still running) and returns its
// output. It is also stopped in Cleanup.
func (l *lab) perfdhcpIn(t *testing.T, limit time.Duration, args ...string) func() string {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.cli, "timeout", strconv.Itoa(int(limit.Seconds())), "perfdhcp"}, args...)...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop := func() string {
		select {
		case <-done:
		default:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) // perfdhcp reports on SIGINT
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
		}
		return out.String()
	}
	t.Cleanup(func() { stop() })
	return stop
}

// smallPoolConf is a 100-address pool on 192.0.2.0/24 (192.0.2.100-199): the
// server is 192.0.2.1, perfdhcp relays from 192.0.2.2.
const smallPoolConf = `authoritative;
default-lease-time 600;
max-lease-time 600;
subnet 192.0.2.0 netmask 255.255.255.0 {
  option routers 192.0.2.1;
  range 192.0.2.100 192.0.2.199;
}
`

// TestE2EDiscoverFloodRealClientsGetLeases replays finding 6's pool
// starvation: perfdhcp sends DISCOVERs from random MACs (never a REQUEST)
// at 4000 a second on a 100-address pool. Offers were held 30 s, so the
// pool was empty after the first 100 and stayed empty for as long as the
// flood went on. Now pxed reclaims the oldest offer under pressure, and a
// real client's REQUEST takes its address back from whoever it was
// reclaimed for: dhclient and then udhcpc, started during the flood, each
// get a lease within seconds.
func TestE2EDiscoverFloodRealClientsGetLeases(t *testing.T) {
	need(t, "perfdhcp", "dhclient", "udhcpc")
	l := newLab(t, "192.0.2.1/24")
	l.in(l.cli, "ip", "addr", "add", "192.0.2.2/24", "dev", l.cif)
	srv := l.startPxed(smallPoolConf, t.TempDir(), "--log-level", "warn")
	const rate, secs = 4000, 20
	stop := l.perfdhcpIn(t, 40*time.Second, "-4", "-i", "-l", "192.0.2.2", "-r", strconv.Itoa(rate), "-R", "1000000", "-p", strconv.Itoa(secs), "192.0.2.1")
	floodStart := time.Now()
	time.Sleep(2 * time.Second) // the pool is full of offers by now
	const within = 10 * time.Second
	l.dhclientConf = "timeout 15;\n"
	l.setClientMAC("02:00:5e:00:53:61")
	start := time.Now()
	env := l.dhclient(t)
	took := time.Since(start)
	t.Logf("dhclient: %s in %v during the flood", env["new_ip_address"], took.Round(time.Millisecond))
	if took > within {
		out, _ := os.ReadFile(filepath.Join(l.dir, "dhclient.out"))
		t.Errorf("dhclient took %v, want a lease within %v:\n%s", took, within, out)
	}
	l.try(l.cli, 10*time.Second, "sh", "-c", "kill $(cat "+filepath.Join(l.dir, "dhclient.pid")+") 2>/dev/null")
	l.setClientMAC("02:00:5e:00:53:62")
	start = time.Now()
	uenv, out := l.udhcpc(t, "-t", "5")
	took = time.Since(start)
	if uenv == nil {
		t.Fatalf("udhcpc got no lease during the flood:\n%s", out)
	}
	t.Logf("udhcpc: %s in %v during the flood", uenv["ip"], took.Round(time.Millisecond))
	if took > within {
		t.Errorf("udhcpc took %v, want a lease within %v", took, within)
	}
	time.Sleep(time.Until(floodStart.Add(8 * time.Second))) // a flood of 8 s at least, for the figures
	report := stop()
	c := perfdhcpCounts(report)["DISCOVER-OFFER"]
	// The kernel's count of datagrams it dropped because pxed's socket
	// was full (the last column of /proc/net/udp for port 67, 0x0043).
	udp := l.in(l.srv, "cat", "/proc/net/udp")
	drops := "?"
	for _, line := range strings.Split(udp, "\n") {
		if f := strings.Fields(line); len(f) > 12 && strings.HasSuffix(f[1], ":0043") {
			drops = f[len(f)-1]
		}
	}
	t.Logf("flood: %d DISCOVERs sent, %d OFFERs received by perfdhcp; datagrams dropped at pxed's socket: %s", c[0], c[1], drops)
	if m := perfdhcpRateRe.FindStringSubmatch(report); m == nil || atoi(m[1]) < rate/2 {
		t.Errorf("perfdhcp's rate: %v, want several thousand DISCOVERs a second: not the flood this test is about\n%s", m, report)
	}
	ls := l.leases(srv.stateDir)
	for _, want := range []struct{ ip, mac string }{{env["new_ip_address"], "02:00:5e:00:53:61"}, {uenv["ip"], "02:00:5e:00:53:62"}} {
		if ls[want.ip].State != "bound" || ls[want.ip].MAC != want.mac {
			t.Errorf("lease %s: %+v, want bound to %s", want.ip, ls[want.ip], want.mac)
		}
	}
	if !strings.Contains(srv.log.String(), "reclaiming outstanding offers") {
		t.Errorf("pxed did not warn about the reclaimed offers:\n%s", srv.log.String())
	}
}

// TestE2EMassBoot: the other side of reclaiming offers under pressure. 300
// machines boot at once (perfdhcp's avalanche: 300 DISCOVERs in a burst,
// then retransmissions until every client has its ACK) on a 310-address
// pool: every one of them is bound, each to its own address.
func TestE2EMassBoot(t *testing.T) {
	need(t, "perfdhcp")
	l := newLab(t, "198.18.0.1/16")
	l.in(l.cli, "ip", "addr", "add", "198.18.0.2/16", "dev", l.cif)
	conf := `authoritative;
default-lease-time 600;
max-lease-time 600;
subnet 198.18.0.0 netmask 255.254.0.0 {
  option routers 198.18.0.1;
  range 198.18.1.0 198.18.2.53;
}
`
	srv := l.startPxed(conf, t.TempDir(), "--log-level", "warn")
	stop := l.perfdhcpIn(t, 60*time.Second, "-4", "--scenario", "avalanche", "-l", "198.18.0.2", "-R", "300", "198.18.0.1")
	deadline := time.Now().Add(50 * time.Second)
	bound := map[string]string{}
	for time.Now().Before(deadline) {
		bound = map[string]string{}
		for ip, lv := range l.leases(srv.stateDir) {
			if lv.State == "bound" {
				bound[lv.MAC] = ip
			}
		}
		if len(bound) >= 300 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	report := stop()
	if len(bound) != 300 {
		t.Fatalf("%d of 300 clients bound\n%s", len(bound), report)
	}
	addrs := map[string]bool{}
	for _, ip := range bound {
		addrs[ip] = true
	}
	if len(addrs) != 300 {
		t.Fatalf("300 clients bound to %d addresses", len(addrs))
	}
	t.Logf("300 clients bound; perfdhcp:\n%s", lastLines(report, 6))
}

var perfdhcpRateRe = regexp.MustCompile(`Rate: (\d+)(?:\.\d+)? DISCOVER-OFFER/second`)

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
