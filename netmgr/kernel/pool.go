package kernel

import (
	"fmt"
	"log/slog"
	"strconv"

	"golang.org/x/sys/unix"
)

// A netns pool keeps a few netns made ahead of need (lo up, nothing else), so that
// CreateNetNS only pins one: making a netns is 1.5-2 ms of kernel work that a sandbox
// create otherwise waits for. One goroutine makes them in the background, one for each
// taken. A pooled netns is held by an open file only: nobody can enter it, so handing it
// out is the same as making it then, and when the daemon dies, however it dies, the
// kernel frees the netns with the file.
type netnsPool struct {
	log   *slog.Logger
	ready chan int      // fds of netns not handed out yet
	want  chan struct{} // a take asks for a refill
	stop  chan struct{}
	done  chan struct{} // closed when fill has returned
}

// StartNetNSPool makes CreateNetNS take its netns from a pool of size, filled in the
// background. Call StopNetNSPool before the daemon exits, and neither concurrently with
// CreateNetNS.
func (k *Linux) StartNetNSPool(size int) {
	p := &netnsPool{log: k.log, ready: make(chan int, size), want: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	k.pool = p
	go p.fill()
}

// StopNetNSPool stops the refill and frees the netns nobody took.
func (k *Linux) StopNetNSPool() {
	p := k.pool
	if p == nil {
		return
	}
	k.pool = nil
	close(p.stop)
	<-p.done
	for len(p.ready) > 0 {
		unix.Close(<-p.ready)
	}
}

// fill keeps ready full until stop.
func (p *netnsPool) fill() {
	defer close(p.done)
	for {
		for len(p.ready) < cap(p.ready) {
			select {
			case <-p.stop:
				return
			default:
			}
			var fd int
			err := onSpareThread(func() (err error) {
				fd, err = newNetNSLocked("")
				return err
			})
			if err != nil {
				// CreateNetNS makes its own meanwhile; the next take asks again.
				p.log.Warn("netns pool", "err", err)
				break
			}
			p.ready <- fd
		}
		select {
		case <-p.stop:
			return
		case <-p.want:
		}
	}
}

// take returns an fd of a pooled netns, or -1 if none is ready (and then asks for more).
// The refill of what it takes is asked for by kick, after the veth is made.
func (p *netnsPool) take() int {
	if p == nil {
		return -1
	}
	select {
	case fd := <-p.ready:
		return fd
	default:
		p.kick()
		return -1
	}
}

// kick asks fill to top the pool up. AddVeth calls it when it is done: making a netns
// takes the locks (rtnl, the pernet lock) a veth is made under, so a refill started at
// take would hold up the create's veth step; after it, the refill overlaps the create's
// commit (a disk wait), its DNS start and the next request.
func (p *netnsPool) kick() {
	if p == nil {
		return
	}
	select {
	case p.want <- struct{}{}:
	default:
	}
}

// pinFd pins the netns open at fd at path.
func pinFd(fd int, path string) error {
	created, err := prepareNetNSFile(path)
	if err != nil {
		return err
	}
	src := "/proc/self/fd/" + strconv.Itoa(fd)
	if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
		if created {
			unpin(path)
		}
		return fmt.Errorf("bind %s: %w", src, err)
	}
	return nil
}
