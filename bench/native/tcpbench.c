/*
 * tcpbench.c — the small clients and the echo server of nsproxy's benchmark harness.
 * Compiled by bench/run.js into its temporary directory (cc -O2 -pthread); no dependencies.
 *
 *   tcpbench echo-server ADDR PORT [COUNT]
 *       epoll echo server (one thread, TCP_NODELAY, backlog 4096) on PORT .. PORT+COUNT-1
 *       (default 1); prints "listening" when ready.
 *   tcpbench pingpong ADDR PORT COUNT WARMUP
 *       one connection, COUNT round trips of 1 byte after WARMUP unmeasured ones;
 *       prints {"count":..,"mean_us":..,"p50_us":..,"p99_us":..,"min_us":..,"max_us":..}
 *   tcpbench connrate ADDR PORT CONCURRENCY SECONDS
 *       CONCURRENCY threads, each in a loop: connect, send 1 byte, read the echo, close;
 *       prints {"conns":..,"errors":..,"seconds":..,"rate":..,"first_error":".."}
 *   tcpbench idle ADDR PORT N WINDOW TIMEOUT_MS
 *       opens N connections (at most WINDOW being set up at once), each proved end to end by
 *       a 1-byte echo (after 2*WINDOW failures in a row it gives up: "skipped"); prints
 *       {"ok":..,"failed":..,"skipped":..,"seconds":..,"errors":{...}}, then holds
 *       them until a line (or EOF) on stdin, checks which are still open, prints
 *       {"alive":..,"closed":..,"reset":..} and closes them all.
 *   tcpbench first-echo ADDR PORT TIMEOUT_MS
 *       the first round trip on a cold (socket-activated) proxy: connect, send 1 byte, read
 *       the echo; prints {"us":..} timed from just before connect() to the echo's arrival.
 *   tcpbench run-time CMD [ARG...]
 *       fork, exec CMD (PATH searched), wait; prints {"us":..,"status":..} timed from fork()
 *       to waitpid(): bare `node -e 0` timed this way is the floor of any Node start.
 *
 * Every number is printed as one JSON line on stdout; diagnostics go to stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static struct sockaddr_in make_addr(const char *host, const char *port) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)atoi(port));
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "tcpbench: bad IPv4 address '%s'\n", host);
    exit(2);
  }
  return sa;
}

static void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---------------------------------------------------------------- echo server */

#define ECHO_BUF 65536
struct echo_conn {
  int fd;
  size_t len; /* bytes waiting to be written back */
  char *buf;
};

/* A listener's epoll entry: data.ptr points into this array, a connection's at its echo_conn. */
#define ECHO_MAX_PORTS 256
static int echo_listeners[ECHO_MAX_PORTS];

static int echo_server(const char *host, const char *port, int count) {
  raise_nofile();
  if (count < 1 || count > ECHO_MAX_PORTS) {
    fprintf(stderr, "tcpbench echo-server: COUNT must be 1..%d\n", ECHO_MAX_PORTS);
    return 1;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  for (int k = 0; k < count; k++) {
    struct sockaddr_in sa = make_addr(host, port);
    sa.sin_port = htons((uint16_t)(ntohs(sa.sin_port) + k));
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 4096) < 0) {
      fprintf(stderr, "tcpbench echo-server: bind/listen %s:%d: %s\n", host, ntohs(sa.sin_port), strerror(errno));
      return 1;
    }
    echo_listeners[k] = lfd;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &echo_listeners[k]};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  }
  printf("listening\n");
  fflush(stdout);
  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      void *ptr = events[i].data.ptr;
      if (ptr >= (void *)echo_listeners && ptr < (void *)(echo_listeners + ECHO_MAX_PORTS)) {
        int lfd = *(int *)ptr;
        for (;;) {
          int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break; /* EAGAIN, or EMFILE: try again on the next wake-up */
          set_nodelay(fd);
          struct echo_conn *nc = calloc(1, sizeof *nc);
          nc->fd = fd;
          struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = nc};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
        }
        continue;
      }
      struct echo_conn *c = ptr;
      int done = 0;
      if (c->len > 0 && (events[i].events & EPOLLOUT)) {
        ssize_t w = write(c->fd, c->buf, c->len);
        if (w < 0 && errno != EAGAIN) done = 1;
        if (w > 0) {
          memmove(c->buf, c->buf + w, c->len - (size_t)w);
          c->len -= (size_t)w;
        }
      }
      if (!done && c->len == 0 && (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        char tmp[ECHO_BUF];
        for (;;) {
          ssize_t r = read(c->fd, tmp, sizeof tmp);
          if (r == 0) { done = 1; break; }
          if (r < 0) { if (errno != EAGAIN) done = 1; break; }
          ssize_t w = write(c->fd, tmp, (size_t)r);
          if (w < 0) { if (errno != EAGAIN) { done = 1; break; } w = 0; }
          if (w < r) { /* keep the rest and wait for POLLOUT */
            if (!c->buf) c->buf = malloc(ECHO_BUF);
            memcpy(c->buf, tmp + w, (size_t)(r - w));
            c->len = (size_t)(r - w);
            break;
          }
          if ((size_t)r < sizeof tmp) break;
        }
      } else if (events[i].events & (EPOLLHUP | EPOLLERR)) {
        done = 1;
      }
      if (done) {
        close(c->fd); /* also removes it from the epoll set */
        free(c->buf);
        free(c);
        continue;
      }
      struct epoll_event cev = {.events = c->len ? EPOLLOUT : (EPOLLIN | EPOLLRDHUP), .data.ptr = c};
      epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
    }
  }
}

/* ---------------------------------------------------------------- ping-pong */

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int pingpong(const char *host, const char *port, long count, long warmup) {
  struct sockaddr_in sa = make_addr(host, port);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    fprintf(stderr, "tcpbench pingpong: connect %s:%s: %s\n", host, port, strerror(errno));
    return 1;
  }
  set_nodelay(fd);
  uint64_t *lat = malloc(sizeof(uint64_t) * (size_t)count);
  char b = 'x';
  for (long i = -warmup; i < count; i++) {
    uint64_t t0 = now_ns();
    if (write(fd, &b, 1) != 1) { fprintf(stderr, "tcpbench pingpong: write: %s\n", strerror(errno)); return 1; }
    ssize_t r;
    do r = read(fd, &b, 1); while (r < 0 && errno == EINTR);
    if (r != 1) { fprintf(stderr, "tcpbench pingpong: read after %ld round trips: %s\n", i + warmup, r == 0 ? "EOF" : strerror(errno)); return 1; }
    uint64_t t1 = now_ns();
    if (i >= 0) lat[i] = t1 - t0;
  }
  close(fd);
  double sum = 0;
  for (long i = 0; i < count; i++) sum += (double)lat[i];
  qsort(lat, (size_t)count, sizeof *lat, cmp_u64);
  long i50 = (count - 1) * 50 / 100, i99 = (count - 1) * 99 / 100;
  printf("{\"count\":%ld,\"mean_us\":%.3f,\"p50_us\":%.3f,\"p99_us\":%.3f,\"min_us\":%.3f,\"max_us\":%.3f}\n", count,
         sum / (double)count / 1e3, (double)lat[i50] / 1e3, (double)lat[i99] / 1e3, (double)lat[0] / 1e3,
         (double)lat[count - 1] / 1e3);
  return 0;
}

/* ---------------------------------------------------------------- connection rate */

struct rate_arg {
  struct sockaddr_in sa;
  double deadline;
  long conns, errors;
  int first_errno;
};

static void *rate_thread(void *p) {
  struct rate_arg *a = p;
  while (now_s() < a->deadline) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) { a->errors++; if (!a->first_errno) a->first_errno = errno; usleep(1000); continue; }
    int ok = 0;
    if (connect(fd, (struct sockaddr *)&a->sa, sizeof a->sa) == 0) {
      char b = 'c';
      if (write(fd, &b, 1) == 1) {
        ssize_t r;
        do r = read(fd, &b, 1); while (r < 0 && errno == EINTR);
        ok = (r == 1);
        if (!ok && !a->first_errno) a->first_errno = r == 0 ? EPIPE : errno;
      } else if (!a->first_errno) a->first_errno = errno;
    } else if (!a->first_errno) a->first_errno = errno;
    close(fd);
    if (ok) a->conns++;
    else { a->errors++; usleep(1000); }
  }
  return NULL;
}

static int connrate(const char *host, const char *port, int conc, double seconds) {
  struct rate_arg *args = calloc((size_t)conc, sizeof *args);
  pthread_t *th = calloc((size_t)conc, sizeof *th);
  double t0 = now_s();
  for (int i = 0; i < conc; i++) {
    args[i].sa = make_addr(host, port);
    args[i].deadline = t0 + seconds;
    pthread_create(&th[i], NULL, rate_thread, &args[i]);
  }
  long conns = 0, errors = 0;
  int first_errno = 0;
  for (int i = 0; i < conc; i++) {
    pthread_join(th[i], NULL);
    conns += args[i].conns;
    errors += args[i].errors;
    if (!first_errno) first_errno = args[i].first_errno;
  }
  double el = now_s() - t0;
  printf("{\"conns\":%ld,\"errors\":%ld,\"seconds\":%.4f,\"rate\":%.1f,\"first_error\":\"%s\"}\n", conns, errors, el,
         (double)conns / el, first_errno ? strerror(first_errno) : "");
  return 0;
}

/* ---------------------------------------------------------------- idle connections */

enum { ST_CONNECTING = 1, ST_WAIT_ECHO, ST_OK, ST_FAILED };

struct idle_conn {
  int fd;
  int state;
  double started;
};

static int idle(const char *host, const char *port, long n, long window, long timeout_ms) {
  raise_nofile();
  signal(SIGPIPE, SIG_IGN);
  struct sockaddr_in sa = make_addr(host, port);
  struct idle_conn *cs = calloc((size_t)n, sizeof *cs);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  long next = 0, inflight = 0, ok = 0, failed = 0, streak = 0, skipped = 0;
  long e_timeout = 0, e_refused = 0, e_reset = 0, e_eof = 0, e_emfile = 0, e_other = 0;
  double t0 = now_s();
  struct epoll_event events[512];
  while (ok + failed + skipped < n) {
    /* a proxy that stopped forwarding: after 2*WINDOW failures in a row, stop trying */
    if (streak >= 2 * window && next < n) { skipped = n - next; next = n; }
    while (inflight < window && next < n) {
      struct idle_conn *c = &cs[next++];
      c->started = now_s();
      c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (c->fd < 0) { c->state = ST_FAILED; failed++; streak++; if (errno == EMFILE) e_emfile++; else e_other++; continue; }
      int r = connect(c->fd, (struct sockaddr *)&sa, sizeof sa);
      if (r < 0 && errno != EINPROGRESS) {
        if (errno == ECONNREFUSED) e_refused++; else e_other++;
        close(c->fd); c->fd = -1; c->state = ST_FAILED; failed++; streak++; continue;
      }
      c->state = ST_CONNECTING;
      struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
      epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
      inflight++;
    }
    int k = epoll_wait(ep, events, 512, 50);
    for (int i = 0; i < k; i++) {
      struct idle_conn *c = events[i].data.ptr;
      int fail = 0;
      if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        char b = 'i';
        if (err == 0 && write(c->fd, &b, 1) == 1) {
          c->state = ST_WAIT_ECHO;
          struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
          epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        } else {
          if (err == ECONNREFUSED) e_refused++; else if (err == ECONNRESET || errno == ECONNRESET || errno == EPIPE) e_reset++; else e_other++;
          fail = 1;
        }
      } else if (c->state == ST_WAIT_ECHO) {
        char b;
        ssize_t r = read(c->fd, &b, 1);
        if (r == 1) {
          c->state = ST_OK;
          epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
          inflight--;
          ok++;
          streak = 0;
        } else if (r == 0) { e_eof++; fail = 1; }
        else if (errno != EAGAIN) { if (errno == ECONNRESET) e_reset++; else e_other++; fail = 1; }
      }
      if (fail) {
        close(c->fd); c->fd = -1; c->state = ST_FAILED; inflight--; failed++; streak++;
      }
    }
    /* time out the stuck ones (a proxy that accepted and never forwarded) */
    double now = now_s();
    for (long j = 0; j < next; j++) {
      struct idle_conn *c = &cs[j];
      if ((c->state == ST_CONNECTING || c->state == ST_WAIT_ECHO) && (now - c->started) * 1000 > (double)timeout_ms) {
        close(c->fd); c->fd = -1; c->state = ST_FAILED; inflight--; failed++; e_timeout++; streak++;
      }
    }
  }
  printf("{\"ok\":%ld,\"failed\":%ld,\"skipped\":%ld,\"seconds\":%.3f,\"errors\":{\"timeout\":%ld,\"refused\":%ld,\"reset\":%ld,\"eof\":%ld,\"emfile\":%ld,\"other\":%ld}}\n",
         ok, failed, skipped, now_s() - t0, e_timeout, e_refused, e_reset, e_eof, e_emfile, e_other);
  fflush(stdout);
  char line[64];
  if (fgets(line, sizeof line, stdin) == NULL) { /* EOF also means: check and close */ }
  long alive = 0, closed = 0, reset = 0;
  for (long j = 0; j < n; j++) {
    struct idle_conn *c = &cs[j];
    if (c->state != ST_OK) continue;
    char b;
    ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r < 0 && errno == EAGAIN) alive++;
    else if (r == 0) closed++;
    else if (r < 0) reset++;
    else alive++; /* unexpected data, but open */
  }
  printf("{\"alive\":%ld,\"closed\":%ld,\"reset\":%ld}\n", alive, closed, reset);
  fflush(stdout);
  for (long j = 0; j < n; j++) if (cs[j].fd > 0) close(cs[j].fd);
  return 0;
}

/* ---------------------------------------------------------------- cold start */

static int first_echo(const char *host, const char *port, int timeout_ms) {
  struct sockaddr_in sa = make_addr(host, port);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  uint64_t t0 = now_ns();
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    fprintf(stderr, "tcpbench first-echo: connect %s:%s: %s\n", host, port, strerror(errno));
    return 1;
  }
  set_nodelay(fd);
  char b = 'f';
  if (write(fd, &b, 1) != 1) { fprintf(stderr, "tcpbench first-echo: write: %s\n", strerror(errno)); return 1; }
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int ready;
  do ready = poll(&p, 1, timeout_ms); while (ready < 0 && errno == EINTR);
  if (ready == 0) { fprintf(stderr, "tcpbench first-echo: no echo within %d ms\n", timeout_ms); return 1; }
  ssize_t r = read(fd, &b, 1);
  uint64_t t1 = now_ns();
  if (r != 1 || b != 'f') {
    fprintf(stderr, "tcpbench first-echo: read: %s\n", r == 0 ? "EOF" : r < 0 ? strerror(errno) : "wrong byte");
    return 1;
  }
  close(fd);
  printf("{\"us\":%.1f}\n", (double)(t1 - t0) / 1e3);
  return 0;
}

static int run_time(char **argv) {
  uint64_t t0 = now_ns();
  pid_t pid = fork();
  if (pid < 0) { perror("tcpbench run-time: fork"); return 1; }
  if (pid == 0) {
    execvp(argv[0], argv);
    fprintf(stderr, "tcpbench run-time: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) { perror("tcpbench run-time: waitpid"); return 1; }
  }
  uint64_t t1 = now_ns();
  printf("{\"us\":%.1f,\"status\":%d}\n", (double)(t1 - t0) / 1e3, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 4 && strcmp(argv[1], "echo-server") == 0) return echo_server(argv[2], argv[3], argc >= 5 ? atoi(argv[4]) : 1);
  if (argc >= 6 && strcmp(argv[1], "pingpong") == 0) return pingpong(argv[2], argv[3], atol(argv[4]), atol(argv[5]));
  if (argc >= 6 && strcmp(argv[1], "connrate") == 0) return connrate(argv[2], argv[3], atoi(argv[4]), atof(argv[5]));
  if (argc >= 7 && strcmp(argv[1], "idle") == 0) return idle(argv[2], argv[3], atol(argv[4]), atol(argv[5]), atol(argv[6]));
  if (argc >= 5 && strcmp(argv[1], "first-echo") == 0) return first_echo(argv[2], argv[3], atoi(argv[4]));
  if (argc >= 3 && strcmp(argv[1], "run-time") == 0) return run_time(argv + 2);
  fprintf(stderr,
          "usage: tcpbench echo-server ADDR PORT | pingpong ADDR PORT COUNT WARMUP |\n"
          "       connrate ADDR PORT CONCURRENCY SECONDS | idle ADDR PORT N WINDOW TIMEOUT_MS |\n"
          "       first-echo ADDR PORT TIMEOUT_MS | run-time CMD [ARG...]\n");
  return 2;
}
