#include "verbs_cq.h"

#include <fcntl.h>

#include <cerrno>

namespace legoos::verbs {

Cq::Cq(std::shared_ptr<Device> dev, int depth) : dev_(std::move(dev)) {
  channel_ = ibv_create_comp_channel(dev_->ctx());
  if (!channel_) throw Error::from_errno("ibv_create_comp_channel", errno ? errno : ENOMEM);
  int fl = fcntl(channel_->fd, F_GETFL);
  fcntl(channel_->fd, F_SETFL, fl | O_NONBLOCK);
  cq_ = ibv_create_cq(dev_->ctx(), depth, nullptr, channel_, 0);
  if (!cq_) {
    int e = errno;
    ibv_destroy_comp_channel(channel_);
    throw Error::from_errno("ibv_create_cq", e ? e : ENOMEM);
  }
  if (ibv_req_notify_cq(cq_, 0)) {
    int e = errno;
    ibv_destroy_cq(cq_);
    ibv_destroy_comp_channel(channel_);
    throw Error::from_errno("ibv_req_notify_cq", e);
  }
}

Cq::~Cq() {
  ibv_destroy_cq(cq_);  // every event was acked in arm(), so this cannot block
  ibv_destroy_comp_channel(channel_);
}

void Cq::arm() {
  ibv_cq* ev_cq;
  void* ev_ctx;
  unsigned n = 0;
  while (ibv_get_cq_event(channel_, &ev_cq, &ev_ctx) == 0) n++;
  if (n) ibv_ack_cq_events(cq_, n);
  ibv_req_notify_cq(cq_, 0);
}

}  // namespace legoos::verbs
