#!/usr/bin/env bash
# scripts/test-packages.sh — the Debian packages `npm test` needs, in one list for `npm test`
# (its pretest step) and .ci/run.
#
#   test-packages.sh list      print them
#   test-packages.sh missing   print those not installed
#   test-packages.sh install [distro]   install what is missing (root, apt), without starting
#                              services; `distro` adds what npm run test:distro needs
#   test-packages.sh ensure    what `npm test` runs first: `install` when root with apt; else,
#                              if something is missing, print the one command to run and fail
set -euo pipefail

# iproute2: ip netns, ss; util-linux: nsenter, unshare, prlimit; systemd: systemd-socket-activate
# and /lib/systemd/systemd-socket-proxyd (the peer the tests compare against); procps: ps;
# python3: the differential fuzzer; make, g++: node-gyp; iperf3, socat, gcc: the benchmark
# harness, whose --quick run is part of npm test (bench/); man-db (with groff-base): the man page
# test and `man -w` after the install test's npm install -g.
PACKAGES=(iproute2 util-linux systemd procps python3 make g++ gcc ca-certificates iperf3 socat man-db)
# The container tests: podman with runc (crun refuses this machine kind's hybrid cgroups),
# rootless support, a registry-free busybox image, podman's network stack and firewall tools, and
# PostgreSQL server binaries (initdb, postgres, pgbench) that are bind-mounted into a container.
# Installed with their recommended packages, as on the machines the tests were written on.
CONTAINER_PACKAGES=(podman runc uidmap busybox-static netavark aardvark-dns iptables nftables
                    postgresql-15 postgresql-client-15)
# npm run test:distro (not npm test): debootstrap builds the Debian 13 system, systemd-nspawn boots it.
DISTRO_PACKAGES=(debootstrap systemd-container)

not_installed() {
  local p
  for p in "$@"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = "installed" ] || echo "$p"
  done
}

install_missing() {
  local missing missing_containers
  mapfile -t missing < <(not_installed "${PACKAGES[@]}")
  mapfile -t missing_containers < <(not_installed "${CONTAINER_PACKAGES[@]}")
  if [ "$(( ${#missing[@]} + ${#missing_containers[@]} ))" -eq 0 ]; then
    echo "test packages: all present"
    return
  fi
  echo "test packages: installing ${missing[*]} ${missing_containers[*]}"
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a
  local apt_opts=(-o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)
  local dpkg_opts=(-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  # Packages must not start their services here (postgresql would take the host's port 5432).
  local made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    made_policy=1
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  local try
  for try in 1 2 3; do
    timeout 600 apt-get "${apt_opts[@]}" update -qq && break
    [ "$try" -eq 3 ] && { echo "test packages: apt-get update failed 3 times" >&2; exit 1; }
    sleep 5
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    timeout 900 apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${dpkg_opts[@]}" "${missing[@]}"
  fi
  if [ "${#missing_containers[@]}" -gt 0 ]; then
    timeout 900 apt-get "${apt_opts[@]}" install -y -qq "${dpkg_opts[@]}" "${missing_containers[@]}"
  fi
  if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
}

case "${1:-}" in
  list) printf '%s\n' "${PACKAGES[@]}" "${CONTAINER_PACKAGES[@]}" ;;
  missing) not_installed "${PACKAGES[@]}" "${CONTAINER_PACKAGES[@]}" ;;
  install)
    [ "${2:-}" = distro ] && PACKAGES+=("${DISTRO_PACKAGES[@]}")
    install_missing
    ;;
  ensure)
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
      install_missing
    else
      mapfile -t missing < <(not_installed "${PACKAGES[@]}" "${CONTAINER_PACKAGES[@]}")
      if [ "${#missing[@]}" -gt 0 ]; then
        echo "npm test needs root and these Debian packages: ${missing[*]}" >&2
        echo "run:  sudo npm test   (as root it installs them itself), or: sudo apt-get install ${missing[*]}" >&2
        exit 1
      fi
    fi
    ;;
  *) sed -n 2,9p "$0"; exit 2 ;;
esac
