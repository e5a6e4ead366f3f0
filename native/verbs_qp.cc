#include "verbs_qp.h"

#include <cerrno>

namespace legoos::verbs {

Qp::Qp(std::shared_ptr<Pd> pd, std::shared_ptr<Cq> cq, int max_send_wr)
    : pd_(std::move(pd)), cq_(std::move(cq)), max_send_wr_(max_send_wr) {
  ibv_qp_init_attr a{};
  a.send_cq = cq_->cq();
  a.recv_cq = cq_->cq();
  a.qp_type = IBV_QPT_RC;
  a.sq_sig_all = 0;
  a.cap.max_send_wr = static_cast<uint32_t>(max_send_wr);
  a.cap.max_recv_wr = 1;
  a.cap.max_send_sge = 1;
  a.cap.max_recv_sge = 1;
  qp_ = ibv_create_qp(pd_->pd(), &a);
  if (!qp_) throw Error::from_errno("ibv_create_qp", errno ? errno : ENOMEM);
}

Qp::~Qp() { ibv_destroy_qp(qp_); }

void Qp::to_init(int port) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.pkey_index = 0;
  a.port_num = static_cast<uint8_t>(port);
  a.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC;
  if (int e = ibv_modify_qp(qp_, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
    throw Error::from_errno("ibv_modify_qp(INIT)", e);
}

void Qp::to_rtr(const QpPath& path, uint32_t remote_qpn, uint32_t remote_psn, uint16_t remote_lid, const ibv_gid& remote_gid) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = path.mtu;
  a.dest_qp_num = remote_qpn;
  a.rq_psn = remote_psn;
  a.max_dest_rd_atomic = static_cast<uint8_t>(path.max_rd_atomic);
  a.min_rnr_timer = 12;
  a.ah_attr.dlid = remote_lid;
  a.ah_attr.sl = 0;
  a.ah_attr.src_path_bits = 0;
  a.ah_attr.port_num = static_cast<uint8_t>(path.port);
  if (path.gid_index >= 0) {
    // RoCE (and routed IB) needs the GRH; on RoCE v2 the sgid index selects the UDP/IP GID.
    a.ah_attr.is_global = 1;
    a.ah_attr.grh.dgid = remote_gid;
    a.ah_attr.grh.sgid_index = static_cast<uint8_t>(path.gid_index);
    a.ah_attr.grh.hop_limit = 64;
    a.ah_attr.grh.flow_label = 0;
    a.ah_attr.grh.traffic_class = 0;
  }
  if (int e = ibv_modify_qp(qp_, &a,
                            IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                                IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
    throw Error::from_errno("ibv_modify_qp(RTR)", e);
}

void Qp::to_rts(const QpPath& path) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_RTS;
  a.timeout = 14;  // 4.096 us * 2^14 = 67 ms per try
  a.retry_cnt = 7;
  a.rnr_retry = 7;
  a.sq_psn = path.local_psn;
  a.max_rd_atomic = static_cast<uint8_t>(path.max_rd_atomic);
  if (int e = ibv_modify_qp(qp_, &a,
                            IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
                                IBV_QP_MAX_QP_RD_ATOMIC))
    throw Error::from_errno("ibv_modify_qp(RTS)", e);
}

void Qp::to_error() {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_ERR;
  ibv_modify_qp(qp_, &a, IBV_QP_STATE);
}

int Qp::post(const WorkRequest& wr, uint32_t lkey) {
  ibv_sge sge{};
  sge.addr = reinterpret_cast<uintptr_t>(wr.mr->addr() + wr.local_offset);
  sge.length = wr.length;
  sge.lkey = lkey;
  ibv_send_wr w{};
  ibv_send_wr* bad = nullptr;
  w.wr_id = wr.wr_id;
  w.sg_list = &sge;
  w.num_sge = wr.length ? 1 : 0;
  w.send_flags = IBV_SEND_SIGNALED;
  switch (wr.op) {
    case Opcode::kRead:
    case Opcode::kWrite:
      w.opcode = wr.op == Opcode::kRead ? IBV_WR_RDMA_READ : IBV_WR_RDMA_WRITE;
      w.wr.rdma.remote_addr = wr.remote_addr;
      w.wr.rdma.rkey = wr.rkey;
      break;
    case Opcode::kCompSwap:
    case Opcode::kFetchAdd:
      w.opcode = wr.op == Opcode::kCompSwap ? IBV_WR_ATOMIC_CMP_AND_SWP : IBV_WR_ATOMIC_FETCH_AND_ADD;
      w.wr.atomic.remote_addr = wr.remote_addr;
      w.wr.atomic.rkey = wr.rkey;
      w.wr.atomic.compare_add = wr.compare_add;
      w.wr.atomic.swap = wr.swap;
      break;
  }
  return ibv_post_send(qp_, &w, &bad);
}

}  // namespace legoos::verbs
