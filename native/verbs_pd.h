// verbs: protection domain. Holds its device.
#pragma once
#include "verbs_device.h"

namespace legoos::verbs {

class Pd {
 public:
  explicit Pd(std::shared_ptr<Device> dev);
  ~Pd();
  Pd(const Pd&) = delete;
  Pd& operator=(const Pd&) = delete;
  ibv_pd* pd() const { return pd_; }
  const std::shared_ptr<Device>& device() const { return dev_; }

 private:
  std::shared_ptr<Device> dev_;
  ibv_pd* pd_;
};

}  // namespace legoos::verbs
