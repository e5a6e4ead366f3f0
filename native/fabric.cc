#include <sys/random.h>

#include <cerrno>

#include "provider.h"

namespace legoos {

std::shared_ptr<Fabric> open_fabric(const FabricOptions& opts) {
  if (opts.provider == "tcp") return open_tcp_fabric(opts);
  if (opts.provider == "verbs") {
#ifdef LEGOOS_HAVE_VERBS
    return open_verbs_fabric(opts);
#else
    throw Error("ENOSYS",
                "the verbs provider is not compiled into this addon (no libibverbs-dev at build time); "
                "install it (apt-get install libibverbs-dev rdma-core) and run `npm run build:native`",
                ENOSYS);
#endif
  }
  throw Error::invalid("unknown provider '" + opts.provider + "'");
}

std::vector<std::string> providers() {
#ifdef LEGOOS_HAVE_VERBS
  return {"tcp", "verbs"};
#else
  return {"tcp"};
#endif
}

std::vector<DeviceInfo> list_devices() {
#ifdef LEGOOS_HAVE_VERBS
  return verbs_list_devices();
#else
  return {};
#endif
}

static void random_bytes(void* buf, size_t n) {
  auto* p = static_cast<uint8_t*>(buf);
  while (n > 0) {
    ssize_t r = getrandom(p, n, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw Error::from_errno("getrandom", errno);
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
}

uint32_t random_u32() {
  uint32_t v;
  random_bytes(&v, sizeof v);
  return v;
}

std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  random_bytes(raw.data(), bytes);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes * 2);
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

}  // namespace legoos
