#!/bin/sh
# Packs a root filesystem into an OCI image layout directory and a tarball of it, without any
# container engine, reproducibly (sorted names, fixed owners and mtimes, gzip -n):
#   oci.sh ROOTFS_DIR OUTPUT_DIR [NAME:TAG]
# The entrypoint, exposed ports and user default to the proxy's; OCI_ENTRYPOINT (a JSON array)
# and OCI_PORTS (a JSON object such as {"2181/tcp":{}}) override them for other images.
# OUTPUT_DIR/oci is the layout (umoci, skopeo oci:), OUTPUT_DIR/ocho.oci.tar the same as one file,
# which also carries a docker-archive manifest.json (`docker load`, `skopeo docker-archive:`).
set -eu
rootfs=$1
out=$2
ref=${3:-ocho:latest}
name=${ref%%:*}
tag=${ref##*:}
uid=10001
entrypoint=${OCI_ENTRYPOINT:-'["/ocho","init"]'}
exposed=${OCI_PORTS:-'{"2181/tcp":{},"9000/tcp":{}}'}

[ -x "$rootfs/ocho" ] || { echo "oci: $rootfs/ocho missing (image/rootfs.sh first)" >&2; exit 1; }
layout="$out/oci"
rm -rf "$layout"
mkdir -p "$layout/blobs/sha256"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One layer. Everything is root's except the data directory, which belongs to the image's user
# so that a fresh volume is writable; appended as a second pass to keep per-file owners exact.
tar_opts="--sort=name --mtime=@0 --format=posix --numeric-owner --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime"
# shellcheck disable=SC2086
tar -C "$rootfs" $tar_opts --owner=0 --group=0 --exclude=./var/lib/zookeeper -cf "$work/layer.tar" .
# shellcheck disable=SC2086
tar -C "$rootfs" $tar_opts --owner=$uid --group=$uid --no-recursion -rf "$work/layer.tar" ./var/lib/zookeeper
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -n -6 -c "$work/layer.tar" > "$work/layer.tar.gz"
layer=$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1)
layer_size=$(stat -c %s "$work/layer.tar.gz")
mv "$work/layer.tar.gz" "$layout/blobs/sha256/$layer"

cat > "$work/config.json" <<JSON
{"architecture":"amd64","os":"linux","config":{"User":"$uid:$uid","Env":["PATH=/opt/jre/bin","JAVA_HOME=/opt/jre","OCHO_ZK_DATA=/var/lib/zookeeper"],"Entrypoint":$entrypoint,"WorkingDir":"/","ExposedPorts":$exposed,"Volumes":{"/var/lib/zookeeper":{}},"StopSignal":"SIGTERM","Labels":{"org.opencontainers.image.title":"$name"}},"rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"image/rootfs.sh + image/oci.sh"}]}
JSON
config=$(sha256sum "$work/config.json" | cut -d' ' -f1)
config_size=$(stat -c %s "$work/config.json")
mv "$work/config.json" "$layout/blobs/sha256/$config"

cat > "$work/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$layer","size":$layer_size}]}
JSON
manifest=$(sha256sum "$work/manifest.json" | cut -d' ' -f1)
manifest_size=$(stat -c %s "$work/manifest.json")
mv "$work/manifest.json" "$layout/blobs/sha256/$manifest"

printf '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
cat > "$layout/index.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest","size":$manifest_size,"annotations":{"org.opencontainers.image.ref.name":"$tag","io.containerd.image.name":"$name:$tag"}}]}
JSON
# The docker-archive view of the same blobs.
cat > "$layout/manifest.json" <<JSON
[{"Config":"blobs/sha256/$config","RepoTags":["$name:$tag"],"Layers":["blobs/sha256/$layer"]}]
JSON
tar -C "$layout" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -cf "$out/ocho.oci.tar" .
echo "oci: $out/ocho.oci.tar ($(du -h "$out/ocho.oci.tar" | cut -f1)), manifest sha256:$manifest, layer sha256:$layer"
