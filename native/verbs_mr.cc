#include "verbs_mr.h"

#include <cerrno>

namespace legoos::verbs {

Mr::Mr(std::shared_ptr<Pd> pd, void* addr, size_t length) : pd_(std::move(pd)) {
  mr_ = ibv_reg_mr(pd_->pd(), addr, length,
                   IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC);
  if (!mr_) throw Error::from_errno("ibv_reg_mr", errno ? errno : ENOMEM);
  addr_ = static_cast<uint8_t*>(addr);
  length_ = length;
  lkey_ = mr_->lkey;
  rkey_ = mr_->rkey;
}

Mr::~Mr() { close(); }

void Mr::close() {
  if (closed_) return;
  closed_ = true;
  ibv_dereg_mr(mr_);
  mr_ = nullptr;
}

}  // namespace legoos::verbs
