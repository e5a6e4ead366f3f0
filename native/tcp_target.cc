#include "tcp_target.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace legoos::tcp {

namespace {
constexpr size_t kInCap = 64 * 1024;
constexpr uint64_t kWakeTag = ~0ull;
constexpr uint64_t kListenTag = ~0ull - 1;
}  // namespace

struct Target::Conn {
  int fd;
  enum State { kHello, kHeader, kWritePayload } state = kHello;
  Token token{};
  std::unique_ptr<uint8_t[]> in{new uint8_t[kInCap]};
  size_t in_start = 0, in_end = 0;
  ReqHeader req{};
  // WRITE payload in progress: dst is null when the request was refused (bytes are dropped).
  std::shared_ptr<MrEntry> entry;
  uint8_t* dst = nullptr;
  size_t remaining = 0;
  uint8_t status = kWcSuccess;
  // Response in progress.
  bool sending = false;
  RespHeader resp{};
  size_t resp_sent = 0;
  std::shared_ptr<MrEntry> src_entry;
  const uint8_t* src = nullptr;
  size_t src_len = 0, src_sent = 0;
  uint64_t atomic_old = 0;
  bool out_interest = false;
  // Level-triggered epoll reports leftover bytes again, so after a short read we go back to
  // epoll_wait instead of paying a recv that would only say EAGAIN.
  bool may_recv = true;
};

Target::Target(TcpFabric* fabric, const std::string& host, int port) : fabric_(fabric) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port_s = std::to_string(port);
  int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port_s.c_str(), &hints, &res);
  if (rc != 0) throw Error("EADDRNOTAVAIL", "cannot resolve listen host '" + host + "': " + gai_strerror(rc));
  int err = 0;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      err = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0) {
      listen_fd_ = fd;
      break;
    }
    err = errno;
    ::close(fd);
  }
  freeaddrinfo(res);
  if (listen_fd_ < 0) throw Error::from_errno("listen on " + host + ":" + port_s, err ? err : EADDRNOTAVAIL);
  sockaddr_storage ss{};
  socklen_t sl = sizeof ss;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &sl);
  port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                         : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    int e = errno;
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
    ::close(listen_fd_);
    throw Error::from_errno("epoll/eventfd", e);
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenTag;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  ev.data.u64 = kWakeTag;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  thread_ = std::thread([this] { run(); });
}

Target::~Target() {
  {
    std::lock_guard<std::mutex> g(revoke_mu_);
    stop_ = true;
  }
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  for (auto& kv : conns_) ::close(kv.first);
  conns_.clear();
  ::close(listen_fd_);
  ::close(epoll_fd_);
  ::close(wake_fd_);
}

void Target::revoke(const Token& t) {
  {
    std::lock_guard<std::mutex> g(revoke_mu_);
    revoked_.push_back(t);
  }
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
}

void Target::run() {
  epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(epoll_fd_, evs, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < n; i++) {
      uint64_t tag = evs[i].data.u64;
      if (tag == kWakeTag) {
        uint64_t v;
        (void)!read(wake_fd_, &v, sizeof v);
        std::vector<Token> rev;
        {
          std::lock_guard<std::mutex> g(revoke_mu_);
          if (stop_) return;
          rev.swap(revoked_);
        }
        if (!rev.empty()) {
          std::vector<Conn*> doomed;
          for (auto& kv : conns_)
            for (auto& t : rev)
              if (kv.second->state != Conn::kHello && kv.second->token == t) doomed.push_back(kv.second.get());
          for (Conn* c : doomed) close_conn(c);
        }
      } else if (tag == kListenTag) {
        accept_all();
      } else {
        auto it = conns_.find(static_cast<int>(tag));
        if (it != conns_.end()) on_event(it->second.get(), evs[i].events);
      }
    }
  }
}

void Target::accept_all() {
  for (;;) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or a transient error: the listener stays armed
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = static_cast<uint64_t>(fd);
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      ::close(fd);
      continue;
    }
    conns_[fd] = std::move(c);
  }
}

void Target::close_conn(Conn* c) {
  int fd = c->fd;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  ::close(fd);
  conns_.erase(fd);  // destroys c
}

void Target::set_out_interest(Conn* c, bool on) {
  if (c->out_interest == on) return;
  c->out_interest = on;
  epoll_event ev{};
  // While a response is blocked we stop reading requests: back-pressure on a slow reader.
  ev.events = on ? (EPOLLOUT | EPOLLRDHUP) : (EPOLLIN | EPOLLRDHUP);
  ev.data.u64 = static_cast<uint64_t>(c->fd);
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd, &ev);
}

void Target::on_event(Conn* c, uint32_t events) {
  if (events & EPOLLERR) {
    close_conn(c);
    return;
  }
  c->may_recv = true;
  if (!step(c)) close_conn(c);
}

// Ensures `need` bytes are buffered. Returns true when they are; false when the socket has
// no more for now (*eof_or_err tells whether it is finished).
bool Target::fill(Conn* c, size_t need, bool* eof_or_err) {
  *eof_or_err = false;
  while (c->in_end - c->in_start < need) {
    if (c->in_start > 0 && kInCap - c->in_end < need) {
      std::memmove(c->in.get(), c->in.get() + c->in_start, c->in_end - c->in_start);
      c->in_end -= c->in_start;
      c->in_start = 0;
    }
    if (!c->may_recv) return false;
    size_t space = kInCap - c->in_end;
    ssize_t r = recv(c->fd, c->in.get() + c->in_end, space, 0);
    if (r > 0) {
      c->in_end += static_cast<size_t>(r);
      if (static_cast<size_t>(r) < space) c->may_recv = false;
      continue;
    }
    if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) *eof_or_err = true;
    return false;
  }
  return true;
}

static bool in_bounds(const MrEntry& e, uint64_t addr, uint64_t len) {
  uint64_t base = reinterpret_cast<uintptr_t>(e.base);
  return addr >= base && len <= e.length && addr - base <= e.length - len;
}

// Parses the buffered request header and sets up its response (or the WRITE payload sink).
bool Target::start_request(Conn* c) {
  std::memcpy(&c->req, c->in.get() + c->in_start, sizeof(ReqHeader));
  c->in_start += sizeof(ReqHeader);
  const ReqHeader& q = c->req;
  if (q.magic != kReqMagic || q.reserved0 != 0 || q.reserved1 != 0 || q.length > kMaxOpLength) return false;
  c->resp = RespHeader{kRespMagic, q.op, kWcSuccess, 0, q.wr_id};
  c->resp_sent = 0;
  c->src = nullptr;
  c->src_len = c->src_sent = 0;
  c->src_entry.reset();
  auto entry = fabric_->find_mr(q.rkey);
  bool ok = entry && in_bounds(*entry, q.addr, q.length);
  switch (static_cast<Opcode>(q.op)) {
    case Opcode::kRead:
      if (ok) {
        c->src_entry = entry;
        c->src = reinterpret_cast<const uint8_t*>(static_cast<uintptr_t>(q.addr));
        c->src_len = q.length;
        c->resp.length = q.length;
      } else {
        c->resp.status = kWcRemAccessErr;
      }
      c->sending = true;
      return true;
    case Opcode::kWrite:
      c->entry = ok ? entry : nullptr;
      c->dst = ok ? reinterpret_cast<uint8_t*>(static_cast<uintptr_t>(q.addr)) : nullptr;
      c->remaining = q.length;
      c->status = ok ? kWcSuccess : kWcRemAccessErr;
      c->state = Conn::kWritePayload;
      return true;
    case Opcode::kCompSwap:
    case Opcode::kFetchAdd: {
      if (q.length != 8) return false;
      ok = ok && (q.addr % 8) == 0;
      if (ok) {
        std::lock_guard<std::mutex> g(entry->m);
        ok = entry->valid;
        if (ok) {
          auto* p = reinterpret_cast<uint64_t*>(static_cast<uintptr_t>(q.addr));
          if (q.op == static_cast<uint8_t>(Opcode::kCompSwap)) {
            uint64_t expected = q.compare_add;
            __atomic_compare_exchange_n(p, &expected, q.swap, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
            c->atomic_old = expected;
          } else {
            c->atomic_old = __atomic_fetch_add(p, q.compare_add, __ATOMIC_SEQ_CST);
          }
        }
      }
      if (ok) {
        c->src = reinterpret_cast<const uint8_t*>(&c->atomic_old);
        c->src_len = 8;
        c->resp.length = 8;
      } else {
        c->resp.status = kWcRemAccessErr;
      }
      c->sending = true;
      return true;
    }
    default:
      return false;
  }
}

// Sends what is left of the current response; *blocked when the socket is full.
bool Target::flush_send(Conn* c, bool* blocked) {
  *blocked = false;
  static const uint8_t kZeros[4096] = {};
  while (c->resp_sent < sizeof(RespHeader) || c->src_sent < c->src_len) {
    iovec iov[2];
    int n = 0;
    if (c->resp_sent < sizeof(RespHeader)) {
      iov[n++] = {reinterpret_cast<uint8_t*>(&c->resp) + c->resp_sent, sizeof(RespHeader) - c->resp_sent};
    }
    std::unique_lock<std::mutex> lk;
    if (c->src_sent < c->src_len) {
      const uint8_t* from = c->src + c->src_sent;
      size_t len = c->src_len - c->src_sent;
      if (c->src_entry) {
        lk = std::unique_lock<std::mutex>(c->src_entry->m);
        // Deregistered mid-response: the length is promised, so pad with zeros.
        if (!c->src_entry->valid) {
          from = kZeros;
          if (len > sizeof kZeros) len = sizeof kZeros;
        }
      }
      iov[n++] = {const_cast<uint8_t*>(from), len};
    }
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = n;
    ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (lk.owns_lock()) lk.unlock();
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        *blocked = true;
        return true;
      }
      if (errno == EINTR) continue;
      return false;
    }
    size_t wr = static_cast<size_t>(w);
    size_t h = sizeof(RespHeader) - c->resp_sent;
    if (wr <= h) {
      c->resp_sent += wr;
    } else {
      c->resp_sent = sizeof(RespHeader);
      c->src_sent += wr - h;
    }
  }
  c->sending = false;
  c->src_entry.reset();
  return true;
}

bool Target::step(Conn* c) {
  for (;;) {
    if (c->sending) {
      bool blocked;
      if (!flush_send(c, &blocked)) return false;
      if (blocked) {
        set_out_interest(c, true);
        return true;
      }
      set_out_interest(c, false);
    }
    bool eof = false;
    switch (c->state) {
      case Conn::kHello: {
        if (!fill(c, sizeof(Hello), &eof)) return !eof;
        Hello h;
        std::memcpy(&h, c->in.get() + c->in_start, sizeof h);
        c->in_start += sizeof h;
        std::memcpy(c->token.data(), h.token, kTokenBytes);
        bool ok = h.magic == kHelloMagic && h.version == kVersion && fabric_->token_valid(c->token);
        HelloReply r{kHelloMagic, ok ? 0u : static_cast<uint32_t>(EACCES)};
        // Fresh socket, 8 bytes: the send buffer is empty, so this does not block.
        if (send(c->fd, &r, sizeof r, MSG_NOSIGNAL | MSG_DONTWAIT) != static_cast<ssize_t>(sizeof r)) return false;
        if (!ok) return false;
        c->state = Conn::kHeader;
        break;
      }
      case Conn::kHeader:
        if (!fill(c, sizeof(ReqHeader), &eof)) return !eof;
        if (!start_request(c)) return false;
        break;
      case Conn::kWritePayload: {
        // Buffered bytes first, then straight from the socket into the registered memory.
        while (c->remaining > 0) {
          size_t have = c->in_end - c->in_start;
          if (have > 0) {
            size_t k = have < c->remaining ? have : c->remaining;
            if (c->dst) {
              std::lock_guard<std::mutex> g(c->entry->m);
              if (c->entry->valid) std::memcpy(c->dst, c->in.get() + c->in_start, k);
              c->dst += k;
            }
            c->in_start += k;
            c->remaining -= k;
            continue;
          }
          c->in_start = c->in_end = 0;
          ssize_t r;
          if (c->dst && c->remaining >= kInCap) {
            std::lock_guard<std::mutex> g(c->entry->m);
            if (!c->entry->valid) {
              c->dst = nullptr;
              c->status = kWcRemAccessErr;
              continue;
            }
            r = recv(c->fd, c->dst, c->remaining, 0);
            if (r > 0) {
              c->dst += r;
              c->remaining -= static_cast<size_t>(r);
              continue;
            }
          } else {
            r = recv(c->fd, c->in.get(), kInCap, 0);
            if (r > 0) {
              c->in_end = static_cast<size_t>(r);
              continue;
            }
          }
          if (r == 0) return false;
          if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
          if (errno != EINTR) return false;
        }
        c->entry.reset();
        c->resp.status = c->status;
        c->sending = true;
        c->state = Conn::kHeader;
        break;
      }
    }
  }
}

}  // namespace legoos::tcp
