// tcp provider: a Fabric whose registered regions are served to peers by a native progress
// thread (tcp_target), checking rkey and bounds as an RNIC would.
#pragma once
#include <array>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include "provider.h"
#include "tcp_wire.h"

namespace legoos::tcp {

// What the progress thread needs of a registered region. `m` serialises the target thread's
// accesses with deregistration, so no byte is touched after close() returns.
struct MrEntry {
  uint8_t* base;
  size_t length;
  uint32_t rkey;
  std::mutex m;
  bool valid = true;
};

using Token = std::array<uint8_t, kTokenBytes>;

class Target;
class TcpFabric;

class TcpMemoryRegion : public MemoryRegion {
 public:
  TcpMemoryRegion(std::shared_ptr<TcpFabric> fabric, std::shared_ptr<MrEntry> entry);
  ~TcpMemoryRegion() override;
  void close() override;

 private:
  std::shared_ptr<TcpFabric> fabric_;
  std::shared_ptr<MrEntry> entry_;
};

class TcpFabric : public Fabric, public std::enable_shared_from_this<TcpFabric> {
 public:
  explicit TcpFabric(const FabricOptions& opts);
  ~TcpFabric() override;
  void start();  // binds and starts the target thread when opts.port >= 0
  std::string provider() const override { return "tcp"; }
  std::shared_ptr<MemoryRegion> register_mr(void* addr, size_t length) override;
  std::shared_ptr<Endpoint> create_endpoint() override;
  void close() override;
  bool closed() const override { return closed_; }

  int listen_port() const override { return listen_port_; }

  // Called by the target thread.
  std::shared_ptr<MrEntry> find_mr(uint32_t rkey);
  bool token_valid(const Token& t);

  // Called by children.
  void deregister(uint32_t rkey);
  void add_token(const Token& t);
  void revoke_token(const Token& t);

 private:
  bool closed_ = false;
  int listen_port_ = 0;
  std::unique_ptr<Target> target_;
  std::mutex mu_;  // guards mrs_ and tokens_ (shared with the target thread)
  std::unordered_map<uint32_t, std::shared_ptr<MrEntry>> mrs_;
  std::set<Token> tokens_;
  // Children, closed first by close(). Only touched by the owning (JS) thread.
  std::vector<std::weak_ptr<MemoryRegion>> child_mrs_;
  std::vector<std::weak_ptr<Endpoint>> child_eps_;
};

}  // namespace legoos::tcp
