package tftp

import "net/netip"

// Single-port mode and amplification.
//
// In single-port mode every transfer is known by the client's address and
// port alone, and its packets come and go through the listening port, which
// everyone knows. Nothing a client sends proves that it receives what pxed
// sends: block numbers are predictable. So an attacker who forges a victim's
// address can send a request and then ACK blindly, and pxed would stream
// the file to the victim (with a window of 64 blocks, hundreds of kilobytes
// per ACK). In the default mode that cannot happen: each transfer answers
// from a new port the attacker never sees, and a request that is never
// acknowledged yields the first packet and its few retransmissions (about
// 74 times the request's bytes for a bare RRQ, as with tftp-hpa).
//
// A single-port transfer therefore never sends more than amplification
// times the bytes it has received from its client (counting IP and UDP
// headers both ways), like QUIC before it has validated an address (RFC
// 9000, section 8.1). What would go beyond waits, as if lost, until the
// client sends more (its next ACK, a retransmitted ACK or request). So that
// real clients never wait on that limit, a single-port transfer is
// lock-step (windowsize 1: a window of blocks per ACK is what the attacker
// wants) with blocks of at most 2016 bytes (one ACK pays for one block);
// the margin of a block of 1468 or less pays for retransmissions. A
// lock-step client at blksize 1468, the usual case, runs at full speed.

// amplification is how many bytes a single-port transfer may send for each
// byte it received from its client.
const amplification = 64

// ackBytes is the size of an ACK over IPv4 with its headers: what the
// credit is sized by.
const ackBytes = 4 + 28

// singlePortBlksize is the largest blksize negotiated in single-port mode:
// one ACK's credit pays for one block.
const singlePortBlksize = amplification*ackBytes - ackBytes

// headerBytes is what IP and UDP add to a datagram to or from peer.
func headerBytes(peer netip.AddrPort) int64 {
	if peer.Addr().Is4() {
		return 20 + 8
	}
	return 40 + 8
}

// limitAmplification makes a single-port transfer lock-step, with blocks
// one ACK's credit pays for, and says so in oack.
func (t *transfer) limitAmplification(oack []option) {
	t.blksize = min(t.blksize, singlePortBlksize)
	t.windowsize = 1
	for i, o := range oack {
		switch o.name {
		case "blksize":
			oack[i].value = itoa(t.blksize)
		case "windowsize":
			oack[i].value = itoa(t.windowsize)
		}
	}
}

// creditSender sends a single-port transfer's packets within its credit:
// amplification times the bytes received from the client, less the bytes
// sent. A packet beyond the credit is not sent: to the transfer it is a lost
// packet, which its retransmission timer or the client's next packet
// recovers.
type creditSender struct {
	listenerSender
	credit   int64
	withheld int // packets not sent for want of credit
}

func newCreditSender(l *listener, peer netip.AddrPort, local netip.Addr, request int) *creditSender {
	s := &creditSender{listenerSender: listenerSender{l: l, peer: peer, local: local}}
	s.received(request)
	return s
}

// received credits a packet of n bytes from the client.
func (s *creditSender) received(n int) {
	s.credit = min(s.credit+amplification*(int64(n)+headerBytes(s.peer)), 1<<40)
}

func (s *creditSender) send(b []byte) error {
	cost := int64(len(b)) + headerBytes(s.peer)
	if cost > s.credit {
		s.withheld++
		return nil
	}
	s.credit -= cost
	return s.listenerSender.send(b)
}
