#!/bin/sh
# Builds the sockmap probe (a test program, not part of the addon): build-probe.sh OUTPUT
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:?usage: build-probe.sh OUTPUT}"
exec "${CXX:-g++}" -O2 -g -std=c++17 -Wall -Wextra -Wno-missing-field-initializers -pthread -D_GNU_SOURCE \
  -o "$out" "$here/../sockmap.cc" "$here"/*.cc
