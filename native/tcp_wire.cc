#include "tcp_wire.h"

namespace legoos::tcp {

static int hex_val(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool token_from_hex(const char* hex, size_t len, uint8_t out[kTokenBytes]) {
  if (len != kTokenBytes * 2) return false;
  for (size_t i = 0; i < kTokenBytes; i++) {
    int hi = hex_val(hex[2 * i]), lo = hex_val(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

}  // namespace legoos::tcp
