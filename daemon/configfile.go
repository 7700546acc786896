package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"berth/netmgr"
)

// DefaultConfigFile is where the daemon looks for its daemon.json when --config-file is not
// given; a missing default file is no error, as with dockerd's /etc/docker/daemon.json.
const DefaultConfigFile = "/etc/berth/daemon.json"

// fileKeys maps each daemon.json key berth knows (Docker's names) to the flag it sets. Any
// other key stops the daemon, as dockerd does, rather than being silently ignored.
var fileKeys = map[string]string{
	"bip": "bip", "fixed-cidr": "fixed-cidr", "fixed-cidr-v6": "fixed-cidr-v6", "ipv6": "ipv6",
	"default-address-pools": "default-address-pool", "mtu": "mtu",
	"iptables": "iptables", "ip-masq": "ip-masq", "icc": "icc", "ip-forward": "ip-forward",
	"dns": "dns", "dns-search": "dns-search", "dns-opts": "dns-option",
	"dns-cache-size": "dns-cache-size", "dns-cache-memory": "dns-cache-memory", // berth's own
	"log-level": "log-level", "group": "group", "data-root": "root", "exec-root": "exec-root",
	"metrics-addr": "metrics-addr", "cluster-store": "cluster-store", "cluster-advertise": "cluster-advertise",
	"cluster-store-opts": "cluster-store-opt",
	"tlsverify":          "tlsverify", "tlscacert": "tlscacert", "tlscert": "tlscert", "tlskey": "tlskey",
}

// ApplyConfigFile reads the daemon.json at path and sets, through flags, the flag of each key
// it has, so a value from the file is parsed and checked exactly as the flag's. given says
// --config-file named the file: then a missing file is an error. As dockerd, it refuses an
// unknown key, a value of the wrong JSON type and a key that is also given as a flag, in
// dockerd's words, on one line.
func ApplyConfigFile(flags *pflag.FlagSet, path string, given bool) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !given {
		return nil
	}
	if err == nil {
		err = applyConfig(flags, b)
	}
	if err != nil {
		return fmt.Errorf("unable to configure the berth daemon with file %s: %w", path, err)
	}
	return nil
}

// fileConfig is the typed daemon.json, checked only for JSON types; a key present is non-nil.
// (Decoded through a type named Config so that a type error reads as dockerd's: "json:
// cannot unmarshal string into Go struct field Config.mtu of type int".)
type fileConfig struct {
	BIP         *string           `json:"bip"`
	FixedCIDR   *string           `json:"fixed-cidr"`
	FixedCIDRv6 *string           `json:"fixed-cidr-v6"`
	IPv6        *bool             `json:"ipv6"`
	Pools       []Pool            `json:"default-address-pools"`
	MTU         *int              `json:"mtu"`
	IPTables    *bool             `json:"iptables"`
	IPMasq      *bool             `json:"ip-masq"`
	ICC         *bool             `json:"icc"`
	IPForward   *bool             `json:"ip-forward"`
	DNS         []string          `json:"dns"`
	DNSSearch   []string          `json:"dns-search"`
	DNSOpts     []string          `json:"dns-opts"`
	DNSCache    *int              `json:"dns-cache-size"`
	DNSCacheMem *string           `json:"dns-cache-memory"`
	LogLevel    *string           `json:"log-level"`
	Group       *string           `json:"group"`
	DataRoot    *string           `json:"data-root"`
	ExecRoot    *string           `json:"exec-root"`
	Metrics     *string           `json:"metrics-addr"`
	Cluster     *string           `json:"cluster-store"`
	Advertise   *string           `json:"cluster-advertise"`
	ClusterOpts map[string]string `json:"cluster-store-opts"`
	TLSVerify   *bool             `json:"tlsverify"`
	TLSCACert   *string           `json:"tlscacert"`
	TLSCert     *string           `json:"tlscert"`
	TLSKey      *string           `json:"tlskey"`
}

type Pool struct {
	Base string `json:"base"`
	Size int    `json:"size"`
}

func applyConfig(flags *pflag.FlagSet, b []byte) error {
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	var unknown, conflicts []string
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		name, ok := fileKeys[k]
		if !ok {
			unknown = append(unknown, k)
			continue
		}
		if f := flags.Lookup(name); f != nil && f.Changed {
			conflicts = append(conflicts, fmt.Sprintf("%s: (from flag: %v, from file: %v)", k, f.Value, raw[k]))
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("the following directives don't match any configuration option: %s", strings.Join(unknown, ", "))
	}
	if len(conflicts) > 0 {
		return fmt.Errorf("the following directives are specified both as a flag and in the configuration file: %s", strings.Join(conflicts, ", "))
	}
	type Config fileConfig
	var fc Config
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&fc); err != nil {
		return err
	}
	return fileConfig(fc).apply(flags)
}

// apply sets the flag of each key present.
func (fc fileConfig) apply(flags *pflag.FlagSet) error {
	var sets [][2]string // flag, value: in this order
	str := func(name string, v *string) {
		if v != nil {
			sets = append(sets, [2]string{name, *v})
		}
	}
	boolean := func(name string, v *bool) {
		if v != nil {
			sets = append(sets, [2]string{name, strconv.FormatBool(*v)})
		}
	}
	integer := func(name string, v *int) {
		if v != nil {
			sets = append(sets, [2]string{name, strconv.Itoa(*v)})
		}
	}
	list := func(name string, vs []string) {
		for _, v := range vs {
			sets = append(sets, [2]string{name, v})
		}
	}
	str("bip", fc.BIP)
	str("fixed-cidr", fc.FixedCIDR)
	str("fixed-cidr-v6", fc.FixedCIDRv6)
	boolean("ipv6", fc.IPv6)
	for _, p := range fc.Pools {
		sets = append(sets, [2]string{"default-address-pool", "base=" + p.Base + ",size=" + strconv.Itoa(p.Size)})
	}
	integer("mtu", fc.MTU)
	boolean("iptables", fc.IPTables)
	boolean("ip-masq", fc.IPMasq)
	boolean("icc", fc.ICC)
	boolean("ip-forward", fc.IPForward)
	list("dns", fc.DNS)
	list("dns-search", fc.DNSSearch)
	list("dns-option", fc.DNSOpts)
	integer("dns-cache-size", fc.DNSCache)
	str("dns-cache-memory", fc.DNSCacheMem)
	str("log-level", fc.LogLevel)
	str("group", fc.Group)
	str("root", fc.DataRoot)
	str("exec-root", fc.ExecRoot)
	str("metrics-addr", fc.Metrics)
	str("cluster-store", fc.Cluster)
	str("cluster-advertise", fc.Advertise)
	for _, k := range slices.Sorted(maps.Keys(fc.ClusterOpts)) {
		sets = append(sets, [2]string{"cluster-store-opt", k + "=" + fc.ClusterOpts[k]})
	}
	boolean("tlsverify", fc.TLSVerify)
	str("tlscacert", fc.TLSCACert)
	str("tlscert", fc.TLSCert)
	str("tlskey", fc.TLSKey)
	for _, s := range sets {
		f := flags.Lookup(s[0])
		if f == nil {
			return fmt.Errorf("no flag --%s for daemon.json", s[0]) // fileKeys lists a flag the command lacks
		}
		// The flag's own parser, without pflag's "invalid argument ... flag" around its error.
		if err := f.Value.Set(s[1]); err != nil {
			key := s[0]
			for k, f := range fileKeys {
				if f == s[0] {
					key = k
				}
			}
			return fmt.Errorf("invalid %s %q: %w", key, s[1], err)
		}
	}
	return nil
}

// ParsePool parses one --default-address-pool, base=CIDR,size=N, with dockerd's error words
// for the fields it checks the same way.
func ParsePool(s string) (netmgr.Pool, error) {
	var base string
	size := -1
	for _, field := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			return netmgr.Pool{}, fmt.Errorf("invalid field '%s' must be a key=value pair", field)
		}
		switch k = strings.ToLower(k); k {
		case "base":
			base = v
		case "size":
			n, err := strconv.Atoi(v)
			if err != nil {
				return netmgr.Pool{}, fmt.Errorf("invalid size value: %q (must be integer): %w", v, err)
			}
			size = n
		default:
			return netmgr.Pool{}, fmt.Errorf("unexpected key '%s' in '%s'", k, field)
		}
	}
	if base == "" {
		return netmgr.Pool{}, errors.New("base=CIDR missing")
	}
	p, err := netip.ParsePrefix(base)
	if err != nil {
		return netmgr.Pool{}, fmt.Errorf("invalid base pool %q: invalid CIDR address: %s", base, base)
	}
	if !p.Addr().Is4() {
		return netmgr.Pool{}, fmt.Errorf("invalid base pool %q: only IPv4 pools are supported", base)
	}
	if size < p.Bits() || size > 32 {
		if size == -1 {
			size = 0
		}
		return netmgr.Pool{}, fmt.Errorf("invalid pools size: %d (want %d to 32 for base %s)", size, p.Bits(), base)
	}
	return netmgr.Pool{Base: p.Masked(), Size: size}, nil
}

// PoolsValue is the --default-address-pool flag (repeatable): its values in order.
type PoolsValue struct{ Pools *[]netmgr.Pool }

// Set parses and appends one pool.
func (v PoolsValue) Set(s string) error {
	p, err := ParsePool(s)
	if err != nil {
		return err
	}
	*v.Pools = append(*v.Pools, p)
	return nil
}

func (v PoolsValue) String() string {
	if v.Pools == nil {
		return "[]"
	}
	var out []string
	for _, p := range *v.Pools {
		out = append(out, fmt.Sprintf("base=%s,size=%d", p.Base, p.Size))
	}
	return "[" + strings.Join(out, " ") + "]"
}

// Type names the value in --help.
func (v PoolsValue) Type() string { return "base=CIDR,size=N" }
