// verbs provider: Fabric = device + pd; Endpoint = cq (with channel) + RC qp. Completions are
// reaped from the CQ by progress(); the async path watches the channel fd with uv_poll and
// re-arms (then drains again), the sync path busy-polls ibv_poll_cq.
#include <chrono>
#include <deque>
#include <map>
#include <vector>

#include "verbs_cq.h"
#include "verbs_mr.h"
#include "verbs_qp.h"

namespace legoos {
namespace verbs {

class VerbsFabric;

class VerbsEndpoint : public Endpoint {
 public:
  explicit VerbsEndpoint(std::shared_ptr<VerbsFabric> fabric);
  ~VerbsEndpoint() override { close(); }
  EndpointInfo local_info() const override;
  void connect(const EndpointInfo& remote) override;
  bool connected() const override { return connected_; }
  void post(const WorkRequest& wr) override;
  int progress(Completion* out, int max) override;
  int event_fd() const override { return cq_ ? cq_->fd() : -1; }
  bool wants_writable() const override { return false; }
  bool arm() override {
    if (cq_) cq_->arm();
    return true;  // drain-after-arm: a completion may have landed before the re-arm
  }
  void wait(int) override {}  // the sync path busy-polls the CQ
  int fail_all(int status, Completion* out, int max) override;
  size_t outstanding() const override { return pending_.size() + backlog_.size(); }
  bool failed() const override { return failed_; }
  void close() override;
  bool closed() const override { return closed_; }

 private:
  using Clock = std::chrono::steady_clock;
  int post_now(const WorkRequest& wr);
  std::shared_ptr<VerbsFabric> fabric_;
  std::shared_ptr<Cq> cq_;
  std::unique_ptr<Qp> qp_;
  QpPath path_{};
  bool connected_ = false, failed_ = false, closed_ = false;
  int hw_inflight_ = 0;
  // Posted (to the QP) and not yet completed, oldest first (wr_ids only grow).
  std::map<uint64_t, Clock::time_point> pending_;
  // Waiting for a send-queue slot.
  std::deque<std::pair<WorkRequest, uint32_t>> backlog_;
};

class VerbsFabric : public Fabric, public std::enable_shared_from_this<VerbsFabric> {
 public:
  explicit VerbsFabric(const FabricOptions& opts);
  ~VerbsFabric() override { close(); }
  std::string provider() const override { return "verbs"; }
  std::shared_ptr<MemoryRegion> register_mr(void* addr, size_t length) override;
  std::shared_ptr<Endpoint> create_endpoint() override;
  void close() override;
  bool closed() const override { return closed_; }

  std::shared_ptr<Device> dev;
  std::shared_ptr<Pd> pd;
  int port = 1;
  int gid_index = -1;
  ibv_mtu active_mtu = IBV_MTU_1024;
  int max_wr = 256;
  int max_rd_atomic = 16;

 private:
  bool closed_ = false;
  std::vector<std::weak_ptr<MemoryRegion>> child_mrs_;
  std::vector<std::weak_ptr<Endpoint>> child_eps_;
};

static bool gid_zero(const ibv_gid& g) {
  for (uint8_t b : g.raw)
    if (b) return false;
  return true;
}

VerbsFabric::VerbsFabric(const FabricOptions& opts) {
  opts_ = opts;
  dev = Device::open(opts.device);
  port = opts.ib_port;
  ibv_port_attr pa = dev->port_attr(port);
  if (pa.state != IBV_PORT_ACTIVE)
    throw Error("ENETDOWN", "port " + std::to_string(port) + " of " + dev->name() + " is not ACTIVE", 100);
  active_mtu = pa.active_mtu;
  if (opts.gid_index >= 0) {
    gid_index = opts.gid_index;
  } else if (pa.link_layer == IBV_LINK_LAYER_ETHERNET) {
    // rxe: index 1 is the IPv4-mapped RoCE v2 GID once the netdev has an address.
    gid_index = pa.gid_tbl_len > 1 && !gid_zero(dev->gid(port, 1)) ? 1 : 0;
  }
  ibv_device_attr da = dev->device_attr();
  max_wr = da.max_qp_wr < 1024 ? da.max_qp_wr : 1024;
  max_rd_atomic = da.max_qp_rd_atom < 16 ? da.max_qp_rd_atom : 16;
  if (max_rd_atomic < 1) max_rd_atomic = 1;
  pd = std::make_shared<Pd>(dev);
}

std::shared_ptr<MemoryRegion> VerbsFabric::register_mr(void* addr, size_t length) {
  if (closed_) throw Error::closed("fabric");
  auto mr = std::make_shared<Mr>(pd, addr, length);
  child_mrs_.push_back(mr);
  return mr;
}

std::shared_ptr<Endpoint> VerbsFabric::create_endpoint() {
  if (closed_) throw Error::closed("fabric");
  auto ep = std::make_shared<VerbsEndpoint>(shared_from_this());
  child_eps_.push_back(ep);
  return ep;
}

void VerbsFabric::close() {
  if (closed_) return;
  closed_ = true;
  for (auto& w : child_eps_)
    if (auto ep = w.lock()) ep->close();
  for (auto& w : child_mrs_)
    if (auto mr = w.lock()) mr->close();
  child_eps_.clear();
  child_mrs_.clear();
  // pd/dev are released when the last child lets go of them.
}

VerbsEndpoint::VerbsEndpoint(std::shared_ptr<VerbsFabric> fabric) : fabric_(std::move(fabric)) {
  cq_ = std::make_shared<Cq>(fabric_->dev, fabric_->max_wr * 2 + 16);
  qp_ = std::make_unique<Qp>(fabric_->pd, cq_, fabric_->max_wr);
  qp_->to_init(fabric_->port);
  path_.port = fabric_->port;
  path_.gid_index = fabric_->gid_index;
  path_.mtu = fabric_->active_mtu;
  path_.local_psn = random_u32() & 0xffffff;
  path_.max_rd_atomic = fabric_->max_rd_atomic;
}

EndpointInfo VerbsEndpoint::local_info() const {
  EndpointInfo i;
  i.provider = "verbs";
  ibv_port_attr pa = fabric_->dev->port_attr(fabric_->port);
  i.lid = pa.lid;
  i.qpn = qp_ ? qp_->qpn() : 0;
  i.psn = path_.local_psn;
  ibv_gid g{};
  if (fabric_->gid_index >= 0) g = fabric_->dev->gid(fabric_->port, fabric_->gid_index);
  i.gid = gid_to_hex(g);
  i.mtu = static_cast<uint32_t>(mtu_bytes(pa.active_mtu));
  return i;
}

void VerbsEndpoint::connect(const EndpointInfo& remote) {
  if (closed_) throw Error::closed("endpoint");
  if (connected_) throw Error("EISCONN", "endpoint is already connected", EISCONN);
  if (remote.provider != "verbs") throw Error::invalid("remote endpoint info is not a verbs endpoint");
  ibv_gid rgid{};
  if (!gid_from_hex(remote.gid, &rgid)) throw Error::invalid("remote gid must be 32 hex characters");
  QpPath p = path_;
  // Path MTU: the smaller of the two ports' active MTUs.
  if (remote.mtu && static_cast<uint32_t>(mtu_bytes(p.mtu)) > remote.mtu) p.mtu = mtu_enum(remote.mtu);
  qp_->to_rtr(p, remote.qpn, remote.psn & 0xffffff, static_cast<uint16_t>(remote.lid), rgid);
  qp_->to_rts(p);
  path_ = p;
  connected_ = true;
}

int VerbsEndpoint::post_now(const WorkRequest& wr) {
  int e = qp_->post(wr, wr.mr->lkey());
  if (e == 0) hw_inflight_++;
  return e;
}

void VerbsEndpoint::post(const WorkRequest& wr) {
  if (closed_) throw Error::closed("endpoint");
  if (!connected_) throw Error("ENOTCONN", "endpoint is not connected", ENOTCONN);
  if (failed_) throw Error::from_wc(kWcWrFlushErr, 0, wr.wr_id, "the queue pair is in the error state");
  auto deadline = Clock::now() + std::chrono::milliseconds(fabric_->options().timeout_ms);
  if (hw_inflight_ < qp_->max_send_wr() && backlog_.empty()) {
    int e = post_now(wr);
    if (e) throw Error::from_errno("ibv_post_send", e);
  } else {
    backlog_.emplace_back(wr, 0);
  }
  pending_.emplace(wr.wr_id, deadline);
}

int VerbsEndpoint::fail_all(int status, Completion* out, int max) {
  int n = 0;
  while (!pending_.empty() && n < max) {
    uint64_t id = pending_.begin()->first;
    bool queued = false;
    for (auto& b : backlog_) queued = queued || b.first.wr_id == id;
    out[n++] = Completion{id, queued ? kWcWrFlushErr : status, 0};
    pending_.erase(pending_.begin());
  }
  if (pending_.empty()) backlog_.clear();
  return n;
}

int VerbsEndpoint::progress(Completion* out, int max) {
  if (closed_ || !cq_) return 0;
  int n = 0;
  ibv_wc wc[32];
  while (n < max) {
    int want = max - n < 32 ? max - n : 32;
    int got = cq_->poll(wc, want);
    if (got <= 0) break;
    for (int i = 0; i < got; i++) {
      hw_inflight_--;
      auto it = pending_.find(wc[i].wr_id);
      if (it == pending_.end()) continue;  // already failed by timeout/close
      pending_.erase(it);
      if (wc[i].status != IBV_WC_SUCCESS) failed_ = true;
      out[n++] = Completion{wc[i].wr_id, static_cast<int>(wc[i].status), wc[i].vendor_err};
    }
  }
  // Refill the send queue from the backlog (or flush it once the QP has failed).
  while (!backlog_.empty() && n < max) {
    if (failed_) {
      uint64_t id = backlog_.front().first.wr_id;
      backlog_.pop_front();
      pending_.erase(id);
      out[n++] = Completion{id, kWcWrFlushErr, 0};
      continue;
    }
    if (hw_inflight_ >= qp_->max_send_wr()) break;
    int e = post_now(backlog_.front().first);
    if (e) {
      failed_ = true;
      continue;
    }
    backlog_.pop_front();
  }
  if (!pending_.empty() && n < max && pending_.begin()->second < Clock::now()) {
    // Bounded wait on top of the QP's own retry timeout.
    qp_->to_error();
    failed_ = true;
    n += fail_all(kWcRetryExcErr, out + n, max - n);
  }
  return n;
}

void VerbsEndpoint::close() {
  if (closed_) return;
  closed_ = true;
  pending_.clear();
  backlog_.clear();
  qp_.reset();  // qp before cq (rc_pingpong's order)
  cq_.reset();
}

}  // namespace verbs

std::shared_ptr<Fabric> open_verbs_fabric(const FabricOptions& opts) { return std::make_shared<verbs::VerbsFabric>(opts); }

}  // namespace legoos
