// verbs: an opened RDMA device (ibv_context). Parent of pd, cq (and so of mr, qp).
#pragma once
#include <infiniband/verbs.h>

#include <memory>
#include <string>

#include "provider.h"

namespace legoos::verbs {

class Device {
 public:
  static std::shared_ptr<Device> open(const std::string& name);  // "" = the first device
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  ibv_context* ctx() const { return ctx_; }
  const std::string& name() const { return name_; }
  ibv_port_attr port_attr(int port) const;
  ibv_device_attr device_attr() const;
  ibv_gid gid(int port, int index) const;

 private:
  Device(ibv_context* ctx, std::string name) : ctx_(ctx), name_(std::move(name)) {}
  ibv_context* ctx_;
  std::string name_;
};

std::string gid_to_hex(const ibv_gid& g);
bool gid_from_hex(const std::string& hex, ibv_gid* out);
int mtu_bytes(ibv_mtu m);
ibv_mtu mtu_enum(uint32_t bytes);

}  // namespace legoos::verbs
