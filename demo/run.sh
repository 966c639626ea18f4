#!/bin/sh
# `make demo`: three local Ochopod agents (`ocho pod`) in one cluster, registered in the
# ZooKeeper of the proxy that `make run` started, so that every tool has something to show.
# Each agent binds its own loopback address (Linux routes all of 127/8 to lo) on one control
# port, as pods on a pod network do. Ctrl-C (or SIGTERM) stops them.
#
# Settings (environment):  OCHO (the binary), ZK (ZooKeeper, host:port), DEMO_CLUSTER,
# DEMO_NAMESPACE, DEMO_IPS (three addresses), DEMO_PORT (their control port), PORTAL (only
# for the hints printed).
set -eu

OCHO=${OCHO:-target/debug/ocho}
ZK=${ZK:-127.0.0.1:2181}
CLUSTER=${DEMO_CLUSTER:-demo}
NAMESPACE=${DEMO_NAMESPACE:-default}
IPS=${DEMO_IPS:-127.0.0.11 127.0.0.12 127.0.0.13}
PORT=${DEMO_PORT:-8080}
PORTAL=${PORTAL:-127.0.0.1:9000}
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/ocho-demo.XXXXXX")

pids=""
stop() {
    trap - INT TERM EXIT
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill $pids 2>/dev/null || true
    wait
    rm -rf "$LOGS"
}
trap stop INT TERM EXIT

n=0
for ip in $IPS; do
    n=$((n + 1))
    # The agent's own log (also on /log) goes to a file the readiness check reads.
    ochopod_zk=$ZK ochopod_namespace=$NAMESPACE ochopod_cluster=$CLUSTER \
        "$OCHO" pod --ip "$ip" --bind "$ip" --port "$PORT" --grace 5 \
        -- sh -c 'echo "demo workload $0 up"; while :; do sleep 30; echo "demo workload $0 still up"; done' "$n" \
        >"$LOGS/$n.log" 2>&1 &
    pids="$pids $!"
done

# Ready once every agent has registered (each says so in its log); 60 s at most.
waited=0
until [ "$(cat "$LOGS"/*.log | grep -c 'registered as')" -ge "$n" ]; do
    if [ "$waited" -ge 600 ]; then
        echo "demo: the agents did not register in 60 s (is the proxy running? make run ZK=$ZK)" >&2
        tail -n 5 "$LOGS"/*.log >&2
        exit 1
    fi
    for pid in $pids; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "demo: an agent ended:" >&2
            tail -n 5 "$LOGS"/*.log >&2
            exit 1
        fi
    done
    sleep 0.1
    waited=$((waited + 1))
done

# Then until the cluster's leader has configured every pod and their workloads run, so that
# `ls` shows n/n running at once.
if ! "$OCHO" wait "$NAMESPACE.$CLUSTER" --pods "$n" -t 60 --zk "$ZK" >"$LOGS/wait.log" 2>&1; then
    echo "demo: the cluster was not configured and running within 60 s:" >&2
    tail -n 5 "$LOGS"/*.log >&2
    exit 1
fi

echo "demo ready: $n pods in cluster $NAMESPACE.$CLUSTER, configured and running, registered in ZooKeeper at $ZK"
echo "try, from another terminal:"
echo "  $OCHO cli $PORTAL ls"
echo "  $OCHO cli $PORTAL grep $CLUSTER"
echo "  $OCHO cli $PORTAL log -f $CLUSTER"
echo "  $OCHO cli $PORTAL          (the REPL: Tab completes, Ctrl-C cancels)"
echo "Ctrl-C here stops the demo's pods."
wait
