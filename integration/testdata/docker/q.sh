#!/bin/bash
# q.sh CONTAINER DIGARGS... : dig @127.0.0.11 from a container's netns (oracle), compact output
export DOCKER_HOST=unix:///tmp/docker-oracle/docker.sock
c=$1; shift
pid=$(docker inspect -f '{{.State.Pid}}' $c)
out=$(nsenter -t $pid -n dig @127.0.0.11 +tries=1 +time=3 +nocookie "$@" 2>&1)
echo "### from $c: dig $*"
echo "$out" | grep -E 'status:|flags:|^[^;].*IN|OPT PSEUDOSECTION|EDNS:|timed out|no servers' 
