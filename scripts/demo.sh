#!/usr/bin/env bash
# scripts/demo.sh: nsproxy end to end, no container runtime needed (`npm run demo`, as root).
#
#   1. makes a throwaway network namespace nsproxy-demo-<pid> with only `lo` in it,
#   2. starts a small HTTP server inside it on 127.0.0.1:8080 (node, no extra packages),
#   3. runs nsproxy from this checkout (dist/main.js) with --netns ... --listen 127.0.0.1:0,
#   4. sends a request through the host port nsproxy reports, then one whose client
#      half-closes (shutdown(SHUT_WR)) before reading the answer,
#   5. shows that the host itself cannot reach 127.0.0.1:8080 (the namespace's loopback),
#   6. stops nsproxy with SIGTERM (expects exit 0) and removes everything it made,
#      also on failure or Ctrl-C.
set -euo pipefail

die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
  die "must be run as root: it creates a network namespace and nsproxy enters it (try: sudo npm run demo)"
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."
for f in dist/main.js build/Release/nsproxy.node; do
  [ -e "$f" ] || die "$f is missing; build first with: npm install"
done
for c in ip nsenter node; do
  command -v "$c" >/dev/null || die "'$c' not found (packages: iproute2, util-linux, nodejs)"
done

NS="nsproxy-demo-$$"
WORK=""
SERVER_PID=""
PROXY_PID=""
NS_CREATED=""

# stop PID [SIGNAL]: signal it, wait up to 5 s, then SIGKILL. Prints nothing.
stop() {
  local pid="$1" sig="${2:-TERM}" i
  [ -n "$pid" ] || return 0
  kill -"$sig" "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT
  trap "" INT TERM HUP   # a second Ctrl-C must not cut the cleanup short
  stop "$PROXY_PID"
  stop "$SERVER_PID"
  [ -n "$NS_CREATED" ] && ip netns del "$NS" 2>/dev/null
  if [ "$rc" -ne 0 ]; then
    for f in ${WORK:+"$WORK"/*.log}; do
      [ -s "$f" ] && { printf '\n--- %s ---\n' "$(basename "$f")"; cat "$f"; } >&2
    done
    case "$rc" in 129|130|143) what="interrupted" ;; *) what="FAILED" ;; esac
    printf '\ndemo %s (exit %d); cleaned up: namespace %s, processes, %s\n' "$what" "$rc" "$NS" "$WORK" >&2
  fi
  [ -n "$WORK" ] && rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
WORK="$(mktemp -d "${TMPDIR:-/tmp}/nsproxy-demo.XXXXXX")"

# wait_for FILE REGEX PID SECONDS: until a line of FILE matches REGEX; fails if PID exits first.
wait_for() {
  local file="$1" re="$2" pid="$3" i
  for i in $(seq $(( $4 * 10 ))); do
    grep -qE "$re" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# probe HOST PORT: prints "connected" or the connect error code (ECONNREFUSED, ...).
probe() {
  node -e '
    const s = require("net").connect(+process.argv[2], process.argv[1]);
    s.setTimeout(2000, () => { console.log("ETIMEDOUT"); s.destroy(); });
    s.on("connect", () => { console.log("connected"); s.destroy(); });
    s.on("error", (e) => console.log(e.code || e.message));
  ' "$1" "$2"
}

step() { printf '\n== %s\n' "$*"; }

step "1. network namespace $NS (only lo, up)"
NS_CREATED=1   # before the add: a Ctrl-C right after it must still remove it
ip netns add "$NS"
ip -n "$NS" link set lo up
echo "host netns:  $(readlink /proc/self/ns/net)"
echo "demo netns:  $(nsenter --net="/run/netns/$NS" readlink /proc/self/ns/net)"

step "2. HTTP server inside $NS on 127.0.0.1:8080"
# nsenter execs node directly, so $! is the server's own PID.
nsenter --net="/run/netns/$NS" node -e '
  const ns = require("fs").readlinkSync("/proc/self/ns/net");
  require("http").createServer((req, res) => {
    res.end(`hello from the demo server on 127.0.0.1:8080 in ${ns}` +
            ` (${req.method} ${req.url}, peer ${req.socket.remoteAddress}:${req.socket.remotePort})\n`);
  }).listen(8080, "127.0.0.1", () => console.log(`server listening on 127.0.0.1:8080 in ${ns}`));
' >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
wait_for "$WORK/server.log" '^server listening' "$SERVER_PID" 10 || die "the demo server did not start"
echo "server PID $SERVER_PID: $(cat "$WORK/server.log")"

step "3. nsproxy --netns $NS --to 127.0.0.1:8080 --listen 127.0.0.1:0"
# JSON logs on stdout (JOURNAL_STREAM would switch them to journal lines), no stray LISTEN_*.
env -u JOURNAL_STREAM -u LISTEN_FDS -u LISTEN_PID -u LISTEN_FDNAMES -u LISTEN_PIDFDID \
  node dist/main.js --netns "$NS" --to 127.0.0.1:8080 --listen 127.0.0.1:0 --log-level debug \
  >"$WORK/nsproxy.log" 2>"$WORK/nsproxy-stderr.log" &
PROXY_PID=$!
if ! wait_for "$WORK/nsproxy.log" '"msg":"ready"' "$PROXY_PID" 15; then
  kill -0 "$PROXY_PID" 2>/dev/null || { wait "$PROXY_PID" && rc=0 || rc=$?; die "nsproxy exited with code $rc before it was ready"; }
  die "nsproxy printed no \"ready\" line within 15 s"
fi
echo "nsproxy PID $PROXY_PID, its log so far:"
sed 's/^/  /' "$WORK/nsproxy.log"

ADDR="$(node -e '
  for (const line of require("fs").readFileSync(process.argv[1], "utf8").split("\n")) {
    try { const o = JSON.parse(line); if (o.msg === "listening") { console.log(o.address); break; } } catch {}
  }' "$WORK/nsproxy.log")"
[[ "$ADDR" =~ ^127\.0\.0\.1:[0-9]+$ ]] || die "no usable address in the \"listening\" log line (got '$ADDR')"
PORT="${ADDR##*:}"
echo "nsproxy listens on host $ADDR"

step "4. a request through nsproxy: http://$ADDR/"
if command -v curl >/dev/null; then
  ANSWER="$(curl -sS --max-time 5 "http://$ADDR/via-nsproxy")"
else
  ANSWER="$(node -e '
    require("http").get(process.argv[1], (res) => { res.pipe(process.stdout); })
      .on("error", (e) => { console.error(e.message); process.exit(1); });' "http://$ADDR/via-nsproxy")"
fi
echo "answer: $ANSWER"
case "$ANSWER" in
  "hello from the demo server"*) ;;
  *) die "unexpected answer through nsproxy" ;;
esac
if wait_for "$WORK/nsproxy.log" '"msg":"connection closed"' "$PROXY_PID" 3; then
  echo "nsproxy: $(grep -m1 '"msg":"connection closed"' "$WORK/nsproxy.log")"
fi

step "5. half-close: send the request, shutdown(SHUT_WR), then read the answer"
# nsproxy forwards the client's EOF as shutdown(SHUT_WR) and keeps the answer flowing back
# (systemd-socket-proxyd closes the whole connection at that point: the client gets nothing).
HALF="$(node -e '
  const c = require("net").connect(+process.argv[1], "127.0.0.1", () =>
    c.end("GET /half-closed HTTP/1.0\r\nHost: demo\r\n\r\n"));
  let got = "";
  c.setTimeout(5000, () => { console.error("timed out"); process.exit(1); });
  c.on("data", (d) => { got += d; });
  c.on("close", () => console.log(got.split("\r\n\r\n").slice(1).join("").trim()));
  c.on("error", (e) => { console.error(e.message); process.exit(1); });
' "$PORT")"
echo "answer after the client's half-close: $HALF"
case "$HALF" in
  "hello from the demo server"*"/half-closed"*) ;;
  *) die "no answer after half-close" ;;
esac

step "6. the host itself cannot reach 127.0.0.1:8080"
DIRECT="$(probe 127.0.0.1 8080)"
case "$DIRECT" in
  ECONNREFUSED) echo "direct connect to 127.0.0.1:8080 from the host: ECONNREFUSED (the server lives on the namespace's own loopback)" ;;
  connected) echo "note: something else listens on the host's 127.0.0.1:8080; it is not the demo server, which only exists inside $NS" ;;
  *) echo "direct connect to 127.0.0.1:8080 from the host: $DIRECT" ;;
esac
echo "through nsproxy: 127.0.0.1:$PORT -> $NS 127.0.0.1:8080"

step "7. stop nsproxy (SIGTERM) and clean up"
kill -TERM "$PROXY_PID"
for _ in $(seq 100); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$PROXY_PID" 2>/dev/null && die "nsproxy still running 10 s after SIGTERM"
rc=0
wait "$PROXY_PID" || rc=$?
PROXY_PID=""
[ "$rc" -eq 0 ] || die "nsproxy exited with code $rc on SIGTERM (expected 0)"
echo "nsproxy exited with code 0"
stop "$SERVER_PID"
SERVER_PID=""
ip netns del "$NS"
NS_CREATED=""
echo "namespace $NS removed"
printf '\ndemo OK\n'
