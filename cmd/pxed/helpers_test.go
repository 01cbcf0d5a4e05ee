package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"pxed/internal/config"
)

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

// holdTCP binds a TCP port on 127.0.0.1 and keeps it until the test ends.
func holdTCP(t *testing.T) (addr string) {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// holdUDP binds a UDP port on 127.0.0.1 and keeps it until the test ends.
func holdUDP(t *testing.T) (addr string) {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().String()
}

// freeUDP finds a UDP port on 127.0.0.1 that was free a moment ago.
func freeUDP(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// freeTCP finds a TCP port on 127.0.0.1 that was free a moment ago.
func freeTCP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func testConfig(t *testing.T, root string) *config.Config {
	t.Helper()
	c := config.Default()
	c.TFTP.Root = root
	c.StateDir = filepath.Join(t.TempDir(), "state")
	c.TFTP.Addr = "127.0.0.1:0"
	c.HTTP.Addr = "127.0.0.1:0"
	c.ShutdownGrace = 2 * time.Second
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TFTP opcodes (RFC 1350, 2347).
const (
	opRRQ   = 1
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// tftpGet fetches name from server with a plain RFC 1350 octet read (512-byte
// blocks, no options), following the server to its transfer port. It returns
// the data, or the server's ERROR packet as an error.
func tftpGet(t *testing.T, server net.Addr, name string) ([]byte, error) {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	srv := server.(*net.UDPAddr)
	rrq := binary.BigEndian.AppendUint16(nil, opRRQ)
	rrq = append(rrq, name...)
	rrq = append(rrq, 0)
	rrq = append(rrq, "octet"...)
	rrq = append(rrq, 0)
	if _, err := conn.WriteToUDP(rrq, srv); err != nil {
		t.Fatal(err)
	}

	var data []byte
	var peer *net.UDPAddr // the transfer's address, learned from block 1
	buf := make([]byte, 1500)
	for block := uint16(1); ; block++ {
		var n int
		var from *net.UDPAddr
		for {
			// A hang guard, not a timing assertion: on loopback nothing
			// is lost, so the server answers at once.
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			n, from, err = conn.ReadFromUDP(buf)
			if err != nil {
				t.Fatalf("TFTP %s: waiting for block %d: %v", name, block, err)
			}
			if peer == nil || (from.IP.Equal(peer.IP) && from.Port == peer.Port) {
				break
			}
			// A packet from another port: RFC 1350 says answer with an
			// ERROR and carry on; the test just ignores it.
		}
		if !from.IP.Equal(srv.IP) {
			t.Fatalf("TFTP %s: packet from %v, want the server's address %v", name, from, srv)
		}
		pkt := buf[:n]
		if len(pkt) < 4 {
			t.Fatalf("TFTP %s: short packet %x", name, pkt)
		}
		switch op := binary.BigEndian.Uint16(pkt); op {
		case opERROR:
			return nil, fmt.Errorf("tftp error %d: %s", binary.BigEndian.Uint16(pkt[2:]), bytes.TrimRight(pkt[4:], "\x00"))
		case opDATA:
		default:
			t.Fatalf("TFTP %s: opcode %d, want DATA", name, op)
		}
		if got := binary.BigEndian.Uint16(pkt[2:]); got != block {
			t.Fatalf("TFTP %s: block %d, want %d", name, got, block)
		}
		if peer == nil {
			peer = from
		}
		payload := pkt[4:]
		if len(payload) > 512 {
			t.Fatalf("TFTP %s: block %d has %d bytes, more than the default 512", name, block, len(payload))
		}
		data = append(data, payload...)
		ack := binary.BigEndian.AppendUint16(nil, opACK)
		ack = binary.BigEndian.AppendUint16(ack, block)
		if _, err := conn.WriteToUDP(ack, peer); err != nil {
			t.Fatal(err)
		}
		if len(payload) < 512 {
			return data, nil
		}
	}
}

// buildPxed builds the pxed binary into a temporary directory.
func buildPxed(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	bin := filepath.Join(t.TempDir(), "pxed")
	cmd := exec.Command(gobin, "build", "-o", bin, "-ldflags", "-X main.version=test-1.2.3", ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("running pxed: %v", err)
	}
	return ee.ExitCode()
}

// startServe runs serve on c until stop is called (or the test ends) and
// returns the addresses it bound; stop returns serve's error.
func startServe(t *testing.T, c *config.Config) (listening, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	readyc := make(chan listening, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, c, slog.New(slog.DiscardHandler), func(l listening) { readyc <- l }) }()
	select {
	case ln := <-readyc:
		return ln, func() error { cancel(); return <-done }
	case err := <-done:
		t.Fatalf("serve: %v", err)
		return listening{}, nil
	}
}

// postStatus POSTs to url (with the API token, if not empty) and returns
// the status code.
func postStatus(t *testing.T, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
