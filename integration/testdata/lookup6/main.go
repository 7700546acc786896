// lookup6 resolves each argument with Go's own resolver (PreferGo: it reads /etc/resolv.conf
// and talks DNS itself, no glibc) and prints one "NAME ADDR..." line each; it exits 1 on
// the first failure. TestDNS6 runs it inside an IPv6-only sandbox.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

func main() {
	r := &net.Resolver{PreferGo: true}
	for _, name := range os.Args[1:] {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		addrs, err := r.LookupHost(ctx, name)
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "lookup %s: %v\n", name, err)
			os.Exit(1)
		}
		fmt.Printf("%s %s\n", name, strings.Join(addrs, " "))
	}
}
