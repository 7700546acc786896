package firewall

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// The user chain: berth's DOCKER-USER. Docker keeps an iptables chain that FORWARD jumps
// to before any of Docker's own rules and that Docker creates but never flushes, the place
// for an admin's own policy ("only 10.0.0.0/8 may reach the sandboxes"). berth's is
//
//	table inet berth {
//		chain user {
//		}
//		chain forward {
//			type filter hook forward priority filter - 10; policy accept;
//			jump user
//		}
//	}
//
// It is a table of its own, not a chain in the ip and ip6 tables, because berth rebuilds
// those by deleting them whole (one batch, no moment without rules, nothing stale left
// behind: see Firewall.Apply), and a chain inside them would go with them. Keeping it
// there would mean rebuilding chain by chain from a reading of the kernel, and two user
// chains (ip and ip6) to keep in step. The inet table sees both families in one chain;
// its hook runs before berth's forward chains (priority filter), so a user drop is final,
// as in DOCKER-USER. Unlike DOCKER-USER, a user accept ends only this table's chain: it
// lets the packet on to berth's chains, whose drops (isolation, internal networks) still
// apply, as in any nftables ruleset where one base chain cannot overrule another. (Docker
// 29's nftables backend has no DOCKER-USER either: its documentation has such rules
// migrated to nftables tables of the admin's own.)
//
// Every rebuild (first Apply of a daemon, repair after something was taken away) adds the
// table and chain user if they are missing, which leaves an existing chain user and its
// rules as they are (nftables' "add" of an existing chain changes nothing), and resets the
// forward chain to its one jump. Incremental Applies do not touch the table, Remove leaves
// it, and Missing checks only that the table, both chains and the jump are there, never
// which rules chain user holds.

// Names of the user table and chain, as `nft add rule inet berth user ...` spells them.
const (
	UserChain   = "user"
	userForward = "forward" // the base chain that jumps to UserChain
)

// userPriority puts the user table's forward hook before berth's own (priority filter)
// and iptables' FORWARD (also filter), so that a drop there comes first.
var userPriority = nftables.ChainPriorityRef(*nftables.ChainPriorityFilter - 10)

func userTable() *nftables.Table {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
}

func userForwardChain(t *nftables.Table) *nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return &nftables.Chain{Name: userForward, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: userPriority, Policy: &accept}
}

// ensureUser queues the user table: added if missing, chain user added if missing (an
// existing one keeps its rules), and the forward chain reset to its one jump.
func ensureUser(b *batch) {
	t := b.c.AddTable(userTable())
	b.c.AddChain(&nftables.Chain{Name: UserChain, Table: t})
	fwd := b.c.AddChain(userForwardChain(t))
	b.c.FlushChain(fwd)
	b.c.AddRule(&nftables.Rule{Table: t, Chain: fwd,
		Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: UserChain}}})
	b.msgs += 4
	b.rules++
}

// userMissing reports what of the user table is gone from k, in Missing's words.
func userMissing(k kernelTables) []string {
	const fam = "inet"
	kt := k[nftables.TableFamilyINet]
	if kt == nil {
		return []string{"table " + fam + " " + TableName}
	}
	var gone []string
	if _, ok := kt.rules[UserChain]; !ok {
		gone = append(gone, fmt.Sprintf("chain %s %s %s", fam, TableName, UserChain))
	}
	switch n, ok := kt.rules[userForward]; {
	case !ok:
		gone = append(gone, fmt.Sprintf("chain %s %s %s", fam, TableName, userForward))
	case n != 1:
		gone = append(gone, fmt.Sprintf("rules of chain %s %s %s: %d, want 1", fam, TableName, userForward, n))
	}
	return gone
}
