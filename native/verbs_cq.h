// verbs: completion queue with its completion channel. The channel fd is non-blocking so the
// loop thread can watch it with uv_poll; arm() acks pending events and re-requests notification.
#pragma once
#include "verbs_device.h"

namespace legoos::verbs {

class Cq {
 public:
  Cq(std::shared_ptr<Device> dev, int depth);
  ~Cq();
  Cq(const Cq&) = delete;
  Cq& operator=(const Cq&) = delete;
  ibv_cq* cq() const { return cq_; }
  int fd() const { return channel_->fd; }
  int poll(ibv_wc* wc, int n) { return ibv_poll_cq(cq_, n, wc); }
  void arm();

 private:
  std::shared_ptr<Device> dev_;
  ibv_comp_channel* channel_;
  ibv_cq* cq_;
};

}  // namespace legoos::verbs
