#include "tcp_endpoint.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace legoos::tcp {

namespace {
constexpr size_t kInCap = 64 * 1024;

// Blocking-with-deadline helpers for connect(), which runs off the loop thread.
bool wait_fd(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    int r = poll(&p, 1, timeout_ms);
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}
}  // namespace

TcpEndpoint::TcpEndpoint(std::shared_ptr<TcpFabric> fabric) : fabric_(std::move(fabric)), in_(new uint8_t[kInCap]) {
  token_hex_ = random_hex(kTokenBytes);
  token_from_hex(token_hex_.data(), token_hex_.size(), token_.data());
  fabric_->add_token(token_);
}

TcpEndpoint::~TcpEndpoint() { close(); }

EndpointInfo TcpEndpoint::local_info() const {
  EndpointInfo i;
  i.provider = "tcp";
  i.host = fabric_->options().host;
  i.port = fabric_->listen_port();
  i.token = token_hex_;
  return i;
}

void TcpEndpoint::connect(const EndpointInfo& remote) {
  if (closed_) throw Error::closed("endpoint");
  if (connected_) throw Error("EISCONN", "endpoint is already connected", EISCONN);
  if (remote.provider != "tcp") throw Error::invalid("remote endpoint info is not a tcp endpoint");
  if (remote.port == 0) {
    // The peer does not listen: it will dial us (we are its target). Nothing to bring up.
    passive_ = true;
    connected_ = true;
    return;
  }
  uint8_t tok[kTokenBytes];
  if (!token_from_hex(remote.token.data(), remote.token.size(), tok))
    throw Error::invalid("remote token must be 32 hex characters");
  int timeout = fabric_->options().timeout_ms;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port_s = std::to_string(remote.port);
  int rc = getaddrinfo(remote.host.c_str(), port_s.c_str(), &hints, &res);
  if (rc != 0) throw Error("EHOSTUNREACH", "cannot resolve '" + remote.host + "': " + gai_strerror(rc), EHOSTUNREACH);
  int fd = -1, err = ECONNREFUSED;
  for (addrinfo* ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      err = errno;
      continue;
    }
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        if (!wait_fd(fd, POLLOUT, timeout)) {
          err = ETIMEDOUT;
        } else {
          socklen_t sl = sizeof err;
          getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl);
        }
      }
      if (err != 0 && err != EINPROGRESS) {
        ::close(fd);
        fd = -1;
      }
    }
  }
  freeaddrinfo(res);
  std::string where = remote.host + ":" + port_s;
  if (fd < 0) throw Error::from_errno("connect to " + where, err);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  Hello h{kHelloMagic, kVersion, {}};
  std::memcpy(h.token, tok, kTokenBytes);
  HelloReply r{};
  size_t got = 0;
  if (send(fd, &h, sizeof h, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof h)) {
    err = errno;
    ::close(fd);
    throw Error::from_errno("hello to " + where, err);
  }
  while (got < sizeof r) {
    if (!wait_fd(fd, POLLIN, timeout)) {
      ::close(fd);
      throw Error("ETIMEDOUT", "no hello reply from " + where, ETIMEDOUT);
    }
    ssize_t n = recv(fd, reinterpret_cast<uint8_t*>(&r) + got, sizeof r - got, 0);
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      err = n == 0 ? ECONNRESET : errno;
      ::close(fd);
      throw Error("EACCES", "target " + where + " closed the connection during the hello (" + errno_name(err) +
                              "): wrong token or not a legoos fabric port", EACCES);
    }
  }
  if (r.magic != kHelloMagic || r.status != 0) {
    ::close(fd);
    throw Error("EACCES", "target " + where + " refused the endpoint token", EACCES);
  }
  // Blocking from now on: every async-path call passes MSG_DONTWAIT, and the sync path's
  // blocking recv is bounded by SO_RCVTIMEO so it can still check the op deadline.
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  timeval tv{0, 50 * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  fd_ = fd;
  connected_ = true;
}

void TcpEndpoint::mark_dead() {
  dead_ = true;
  if (fd_ >= 0) shutdown(fd_, SHUT_RDWR);
}

bool TcpEndpoint::flush_backlog() {
  while (backlog_off_ < backlog_.size()) {
    ssize_t w = send(fd_, backlog_.data() + backlog_off_, backlog_.size() - backlog_off_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      if (errno == EINTR) continue;
      dead_errno_ = errno;
      return false;
    }
    backlog_off_ += static_cast<size_t>(w);
    bytes_sent_ += static_cast<uint64_t>(w);
  }
  backlog_.clear();
  backlog_off_ = 0;
  return true;
}

void TcpEndpoint::post(const WorkRequest& wr) {
  if (closed_) throw Error::closed("endpoint");
  if (!connected_) throw Error("ENOTCONN", "endpoint is not connected", ENOTCONN);
  if (passive_) throw Error("ENOTCONN", "endpoint is the passive side of a tcp connection (its peer dials this node); it cannot initiate", ENOTCONN);
  // A broken connection behaves like a QP in the error state: new requests are flushed.
  if (dead_) throw Error::from_wc(kWcWrFlushErr, 0, wr.wr_id, "the connection to the target is down");
  if (wr.length > kMaxOpLength) throw Error("ERANGE", "length exceeds 1 GiB", ERANGE);
  ReqHeader h{kReqMagic, static_cast<uint8_t>(wr.op), 0, wr.rkey, wr.wr_id, wr.remote_addr, wr.length, 0,
              wr.compare_add, wr.swap};
  uint8_t* local = wr.mr->addr() + wr.local_offset;
  size_t payload = wr.op == Opcode::kWrite ? wr.length : 0;
  size_t total = sizeof h + payload;
  Pending p{wr.wr_id, static_cast<uint8_t>(wr.op), local, wr.length, bytes_posted_ + total,
            Clock::now() + std::chrono::milliseconds(fabric_->options().timeout_ms)};
  bytes_posted_ += total;
  size_t sent = 0;
  if (backlog_.size() == backlog_off_) {
    iovec iov[2] = {{&h, sizeof h}, {local, payload}};
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = payload ? 2 : 1;
    for (;;) {
      ssize_t w = sendmsg(fd_, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w >= 0) {
        sent = static_cast<size_t>(w);
        break;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        dead_errno_ = errno;
        mark_dead();
      }
      break;
    }
  }
  bytes_sent_ += sent;
  // The rest is copied: a WRITE captures its source bytes at post time.
  if (sent < sizeof h) {
    auto* hb = reinterpret_cast<uint8_t*>(&h);
    backlog_.insert(backlog_.end(), hb + sent, hb + sizeof h);
    backlog_.insert(backlog_.end(), local, local + payload);
  } else if (sent < total) {
    backlog_.insert(backlog_.end(), local + (sent - sizeof h), local + payload);
  }
  pending_.push_back(p);
}

int TcpEndpoint::fail_all(int status, Completion* out, int max) {
  int n = 0;
  while (!pending_.empty() && n < max) {
    const Pending& p = pending_.front();
    int st = p.send_end <= bytes_sent_ ? status : kWcWrFlushErr;
    out[n++] = Completion{p.wr_id, st, static_cast<uint32_t>(dead_errno_)};
    pending_.pop_front();
  }
  if (pending_.empty()) {
    backlog_.clear();
    backlog_off_ = 0;
  }
  return n;
}

int TcpEndpoint::progress(Completion* out, int max) {
  if (closed_ || fd_ < 0) return 0;
  if (dead_) return fail_all(kWcRetryExcErr, out, max);
  if (backlog_off_ < backlog_.size() && !flush_backlog()) {
    mark_dead();
    return fail_all(kWcRetryExcErr, out, max);
  }
  int n = 0;
  bool probe = pending_.empty();  // idle wake-up: only EOF or garbage can be there
  while (n < max && (!pending_.empty() || probe)) {
    // Parse as much as is buffered.
    if (!pending_.empty()) {
      if (!have_resp_ && in_end_ - in_start_ >= sizeof(RespHeader)) {
        std::memcpy(&resp_, in_.get() + in_start_, sizeof resp_);
        in_start_ += sizeof resp_;
        const Pending& p = pending_.front();
        bool good = resp_.magic == kRespMagic && resp_.wr_id == p.wr_id && resp_.op == p.op &&
                    (resp_.status != kWcSuccess ? resp_.length == 0
                                                : resp_.length == (p.op == static_cast<uint8_t>(Opcode::kWrite) ? 0 : p.length));
        if (!good) {
          dead_errno_ = EPROTO;
          mark_dead();
          return n + fail_all(kWcBadRespErr, out + n, max - n);
        }
        have_resp_ = true;
        payload_got_ = 0;
      }
      if (have_resp_) {
        Pending& p = pending_.front();
        size_t need = resp_.length - payload_got_;
        size_t have = in_end_ - in_start_;
        size_t k = have < need ? have : need;
        if (k) {
          std::memcpy(p.dst + payload_got_, in_.get() + in_start_, k);
          in_start_ += k;
          payload_got_ += k;
          need -= k;
        }
        if (need == 0) {
          out[n++] = Completion{p.wr_id, resp_.status, 0};
          pending_.pop_front();
          have_resp_ = false;
          continue;
        }
        // Large remainder: receive straight into the destination, no bounce copy.
        if (need >= kInCap / 2) {
          in_start_ = in_end_ = 0;
          ssize_t r = recv(fd_, p.dst + payload_got_, need, MSG_DONTWAIT);
          if (r > 0) {
            payload_got_ += static_cast<size_t>(r);
            continue;
          }
          if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            dead_errno_ = r == 0 ? ECONNRESET : errno;
            mark_dead();
            return n + fail_all(kWcRetryExcErr, out + n, max - n);
          }
          break;
        }
      }
    }
    if (in_start_ == in_end_) in_start_ = in_end_ = 0;
    if (in_start_ > 0 && kInCap - in_end_ < sizeof(RespHeader)) {
      std::memmove(in_.get(), in_.get() + in_start_, in_end_ - in_start_);
      in_end_ -= in_start_;
      in_start_ = 0;
    }
    ssize_t r = recv(fd_, in_.get() + in_end_, kInCap - in_end_, MSG_DONTWAIT);
    if (r > 0) {
      if (probe) {
        // Bytes nobody asked for: the stream is out of sync.
        dead_errno_ = EPROTO;
        mark_dead();
        return n;
      }
      in_end_ += static_cast<size_t>(r);
      continue;
    }
    if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      dead_errno_ = r == 0 ? ECONNRESET : errno;
      mark_dead();
      return n + fail_all(kWcRetryExcErr, out + n, max - n);
    }
    break;
  }
  // Bounded wait: a target that stays silent past the timeout is treated as dead.
  if (!pending_.empty() && n < max && pending_.front().deadline < Clock::now()) {
    dead_errno_ = ETIMEDOUT;
    mark_dead();
    n += fail_all(kWcRetryExcErr, out + n, max - n);
  }
  return n;
}

void TcpEndpoint::wait(int timeout_ms) {
  if (fd_ < 0 || dead_ || pending_.empty()) return;
  if (wants_writable()) {
    pollfd p{fd_, POLLIN | POLLOUT, 0};
    poll(&p, 1, timeout_ms);
    return;
  }
  // Enough buffered for progress() to act on: do not block.
  size_t have = in_end_ - in_start_;
  if (have_resp_ ? have > 0 : have >= sizeof(RespHeader)) return;
  // One blocking recv (the socket is blocking; SO_RCVTIMEO bounds it) instead of poll + recv:
  // the sync path then costs what a plain C request/response costs, a send and a recv.
  if (in_start_ > 0) {
    std::memmove(in_.get(), in_.get() + in_start_, have);
    in_start_ = 0;
    in_end_ = have;
  }
  ssize_t r = recv(fd_, in_.get() + in_end_, kInCap - in_end_, 0);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    // uv_poll_init (async use of this endpoint) made the fd non-blocking: block in poll instead.
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) > 0) r = recv(fd_, in_.get() + in_end_, kInCap - in_end_, MSG_DONTWAIT);
  }
  if (r > 0) {
    in_end_ += static_cast<size_t>(r);
  } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    dead_errno_ = r == 0 ? ECONNRESET : errno;
    mark_dead();
  }
}

void TcpEndpoint::close() {
  if (closed_) return;
  closed_ = true;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  pending_.clear();
  backlog_.clear();
  fabric_->revoke_token(token_);
}

}  // namespace legoos::tcp
