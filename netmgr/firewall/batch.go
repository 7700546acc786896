package firewall

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// A batch is sent in one sendmsg, and the kernel answers every message of it with an
// acknowledgement (and every rule with a copy of it: the library sets NLM_F_ECHO) before
// the first is read. With the default socket buffers (net.core.rmem_default, 208 KiB) a
// batch of a few hundred rules overflows the receive queue: "recvmsg: no buffer space
// available" (ENOBUFS), and the batch, though applied, is reported failed. So each
// batch counts what it queues and sizes both buffers to it, as nft does, and element lists
// are split into messages that fit a netlink attribute.
const (
	// maxElemsPerMsg bounds the elements of one message: the list is one netlink attribute,
	// whose length is 16 bits, and our largest element (ip6 links: 56 bytes of key) takes
	// under 100 bytes with its headers. The library does not check: a longer list wraps.
	maxElemsPerMsg = 256

	// Socket memory per reply, as the kernel accounts it (truesize, not length): an
	// acknowledgement is a small skb; an echoed rule is allocated at NLMSG_GOODSIZE.
	ackTruesize  = 1024
	echoTruesize = 8192

	// Upper estimates of what a message takes in the sent batch.
	msgBytes  = 256
	ruleBytes = 1024
	elemBytes = 128

	// defaultBuffer is left alone: smaller batches fit the default buffers.
	defaultBuffer = 128 << 10
	// slack covers the one error reply, which carries the message that failed.
	slack = 128 << 10
)

// batch is one netlink batch being queued.
type batch struct {
	c      *nftables.Conn
	msgs   int    // messages that each get an acknowledgement
	rules  int    // rules, which also come back echoed
	elems  int    // set elements
	nextID uint32 // set IDs of this batch (the library's own counter is a global)
	err    error  // first error queuing
}

// send queues a batch with queue and sends it, with socket buffers sized to it.
func send(queue func(*batch)) error {
	b := &batch{}
	c, err := nftables.New(nftables.WithSockOptions(b.sizeSocket))
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	b.c = c
	queue(b)
	if b.err != nil {
		return b.err
	}
	return c.Flush()
}

// sizeSocket raises the socket's buffers to what the batch needs; it runs when Flush
// opens the socket, after the batch is queued. SO_RCVBUFFORCE and SO_SNDBUFFORCE go past
// net.core.rmem_max and wmem_max; they need CAP_NET_ADMIN, which changing the tables
// needs too. Without it the capped SO_RCVBUF and SO_SNDBUF are tried.
func (b *batch) sizeSocket(nc *netlink.Conn) error {
	rcv := b.msgs*ackTruesize + b.rules*echoTruesize + slack
	snd := b.msgs*msgBytes + b.rules*ruleBytes + b.elems*elemBytes + slack
	raw, err := nc.SyscallConn()
	if err != nil {
		return fmt.Errorf("size netlink socket: %w", err)
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		for _, o := range []struct{ force, plain, size int }{
			{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, rcv},
			{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, snd},
		} {
			if o.size <= defaultBuffer {
				continue
			}
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o.force, o.size) != nil {
				if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o.plain, o.size); err != nil && serr == nil {
					serr = err
				}
			}
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("size netlink socket: %w", err)
	}
	return nil
}

func (b *batch) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

func (b *batch) addSet(ns *nftables.Set) {
	b.nextID++
	ns.ID = b.nextID
	if err := b.c.AddSet(ns, nil); err != nil {
		b.fail(fmt.Errorf("add set %s: %w", ns.Name, err))
	}
	b.msgs++
}

// addElements queues es into ns, maxElemsPerMsg to a message.
func (b *batch) addElements(s *set, ns *nftables.Set, es []elem) {
	b.elements(s, es, func(kes []nftables.SetElement) error { return b.c.SetAddElements(ns, kes) })
}

func (b *batch) delElements(s *set, ns *nftables.Set, es []elem) {
	b.elements(s, es, func(kes []nftables.SetElement) error { return b.c.SetDeleteElements(ns, kes) })
}

func (b *batch) elements(s *set, es []elem, queue func([]nftables.SetElement) error) {
	for len(es) > 0 {
		n := min(len(es), maxElemsPerMsg)
		kes := make([]nftables.SetElement, 0, n*2)
		for _, e := range es[:n] {
			kes = append(kes, s.kernel(e)...)
		}
		if err := queue(kes); err != nil {
			b.fail(fmt.Errorf("set %s elements: %w", s.name, err))
		}
		b.msgs++
		b.elems += len(kes)
		es = es[n:]
	}
}
