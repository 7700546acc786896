package firewall

import "log/slog"

// Host returns what netmgr's Config.Firewall wants on a real host: berth's own tables
// (Apply), then its accept rules in other programs' forward chains (OpenForward: Docker's,
// firewalld's). Those rules failing is not the change's failure (berth's own rules are in;
// the repair loop tries them again), so it is logged.
func Host(log *slog.Logger) func(State) error {
	return func(st State) error {
		if err := Apply(st); err != nil {
			return err
		}
		if changed, err := OpenForward(st); err != nil {
			log.Warn("firewall", "err", err)
		} else if len(changed) > 0 {
			log.Debug("forward chains opened", "what", changed)
		}
		return nil
	}
}
