// sockmap.h — the kernel half of the sockmap engine: a BPF verdict program that moves the bytes a
// socket receives straight out of its peer socket, so user space never wakes for data.
// No N-API in here. Root only (CAP_BPF + CAP_NET_ADMIN); everything else stays on splice.
//
// Design
// ------
// Keys. Every map is keyed by the socket cookie (SO_COOKIE, bpf_get_socket_cookie()): a 64-bit id
// the kernel gives each socket, unique for the whole boot across all network namespaces (one
// global generator), never reused. So the client-side socket (host netns) and the upstream socket
// (target netns) can never collide, whatever their ports, and user space allocates nothing.
//
//   conns  HASH     cookie -> {peer cookie, bytes redirected, bytes passed}   (user space writes
//                   the peer once at Add(); the program adds to the counters atomically)
//   hold   SOCKHASH cookie -> socket, no program: owns each socket's psock (the kernel state that
//                   queues redirected bytes), and is where redirects look the peer up
//   socks  SOCKHASH cookie -> socket, the verdict program attached: membership = "redirecting"
//
// The program (BPF_SK_SKB_VERDICT, no stream parser) runs for each skb a member socket receives:
//   v = conns[cookie(self)]; if none: SK_PASS (the skb stays with its socket)
//   if skb->len == 0 (a bare FIN): SK_DROP — it carries no byte, see below
//   if bpf_sk_redirect_hash(skb, hold, &v->peer, 0) succeeds: v->redirected += len  (-> peer egress)
//   else: v->passed += len, SK_PASS (the peer is gone: the bytes wait in this socket's psock)
// It never drops a byte: a dropped skb with data is data TCP has already acknowledged.
//
// Kernel facts this relies on (net/core/skmsg.c, net/core/sock_map.c, net/ipv4/tcp_bpf.c; see
// native/SOCKMAP.md for the source lines and the experiments):
// - A redirected skb is queued on the peer psock's ingress_skb and sent by a kernel worker
//   (sk_psock_backlog). That queue is invisible to user space and has no size limit: bytes are
//   drained when redirected(src) == written(dst) - base(dst), where written = TCP_INFO
//   bytes_acked + SIOCOUTQ (Pending()). The source's TCP window stays open meanwhile: no
//   backpressure at all (a receiver that does not read lets the psock grow to 1 GiB and more).
// - A zero-length skb (a bare FIN) must not reach the psock worker (sk_psock_backlog), which takes
//   "0 bytes done" for a hard error and sets EPIPE on the socket: redirected, it breaks the peer at
//   once; passed, it breaks its own socket whenever that psock still queues bytes towards it
//   (sk_psock_verdict_apply queues a pass behind them). Dropping it loses nothing: tcp_fin() has
//   already set RCV_SHUTDOWN and SOCK_DONE, so recv() returns 0 and epoll reports EPOLLRDHUP.
// - Bytes that arrived before insertion are not run through the program until the next segment;
//   a recv() on a member socket runs them through it first (tcp_bpf_recvmsg_parser calls
//   tcp_data_ready). Add() does that ("poke"), so nothing waits for a segment that never comes.
//   Only ESTABLISHED sockets may join: one that already got a FIN is refused (EOPNOTSUPP).
// - Deleting a socket's last map entry frees its psock and discards whatever it still queues
//   (sk_psock_destroy -> __sk_psock_zap_ingress). Deleting it from `socks` only stops the program
//   (sock_map_del_link -> sk_psock_stop_verdict) while `hold` keeps the psock and its queue, but
//   races with a segment being received (see Stop()).
//
// How an engine uses it (SOCKMAP.md has the evidence): Add() (EOPNOTSUPP: splice instead); epoll
// on EPOLLRDHUP only; on EPOLLRDHUP from a side: Poke() it, wait for Pending(other side) == 0,
// shutdown(other, SHUT_WR); Remove() and close once both directions are shut; on EPOLLERR:
// Remove() and reset. Poll Pending() and Pause() a connection whose backlog grows past a few
// MiB: it then moves by recv()/send() until it ends (the safe migration).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "syserror.h"
#include "unique_fd.h"

namespace nsproxy {

struct SockmapCounters {
  uint64_t redirected = 0;  // bytes this socket received that the program sent out of its peer
  uint64_t passed = 0;      // bytes it received that stayed with it (peer gone); recv() gets them
};

// One connection as the sockmap sees it. Side 0 and side 1 are each other's peer.
struct SockmapPair {
  int fd[2] = {-1, -1};           // not owned
  uint64_t cookie[2] = {0, 0};
  // TcpBytesWritten() minus what the program redirected into it, as of Add() or Resume(): what
  // user space wrote itself.
  uint64_t base_written[2] = {0, 0};
  // TcpBytesConsumed() minus what the program counted (redirected + passed), as of Add() or
  // Resume(): what user space read itself. Stop() compares against it to find bytes the kernel
  // dropped at the detach.
  int64_t base_unaccounted[2] = {0, 0};
};

class Sockmap {
 public:
  ~Sockmap();
  Sockmap(const Sockmap&) = delete;
  Sockmap& operator=(const Sockmap&) = delete;

  // The variants are for tests only: they redirect or pass zero-length skbs, to show why the
  // production program drops them.
  enum class Program { kProduction, kRedirectEmpty, kPassEmpty };

  // Creates the maps (room for `max_sockets` sockets), loads and attaches the program. On a
  // failed load, *verifier_log (if given) receives the verifier's log.
  static std::unique_ptr<Sockmap> Create(uint32_t max_sockets, SysError* error,
                                         std::string* verifier_log = nullptr,
                                         Program program = Program::kProduction);

  // Whether this process can use sockmap on this kernel; probed once (a small Create()), then
  // cached. When false, *why says what is missing in one line.
  static bool Available(std::string* why);

  // Puts both sockets of a connection under the program, then pokes both so bytes that arrived
  // before insertion are redirected too. Both must be connected TCP sockets with nothing of
  // theirs written by user space after this call (base_written accounts for what came before).
  // `poke` false is for tests only (it shows the stall).
  // `consumed[side]`: a pending error the pokes reported (see Poke()), 0 if none.
  bool Add(int fd0, int fd1, SockmapPair* pair, SysError* error, int consumed[2] = nullptr, bool poke = true);

  // Runs what waits in a member socket's receive queue through the program now, and returns once
  // the program has seen every byte the socket had received (it takes the socket lock, so a
  // softirq still delivering a segment finishes first). Add() does it; the engine does it again
  // after EPOLLRDHUP, before it trusts Pending() (tcp_fin() wakes epoll before tcp_data_ready()
  // runs the program on the data of the same segment).
  // A poke is a recv(): if the socket had a pending error (a reset) with nothing to read, the
  // recv() reports it, and the kernel forgets it (sock_error()). So it is returned: 0 or that
  // errno, which the caller must take as the socket's end, as it would from SO_ERROR.
  static int Poke(int fd);

  // Stops redirecting, program still attached: from now on what each socket receives waits in its
  // own psock (ingress_msg) for recv() (never splice(), which reads only the TCP receive queue),
  // in order after everything already redirected. Bytes already redirected still go out.
  void Pause(const SockmapPair& pair);

  // Detaches the program from both sockets; from now on what they receive stays in their TCP
  // receive queues (splice() works again). Bytes already redirected still go out (the psocks live
  // on in `hold`). The kernel clears the psock's program before it restores sk_data_ready, without
  // the socket lock; a segment being received at that instant would meet no program and be
  // dropped (sk_psock_verdict_recv's default __SK_DROP: about one skb per 5 000-10 000 bare
  // detaches during a stream here). Stop() keeps segments away from the program meanwhile with a
  // huge SO_RCVLOWAT; what is left is a FIN (or urgent data), which bypasses the low-water mark,
  // arriving in the same instant, and a segment that comes while the receive window is nearly
  // closed or the receive buffer nearly full (tcp_epollin_ready() then ignores the low-water
  // mark): rarer still, but seen (about once in 10^5 detaches mid-stream, `flap`). SOCKMAP.md (d).
  // Such a loss cannot be undone (TCP acknowledged the bytes), but it is never silent: `lost[side]`
  // says how many bytes side `side` received that neither the program nor user space accounts
  // for (0: none; -1: could not tell, the socket was closed). The engine resets a connection that
  // lost bytes, so neither end mistakes a stream with a hole for a whole one. It then waits for
  // Pending() == 0. `guard` false is for tests only (it shows the race).
  // `consumed[side]`: a pending error its pokes reported (see Poke()), 0 if none.
  void Stop(const SockmapPair& pair, int consumed[2] = nullptr, int64_t lost[2] = nullptr, bool guard = true);

  // Re-attaches the program after Stop(). User space must have read each receive queue to EAGAIN
  // (the program takes whole skbs and would resend a partly read one) and written it all to the
  // other socket; the poke then runs what arrived since through the program, behind it. Not
  // after Pause(): bytes passed meanwhile would wait in ingress_msg while newer ones are
  // redirected past them. Recomputes pair->base_written and base_unaccounted (user space wrote and
  // read meanwhile).
  bool Resume(SockmapPair* pair, SysError* error);

  // Forgets the connection: frees both psocks. Anything they still queue is lost, so call it once
  // both directions are shut down (Pending() was 0 before each shutdown) and what was paused has
  // been read, or when the connection is being reset anyway.
  void Remove(const SockmapPair& pair);

  // The program's counters for one side (false when the cookie is unknown).
  bool Counters(const SockmapPair& pair, int side, SockmapCounters* out) const;

  // Every socket's counters at once (BPF_MAP_LOOKUP_BATCH), sorted by cookie: a few system calls
  // for all connections, so that an engine can watch thousands of them every few milliseconds.
  struct CookieCounters {
    uint64_t cookie;
    SockmapCounters counters;
  };
  bool AllCounters(std::vector<CookieCounters>* out, SysError* error) const;

  // Bytes the program redirected towards `side` that are not yet in its TCP send queue (queued in
  // its psock, or being sent). Once the other side can redirect no more (it got EOF and was
  // poked, or the pair was paused and poked), 0 means user space may write to `side` or shut it
  // down in order. -1 (with *error) if a socket could not be asked.
  int64_t Pending(const SockmapPair& pair, int side, SysError* error) const;

 private:
  Sockmap() = default;

  UniqueFd conns_;
  UniqueFd hold_;
  UniqueFd socks_;
  UniqueFd prog_;
};

// Bytes user space and the kernel have put into this TCP socket's send queue since it connected
// (plus one for the SYN on some paths: only differences are meaningful). Reads TCP_INFO
// bytes_acked first and SIOCOUTQ second, so the answer never overstates what was written.
bool TcpBytesWritten(int fd, uint64_t* out, SysError* error);

// Data bytes this TCP socket has received and taken off its receive queue (a reader, or the
// program through tcp_read_skb): TCP_INFO bytes_received less a FIN, less what is still queued
// (SIOCINQ; for a socket with a psock, which makes SIOCINQ report the psock's queue, a MSG_PEEK
// that copies nothing), read until two TCP_INFOs around it agree. False when the socket is closed
// or no reading was steady, or when the peek reported a pending error: then in `*error`, and the
// kernel has forgotten it (the caller must take it as the socket's end, as from a Poke()).
bool TcpBytesConsumed(int fd, bool psock, uint64_t* out, int* error);

// SO_COOKIE.
bool SocketCookie(int fd, uint64_t* out, SysError* error);

}  // namespace nsproxy
