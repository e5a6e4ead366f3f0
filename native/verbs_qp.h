// verbs: an RC queue pair and its state machine (RESET -> INIT -> RTR -> RTS). Holds pd and cq.
#pragma once
#include "verbs_cq.h"
#include "verbs_pd.h"

namespace legoos::verbs {

struct QpPath {
  int port;
  int gid_index;  // < 0: no GRH (InfiniBand with LIDs)
  ibv_mtu mtu;
  uint32_t local_psn;
  int max_rd_atomic;
};

class Qp {
 public:
  Qp(std::shared_ptr<Pd> pd, std::shared_ptr<Cq> cq, int max_send_wr);
  ~Qp();
  Qp(const Qp&) = delete;
  Qp& operator=(const Qp&) = delete;
  ibv_qp* qp() const { return qp_; }
  uint32_t qpn() const { return qp_->qp_num; }
  int max_send_wr() const { return max_send_wr_; }
  void to_init(int port);
  void to_rtr(const QpPath& path, uint32_t remote_qpn, uint32_t remote_psn, uint16_t remote_lid, const ibv_gid& remote_gid);
  void to_rts(const QpPath& path);
  void to_error();
  // Posts one signaled work request; returns errno (0 = posted).
  int post(const WorkRequest& wr, uint32_t lkey);

 private:
  std::shared_ptr<Pd> pd_;
  std::shared_ptr<Cq> cq_;
  ibv_qp* qp_;
  int max_send_wr_;
};

}  // namespace legoos::verbs
