// connection.h — one forwarded TCP connection: the client socket, the upstream socket created
// inside the target netns, and the two directions between them. Knows nothing of epoll: the
// worker calls Pump() for the directions an event concerns, and Pump() moves what it can and
// says what the connection needs next. The rules for how a connection ends are in engine.h.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "connection_list.h"
#include "pipe_pool.h"
#include "sockmap.h"
#include "syserror.h"
#include "unique_fd.h"

namespace nsproxy {

// Reads of up to this size go recv() -> send() through a per-thread buffer; a read that fills it
// marks the direction bulk, and from then on splice() moves it, zero-copy.
constexpr size_t kCopyChunk = 16 * 1024;

// Bytes received on the copy path that the destination did not take yet. Allocated only while
// it holds something: an idle connection costs nothing here.
class Spill {
 public:
  bool empty() const { return begin_ == end_; }
  size_t size() const { return end_ - begin_; }
  // Keeps n bytes; only while empty.
  void Keep(const char* data, size_t n);
  // Sends what it can to `fd`: the bytes sent, 0 when the socket is full, -1 with *error.
  ssize_t SendTo(int fd, SysError* error);
  void Clear();

 private:
  std::unique_ptr<char[]> data_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

// One direction of a connection: bytes read from `from` go to `to`, straight (recv+send, with a
// Spill for what send() left) or through `pipe` (splice, for bulk).
struct Direction {
  enum class Source { kOpen, kEof, kFailed };  // how the stream read from `from` ended

  int from = -1;                 // not owned
  int to = -1;                   // not owned
  Pipe pipe;                     // borrowed from the pool while bytes are in it
  Spill spill;                   // copy-path leftovers; sent before anything read later
  Source source = Source::kOpen;
  bool shut = false;             // EOF forwarded: shutdown(to, SHUT_WR) done (or left to close())
  bool bulk = false;             // large reads lately: splice (zero-copy) rather than recv()+send()
  bool held = false;             // leaving sockmap: the kernel still delivers to `to`; hands off
  uint64_t bytes = 0;            // bytes delivered to `to`

  bool empty() const { return pipe.fill == 0 && spill.empty(); }
  bool ended() const { return source != Source::kOpen; }
  // Everything read has been handed to `to`, and the end of the stream too.
  bool delivered() const { return ended() && empty() && (shut || source == Source::kFailed); }
};

class Connection {
 public:
  enum class State {
    kConnecting,  // connect() in progress
    kForwarding,  // user space moves the bytes (recv/send, splice)
    kResetting,   // a side was reset; the other side's last bytes are leaving before its RST
    kSockmap,     // the kernel moves the bytes (worker_sockmap.cc); leaving it, the connection
                  // is kForwarding with each direction held until the kernel's backlog is out
  };
  // What the connection needs after a Pump().
  enum class Next {
    kWait,       // more events
    kClose,      // both directions ended cleanly (FINs forwarded): close()
    kReset,      // a side is gone and what it sent has been delivered: RST the other side
    kFlushReset  // as kReset, but the last bytes are not on the wire yet: check again soon
  };

  Connection(uint64_t id, int listener, UniqueFd client, UniqueFd upstream, uint64_t started_us);

  enum Which : unsigned { kUp = 1, kDown = 2, kBoth = 3 };

  // Moves the directions in `which` until the kernel says EAGAIN (or a short read says the
  // source is drained — not for directions whose source hung up, now (`hung_up`) or in an
  // earlier event, so that a FIN queued behind the data is seen, nor for those in `drain`),
  // forwards EOF as shutdown(SHUT_WR), returns idle pipes.
  Next Pump(PipePool* pool, unsigned which, unsigned hung_up, unsigned drain = 0);

  // Bytes the service gets before any of the client's (the PROXY protocol header); before the
  // first Pump() only.
  void Prepend(const std::string& bytes) { up_.spill.Keep(bytes.data(), bytes.size()); }

  // No side was found reset or failed.
  bool intact() const { return dead_ == 0; }

  // Forwarding, both streams open and nothing of theirs in user space: what may join sockmap.
  bool Quiet() const {
    return state == State::kForwarding && dead_ == 0 && hung_up_ == 0 && up_.empty() && down_.empty() &&
           !up_.ended() && !down_.ended() && !up_.held && !down_.held;
  }

  // Sends what is waiting to go before the client's bytes (the PROXY header), now, whole: true
  // when nothing waits any more.
  bool FlushPrologue();

  // The upstream was reset before its connect was seen to complete (SO_ERROR already read).
  void UpstreamReset(int err) { Died(kDown, "recv", err); }

  // The source of these directions hung up while nothing was pumped (still connecting).
  void NoteHangUp(unsigned directions) { hung_up_ |= directions; }

  // An error reported by epoll on one socket (EPOLLERR). When the stream read from that socket
  // is still open the error will come out of recv(), after the bytes that arrived before it, so
  // nothing is done here; once that stream has ended, only SO_ERROR can tell: it is read now.
  void OnSocketError(bool upstream);

  // Ends the connection: pipes back to the pool, sockets closed (the one(s) in `reset_mask` with
  // RST, so that a reset on one side reaches the other instead of looking like a clean end).
  void Close(PipePool* pool, unsigned reset_mask);

  // For kFlushReset: true once the side to be reset has put every byte on the wire.
  bool ResetSideFlushed() const;

  // Which socket(s) get the RST when Pump() said kReset: the survivor(s). kBoth when both died.
  unsigned reset_mask() const;

  uint64_t id() const { return id_; }
  int listener() const { return listener_; }
  int client_fd() const { return client_.get(); }
  int upstream_fd() const { return upstream_.get(); }
  uint64_t bytes_in() const { return up_.bytes; }     // client -> target
  uint64_t bytes_out() const { return down_.bytes; }  // target -> client
  uint64_t started_us() const { return started_us_; }
  // The first error that ended a side ({} for a clean end), for the 'closed' event.
  const SysError& error() const { return error_; }

  // Whether the direction that writes to this side's socket holds bytes it could not write: only
  // then is an EPOLLOUT on that socket worth a pump.
  bool Waiting(unsigned direction) const {
    const Direction& d = direction == kUp ? up_ : down_;
    return !d.empty();
  }

  State state = State::kConnecting;
  bool closed = false;  // closed, waiting to be freed after the current epoll batch
  // While the kernel moves the bytes (kSockmap), and while leaving it. Side 0 is the client socket, side 1
  // the upstream one, as in the pair; side s's bytes go to side 1 - s.
  struct SockmapState {
    SockmapPair pair;
    bool eof[2] = {false, false};   // side s sent its FIN (it was poked after EPOLLRDHUP)
    bool shut[2] = {false, false};  // side s got the FIN forwarded (shutdown(SHUT_WR))
    bool dead[2] = {false, false};  // side s was reset
    int dead_errno[2] = {0, 0};
    uint64_t last_redirected = 0;   // both sides' counters at the previous tick (bulk detection)
    bool in_maps = false;           // Add()ed and not yet Remove()d
    bool decided = false;           // auto: joined, or will never join (bulk, or it left once)
    uint32_t exchanges = 0;         // auto: pumps that moved bytes, while on splice
    uint64_t wait_due_us = 0;       // waiting for a backlog: when to look again (Worker::OnTimers)
    uint32_t wait_step_us = 0;      //   and how long the last wait was
  };
  SockmapState sockmap;
  // Bytes the kernel moved while the connection was on sockmap, added to the counters.
  void AddRedirected(uint64_t in, uint64_t out) {
    up_.bytes += in;
    down_.bytes += out;
  }
  // Back from sockmap to user space: what the sockmap phase settled, in the directions' terms;
  // the directions still to take over are held (Release() each once the kernel is done).
  void ResumeFromSockmap();
  bool held(unsigned direction) const { return (direction == kUp ? up_ : down_).held; }
  void Release(unsigned direction) { (direction == kUp ? up_ : down_).held = false; }
  // A side that died on sockmap, for the 'closed' event and the reset that follows.
  void SockmapSideDied(int side, int err) { Died(side == 0 ? kUp : kDown, "recv", err); }

  // The worker's lists (each with links of its own: a connection may be on several at once).
  ListLinks<Connection> all_links;           // all its connections
  ListLinks<Connection> connecting_links;    // connects in progress
  ListLinks<Connection> flushing_links;      // resets waiting for their last bytes to leave
  ListLinks<Connection> sockmap_links;       // in the sockmap's maps
  ListLinks<Connection> sockmap_wait_links;  // of those, waiting for a kernel backlog

 private:
  // kUp: the client socket (source of up_), kDown: the upstream socket (source of down_).
  Direction& SourceOf(unsigned side) { return side == kUp ? up_ : down_; }
  Direction& DestinationOf(unsigned side) { return side == kUp ? down_ : up_; }
  void Died(unsigned side, const char* call, int err);
  void Shovel(Direction* d, unsigned side, PipePool* pool, bool drain);
  Next Decide();

  uint64_t id_;
  int listener_;
  UniqueFd client_;
  UniqueFd upstream_;
  uint64_t started_us_;
  Direction up_;    // client -> upstream
  Direction down_;  // upstream -> client
  unsigned hung_up_ = 0;   // directions whose source reported a hang-up (read them to EOF)
  unsigned dead_ = 0;      // sides (kUp: client, kDown: upstream) known to be reset or failed
  int dead_errno_[3] = {0, 0, 0};
  SysError error_;
};

}  // namespace nsproxy
