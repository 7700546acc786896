package netmgr

import "fmt"

// InvalidError is a rejected input: the API answers 400 and the CLI prints Error() as its one
// line. Nothing has been changed when it is returned.
type InvalidError struct {
	Field  string // the flag or JSON field, e.g. "subnet", "name"
	Value  string
	Reason string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.Field, e.Value, e.Reason)
}

func invalid(field, value, format string, args ...any) error {
	return &InvalidError{Field: field, Value: value, Reason: fmt.Sprintf(format, args...)}
}
