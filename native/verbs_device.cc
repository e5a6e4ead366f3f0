#include "verbs_device.h"

#include <cerrno>
#include <cstring>

namespace legoos {

namespace verbs {

std::shared_ptr<Device> Device::open(const std::string& name) {
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  if (!list)
    throw Error("ENODEV", std::string("no RDMA support in this kernel (ibv_get_device_list: ") + std::strerror(errno ? errno : ENOSYS) +
                              "); use the tcp provider, or run inside the Soft-RoCE lab (legoos lab)", ENODEV);
  ibv_device* pick = nullptr;
  for (int i = 0; i < n && !pick; i++)
    if (name.empty() || name == ibv_get_device_name(list[i])) pick = list[i];
  if (!pick) {
    ibv_free_device_list(list);
    throw Error("ENODEV", name.empty() ? "no RDMA device (load rdma_rxe and `rdma link add rxe0 type rxe netdev eth0`, or use the tcp provider)"
                                      : "no RDMA device named '" + name + "'", ENODEV);
  }
  std::string picked = ibv_get_device_name(pick);
  ibv_context* ctx = ibv_open_device(pick);
  int err = errno;
  ibv_free_device_list(list);
  if (!ctx) throw Error::from_errno("ibv_open_device(" + picked + ")", err ? err : ENODEV);
  return std::shared_ptr<Device>(new Device(ctx, picked));
}

Device::~Device() { ibv_close_device(ctx_); }

ibv_port_attr Device::port_attr(int port) const {
  ibv_port_attr a{};
  if (ibv_query_port(ctx_, static_cast<uint8_t>(port), &a)) throw Error::from_errno("ibv_query_port", errno);
  return a;
}

ibv_device_attr Device::device_attr() const {
  ibv_device_attr a{};
  if (ibv_query_device(ctx_, &a)) throw Error::from_errno("ibv_query_device", errno);
  return a;
}

ibv_gid Device::gid(int port, int index) const {
  ibv_gid g{};
  if (ibv_query_gid(ctx_, static_cast<uint8_t>(port), index, &g)) throw Error::from_errno("ibv_query_gid", errno);
  return g;
}

std::string gid_to_hex(const ibv_gid& g) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (uint8_t b : g.raw) {
    s.push_back(kHex[b >> 4]);
    s.push_back(kHex[b & 15]);
  }
  return s;
}

bool gid_from_hex(const std::string& hex, ibv_gid* out) {
  if (hex.size() != 32) return false;
  for (int i = 0; i < 16; i++) {
    unsigned v;
    if (sscanf(hex.c_str() + 2 * i, "%2x", &v) != 1) return false;
    out->raw[i] = static_cast<uint8_t>(v);
  }
  return true;
}

int mtu_bytes(ibv_mtu m) {
  switch (m) {
    case IBV_MTU_256: return 256;
    case IBV_MTU_512: return 512;
    case IBV_MTU_1024: return 1024;
    case IBV_MTU_2048: return 2048;
    case IBV_MTU_4096: return 4096;
  }
  return 0;
}

ibv_mtu mtu_enum(uint32_t bytes) {
  if (bytes >= 4096) return IBV_MTU_4096;
  if (bytes >= 2048) return IBV_MTU_2048;
  if (bytes >= 1024) return IBV_MTU_1024;
  if (bytes >= 512) return IBV_MTU_512;
  return IBV_MTU_256;
}

}  // namespace verbs

static const char* port_state_name(ibv_port_state s) {
  switch (s) {
    case IBV_PORT_DOWN: return "DOWN";
    case IBV_PORT_INIT: return "INIT";
    case IBV_PORT_ARMED: return "ARMED";
    case IBV_PORT_ACTIVE: return "ACTIVE";
    case IBV_PORT_ACTIVE_DEFER: return "ACTIVE_DEFER";
    default: return "NOP";
  }
}

std::vector<DeviceInfo> verbs_list_devices() {
  std::vector<DeviceInfo> out;
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  if (!list) return out;  // no kernel support: simply no devices
  for (int i = 0; i < n; i++) {
    DeviceInfo d;
    d.name = ibv_get_device_name(list[i]);
    char guid[32];
    snprintf(guid, sizeof guid, "%016llx", static_cast<unsigned long long>(be64toh(ibv_get_device_guid(list[i]))));
    d.node_guid = guid;
    ibv_context* ctx = ibv_open_device(list[i]);
    if (ctx) {
      ibv_device_attr da{};
      if (ibv_query_device(ctx, &da) == 0) {
        for (int p = 1; p <= da.phys_port_cnt; p++) {
          ibv_port_attr pa{};
          if (ibv_query_port(ctx, static_cast<uint8_t>(p), &pa)) continue;
          PortInfo pi;
          pi.port = p;
          pi.state = pa.state;
          pi.state_name = port_state_name(pa.state);
          pi.active_mtu = verbs::mtu_bytes(pa.active_mtu);
          pi.lid = pa.lid;
          pi.link_layer = pa.link_layer == IBV_LINK_LAYER_ETHERNET ? 2 : pa.link_layer == IBV_LINK_LAYER_INFINIBAND ? 1 : 0;
          for (int g = 0; g < pa.gid_tbl_len && g < 256; g++) {
            ibv_gid gid{};
            if (ibv_query_gid(ctx, static_cast<uint8_t>(p), g, &gid)) continue;
            bool zero = true;
            for (uint8_t b : gid.raw) zero = zero && b == 0;
            if (!zero) pi.gids.push_back({g, verbs::gid_to_hex(gid)});
          }
          d.ports.push_back(pi);
        }
      }
      ibv_close_device(ctx);
    }
    out.push_back(d);
  }
  ibv_free_device_list(list);
  return out;
}

}  // namespace legoos
