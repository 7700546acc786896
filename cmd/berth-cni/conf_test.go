package main

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"berth/api"
	"berth/netmgr"
)

func TestSandboxName(t *testing.T) {
	hexID := "3f1c9a0b2d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5061728394a5b6c7d8e"
	long := strings.Repeat("a", 64) + "-x"
	for _, tc := range []struct {
		name, pod, id, want, err string
	}{
		{"pod name wins", "web-0", hexID, "web-0", ""},
		{"pod name with dots", "web.v2", "x", "web.v2", ""},
		{"bad pod name", "-web", hexID, "", "K8S_POD_NAME"},
		{"pod name too long", strings.Repeat("p", 64), hexID, "", "at most 63"},
		{"hex id", "", hexID, "cni-3f1c9a0b2d4e", ""},
		{"32 hex", "", hexID[:32], "cni-3f1c9a0b2d4e", ""},
		{"short hex is a name", "", "abc123", "abc123", ""},
		{"ctr id", "", "default-web", "default-web", ""},
		{"upper-case hex is a name", "", strings.ToUpper(hexID[:40]), strings.ToUpper(hexID[:40]), ""},
		{"long id hashed", "", long, "cni-", ""},
		{"bad chars hashed", "", "pod:web", "cni-", ""},
		{"pod name with ..", "a..b", hexID, "", `without ".."`},
		{"id with .. hashed", "", "default-a..b", "cni-", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sandboxName(tc.pod, tc.id)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("sandboxName(%q, %q) = %q, %v; want error containing %q", tc.pod, tc.id, got, err, tc.err)
				}
				var te *types.Error
				if !errors.As(err, &te) || te.Code != types.ErrInvalidEnvironmentVariables {
					t.Errorf("error %v is not a CNI error with code 4", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("sandboxName(%q, %q): %v", tc.pod, tc.id, err)
			}
			if tc.want == "cni-" {
				if !strings.HasPrefix(got, "cni-") || len(got) != 16 || !isHexID(strings.Repeat(got[4:], 3)) {
					t.Errorf("sandboxName(%q) = %q, want cni- + 12 hex", tc.id, got)
				}
				if again, _ := sandboxName("", tc.id); again != got {
					t.Errorf("not deterministic: %q then %q", got, again)
				}
			} else if got != tc.want {
				t.Errorf("sandboxName(%q, %q) = %q, want %q", tc.pod, tc.id, got, tc.want)
			}
			if !validName(got) {
				t.Errorf("%q is not a valid berth name", got)
			}
		})
	}
}

// FuzzNameRule: the plugin's copy of the sandbox name rule accepts exactly what the
// daemon's validator accepts, so a name ADD picks is never refused by the daemon.
func FuzzNameRule(f *testing.F) {
	for _, s := range []string{"web", "web-0", "web.v2", "a..b", "..", ".", "-x", "_x", "a/b", "a b", "é",
		"default-web", strings.Repeat("n", 63), strings.Repeat("n", 64), "", "x\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := netmgr.ValidateSandboxRename(api.SandboxRename{Name: s})
		if validName(s) != (err == nil) {
			t.Errorf("validName(%q) = %v, but the daemon's validator says %v", s, validName(s), err)
		}
	})
}

func TestParseConf(t *testing.T) {
	t.Setenv("BERTH_HOST", "")
	conf, err := parseConf([]byte(`{"cniVersion":"1.0.0","name":"app","type":"berth-cni"}`))
	if err != nil {
		t.Fatal(err)
	}
	if conf.Network != "app" || conf.Daemon != "unix:///run/berth/berth.sock" {
		t.Errorf("defaults: network %q daemon %q, want app and the default socket", conf.Network, conf.Daemon)
	}
	t.Setenv("BERTH_HOST", "unix:///tmp/x.sock")
	conf, err = parseConf([]byte(`{"cniVersion":"1.1.0","name":"pods","type":"berth-cni","network":"back",
		"runtimeConfig":{"aliases":{"pods":["api","www"],"back":["www","b"],"other":["no"]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if conf.Network != "back" || conf.Daemon != "unix:///tmp/x.sock" {
		t.Errorf("network %q daemon %q, want back and $BERTH_HOST", conf.Network, conf.Daemon)
	}
	if got, want := conf.aliases(), []string{"api", "www", "b"}; !slices.Equal(got, want) {
		t.Errorf("aliases %q, want %q", got, want)
	}
	conf, err = parseConf([]byte(`{"cniVersion":"1.0.0","name":"app","type":"berth-cni","daemon":"unix:///d.sock"}`))
	if err != nil || conf.Daemon != "unix:///d.sock" {
		t.Errorf("daemon from config: %v %+v", err, conf)
	}
	for _, bad := range []string{`{"name":`, `{"name":"app","daemon":"tcp://1.2.3.4:1"}`, `{"name":"app","network":7}`} {
		if _, err := parseConf([]byte(bad)); err == nil {
			t.Errorf("parseConf(%s) succeeded", bad)
		} else if _, ok := err.(*types.Error); !ok {
			t.Errorf("parseConf(%s): %T is not a CNI error", bad, err)
		}
	}
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		in, pod string
		ok      bool
	}{
		{"", "", true},
		{"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u", "web-0", true},
		{"K8S_POD_NAME=web", "web", true},
		{"IgnoreUnknown=1;FOO=bar;K8S_POD_NAME=db", "db", true},
		{"FOO=bar", "", false},
		{"garbage", "", false},
	} {
		a, err := parseArgs(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("parseArgs(%q): %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && string(a.K8S_POD_NAME) != tc.pod {
			t.Errorf("parseArgs(%q): pod %q, want %q", tc.in, a.K8S_POD_NAME, tc.pod)
		}
	}
}

func TestLabels(t *testing.T) {
	conf := &netConf{PluginConf: types.PluginConf{Name: "app"}, Network: "back"}
	got := labels(conf, &skel.CmdArgs{ContainerID: "c1", IfName: "eth0"})
	want := map[string]string{labelContainer: "c1", labelIfName: "eth0", labelNetwork: "app"}
	if len(got) != len(want) {
		t.Fatalf("labels %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("label %s = %q, want %q", k, got[k], v)
		}
	}
}
