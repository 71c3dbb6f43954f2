#!/usr/bin/env bash
# Builds midge_VERSION_ARCH.deb with dpkg-deb: the broker, its systemd unit, configuration, man pages and logrotate
# snippet, laid out as Debian's mosquitto package lays out its own.
#
# Usage: Docs/packaging/build-deb.sh [BINARY] [OUTPUT_DIR]
#   BINARY      the midge executable to package. Default: a release build made here with the Swift runtime linked
#               in statically (swift build -c release --static-swift-stdlib), so the package needs no toolchain.
#   OUTPUT_DIR  where the .deb goes. Default: .build/deb
# Prints the path of the package it wrote.
set -euo pipefail
cd "$(dirname "$0")/../.."

binary=${1:-}
out=${2:-.build/deb}
if [ -z "$binary" ]; then
    swift build -c release --product midge --static-swift-stdlib >&2
    binary="$(swift build -c release --show-bin-path)/midge"
fi
[ -x "$binary" ] || { echo "no executable at $binary" >&2; exit 1; }
if ldd "$binary" 2>/dev/null | grep -q 'libswiftCore'; then
    echo "note: $binary loads the Swift runtime from the toolchain; it runs only where that toolchain is" >&2
fi

version=$(sed -n 's/^public let midgeVersion = "\(.*\)"$/\1/p' Sources/MidgeServer/Server.swift)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/midge_${version}_${arch}"

install -D -m 755 "$binary" "$root/usr/sbin/midge"
install -D -m 644 Docs/packaging/midge.service "$root/lib/systemd/system/midge.service"
install -D -m 644 Docs/packaging/midge.conf "$root/etc/midge/midge.conf"
install -D -m 644 Docs/packaging/conf.d-README "$root/etc/midge/conf.d/README"
install -D -m 644 Docs/packaging/midge.logrotate "$root/etc/logrotate.d/midge"
install -D -m 644 broker.conf.example "$root/usr/share/doc/midge/broker.conf.example"
install -D -m 644 Docs/migrating-from-mosquitto.md "$root/usr/share/doc/midge/migrating-from-mosquitto.md"
install -D -m 644 LICENSE "$root/usr/share/doc/midge/copyright"
install -d "$root/usr/share/man/man8" "$root/usr/share/man/man5"
gzip -9n <Docs/man/midge.8 >"$root/usr/share/man/man8/midge.8.gz"
gzip -9n <Docs/man/midge.conf.5 >"$root/usr/share/man/man5/midge.conf.5.gz"

install -d "$root/DEBIAN"
install -m 755 Docs/packaging/postinst "$root/DEBIAN/postinst"
# Files under /etc are the administrator's: upgrades keep their changes.
printf '%s\n' /etc/midge/midge.conf /etc/midge/conf.d/README /etc/logrotate.d/midge >"$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: midge
Version: $version
Architecture: $arch
Maintainer: Midge developers <midge@invalid>
Installed-Size: $size
Depends: libc6, libssl3, zlib1g, libnghttp2-14, adduser
Section: net
Priority: optional
Description: MQTT 3.1.1 broker, a drop-in replacement for mosquitto
 Midge reads mosquitto's configuration keys, password and ACL files, serves
 the same clients on the same ports, and keeps acknowledged messages in a
 write-ahead log.
CONTROL

mkdir -p "$out"
dpkg-deb --root-owner-group --build "$root" "$out/midge_${version}_${arch}.deb" >&2
echo "$out/midge_${version}_${arch}.deb"
