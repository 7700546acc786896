package netmgr

// Field validation, in one place (validate*.go): ValidateNetworkCreate,
// ValidateSandboxCreate, ValidateNetworkConnect and ValidateSandboxRename check every field
// of a request on its own and return it parsed, so the daemon, berth-cni and any other
// caller get one error text per field, of the form `invalid FIELD "VALUE": reason`
// (InvalidError). The change methods call them first and parse nothing themselves; what
// needs the store or the kernel (a name taken, an address in use) they check after.
// NetworkRemove, SandboxRemove and NetworkDisconnect have no field to check beyond
// references, which only the store can resolve. This file holds the checks of single
// values that several requests share.

import (
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// Given is a field's parsed value with the text it was given as. Checks that need the store
// come after parsing, and their errors quote what the caller wrote.
type Given[T any] struct {
	Value T
	Text  string
}

// maxNameLen keeps a sandbox or network name usable as one DNS label and as a file name
// under /run/netns and /etc/netns.
const maxNameLen = 63

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// checkName validates a sandbox or network name (Docker's rule, bounded to a DNS label).
func checkName(field, name string) error {
	switch {
	case name == "":
		return invalid(field, name, "must not be empty")
	case len(name) > maxNameLen:
		return invalid(field, name, "longer than %d characters", maxNameLen)
	case !nameRE.MatchString(name):
		return invalid(field, name, "must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")
	case name == "." || name == ".." || strings.Contains(name, ".."):
		return invalid(field, name, "must not contain \"..\"")
	}
	return nil
}

// checkDNSName validates an alias, hostname or search domain: dot-separated labels of
// letters, digits, '-' and '_' (Docker names may hold '_'), each 1-63 bytes, 253 in all.
func checkDNSName(field, name string) error {
	n := strings.TrimSuffix(name, ".")
	if n == "" {
		return invalid(field, name, "must not be empty")
	}
	if len(n) > 253 {
		return invalid(field, name, "longer than 253 characters")
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" {
			return invalid(field, name, "empty label")
		}
		if len(label) > 63 {
			return invalid(field, name, "label %q longer than 63 characters", label)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return invalid(field, name, "label %q starts or ends with '-'", label)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return invalid(field, name, "character %q not allowed", c)
			}
		}
	}
	return nil
}

// maxIfNameLen is IFNAMSIZ-1: Linux refuses longer device names.
const maxIfNameLen = 15

func checkIfName(field, name string) error {
	switch {
	case name == "":
		return invalid(field, name, "must not be empty")
	case len(name) > maxIfNameLen:
		return invalid(field, name, "longer than %d bytes", maxIfNameLen)
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n") || !nameRE.MatchString(name):
		return invalid(field, name, "not a valid interface name")
	}
	return nil
}

func parsePrefix(field, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, invalid(field, s, "not a CIDR (like 172.30.0.0/24)")
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, invalid(field, s, "zones are not allowed")
	}
	if p.Masked() != p {
		return netip.Prefix{}, invalid(field, s, "host bits set (did you mean %s?)", p.Masked())
	}
	return p, nil
}

func parseAddr(field, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, invalid(field, s, "not an IP address")
	}
	return a.Unmap(), nil
}

func parseMAC(field, s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return nil, invalid(field, s, "not a MAC address (like 02:42:ac:11:00:02)")
	}
	if mac[0]&1 == 1 {
		return nil, invalid(field, s, "multicast MAC address")
	}
	return mac, nil
}

// parseLink splits NAME[:ALIAS].
func parseLink(s string) (target, alias string, err error) {
	target, alias, ok := strings.Cut(s, ":")
	if !ok {
		alias = target
	}
	target = strings.TrimPrefix(target, "/")
	if err := checkName("link", target); err != nil {
		return "", "", invalid("link", s, "target: %s", err.(*InvalidError).Reason)
	}
	if err := checkDNSName("link", alias); err != nil {
		return "", "", invalid("link", s, "alias: %s", err.(*InvalidError).Reason)
	}
	return target, alias, nil
}

// checkExtraHost validates HOST:IP (IPv6 addresses hold colons: split at the first one).
// "host-gateway" is accepted as the IP and expanded when the hosts file is written.
func checkExtraHost(s string) error {
	host, ip, ok := strings.Cut(s, ":")
	if !ok {
		return invalid("add-host", s, "want HOST:IP")
	}
	if err := checkDNSName("add-host", host); err != nil {
		return invalid("add-host", s, "host: %s", err.(*InvalidError).Reason)
	}
	if ip == "host-gateway" {
		return nil
	}
	if strings.HasPrefix(ip, "[") && strings.HasSuffix(ip, "]") { // [v6], as the resolver reads it
		ip = ip[1 : len(ip)-1]
	}
	// No zones: a zone may hold any byte, a line break included, and would reach the hosts file.
	if a, err := netip.ParseAddr(ip); err != nil || a.Zone() != "" {
		return invalid("add-host", s, "not an IP address: %q", ip)
	}
	return nil
}

func checkDNSOption(s string) error {
	if s == "" || strings.ContainsAny(s, "#;") || !printableWord(s) {
		return invalid("dns-option", s, "must be one word of printable ASCII like ndots:2")
	}
	return nil
}

// printableWord reports whether s is printable ASCII without spaces: what may go into a
// resolv.conf or hosts line without changing its shape.
func printableWord(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func checkSearch(s string) error {
	if s == "." {
		return nil
	}
	return checkDNSName("dns-search", s)
}

// parseBool accepts the forms Docker accepts for boolean driver options.
func parseBool(field, s string) (bool, error) {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, invalid(field, s, "want true or false")
	}
	return b, nil
}
