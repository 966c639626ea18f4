#!/bin/sh
# Runs the built image as a real container and checks it:
#   test.sh IMAGE_DIR        (IMAGE_DIR/oci is the layout written by oci.sh)
# umoci unpacks it into an OCI bundle; runc runs it with a read-only root filesystem, as the
# image's non-root user, with the data volume bind-mounted and /tmp as tmpfs, in the host's
# network namespace on free ports. Checks: ocho is PID 1 inside, not root; ZooKeeper becomes
# ready and serves clients; the portal answers /healthz; `runc kill TERM` ends the container
# cleanly (exit 0) within the grace; the data volume holds ZooKeeper's data. Needs root (runc).
set -eu
img=$1
fail() { echo "image-test: FAILED: $*" >&2; [ -f "${log:-/dev/null}" ] && tail -n 30 "$log" >&2; exit 1; }
for tool in umoci runc jq curl; do
    command -v $tool >/dev/null || fail "$tool missing: run 'make deps'"
done
[ "$(id -u)" = 0 ] || fail "runc needs root"
[ -f "$img/oci/index.json" ] || fail "$img/oci missing: run 'make image-oci'"

work=$(mktemp -d)
id="ocho-image-test-$$"
log="$work/container.log"
cleanup() {
    runc kill "$id" KILL 2>/dev/null || true
    runc delete --force "$id" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    shuf -i 20000-60000 -n 1; }
zk_port=$(free_port)
portal_port=$(free_port)

umoci unpack --image "$img/oci:latest" "$work/bundle" >/dev/null
mkdir -p "$work/data"
chown 10001:10001 "$work/data"
cfg="$work/bundle/config.json"
jq --arg data "$work/data" --arg zk "$zk_port" --arg portal "127.0.0.1:$portal_port" '
    .process.terminal = false
  | .process.env += ["OCHO_ZK_BIND=127.0.0.1", "OCHO_ZK_PORT=\($zk)", "OCHO_PORTAL_BIND=\($portal)", "OCHO_GRACE=10"]
  | .root.readonly = true
  | .linux.namespaces |= map(select(.type != "network"))
  | .mounts += [
      {"destination": "/var/lib/zookeeper", "type": "bind", "source": $data, "options": ["rbind", "rw"]},
      {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777", "size=64m"]}
    ]' "$cfg" > "$cfg.new"
mv "$cfg.new" "$cfg"
[ "$(jq -r '.process.user.uid' "$cfg")" = 10001 ] || fail "the image does not run as uid 10001"

started=$(date +%s%N)
( cd "$work/bundle" && runc run "$id" > "$log" 2>&1; echo "exit=$?" >> "$log" ) &

wait_line() { # wait_line TEXT SECONDS
    end=$(( $(date +%s) + $2 ))
    until grep -q "$1" "$log" 2>/dev/null; do
        grep -q '^exit=' "$log" 2>/dev/null && fail "container exited while waiting for '$1'"
        [ "$(date +%s)" -lt "$end" ] || fail "no '$1' within $2 s"
        sleep 0.1
    done
}
wait_line "zookeeper ready on 127.0.0.1:$zk_port" 90
echo "image-test: zookeeper ready after $(( ($(date +%s%N) - started) / 1000000 )) ms"
wait_line "portal: listening on 127.0.0.1:$portal_port" 30

pid=$(runc state "$id" | jq -r .pid)
grep -q "^NSpid:.*[[:space:]]1$" "/proc/$pid/status" || fail "ocho is not PID 1 in the container"
grep -q "^Uid:[[:space:]]*10001[[:space:]]" "/proc/$pid/status" || fail "ocho runs as root"
[ "$(readlink "/proc/$pid/exe")" = "$work/bundle/rootfs/ocho" ] || true

"$work/bundle/rootfs/ocho" zk-status --zk "127.0.0.1:$zk_port" | grep -q "Mode: standalone" || fail "zk-status"
curl -fsS "http://127.0.0.1:$portal_port/healthz" | grep -q '"ok"' || fail "portal /healthz"
if curl -fsS -o /dev/null "http://127.0.0.1:$portal_port/readyz" 2>/dev/null; then
    echo "image-test: portal /readyz ok"
fi
if runc exec "$id" /ocho cli --help >/dev/null 2>&1; then
    out=$(runc exec "$id" /ocho cli "127.0.0.1:$portal_port" help 2>&1) || fail "ocho cli through the portal: $out"
    echo "image-test: ocho cli through the portal ok"
fi
touch "$work/bundle/rootfs/probe" 2>/dev/null && rm -f "$work/bundle/rootfs/probe"
runc exec "$id" /ocho zk-status --zk "127.0.0.1:$zk_port" >/dev/null || fail "runc exec"
if runc exec "$id" /ocho init --help >/dev/null 2>&1 && runc exec "$id" sh -c true 2>/dev/null; then
    fail "the image has a shell"
fi

stop=$(date +%s%N)
runc kill "$id" TERM
end=$(( $(date +%s) + 15 ))
until grep -q '^exit=' "$log"; do
    [ "$(date +%s)" -lt "$end" ] || fail "container still running 15 s after TERM"
    sleep 0.05
done
grep -q '^exit=0$' "$log" || fail "container exit status $(grep '^exit=' "$log")"
grep -q "init: stopped cleanly" "$log" || fail "no clean stop"
echo "image-test: TERM -> exit 0 in $(( ($(date +%s%N) - stop) / 1000000 )) ms"
[ -d "$work/data/version-2" ] || fail "no ZooKeeper data in the volume"
[ -f "$work/data/zoo.cfg" ] || fail "no zoo.cfg in the volume"
echo "image-test: passed"
