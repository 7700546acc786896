// Package promtext writes metrics in the Prometheus text exposition format, version 0.0.4.
//
// A Writer writes what it is told, in that order: a family's header (Header), then its
// samples (Sample, Histogram), then the next family. The format wants a family's samples
// together and after its header; metric and label names are the caller's to get right.
package promtext

import (
	"io"
	"math"
	"strconv"
	"strings"
)

// ContentType is the HTTP Content-Type of the format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Type is a family's type, as the # TYPE line spells it.
type Type string

const (
	Counter   Type = "counter"
	Gauge     Type = "gauge"
	Histogram Type = "histogram"
	Untyped   Type = "untyped"
)

// A Writer writes the text format to an io.Writer. After the first write error it writes
// nothing more; Err returns that error.
type Writer struct {
	w      io.Writer
	buf    []byte
	family string // the last Header's name
	err    error
}

// NewWriter returns a Writer writing to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Err returns the first error the underlying writer returned, if any.
func (w *Writer) Err() error { return w.err }

// Header writes the # HELP and # TYPE lines of family name. A second Header for the family
// just written is ignored, so loops may call it before each of their samples.
func (w *Writer) Header(name, help string, typ Type) {
	if name == w.family {
		return
	}
	w.family = name
	b := append(w.buf[:0], "# HELP "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = appendEscaped(b, help, false)
	b = append(b, "\n# TYPE "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = append(b, typ...)
	b = append(b, '\n')
	w.flush(b)
}

// Sample writes one sample of series name with value v. labels are pairs of label name and
// value: Sample("http_requests_total", 3, "method", "GET", "code", "200"). An odd label
// without a value gets the value "".
func (w *Writer) Sample(name string, v float64, labels ...string) {
	w.sample(name, "", labels, false, 0, v)
}

// Histogram writes the samples of one histogram of family name: a name_bucket series per
// upper bound with the cumulative count and le="+Inf" with the total, then name_sum and
// name_count. bounds are the upper bounds in increasing order (without +Inf); counts are
// per bucket, not cumulative: counts[i] observations were at most bounds[i] and above
// bounds[i-1], and counts[len(bounds)], if there, above the last bound. labels are as for
// Sample; the le label comes last.
func (w *Writer) Histogram(name string, bounds []float64, counts []uint64, sum float64, labels ...string) {
	var cum uint64
	for i, le := range bounds {
		if i < len(counts) {
			cum += counts[i]
		}
		w.sample(name, "_bucket", labels, true, le, float64(cum))
	}
	for _, c := range counts[min(len(bounds), len(counts)):] {
		cum += c
	}
	w.sample(name, "_bucket", labels, true, math.Inf(1), float64(cum))
	w.sample(name, "_sum", labels, false, 0, sum)
	w.sample(name, "_count", labels, false, 0, float64(cum))
}

// sample writes the line name+suffix{labels,le="le"} v, without le unless hasLe.
func (w *Writer) sample(name, suffix string, labels []string, hasLe bool, le, v float64) {
	b := append(w.buf[:0], name...)
	b = append(b, suffix...)
	if len(labels) > 0 || hasLe {
		b = append(b, '{')
		for i := 0; i < len(labels); i += 2 {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, labels[i]...)
			b = append(b, `="`...)
			if i+1 < len(labels) {
				b = appendEscaped(b, labels[i+1], true)
			}
			b = append(b, '"')
		}
		if hasLe {
			if len(labels) > 0 {
				b = append(b, ',')
			}
			b = append(b, `le="`...)
			b = AppendFloat(b, le)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = AppendFloat(b, v)
	b = append(b, '\n')
	w.flush(b)
}

func (w *Writer) flush(b []byte) {
	w.buf = b[:0]
	if w.err == nil {
		_, w.err = w.w.Write(b)
	}
}

// appendEscaped appends s with backslash and newline escaped, and double quotes too when
// s is a label value (HELP text keeps them).
func appendEscaped(b []byte, s string, quote bool) []byte {
	if !strings.ContainsAny(s, "\\\n\"") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// AppendFloat appends f as the text format writes a value: whole numbers up to 2^53 as
// integers (no exponent, no fraction), +Inf, -Inf and NaN as such, the rest in the
// shortest form that reads back as f (strconv's 'g' format).
func AppendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	case f == math.Trunc(f) && math.Abs(f) <= 1<<53:
		return strconv.AppendInt(b, int64(f), 10)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}
