#include "verbs_pd.h"

#include <cerrno>

namespace legoos::verbs {

Pd::Pd(std::shared_ptr<Device> dev) : dev_(std::move(dev)) {
  pd_ = ibv_alloc_pd(dev_->ctx());
  if (!pd_) throw Error::from_errno("ibv_alloc_pd", errno ? errno : ENOMEM);
}

Pd::~Pd() { ibv_dealloc_pd(pd_); }

}  // namespace legoos::verbs
