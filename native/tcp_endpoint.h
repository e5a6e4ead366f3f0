// Initiator side of the tcp provider: one data connection to a target's progress thread,
// requests pipelined, responses matched in order by wr_id. Non-blocking socket: the async
// path drives progress() from a uv_poll on event_fd(); the sync path spins on it.
#pragma once
#include <chrono>
#include <deque>
#include <memory>
#include <vector>

#include "tcp_fabric.h"

namespace legoos::tcp {

class TcpEndpoint : public Endpoint {
 public:
  explicit TcpEndpoint(std::shared_ptr<TcpFabric> fabric);
  ~TcpEndpoint() override;
  EndpointInfo local_info() const override;
  void connect(const EndpointInfo& remote) override;
  bool connected() const override { return connected_; }
  void post(const WorkRequest& wr) override;
  int progress(Completion* out, int max) override;
  int event_fd() const override { return fd_; }
  bool wants_writable() const override { return backlog_.size() > backlog_off_; }
  bool arm() override { return false; }
  void wait(int timeout_ms) override;
  int fail_all(int status, Completion* out, int max) override;
  size_t outstanding() const override { return pending_.size(); }
  bool failed() const override { return dead_; }
  void close() override;
  bool closed() const override { return closed_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Pending {
    uint64_t wr_id;
    uint8_t op;
    uint8_t* dst;  // READ / atomic destination in the local MR
    uint32_t length;
    uint64_t send_end;  // stream offset after which the request is fully on the wire
    Clock::time_point deadline;
  };
  bool flush_backlog();  // false = connection broken
  void mark_dead();

  std::shared_ptr<TcpFabric> fabric_;
  Token token_{};
  std::string token_hex_;
  int fd_ = -1;
  bool connected_ = false, passive_ = false, dead_ = false, closed_ = false;
  int dead_errno_ = 0;
  std::deque<Pending> pending_;
  std::vector<uint8_t> backlog_;  // request bytes the socket did not take yet
  size_t backlog_off_ = 0;
  uint64_t bytes_posted_ = 0, bytes_sent_ = 0;
  std::unique_ptr<uint8_t[]> in_;
  size_t in_start_ = 0, in_end_ = 0;
  // Response being received.
  bool have_resp_ = false;
  RespHeader resp_{};
  size_t payload_got_ = 0;
};

}  // namespace legoos::tcp
