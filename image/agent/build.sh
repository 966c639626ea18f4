#!/bin/sh
# Builds the example workload image (ZooKeeper run by `ocho pod`) without an engine:
#   image/agent/build.sh PROXY_ROOTFS OUTPUT_DIR
# OUTPUT_DIR becomes the build context of image/agent/Dockerfile (rootfs/ + templates) and
# receives ocho-zookeeper's OCI layout and archive. The entrypoint is read from the Dockerfile so
# that the two builds cannot drift apart.
set -eu
here=$(dirname "$0")
rootfs=$1
out=$2
rm -rf "$out"
mkdir -p "$out"
cp -a "$rootfs" "$out/rootfs"
cp "$here/Dockerfile" "$here/zoo.cfg.tmpl" "$here/myid.tmpl" "$out/"
mkdir -p "$out/rootfs/etc/ocho"
cp "$here/zoo.cfg.tmpl" "$here/myid.tmpl" "$out/rootfs/etc/ocho/"
entrypoint=$(sed -n '/^ENTRYPOINT/,/[^\\]$/p' "$here/Dockerfile" | sed 's/^ENTRYPOINT //; s/\\$//' | tr -d '\n')
echo "$entrypoint" | jq -e 'type == "array" and .[0] == "/ocho" and .[1] == "pod"' >/dev/null ||
    { echo "agent: cannot read the ENTRYPOINT of $here/Dockerfile" >&2; exit 1; }
OCI_ENTRYPOINT=$(echo "$entrypoint" | jq -c .) \
OCI_PORTS='{"2181/tcp":{},"2888/tcp":{},"3888/tcp":{},"8080/tcp":{}}' \
    "$here/../oci.sh" "$out/rootfs" "$out" ocho-zookeeper:latest
