#!/bin/sh
# containerd.sh DIR: run containerd with DIR/config.toml in the mount namespace this script
# is started in (unshare --mount --propagation private), arranged so that containerd, its
# shims, runc and `ctr --cni` (joined with nsenter --mount) find everything in DIR:
#   /etc            overlay whose writes go to DIR (ctr's fixed /etc/cni/net.d lives there)
#   /etc/cni/net.d  bind of DIR/net.d (the CNI network configurations)
#   /opt            tmpfs; /opt/cni/bin is a bind of DIR/bin (the CNI plugins)
#   /run            tmpfs (shim sockets and runc state under /run/containerd are fixed paths)
# Nothing of the machine's own /etc, /opt or /run changes. The namespace and its mounts go
# away with the last process in it.
set -eu
dir=$1
mkdir -p "$dir/ov"
mount -t tmpfs tmpfs "$dir/ov"
mkdir -p "$dir/ov/upper" "$dir/ov/work"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$dir/ov/upper,workdir=$dir/ov/work" /etc
mkdir -p /etc/cni/net.d
mount --bind "$dir/net.d" /etc/cni/net.d
mount -t tmpfs tmpfs /opt
mkdir -p /opt/cni/bin
mount --bind "$dir/bin" /opt/cni/bin
mount -t tmpfs tmpfs /run
exec containerd --config "$dir/config.toml"
