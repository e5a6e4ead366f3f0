// verbs: a registered memory region (remote read/write/atomic allowed). Holds its pd.
#pragma once
#include "verbs_pd.h"

namespace legoos::verbs {

class Mr : public MemoryRegion {
 public:
  Mr(std::shared_ptr<Pd> pd, void* addr, size_t length);
  ~Mr() override;
  void close() override;

 private:
  std::shared_ptr<Pd> pd_;
  ibv_mr* mr_;
};

}  // namespace legoos::verbs
