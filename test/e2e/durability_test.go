package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The DORA client below runs inside the client namespace (the test binary
// re-executed under `ip netns exec`): it walks many MACs through
// DISCOVER/OFFER/REQUEST/ACK with the broadcast flag set and prints
// "ACK <mac> <ip>" only once the ACK is in hand — the client's own record of
// what the server promised. perfdhcp has no such record, so this client is
// the witness; perfdhcp supplies the load.

const roleEnv = "PXED_E2E_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "dora":
		os.Exit(doraMain(os.Getenv("PXED_E2E_IFACE"), os.Getenv("PXED_E2E_MODE")))
	case "dhcpsend":
		os.Exit(sendMain(os.Getenv("PXED_E2E_IFACE")))
	}
	code := m.Run()
	if pxedBin != "" {
		os.RemoveAll(filepath.Dir(pxedBin))
	}
	os.Exit(code)
}

func doraSocket(iface string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
			if serr == nil {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
			}
			if serr == nil {
				serr = syscall.BindToDevice(int(fd), iface)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:68")
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

func doraPacket(t byte, xid uint32, mac net.HardwareAddr, opts ...[]byte) []byte {
	b := make([]byte, 240, 300)
	b[0], b[1], b[2] = 1, 1, 6
	binary.BigEndian.PutUint32(b[4:], xid)
	b[10] = 0x80 // broadcast flag: this client has no raw socket
	copy(b[28:], mac)
	copy(b[236:], []byte{99, 130, 83, 99})
	b = append(b, 53, 1, t)
	for _, o := range opts {
		b = append(b, o...)
	}
	return append(b, 255)
}

// doraReply parses what the client needs from a reply.
func doraReply(b []byte) (xid uint32, typ byte, yiaddr, server netip.Addr, ok bool) {
	if len(b) < 240 || b[0] != 2 {
		return
	}
	xid = binary.BigEndian.Uint32(b[4:])
	yiaddr = netip.AddrFrom4([4]byte(b[16:20]))
	for i := 240; i+1 < len(b); {
		code := b[i]
		if code == 0 {
			i++
			continue
		}
		if code == 255 {
			break
		}
		n := int(b[i+1])
		if i+2+n > len(b) {
			return
		}
		switch {
		case code == 53 && n == 1:
			typ = b[i+2]
		case code == 54 && n == 4:
			server = netip.AddrFrom4([4]byte(b[i+2 : i+6]))
		}
		i += 2 + n
	}
	return xid, typ, yiaddr, server, typ != 0
}

// doraMain: mode "run" walks MACs 02:00:5e:10:00:00 upward until stdin
// closes or 20000 are done; mode "verify" reads "mac ip" lines from stdin
// and prints "OFFER mac ip" for each.
func doraMain(iface, mode string) int {
	conn, err := doraSocket(iface)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dora:", err)
		return 1
	}
	type reply struct {
		typ            byte
		yiaddr, server netip.Addr
	}
	var mu sync.Mutex
	waiting := map[uint32]chan reply{}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			xid, typ, yi, sid, ok := doraReply(buf[:n])
			if !ok {
				continue
			}
			mu.Lock()
			ch := waiting[xid]
			mu.Unlock()
			if ch != nil {
				select {
				case ch <- reply{typ, yi, sid}:
				default:
				}
			}
		}
	}()
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}
	exchange := func(xid uint32, pkt []byte) (reply, bool) {
		ch := make(chan reply, 1)
		mu.Lock()
		waiting[xid] = ch
		mu.Unlock()
		defer func() { mu.Lock(); delete(waiting, xid); mu.Unlock() }()
		for range 3 {
			conn.WriteToUDP(pkt, bcast)
			select {
			case r := <-ch:
				return r, true
			case <-time.After(300 * time.Millisecond):
			}
		}
		return reply{}, false
	}
	out := bufio.NewWriter(os.Stdout)
	var outMu sync.Mutex
	emit := func(s string) {
		outMu.Lock()
		out.WriteString(s)
		out.Flush()
		outMu.Unlock()
	}
	if mode == "verify" {
		sc := bufio.NewScanner(os.Stdin)
		xid := uint32(0x7e000000)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			mac, _ := net.ParseMAC(f[0])
			xid++
			r, ok := exchange(xid, doraPacket(1, xid, mac))
			if ok && r.typ == 2 {
				emit(fmt.Sprintf("OFFER %s %s\n", mac, r.yiaddr))
			} else {
				emit(fmt.Sprintf("NONE %s\n", mac))
			}
		}
		return 0
	}
	stop := make(chan struct{})
	go func() { bufio.NewReader(os.Stdin).ReadByte(); close(stop) }()
	var wg sync.WaitGroup
	var next sync.Mutex
	i := 0
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				next.Lock()
				n := i
				i++
				next.Unlock()
				if n >= 20000 {
					return
				}
				mac := net.HardwareAddr{2, 0, 0x5e, 0x10, byte(n >> 8), byte(n)}
				xid := uint32(w)<<24 | uint32(n)
				r, ok := exchange(xid, doraPacket(1, xid, mac))
				if !ok || r.typ != 2 {
					continue
				}
				yi := r.yiaddr.As4()
				sid := r.server.As4()
				xid |= 1 << 23
				a, ok := exchange(xid, doraPacket(3, xid, mac, append([]byte{50, 4}, yi[:]...), append([]byte{54, 4}, sid[:]...)))
				if ok && a.typ == 5 {
					emit(fmt.Sprintf("ACK %s %s\n", mac, a.yiaddr))
				}
			}
		}()
	}
	wg.Wait()
	return 0
}

func TestE2EKill9LosesNoAcknowledgedLease(t *testing.T) {
	need(t, "perfdhcp")
	l := newLab(t, "198.18.0.1/16")
	l.in(l.cli, "ip", "addr", "add", "203.0.113.2/24", "dev", l.cif)
	l.in(l.cli, "ip", "route", "add", "198.18.0.0/16", "dev", l.cif)
	l.in(l.srv, "ip", "route", "add", "203.0.113.0/24", "dev", l.sif)
	conf := `authoritative;
default-lease-time 3600;
max-lease-time 7200;
subnet 198.18.0.0 netmask 255.254.0.0 {
  option routers 198.18.0.1;
  range 198.18.1.0 198.18.200.255;
}
subnet 203.0.113.0 netmask 255.255.255.0 {
  range 203.0.113.10 203.0.113.250;
}
`
	state := t.TempDir()
	acked := map[string]string{} // mac -> ip, as the client saw
	for round := range 3 {
		srv := l.startPxed(conf, state, "--log-level", "warn")
		// Load: perfdhcp as a relay (its own subnet), for the whole round.
		perf := exec.Command("ip", "netns", "exec", l.cli, "timeout", "20", "perfdhcp", "-4", "-l", "203.0.113.2", "-r", "500", "-R", "200", "-p", "15", "198.18.0.1")
		perf.Start()
		// The witness.
		dora := exec.Command("ip", "netns", "exec", l.cli, "timeout", "30", os.Args[0], "-test.run", "^$")
		dora.Env = append(os.Environ(), roleEnv+"=dora", "PXED_E2E_IFACE="+l.cif, "PXED_E2E_MODE=run")
		stdin, _ := dora.StdinPipe()
		stdout, _ := dora.StdoutPipe()
		dora.Stderr = os.Stderr
		if err := dora.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 100000)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		time.Sleep(time.Duration(1500+500*round) * time.Millisecond)
		srv.kill(syscall.SIGKILL) // mid-stream: ACKs and commits in flight
		time.Sleep(700 * time.Millisecond)
		stdin.Close()
		n := 0
		for line := range lines {
			f := strings.Fields(line)
			if len(f) == 3 && f[0] == "ACK" {
				if prev, ok := acked[f[1]]; ok && prev != f[2] {
					t.Errorf("%s was ACKed %s before and %s now", f[1], prev, f[2])
				}
				acked[f[1]] = f[2]
				n++
			}
		}
		dora.Wait()
		perf.Process.Kill()
		perf.Wait()
		if n == 0 {
			t.Fatalf("round %d: the witness got no ACK before the kill", round)
		}
		// Offline: the database must hold every acknowledged lease.
		ls := l.leases(state)
		owner := map[string]string{}
		for mac, ip := range acked {
			lv, ok := ls[ip]
			if !ok || lv.MAC != mac || lv.State != "bound" {
				t.Errorf("round %d: %s was ACKed %s, but the database has %+v", round, mac, ip, lv)
			}
			if o, dup := owner[ip]; dup {
				t.Errorf("%s was ACKed to both %s and %s", ip, o, mac)
			}
			owner[ip] = mac
		}
		t.Logf("round %d: %d ACKs witnessed this round, %d in all, %d records in the database", round, n, len(acked), len(ls))
	}
	// Restart: every witnessed client is offered its own address again.
	l.startPxed(conf, state, "--log-level", "warn")
	verify := exec.Command("ip", "netns", "exec", l.cli, "timeout", "60", os.Args[0], "-test.run", "^$")
	verify.Env = append(os.Environ(), roleEnv+"=dora", "PXED_E2E_IFACE="+l.cif, "PXED_E2E_MODE=verify")
	var in strings.Builder
	checked := 0
	for mac, ip := range acked {
		fmt.Fprintf(&in, "%s %s\n", mac, ip)
		if checked++; checked == 200 {
			break
		}
	}
	verify.Stdin = strings.NewReader(in.String())
	out, err := verify.Output()
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "OFFER" || acked[f[1]] != f[2] {
			t.Errorf("after restart: %q, want OFFER of the address ACKed before (%s)", line, acked[strings.Fields(line + " x")[1]])
		}
	}
}
