// sockmap.cc — see sockmap.h. The program is assembled here as struct bpf_insn (no clang, no
// libbpf) and loaded with the raw bpf(2) system call.
#include "sockmap.h"

#include <linux/bpf.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <vector>

namespace nsproxy {

namespace {

// The value of a `conns` entry; the program's offsets below follow this layout.
struct ConnValue {
  uint64_t peer;        // offset 0: the peer's cookie, the key the program redirects to
  uint64_t redirected;  // offset 8
  uint64_t passed;      // offset 16
};
static_assert(offsetof(ConnValue, redirected) == 8 && offsetof(ConnValue, passed) == 16, "layout");

long Bpf(int cmd, union bpf_attr* attr) {
  return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

int CreateMap(uint32_t type, uint32_t key_size, uint32_t value_size, uint32_t max_entries) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.map_type = type;
  attr.key_size = key_size;
  attr.value_size = value_size;
  attr.max_entries = max_entries;
  return static_cast<int>(Bpf(BPF_MAP_CREATE, &attr));
}

int MapUpdate(int map, const void* key, const void* value, uint64_t flags) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.map_fd = map;
  attr.key = reinterpret_cast<uint64_t>(key);
  attr.value = reinterpret_cast<uint64_t>(value);
  attr.flags = flags;
  return static_cast<int>(Bpf(BPF_MAP_UPDATE_ELEM, &attr));
}

int MapLookup(int map, const void* key, void* value) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.map_fd = map;
  attr.key = reinterpret_cast<uint64_t>(key);
  attr.value = reinterpret_cast<uint64_t>(value);
  return static_cast<int>(Bpf(BPF_MAP_LOOKUP_ELEM, &attr));
}

void MapDelete(int map, const void* key) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.map_fd = map;
  attr.key = reinterpret_cast<uint64_t>(key);
  Bpf(BPF_MAP_DELETE_ELEM, &attr);  // ENOENT is fine: the kernel drops closed sockets itself
}

// A tiny assembler: the instruction macros of the kernel's filter.h are not uapi.
class Asm {
 public:
  void Mov(int dst, int src) { Emit(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0); }
  void MovImm(int dst, int32_t imm) { Emit(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm); }
  void AddImm(int dst, int32_t imm) { Emit(BPF_ALU64 | BPF_ADD | BPF_K, dst, 0, 0, imm); }
  void LoadW(int dst, int src, int16_t off) { Emit(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0); }
  void StoreDw(int dst, int16_t off, int src) { Emit(BPF_STX | BPF_MEM | BPF_DW, dst, src, off, 0); }
  // lock *(u64 *)(dst + off) += src
  void AtomicAddDw(int dst, int16_t off, int src) {
    Emit(BPF_STX | BPF_ATOMIC | BPF_DW, dst, src, off, BPF_ADD);
  }
  void LoadMapFd(int dst, int fd) {
    Emit(BPF_LD | BPF_DW | BPF_IMM, dst, BPF_PSEUDO_MAP_FD, 0, fd);
    Emit(0, 0, 0, 0, 0);
  }
  void Call(int32_t helper) { Emit(BPF_JMP | BPF_CALL, 0, 0, 0, helper); }
  void Exit() { Emit(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }
  // if (dst op imm) goto label
  void JumpIf(int op, int dst, int32_t imm, int label) {
    fixups_.push_back({insns_.size(), label});
    Emit(BPF_JMP | op | BPF_K, dst, 0, 0, imm);
  }
  void Label(int label) {
    if (labels_.size() <= static_cast<size_t>(label)) labels_.resize(label + 1, -1);
    labels_[label] = static_cast<int>(insns_.size());
  }
  const std::vector<bpf_insn>& Finish() {
    for (const Fixup& f : fixups_) insns_[f.at].off = static_cast<int16_t>(labels_[f.label] - f.at - 1);
    return insns_;
  }

 private:
  struct Fixup {
    size_t at;
    int label;
  };
  void Emit(uint8_t code, int dst, int src, int16_t off, int32_t imm) {
    bpf_insn insn;
    memset(&insn, 0, sizeof(insn));
    insn.code = code;
    insn.dst_reg = dst & 0xf;
    insn.src_reg = src & 0xf;
    insn.off = off;
    insn.imm = imm;
    insns_.push_back(insn);
  }
  std::vector<bpf_insn> insns_;
  std::vector<int> labels_;
  std::vector<Fixup> fixups_;
};

// The verdict program; see the header for what it does.
std::vector<bpf_insn> VerdictProgram(int conns_fd, int hold_fd, Sockmap::Program variant) {
  enum { kPass, kNoPeer, kEmpty };
  const int kSkDrop = 0;  // enum sk_action
  const int kSkPass = 1;
  Asm a;
  a.Mov(6, 1);                                  // r6 = skb
  a.Call(BPF_FUNC_get_socket_cookie);           // r0 = cookie(self)
  a.StoreDw(10, -8, 0);                         // key on the stack
  a.LoadMapFd(1, conns_fd);
  a.Mov(2, 10);
  a.AddImm(2, -8);
  a.Call(BPF_FUNC_map_lookup_elem);             // r0 = &conns[cookie] or NULL
  a.JumpIf(BPF_JEQ, 0, 0, kPass);
  a.Mov(7, 0);                                  // r7 = value
  a.LoadW(8, 6, offsetof(struct __sk_buff, len));  // r8 = skb->len
  if (variant == Sockmap::Program::kProduction) a.JumpIf(BPF_JEQ, 8, 0, kEmpty);  // a bare FIN
  if (variant == Sockmap::Program::kPassEmpty) a.JumpIf(BPF_JEQ, 8, 0, kPass);
  a.Mov(1, 6);
  a.LoadMapFd(2, hold_fd);
  a.Mov(3, 7);                                  // key = &value->peer
  a.MovImm(4, 0);                               // egress
  a.Call(BPF_FUNC_sk_redirect_hash);
  a.JumpIf(BPF_JNE, 0, kSkPass, kNoPeer);
  a.AtomicAddDw(7, offsetof(ConnValue, redirected), 8);
  a.MovImm(0, kSkPass);
  a.Exit();
  a.Label(kNoPeer);
  a.AtomicAddDw(7, offsetof(ConnValue, passed), 8);
  a.Label(kPass);
  a.MovImm(0, kSkPass);
  a.Exit();
  if (variant == Sockmap::Program::kProduction) {
    a.Label(kEmpty);
    a.MovImm(0, kSkDrop);
    a.Exit();
  }
  return a.Finish();
}

int LoadProgram(const std::vector<bpf_insn>& insns, char* log, uint32_t log_size) {
  static const char kLicense[] = "Dual MIT/GPL";
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.prog_type = BPF_PROG_TYPE_SK_SKB;
  attr.insns = reinterpret_cast<uint64_t>(insns.data());
  attr.insn_cnt = static_cast<uint32_t>(insns.size());
  attr.license = reinterpret_cast<uint64_t>(kLicense);
  if (log != nullptr) {
    attr.log_buf = reinterpret_cast<uint64_t>(log);
    attr.log_size = log_size;
    attr.log_level = 1;
  }
  return static_cast<int>(Bpf(BPF_PROG_LOAD, &attr));
}

}  // namespace

int Sockmap::Poke(int fd) {
  // recv() on a member socket first calls tcp_data_ready() when its receive queue is not empty
  // (tcp_bpf_recvmsg_parser), under the socket lock. MSG_PEEK leaves anything the program passed
  // (or a FIN) for the caller to find.
  char byte;
  if (recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) >= 0 || errno == EAGAIN || errno == EINTR) return 0;
  return errno;
}

bool SocketCookie(int fd, uint64_t* out, SysError* error) {
  socklen_t len = sizeof(*out);
  if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, out, &len) == 0) return true;
  error->Set("getsockopt(SO_COOKIE)");
  return false;
}

bool TcpBytesWritten(int fd, uint64_t* out, SysError* error) {
  struct tcp_info info;
  memset(&info, 0, sizeof(info));
  socklen_t len = sizeof(info);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) < 0) {
    error->Set("getsockopt(TCP_INFO)");
    return false;
  }
  if (len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(info.tcpi_bytes_acked)) {
    error->Set("getsockopt(TCP_INFO)", ENOTSUP);
    return false;
  }
  int outq = 0;
  if (ioctl(fd, SIOCOUTQ, &outq) < 0) {
    error->Set("ioctl(SIOCOUTQ)");
    return false;
  }
  *out = info.tcpi_bytes_acked + static_cast<uint64_t>(outq);
  return true;
}

bool TcpBytesConsumed(int fd, bool psock, uint64_t* out, int* error) {
  for (int attempt = 0; attempt < 64; attempt++) {
    tcp_info before{}, after{};
    socklen_t len = sizeof(before);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &before, &len) < 0) return false;
    // What waits in the receive queue. With a psock (even one only in `hold`), SIOCINQ reports the
    // psock's queue instead; a peek that copies nothing (MSG_TRUNC) counts the TCP queue, but like
    // any recv() it reports (and so consumes) a pending error: handed to the caller.
    int inq = 0;
    if (!psock) {
      if (ioctl(fd, SIOCINQ, &inq) < 0) return false;
    } else {
      ssize_t n = recv(fd, nullptr, 1 << 30, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        *error = errno;
        return false;
      }
      inq = n < 0 ? 0 : static_cast<int>(n);
    }
    len = sizeof(after);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &after, &len) < 0) return false;
    if (before.tcpi_bytes_received != after.tcpi_bytes_received || before.tcpi_state != after.tcpi_state) continue;
    // bytes_received counts the FIN's sequence number; the peek stops before it.
    uint64_t fin = 0;
    switch (after.tcpi_state) {
      case BPF_TCP_ESTABLISHED:  // linux/bpf.h mirrors the kernel's TCP states (linux/tcp.h has none)
      case BPF_TCP_FIN_WAIT1:
      case BPF_TCP_FIN_WAIT2:
        break;
      case BPF_TCP_CLOSE_WAIT:
      case BPF_TCP_LAST_ACK:
      case BPF_TCP_CLOSING:
      case BPF_TCP_TIME_WAIT:
        fin = 1;
        break;
      default:
        return false;  // closed (reset): nothing to compare
    }
    *out = after.tcpi_bytes_received - fin - static_cast<uint64_t>(inq);
    return true;
  }
  return false;
}

namespace {

// Consumed minus counted: constant while only the program takes bytes off the receive queue.
bool Unaccounted(int fd, bool psock, const SockmapCounters& counted, int64_t* out, int* error) {
  uint64_t consumed = 0;
  if (!TcpBytesConsumed(fd, psock, &consumed, error)) return false;
  *out = static_cast<int64_t>(consumed - counted.redirected - counted.passed);
  return true;
}

// The guard of Add() and Stop(): tcp_data_ready() calls sk_data_ready (the program, on a socket in
// the map) only when tcp_epollin_ready(sk, sk_rcvlowat) or SOCK_DONE. SO_RCVLOWAT is capped at
// tcp_rmem[2] / 2 (16 MiB by default), which cannot arrive in the microseconds a guard lasts.
// Returns the mark to put back.
int HoldOffProgram(int fd) {
  int lowat = 1;
  socklen_t len = sizeof(lowat);
  getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, &len);
  int big = INT_MAX;
  setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &big, sizeof(big));
  return lowat;
}

// Back to normal; tcp_set_rcvlowat() signals what waited meanwhile (to the program, or to epoll).
void LetProgramRun(int fd, int lowat) { setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)); }

}  // namespace

Sockmap::~Sockmap() = default;

std::unique_ptr<Sockmap> Sockmap::Create(uint32_t max_sockets, SysError* error, std::string* verifier_log,
                                         Program program) {
  auto fail = [error](const char* call, int err = errno) {
    error->Set(call, err);
    return std::unique_ptr<Sockmap>();
  };
  std::unique_ptr<Sockmap> m(new Sockmap());
  m->conns_.reset(CreateMap(BPF_MAP_TYPE_HASH, sizeof(uint64_t), sizeof(ConnValue), max_sockets));
  if (!m->conns_.valid()) return fail("bpf(BPF_MAP_CREATE)");
  m->hold_.reset(CreateMap(BPF_MAP_TYPE_SOCKHASH, sizeof(uint64_t), sizeof(uint64_t), max_sockets));
  if (!m->hold_.valid()) return fail("bpf(BPF_MAP_CREATE)");
  m->socks_.reset(CreateMap(BPF_MAP_TYPE_SOCKHASH, sizeof(uint64_t), sizeof(uint64_t), max_sockets));
  if (!m->socks_.valid()) return fail("bpf(BPF_MAP_CREATE)");

  std::vector<bpf_insn> insns =
      VerdictProgram(m->conns_.get(), m->hold_.get(), program);
  m->prog_.reset(LoadProgram(insns, nullptr, 0));
  if (!m->prog_.valid()) {
    int err = errno;
    if (verifier_log != nullptr) {
      std::vector<char> log(64 * 1024, '\0');
      int fd = LoadProgram(insns, log.data(), static_cast<uint32_t>(log.size()));
      if (fd >= 0) close(fd);
      *verifier_log = log.data();
    }
    return fail("bpf(BPF_PROG_LOAD)", err);
  }

  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.target_fd = static_cast<uint32_t>(m->socks_.get());
  attr.attach_bpf_fd = static_cast<uint32_t>(m->prog_.get());
  attr.attach_type = BPF_SK_SKB_VERDICT;
  if (Bpf(BPF_PROG_ATTACH, &attr) < 0) return fail("bpf(BPF_PROG_ATTACH)");
  return m;
}

bool Sockmap::Available(std::string* why) {
  static std::once_flag once;
  static bool available = false;
  static std::string reason;
  std::call_once(once, [] {
    SysError error;
    std::string log;
    std::unique_ptr<Sockmap> probe = Create(2, &error, &log);
    available = probe != nullptr;
    if (available) return;
    reason = std::string(error.syscall) + " failed: " + strerror(error.err);
    if (error.err == EPERM || error.err == EACCES) {
      reason += " (sockmap needs CAP_BPF and CAP_NET_ADMIN, i.e. root)";
    } else if (error.err == EINVAL || error.err == EOPNOTSUPP) {
      reason += " (the kernel lacks sockmap or BPF_SK_SKB_VERDICT: Linux >= 5.13 with CONFIG_BPF_SYSCALL and CONFIG_NET_SOCK_MSG)";
    }
    if (!log.empty()) reason += "; verifier: " + log.substr(0, 500);
  });
  if (!available && why != nullptr) *why = reason;
  return available;
}

bool Sockmap::Add(int fd0, int fd1, SockmapPair* pair, SysError* error, int consumed[2], bool poke) {
  SockmapPair p;
  p.fd[0] = fd0;
  p.fd[1] = fd1;
  for (int side = 0; side < 2; side++) {
    if (!SocketCookie(p.fd[side], &p.cookie[side], error)) return false;
    if (!TcpBytesWritten(p.fd[side], &p.base_written[side], error)) return false;
    int unused = 0;  // no psock yet: SIOCINQ, which reports no error
    if (!Unaccounted(p.fd[side], false, SockmapCounters{}, &p.base_unaccounted[side], &unused)) {
      return error->Set("getsockopt(TCP_INFO)", ENOTCONN);
    }
  }
  // conns and hold first: the moment a socket joins `socks`, the program may redirect to its peer.
  for (int side = 0; side < 2; side++) {
    ConnValue value{p.cookie[side ^ 1], 0, 0};
    if (MapUpdate(conns_.get(), &p.cookie[side], &value, BPF_ANY) < 0) {
      error->Set("bpf(BPF_MAP_UPDATE_ELEM)");
      Remove(p);
      return false;
    }
    uint64_t fd = static_cast<uint64_t>(p.fd[side]);
    if (MapUpdate(hold_.get(), &p.cookie[side], &fd, BPF_NOEXIST) < 0) {
      error->Set("bpf(BPF_MAP_UPDATE_ELEM)");
      Remove(p);
      return false;
    }
  }
  // Keep segments away from the program until both sockets are in. Either may get its FIN (or a
  // reset) between the two insertions, and the map refuses it then; the one already in would
  // meanwhile have redirected bytes it acknowledged to its peer's psock, whose backlog Remove()
  // discards: lost, and the peer would wait for them for ever. Restoring the mark signals what
  // waited (to the program if both are in, to epoll if not), and the poke hands it over. (Without
  // the poke, the probe's raw insertion, there is no guard either: that shows the bare kernel.)
  int lowat[2] = {1, 1};
  for (int side = 0; poke && side < 2; side++) lowat[side] = HoldOffProgram(p.fd[side]);
  bool in = true;
  for (int side = 0; side < 2 && in; side++) {
    uint64_t fd = static_cast<uint64_t>(p.fd[side]);
    in = MapUpdate(socks_.get(), &p.cookie[side], &fd, BPF_NOEXIST) == 0;
  }
  if (!in) {
    error->Set("bpf(BPF_MAP_UPDATE_ELEM)");
    Remove(p);
  }
  for (int side = 0; poke && side < 2; side++) LetProgramRun(p.fd[side], lowat[side]);
  if (!in) return false;
  if (poke) {
    int e0 = Poke(fd0), e1 = Poke(fd1);
    if (consumed != nullptr) {
      consumed[0] = e0;
      consumed[1] = e1;
    }
  }
  *pair = p;
  return true;
}

void Sockmap::Pause(const SockmapPair& pair) {
  // The program redirects through `hold`: without the peer there, it passes instead. The psocks
  // stay alive through their `socks` entries.
  for (int side = 0; side < 2; side++) MapDelete(hold_.get(), &pair.cookie[side]);
}

void Sockmap::Stop(const SockmapPair& pair, int consumed[2], int64_t lost[2], bool guard) {
  int lowat[2] = {1, 1};
  for (int side = 0; guard && side < 2; side++) {
    // The kernel detaches the program without the socket lock, clearing it before it restores
    // sk_data_ready: a segment being received at that instant would meet no program and be
    // dropped (see the header). So first keep segments away from the program. The poke then
    // waits for a softirq that entered the program before (socket lock).
    lowat[side] = HoldOffProgram(pair.fd[side]);
    int err = Poke(pair.fd[side]);
    if (consumed != nullptr) consumed[side] = err;
  }
  for (int side = 0; side < 2; side++) MapDelete(socks_.get(), &pair.cookie[side]);
  for (int side = 0; side < 2; side++) {
    // Another poke waits out a softirq still inside sk_psock_verdict_recv, so the counters and the
    // receive queue below tell the same story.
    int err = Poke(pair.fd[side]);
    if (consumed != nullptr && consumed[side] == 0) consumed[side] = err;
    if (lost == nullptr) continue;
    SockmapCounters counted;
    int64_t unaccounted = 0;
    int reported = 0;
    lost[side] = Counters(pair, side, &counted) && Unaccounted(pair.fd[side], true, counted, &unaccounted, &reported)
                     ? unaccounted - pair.base_unaccounted[side]
                     : -1;
    if (consumed != nullptr && consumed[side] == 0) consumed[side] = reported;
  }
  for (int side = 0; guard && side < 2; side++) LetProgramRun(pair.fd[side], lowat[side]);
}

bool Sockmap::Resume(SockmapPair* pair, SysError* error) {
  // Stopped, the program redirects nothing, so the counters hold still while we rebase.
  for (int side = 0; side < 2; side++) {
    SockmapCounters from;
    uint64_t written = 0;
    if (!Counters(*pair, side ^ 1, &from)) {
      error->Set("bpf(BPF_MAP_LOOKUP_ELEM)");
      return false;
    }
    if (!TcpBytesWritten(pair->fd[side], &written, error)) return false;
    pair->base_written[side] = written - from.redirected;
    SockmapCounters own;
    if (!Counters(*pair, side, &own)) return error->Set("bpf(BPF_MAP_LOOKUP_ELEM)", ENOENT);
    int reported = 0;
    if (!Unaccounted(pair->fd[side], true, own, &pair->base_unaccounted[side], &reported)) {
      return error->Set("recv", reported != 0 ? reported : ENOTCONN);
    }
  }
  for (int side = 0; side < 2; side++) {
    uint64_t fd = static_cast<uint64_t>(pair->fd[side]);
    if (MapUpdate(socks_.get(), &pair->cookie[side], &fd, BPF_NOEXIST) < 0 && errno != EEXIST) {
      error->Set("bpf(BPF_MAP_UPDATE_ELEM)");
      return false;
    }
  }
  Poke(pair->fd[0]);
  Poke(pair->fd[1]);
  return true;
}

void Sockmap::Remove(const SockmapPair& pair) {
  for (int side = 0; side < 2; side++) {
    MapDelete(socks_.get(), &pair.cookie[side]);
    MapDelete(hold_.get(), &pair.cookie[side]);
    MapDelete(conns_.get(), &pair.cookie[side]);
  }
}

bool Sockmap::Counters(const SockmapPair& pair, int side, SockmapCounters* out) const {
  ConnValue value;
  if (MapLookup(conns_.get(), &pair.cookie[side], &value) < 0) return false;
  out->redirected = value.redirected;
  out->passed = value.passed;
  return true;
}

bool Sockmap::AllCounters(std::vector<CookieCounters>* out, SysError* error) const {
  out->clear();
  constexpr uint32_t kBatch = 256;
  uint64_t keys[kBatch];
  ConnValue values[kBatch];
  uint64_t token = 0;
  bool first = true;
  for (;;) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.batch.in_batch = first ? 0 : reinterpret_cast<uint64_t>(&token);
    attr.batch.out_batch = reinterpret_cast<uint64_t>(&token);
    attr.batch.keys = reinterpret_cast<uint64_t>(keys);
    attr.batch.values = reinterpret_cast<uint64_t>(values);
    attr.batch.count = kBatch;
    attr.batch.map_fd = static_cast<uint32_t>(conns_.get());
    long rc = Bpf(BPF_MAP_LOOKUP_BATCH, &attr);
    int err = rc < 0 ? errno : 0;
    if (rc < 0 && err != ENOENT) return error->Set("bpf(BPF_MAP_LOOKUP_BATCH)", err);
    for (uint32_t i = 0; i < attr.batch.count; i++) {
      out->push_back(CookieCounters{keys[i], SockmapCounters{values[i].redirected, values[i].passed}});
    }
    if (err == ENOENT) break;  // that was the last batch
    first = false;
  }
  std::sort(out->begin(), out->end(), [](const CookieCounters& a, const CookieCounters& b) { return a.cookie < b.cookie; });
  return true;
}

int64_t Sockmap::Pending(const SockmapPair& pair, int side, SysError* error) const {
  SockmapCounters from;
  // Read the counter first: whatever it counts was queued before we look at the socket.
  if (!Counters(pair, side ^ 1, &from)) {
    error->Set("bpf(BPF_MAP_LOOKUP_ELEM)");
    return -1;
  }
  uint64_t written = 0;
  if (!TcpBytesWritten(pair.fd[side], &written, error)) return -1;
  int64_t pending = static_cast<int64_t>(from.redirected) - static_cast<int64_t>(written - pair.base_written[side]);
  return pending > 0 ? pending : 0;
}

}  // namespace nsproxy
