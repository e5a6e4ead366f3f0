// The C++ face shared by both providers (no napi.h here). A Fabric owns memory regions and
// endpoints; children hold a shared_ptr to their parent so destruction runs children first,
// and Fabric::close() closes its live children before itself (rc_pingpong's ladder).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "errors.h"

namespace legoos {

struct FabricOptions {
  std::string provider;       // "tcp" | "verbs"
  std::string host = "127.0.0.1";
  int port = -1;              // tcp: -1 = do not listen, 0 = ephemeral
  std::string device;         // verbs
  int ib_port = 1;
  int gid_index = -1;         // -1 = provider default
  int timeout_ms = 10000;     // an op with no reply by then fails the endpoint (RETRY_EXC)
};

struct EndpointInfo {
  std::string provider;
  // tcp
  std::string host;
  int port = 0;
  std::string token;  // 32 hex chars
  // verbs
  uint32_t lid = 0, qpn = 0, psn = 0, mtu = 0;
  std::string gid;  // 32 hex chars
};

enum class Opcode : uint8_t { kRead = 1, kWrite = 2, kCompSwap = 3, kFetchAdd = 4 };

struct Completion {
  uint64_t wr_id = 0;
  int status = kWcSuccess;
  uint32_t vendor_err = 0;
};

class MemoryRegion {
 public:
  virtual ~MemoryRegion() = default;
  uint8_t* addr() const { return addr_; }
  size_t length() const { return length_; }
  uint32_t lkey() const { return lkey_; }
  uint32_t rkey() const { return rkey_; }
  bool closed() const { return closed_; }
  virtual void close() = 0;

 protected:
  uint8_t* addr_ = nullptr;
  size_t length_ = 0;
  uint32_t lkey_ = 0, rkey_ = 0;
  bool closed_ = false;
};

// One work request. For atomics `local` receives the 8-byte original value.
struct WorkRequest {
  Opcode op;
  uint64_t wr_id;
  MemoryRegion* mr;
  size_t local_offset;
  uint64_t remote_addr;
  uint32_t rkey;
  uint32_t length;
  uint64_t compare_add = 0;
  uint64_t swap = 0;
};

class Endpoint {
 public:
  virtual ~Endpoint() = default;
  virtual EndpointInfo local_info() const = 0;
  // Blocking bring-up; callers on the loop thread run it off-thread.
  virtual void connect(const EndpointInfo& remote) = 0;
  virtual bool connected() const = 0;
  // Posts without blocking (tcp may queue bytes it could not send yet).
  virtual void post(const WorkRequest& wr) = 0;
  // Non-blocking progress: moves bytes / polls the CQ; returns completions found.
  virtual int progress(Completion* out, int max) = 0;
  // fd to watch (readable) for progress, and whether writable matters now (tcp send backlog).
  virtual int event_fd() const = 0;
  virtual bool wants_writable() const = 0;
  // Re-arm completion notification. Returns true when progress() must be called again
  // afterwards (verbs: the drain-after-arm rule); tcp: nothing to arm, returns false.
  virtual bool arm() = 0;
  // Blocks up to timeout_ms for the event fd (sync path, after spinning).
  virtual void wait(int timeout_ms) = 0;
  // Fails every outstanding request: those handed to the wire with `status`, the rest flushed.
  virtual int fail_all(int status, Completion* out, int max) = 0;
  virtual size_t outstanding() const = 0;
  // The connection/QP is broken: new requests are flushed, nothing more will arrive.
  virtual bool failed() const = 0;
  virtual void close() = 0;
  virtual bool closed() const = 0;
};

class Fabric {
 public:
  virtual ~Fabric() = default;
  virtual std::string provider() const = 0;
  virtual std::shared_ptr<MemoryRegion> register_mr(void* addr, size_t length) = 0;
  virtual std::shared_ptr<Endpoint> create_endpoint() = 0;
  virtual void close() = 0;
  virtual bool closed() const = 0;
  // tcp: the data port the target thread listens on (0 when not listening).
  virtual int listen_port() const { return 0; }
  const FabricOptions& options() const { return opts_; }

 protected:
  FabricOptions opts_;
};

struct GidEntry {
  int index;
  std::string gid;  // 32 hex chars
};
struct PortInfo {
  int port;
  int state;  // ibv_port_state
  std::string state_name;
  int active_mtu;  // bytes
  int lid;
  int link_layer;  // 1 IB, 2 Ethernet
  std::vector<GidEntry> gids;
};
struct DeviceInfo {
  std::string name;
  std::string node_guid;
  std::vector<PortInfo> ports;
};

std::shared_ptr<Fabric> open_fabric(const FabricOptions& opts);
std::vector<std::string> providers();
std::vector<DeviceInfo> list_devices();

std::shared_ptr<Fabric> open_tcp_fabric(const FabricOptions& opts);
#ifdef LEGOOS_HAVE_VERBS
std::shared_ptr<Fabric> open_verbs_fabric(const FabricOptions& opts);
std::vector<DeviceInfo> verbs_list_devices();
#endif

// Random 32-bit value from the kernel (rkeys, PSNs) and random hex tokens.
uint32_t random_u32();
std::string random_hex(size_t bytes);

}  // namespace legoos
