package dnstest

import (
	"net"

	"github.com/miekg/dns"
)

// Writer is a fake dns.ResponseWriter that keeps what a handler writes, as CoreDNS's
// test.ResponseWriter and dnstest.Recorder do together: a handler under test is called
// as ServeDNS(w, query) with no socket. It says it is 127.0.0.11:53 talking to a client at
// 127.0.0.1:40000, over UDP unless TCP is set (handlers tell the transport by the type
// of LocalAddr, as miekg's server lets them).
type Writer struct {
	TCP bool // LocalAddr and RemoteAddr are *net.TCPAddr, else *net.UDPAddr

	Raw []byte   // the last message written, as sent; or nil
	Msg *dns.Msg // Raw unpacked; or nil
	N   int      // messages written
}

// NewWriter returns a Writer for proto, "udp" or "tcp".
func NewWriter(proto string) *Writer { return &Writer{TCP: proto == "tcp"} }

// LocalAddr implements dns.ResponseWriter.
func (w *Writer) LocalAddr() net.Addr {
	if w.TCP {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 11), Port: 53}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 11), Port: 53}
}

// RemoteAddr implements dns.ResponseWriter.
func (w *Writer) RemoteAddr() net.Addr {
	if w.TCP {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}

// WriteMsg implements dns.ResponseWriter: m packed, then Write.
func (w *Writer) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// Write implements dns.ResponseWriter. It keeps a copy of b and fails if b does not
// unpack (Msg is nil then).
func (w *Writer) Write(b []byte) (int, error) {
	w.N++
	w.Raw = append([]byte(nil), b...)
	w.Msg = new(dns.Msg)
	if err := w.Msg.Unpack(b); err != nil {
		w.Msg = nil
		return len(b), err
	}
	return len(b), nil
}

// Close implements dns.ResponseWriter.
func (w *Writer) Close() error { return nil }

// TsigStatus implements dns.ResponseWriter.
func (w *Writer) TsigStatus() error { return nil }

// TsigTimersOnly implements dns.ResponseWriter.
func (w *Writer) TsigTimersOnly(bool) {}

// Hijack implements dns.ResponseWriter.
func (w *Writer) Hijack() {}
