#!/usr/bin/env bash
# test/distro/rootfs.sh — builds, once, the Debian 13 (trixie) system that the distro tests boot
# with systemd-nspawn, and prints the directory it is cached in:
#   DIR/rootfs      the system: systemd 257, podman 5.4 (quadlet, crun, pasta), nodejs 20.19,
#                   PostgreSQL 17 (its psql and pgbench are the tests' clients)
#   DIR/image.tar   a container image rootfs made from that system's own PostgreSQL 17 package
#                   and busybox, with stand-ins for the official postgres image's entrypoint and
#                   for pgAdmin (there is no registry here); `podman import`ed at every boot
# The cache key is a hash of this file: change the package list or a setting below and the next
# run rebuilds (older builds are removed then). Root only; needs debootstrap and the Debian mirror
# apt uses. Cold: 1.5 to 6 minutes (debootstrap: 82 s on a quiet machine, 340 s on a busy one).
set -euo pipefail

CACHE=${NSPROXY_DISTRO_CACHE:-/var/tmp/nsproxy-distro}
SUITE=trixie
# Depends only (debootstrap skips Recommends): podman's pasta (passt) and crun are named.
PACKAGES=systemd,systemd-sysv,dbus,dbus-user-session,libpam-systemd,podman,crun,passt,uidmap
PACKAGES+=,iproute2,procps,nodejs,postgresql-17,postgresql-client-17,busybox-static
PG=17
# The rootless user. The guest has no user namespace of its own: its uids are the host's, so
# they are picked far from the host's users and from the subordinate ranges the fast lane's
# tests allocate on the host (from 100000 up), and the host's per-uid limits are not shared.
GUEST_USER=lingeruser # the lab's name; "nsproxy" is left for a system user of nsproxy's own
GUEST_UID=2000
GUEST_SUBUID=2000000

log() { printf 'rootfs.sh: %s\n' "$*" >&2; }
die() { printf 'rootfs.sh: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot)"
command -v debootstrap >/dev/null || die "debootstrap not found; apt-get install debootstrap systemd-container"

key=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
dir=$CACHE/$key
if [ -e "$dir/complete" ]; then echo "$dir"; exit 0; fi
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9 # two test runs at once: the second waits for the first one's build
if [ -e "$dir/complete" ]; then echo "$dir"; exit 0; fi

# the same Debian mirror apt already uses on this machine
mirror=$(awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian

tmp=$CACHE/.build-$key
rm -rf "$tmp"
mkdir -p "$tmp"
sys=$tmp/rootfs
log "debootstrap $SUITE from $mirror into $sys"
t0=$SECONDS
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$sys" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
  { tail -n 30 "$tmp/debootstrap.log" >&2; die "debootstrap failed (log: $tmp/debootstrap.log)"; }
log "debootstrap took $((SECONDS - t0)) s"
rm -f "$sys"/var/cache/apt/archives/*.deb

# --- the system ---------------------------------------------------------------------------------
in_sys() { chroot "$sys" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
# This machine's cgroups are hybrid: the guest's cgroup2 (SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1) has
# no controllers, so containers get no cgroup of their own. crun wants a session keyring and sets
# sysctls (podman's default net.ipv4.ping_group_range), which nspawn's sandbox refuses.
mkdir -p "$sys/etc/containers"
cat >"$sys/etc/containers/containers.conf" <<'EOF'
# nsproxy distro tests: the host's cgroups are hybrid, the guest's cgroup2 has no controllers
[containers]
cgroups = "disabled"
pids_limit = 0
default_sysctls = []
keyring = false
EOF
# The package made a cluster and would start it on 5432, the port of postgresql-activator.socket.
in_sys pg_dropcluster "$PG" main >/dev/null 2>&1 || true
in_sys systemctl mask --quiet postgresql.service
# No kernel modules in a container (its failure would leave the system "degraded").
in_sys systemctl mask --quiet systemd-modules-load.service
# On a real host the network setup brings network-online.target up at boot; here nothing
# would, and quadlet's user units wait for it (podman-user-wait-network-online.service polls the
# system's target for up to 90 s before the container starts).
in_sys systemctl add-wants --quiet multi-user.target network-online.target
# pasta opens /dev/net/tun; nspawn's /dev is the guest's own tmpfs, so the node made there at boot
# does not touch the host's (mode 0600 there).
echo 'c! /dev/net/tun 0666 root root - 10:200' >"$sys/etc/tmpfiles.d/nsproxy-tun.conf"
# The rootless user (the rootless test makes it linger, as the README says).
in_sys groupadd -g "$GUEST_UID" "$GUEST_USER"
in_sys useradd -m -s /bin/bash -u "$GUEST_UID" -g "$GUEST_UID" "$GUEST_USER"
for f in subuid subgid; do
  sed -i "/^$GUEST_USER:/d" "$sys/etc/$f"
  echo "$GUEST_USER:$GUEST_SUBUID:65536" >>"$sys/etc/$f"
done
# the mount point of the user's podman storage (a scratch directory on disk: see guest.ts)
in_sys su -s /bin/sh -c 'mkdir -p ~/.local/share/containers' "$GUEST_USER"

# --- the container image -------------------------------------------------------------------------
img=$tmp/image
mkdir -p "$img"/{bin,etc,tmp,dev,proc,sys,root,run/postgresql,var/lib/postgresql/data,usr/local/bin,srv/cgi-bin,pgadmin4}
mkdir -p "$img/usr/lib/x86_64-linux-gnu" "$img/usr/lib64"
ln -s usr/lib "$img/lib"
ln -s usr/lib64 "$img/lib64"
cp "$sys/usr/bin/busybox" "$img/bin/busybox"
for a in $(in_sys busybox --list); do [ -e "$img/bin/$a" ] || ln -s busybox "$img/bin/$a"; done
# PostgreSQL's own files, without the LLVM JIT (libLLVM alone is 120 MB; PostgreSQL runs without)
tar -C "$sys" --exclude="usr/lib/postgresql/$PG/lib/bitcode" --exclude='llvmjit*' \
  -cf - "usr/lib/postgresql/$PG" "usr/share/postgresql/$PG" usr/share/zoneinfo usr/lib/locale/C.utf8 | tar -C "$img" -xf -
# every shared library those programs and modules load, resolved by the system's own loader
mapfile -t elves < <(cd "$img" && find "usr/lib/postgresql/$PG" -type f \( -perm -u+x -o -name '*.so' \) | sed 's|^|/|')
{ in_sys ldd "${elves[@]}" 2>/dev/null || true; } | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $2 ~ /^\(0x/ {print $1}' | sort -u |
  while read -r lib; do
    real=$(in_sys readlink -f "$lib")
    dest="$img/usr/lib/x86_64-linux-gnu/$(basename "$lib")"
    case $lib in /lib64/*|/usr/lib64/*) dest="$img/usr/lib64/$(basename "$lib")" ;; esac
    [ -e "$dest" ] || cp "$sys$real" "$dest"
  done
cat >"$img/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
postgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
printf 'root:x:0:\npostgres:x:999:\nnogroup:x:65534:\n' >"$img/etc/group"
printf '/bin/sh\n' >"$img/etc/shells"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$img/etc/hosts"
chmod 1777 "$img/tmp"
chown 999:999 "$img/var/lib/postgresql" "$img/var/lib/postgresql/data"
chmod 3777 "$img/run/postgresql"
ln -s ../run "$img/var/run"
# Stand-in for the official image's docker-entrypoint.sh: the same variables, the same first
# start (initdb with POSTGRES_INITDB_ARGS and the password, host connections by password from
# anywhere, listen on all addresses), then postgres as the container's main process.
cat >"$img/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -eu
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
  exec su -s /bin/sh postgres -c 'exec "$0" "$@"' "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pw=$(mktemp)
  printf '%s\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set}" >"$pw"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of arguments, as in the official image
  initdb -D "$PGDATA" --username=postgres --pwfile="$pw" ${POSTGRES_INITDB_ARGS:-} >/dev/null
  rm -f "$pw"
  echo 'host all all all scram-sha-256' >>"$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
fi
exec "$@"
EOF
# Stand-in for pgAdmin (not installable offline): a web server on PGADMIN_LISTEN_ADDRESS:PORT
# whose one page asks PostgreSQL through the server that /pgadmin4/servers.json names (the
# socket directory /run/postgresql), as pgAdmin does with the shipped pgadmin-servers.json.
cat >"$img/usr/local/bin/pgadmin-standin.sh" <<'EOF'
#!/bin/sh
set -eu
exec httpd -f -p "${PGADMIN_LISTEN_ADDRESS:-0.0.0.0}:${PGADMIN_LISTEN_PORT:-80}" -h /srv
EOF
cat >"$img/srv/cgi-bin/query" <<'EOF'
#!/bin/sh
host=$(sed -n 's/.*"Host": *"\([^"]*\)".*/\1/p' /pgadmin4/servers.json | head -n 1)
echo "Content-Type: text/plain"
echo
PGPASSWORD=password exec psql -X -h "$host" -p 5432 -U postgres -d postgres -Atc \
  "select 'pgadmin stand-in: ' || current_setting('server_version')" 2>&1
EOF
chmod 755 "$img/usr/local/bin/"*.sh "$img/srv/cgi-bin/query"
tar --numeric-owner -C "$img" -cf "$tmp/image.tar" .
rm -rf "$img"

mv "$tmp" "$dir"
touch "$dir/complete"
for old in "$CACHE"/*; do
  if [ "$old" = "$dir" ] || [ ! -d "$old" ]; then continue; fi
  # not while a guest of another checkout still boots from it
  if grep -qsF "$old/rootfs" /proc/[0-9]*/cmdline; then log "keeping $old: in use"; continue; fi
  log "removing the outdated build $old"
  rm -rf "$old"
done
log "built $dir in $((SECONDS - t0)) s ($(du -sh "$dir" | cut -f1))"
echo "$dir"
