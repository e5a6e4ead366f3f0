// The target side of the tcp provider: one progress thread per listening Fabric, an epoll
// loop that authenticates connections by endpoint token and serves READ/WRITE/atomics
// straight from/to registered memory. JS never runs on this path.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "tcp_fabric.h"

namespace legoos::tcp {

class Target {
 public:
  Target(TcpFabric* fabric, const std::string& host, int port);  // binds + listens, or throws
  ~Target();                                                   // stops, joins, closes all
  int port() const { return port_; }
  void revoke(const Token& t);  // closes connections that authenticated with t

 private:
  struct Conn;
  void run();
  void accept_all();
  void on_event(Conn* c, uint32_t events);
  bool step(Conn* c);  // false = close the connection
  bool fill(Conn* c, size_t need, bool* eof_or_err);
  bool start_request(Conn* c);
  bool flush_send(Conn* c, bool* blocked);
  void close_conn(Conn* c);
  void set_out_interest(Conn* c, bool on);

  TcpFabric* fabric_;  // owner; outlives this
  int listen_fd_ = -1, epoll_fd_ = -1, wake_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::unordered_map<int, std::unique_ptr<Conn>> conns_;  // target thread only
  std::mutex revoke_mu_;
  std::vector<Token> revoked_;
  bool stop_ = false;  // guarded by revoke_mu_
};

}  // namespace legoos::tcp
