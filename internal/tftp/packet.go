// Package tftp is pxed's TFTP server (RFC 1350 with the option extensions of
// RFC 2347, 2348, 2349 and 7440) and the packet codec it shares with clients.
package tftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Opcodes (RFC 1350, RFC 2347).
const (
	opRRQ   uint16 = 1
	opWRQ   uint16 = 2
	opDATA  uint16 = 3
	opACK   uint16 = 4
	opERROR uint16 = 5
	opOACK  uint16 = 6
)

// Error codes (RFC 1350, RFC 2347).
const (
	ErrUndefined     uint16 = 0
	ErrNotFound      uint16 = 1
	ErrAccess        uint16 = 2
	ErrDiskFull      uint16 = 3
	ErrIllegalOp     uint16 = 4
	ErrUnknownTID    uint16 = 5
	ErrFileExists    uint16 = 6
	ErrNoSuchUser    uint16 = 7
	ErrOptionRefused uint16 = 8
)

// Limits from the RFCs.
const (
	defaultBlksize = 512
	minBlksize     = 8
	maxBlksize     = 65464 // RFC 2348
	maxWindowsize  = 65535 // RFC 7440
	maxRequestSize = 65468 // larger than any request a client may send in one datagram
)

// request is a parsed RRQ or WRQ.
type request struct {
	op       uint16
	filename string
	mode     string // lower-cased: "octet", "netascii" or "mail"
	// options in the order the client sent them, names lower-cased.
	options []option
}

type option struct{ name, value string }

// errMalformed is wrapped by every parse error.
var errMalformed = errors.New("malformed packet")

// parseRequest parses a read or write request. It accepts what the RFCs allow
// and what real clients send (a missing final NUL after the last option value
// is tolerated, as several PXE ROMs omit it), and refuses anything else with an
// error wrapping errMalformed.
func parseRequest(b []byte) (*request, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: request of %d bytes", errMalformed, len(b))
	}
	op := binary.BigEndian.Uint16(b)
	if op != opRRQ && op != opWRQ {
		return nil, fmt.Errorf("%w: opcode %d is not a request", errMalformed, op)
	}
	fields := bytes.Split(b[2:], []byte{0})
	// A well-formed request ends in NUL, which leaves an empty last field.
	if n := len(fields); n > 0 && len(fields[n-1]) == 0 {
		fields = fields[:n-1]
	}
	if len(fields) < 2 {
		return nil, fmt.Errorf("%w: request without file name and mode", errMalformed)
	}
	r := &request{op: op, filename: string(fields[0]), mode: strings.ToLower(string(fields[1]))}
	if r.filename == "" {
		return nil, fmt.Errorf("%w: empty file name", errMalformed)
	}
	switch r.mode {
	case "octet", "netascii", "mail":
	default:
		return nil, fmt.Errorf("%w: unknown transfer mode %q", errMalformed, fields[1])
	}
	rest := fields[2:]
	if len(rest)%2 != 0 {
		// An option name without a value: RFC 2347 makes the whole option list
		// malformed; drop the dangling name and keep the rest, as tftp-hpa does.
		rest = rest[:len(rest)-1]
	}
	for i := 0; i+1 < len(rest); i += 2 {
		name := strings.ToLower(string(rest[i]))
		if name == "" {
			continue
		}
		r.options = append(r.options, option{name: name, value: string(rest[i+1])})
	}
	return r, nil
}

// appendRequest encodes a request; clients and tests use it.
func appendRequest(b []byte, op uint16, filename, mode string, opts []option) []byte {
	b = binary.BigEndian.AppendUint16(b, op)
	b = append(b, filename...)
	b = append(b, 0)
	b = append(b, mode...)
	b = append(b, 0)
	for _, o := range opts {
		b = append(b, o.name...)
		b = append(b, 0)
		b = append(b, o.value...)
		b = append(b, 0)
	}
	return b
}

// appendError encodes an ERROR packet.
func appendError(b []byte, code uint16, msg string) []byte {
	b = binary.BigEndian.AppendUint16(b, opERROR)
	b = binary.BigEndian.AppendUint16(b, code)
	// The message is NetASCII and NUL-terminated: keep it printable.
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c >= 0x20 && c < 0x7f {
			b = append(b, c)
		}
	}
	return append(b, 0)
}

// appendOACK encodes an OACK with the options in the given order.
func appendOACK(b []byte, opts []option) []byte {
	b = binary.BigEndian.AppendUint16(b, opOACK)
	for _, o := range opts {
		b = append(b, o.name...)
		b = append(b, 0)
		b = append(b, o.value...)
		b = append(b, 0)
	}
	return b
}

// putDataHeader writes a DATA header into the first four bytes of b.
func putDataHeader(b []byte, block uint16) {
	binary.BigEndian.PutUint16(b, opDATA)
	binary.BigEndian.PutUint16(b[2:], block)
}

// parseAck returns the block number of an ACK. For an ERROR packet it returns
// ok=false and the peer's error; anything else is malformed.
func parseAck(b []byte) (block uint16, peerErr error, err error) {
	if len(b) < 4 {
		return 0, nil, fmt.Errorf("%w: %d-byte packet", errMalformed, len(b))
	}
	switch op := binary.BigEndian.Uint16(b); op {
	case opACK:
		return binary.BigEndian.Uint16(b[2:]), nil, nil
	case opERROR:
		return 0, parseError(b), nil
	default:
		return 0, nil, fmt.Errorf("%w: opcode %d where an ACK was expected", errMalformed, op)
	}
}

// PeerError is an ERROR packet received from the other side of a transfer.
type PeerError struct {
	Code    uint16
	Message string
}

func (e *PeerError) Error() string {
	return fmt.Sprintf("peer sent error %d: %s", e.Code, e.Message)
}

// parseError decodes an ERROR packet (b starts with the opcode).
func parseError(b []byte) *PeerError {
	e := &PeerError{}
	if len(b) >= 4 {
		e.Code = binary.BigEndian.Uint16(b[2:])
		msg := b[4:]
		if i := bytes.IndexByte(msg, 0); i >= 0 {
			msg = msg[:i]
		}
		e.Message = strings.ToValidUTF8(string(msg), "?")
	}
	return e
}
