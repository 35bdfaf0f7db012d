#!/usr/bin/env bash
# test/distro/run.sh — `npm run test:distro`: the shipped units (systemd/) under Debian 13
# (systemd 257, podman 5.4 with quadlet, crun, pasta), booted with systemd-nspawn.
#   1. test/distro/rootfs.sh builds the Debian 13 rootfs once (cached under /var/tmp, keyed by
#      a hash of that script);
#   2. nsproxy is installed the way the README's Install section says: `npm pack`, then
#      `npm install -g --prefix` of the tarball (here into a scratch directory that the guests
#      mount read-only at /usr/local, so nsproxy is /usr/local/bin/nsproxy, as the units expect;
#      the addon built on this Debian 12 host is N-API, for node 20 as the guest's 20.19 is);
#   3. tap runs test/distro/*.test.ts (or the files given as arguments); each file boots its
#      own guest and stops it.
# Root only. Host packages: debootstrap, systemd-container (.ci/run installs them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

die() { printf 'test:distro: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, systemd-nspawn)"
for c in debootstrap systemd-nspawn unshare nsenter; do
  command -v "$c" >/dev/null || die "$c not found; apt-get install debootstrap systemd-container util-linux"
done

T0=$SECONDS
NSPROXY_DISTRO_DIR=$(bash test/distro/rootfs.sh)
echo "test:distro: Debian 13 rootfs ready in $((SECONDS - T0)) s: $NSPROXY_DISTRO_DIR"

stage=$(mktemp -d /var/tmp/nsproxy-distro-install.XXXXXX)
trap 'rm -rf "$stage"' EXIT
T1=$SECONDS
npm pack --silent --pack-destination "$stage" >/dev/null
tgz=$(ls "$stage"/nsproxy-*.tgz)
NSPROXY_DISTRO_PREFIX=$stage/prefix
# npm 11 runs the package's install script (node-gyp rebuild of the addon) and warns that a
# later npm will want --allow-scripts for it.
npm install -g --prefix "$NSPROXY_DISTRO_PREFIX" --no-audit --no-fund --loglevel=error "$tgz" >"$stage/install.log" 2>&1 ||
  { cat "$stage/install.log" >&2; die "npm install -g of $tgz failed"; }
[ -f "$NSPROXY_DISTRO_PREFIX/lib/node_modules/nsproxy/build/Release/nsproxy.node" ] ||
  die "npm install -g did not build the addon (log: $stage/install.log)"
echo "test:distro: npm install -g $(basename "$tgz") in $((SECONDS - T1)) s"

export NSPROXY_DISTRO_DIR NSPROXY_DISTRO_PREFIX
[ "$#" -gt 0 ] || set -- test/distro/*.test.ts # or the test files named on the command line
npx tap --timeout 1200 "$@"
