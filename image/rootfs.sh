#!/bin/sh
# Assembles the proxy image's root filesystem from the build machine's Debian packages, offline:
#   rootfs.sh OCHO_STATIC_BINARY OUTPUT_DIR
# Contents: /ocho (static), /opt/jre (jlinked: only the modules ZooKeeper needs), the glibc loader
# and the libraries that JRE links against (Debian's JRE is dynamically linked), ZooKeeper's jar
# closure at its absolute /usr/share/java paths (the jar's manifest Class-Path uses them), CA
# certificates, /etc/passwd and /etc/group with the unprivileged user `ocho` (10001), and empty
# mount points. Needs: zookeeper, openjdk-17-jdk-headless (jlink, jmods), ca-certificates.
set -eu
bin=$1
out=$2
uid=10001

fail() { echo "rootfs: $*" >&2; exit 1; }
[ -x "$bin" ] || fail "$bin is not an executable"
file "$bin" | grep -q 'static-pie linked' || fail "$bin is not statically linked (make static)"
java_home=$(dirname "$(dirname "$(readlink -f "$(command -v jlink || echo /usr/lib/jvm/java-17-openjdk-amd64/bin/jlink)")")")
[ -x "$java_home/bin/jlink" ] || fail "jlink missing: install openjdk-17-jdk-headless (make deps)"
[ -f /usr/share/java/zookeeper.jar ] || fail "/usr/share/java/zookeeper.jar missing: install zookeeper (make deps)"

rm -rf "$out"
mkdir -p "$out"
cp "$bin" "$out/ocho"

# The JRE: java.base plus what a standalone server uses (JMX, JNDI, sun.misc.Unsafe for netty).
"$java_home/bin/jlink" --add-modules java.base,java.management,java.naming,jdk.unsupported \
    --strip-debug --no-man-pages --no-header-files --compress=2 --output "$out/opt/jre"

# The glibc pieces of that JRE: the loader and every library ldd names, at their real paths.
for elf in "$out/opt/jre/bin/java" "$out/opt/jre/lib/server/libjvm.so"; do
    ldd "$elf" | awk '/=> \// { print $3 } /^\t\/.*ld-linux/ { print $1 }'
done | sort -u | while read -r lib; do
    case "$lib" in "$out"/*) continue ;; esac
    mkdir -p "$out$(dirname "$lib")"
    cp -L "$lib" "$out$lib"
done
[ -e "$out/lib64/ld-linux-x86-64.so.2" ] || { mkdir -p "$out/lib64"; cp -L /lib64/ld-linux-x86-64.so.2 "$out/lib64/"; }

# ZooKeeper's jar closure: the jar, slf4j-simple (log to stderr), and its manifest Class-Path.
mkdir -p "$out/usr/share/java"
closure=$(unzip -p /usr/share/java/zookeeper.jar META-INF/MANIFEST.MF | tr -d '\r' |
    awk '/^Class-Path:/ { cp = substr($0, 13); on = 1; next } on && /^ / { cp = cp substr($0, 2); next } { on = 0 } END { print cp }')
for jar in /usr/share/java/zookeeper.jar /usr/share/java/slf4j-simple.jar $closure; do
    # jline.jar is listed but not shipped by Debian; ZooKeeper's server never loads it.
    [ -e "$jar" ] || { echo "rootfs: skipping absent $jar" >&2; continue; }
    cp -L "$jar" "$out$jar"
done

mkdir -p "$out/etc/ssl/certs"
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$out/etc/ssl/certs/"
printf 'root:x:0:0:root:/:/sbin/nologin\nocho:x:%s:%s:ocho:/var/lib/zookeeper:/sbin/nologin\n' $uid $uid > "$out/etc/passwd"
printf 'root:x:0:\nocho:x:%s:\n' $uid > "$out/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$out/etc/hosts"
mkdir -p "$out/tmp" "$out/var/lib/zookeeper" "$out/proc" "$out/dev" "$out/sys"
chmod 1777 "$out/tmp"
chown "$uid:$uid" "$out/var/lib/zookeeper" 2>/dev/null || true
du -sh "$out" | awk '{ print "rootfs: " $1 " in " $2 }'
