#include "tcp_fabric.h"

#include "tcp_endpoint.h"
#include "tcp_target.h"

namespace legoos {

std::shared_ptr<Fabric> open_tcp_fabric(const FabricOptions& opts) {
  auto f = std::make_shared<tcp::TcpFabric>(opts);
  f->start();
  return f;
}

namespace tcp {

TcpMemoryRegion::TcpMemoryRegion(std::shared_ptr<TcpFabric> fabric, std::shared_ptr<MrEntry> entry)
    : fabric_(std::move(fabric)), entry_(std::move(entry)) {
  addr_ = entry_->base;
  length_ = entry_->length;
  lkey_ = entry_->rkey;
  rkey_ = entry_->rkey;
}

TcpMemoryRegion::~TcpMemoryRegion() { close(); }

void TcpMemoryRegion::close() {
  if (closed_) return;
  closed_ = true;
  fabric_->deregister(rkey_);
  std::lock_guard<std::mutex> g(entry_->m);
  entry_->valid = false;
}

TcpFabric::TcpFabric(const FabricOptions& opts) { opts_ = opts; }

TcpFabric::~TcpFabric() { close(); }

void TcpFabric::start() {
  if (opts_.port < 0) return;
  target_ = std::make_unique<Target>(this, opts_.host, opts_.port);
  listen_port_ = target_->port();
}

std::shared_ptr<MemoryRegion> TcpFabric::register_mr(void* addr, size_t length) {
  if (closed_) throw Error::closed("fabric");
  auto entry = std::make_shared<MrEntry>();
  entry->base = static_cast<uint8_t*>(addr);
  entry->length = length;
  {
    std::lock_guard<std::mutex> g(mu_);
    // Random keys, as a peer must not be able to guess another region's key.
    do entry->rkey = random_u32();
    while (entry->rkey == 0 || mrs_.count(entry->rkey));
    mrs_[entry->rkey] = entry;
  }
  auto mr = std::make_shared<TcpMemoryRegion>(shared_from_this(), entry);
  child_mrs_.push_back(mr);
  return mr;
}

std::shared_ptr<Endpoint> TcpFabric::create_endpoint() {
  if (closed_) throw Error::closed("fabric");
  auto ep = std::make_shared<TcpEndpoint>(shared_from_this());
  child_eps_.push_back(ep);
  // Drop expired weak children now and then so long-lived fabrics do not grow.
  if (child_eps_.size() > 64) {
    std::vector<std::weak_ptr<Endpoint>> live;
    for (auto& w : child_eps_)
      if (!w.expired()) live.push_back(w);
    child_eps_.swap(live);
  }
  return ep;
}

void TcpFabric::close() {
  if (closed_) return;
  for (auto& w : child_eps_)
    if (auto ep = w.lock()) ep->close();
  for (auto& w : child_mrs_)
    if (auto mr = w.lock()) mr->close();
  child_eps_.clear();
  child_mrs_.clear();
  target_.reset();  // stops and joins the progress thread, closes its sockets
  closed_ = true;
}

std::shared_ptr<MrEntry> TcpFabric::find_mr(uint32_t rkey) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = mrs_.find(rkey);
  return it == mrs_.end() ? nullptr : it->second;
}

bool TcpFabric::token_valid(const Token& t) {
  std::lock_guard<std::mutex> g(mu_);
  return tokens_.count(t) != 0;
}

void TcpFabric::deregister(uint32_t rkey) {
  std::lock_guard<std::mutex> g(mu_);
  mrs_.erase(rkey);
}

void TcpFabric::add_token(const Token& t) {
  std::lock_guard<std::mutex> g(mu_);
  tokens_.insert(t);
}

void TcpFabric::revoke_token(const Token& t) {
  {
    std::lock_guard<std::mutex> g(mu_);
    tokens_.erase(t);
  }
  if (target_) target_->revoke(t);
}

}  // namespace tcp
}  // namespace legoos
