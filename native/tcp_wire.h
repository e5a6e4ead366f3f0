// Frames of the tcp provider's data connections. Both ends are the same build on the same
// architecture family (little-endian x86-64/arm64); fields are sent in host order.
//
//   initiator -> target  Hello {magic 'LGOF', version, token[16]}      once per connection
//   target -> initiator  HelloReply {magic, status}                   0 = accepted, else errno
//   initiator -> target  Request header (48 B) [+ payload for WRITE]  pipelined, any number
//   target -> initiator  Response header (16 B) [+ payload for READ, 8 B for atomics]  in order
//
// A request the target cannot honour because of its rkey/bounds gets a response with
// status IBV_WC_REM_ACCESS_ERR (the connection stays up; WRITE payload is drained and dropped).
// Anything malformed (bad magic/op/length, wrong token) closes that connection only.
#pragma once
#include <cstddef>
#include <cstdint>

namespace legoos::tcp {

constexpr uint32_t kHelloMagic = 0x464f474c;  // "LGOF"
constexpr uint32_t kVersion = 1;
constexpr uint16_t kReqMagic = 0x4c52;   // "RL"
constexpr uint16_t kRespMagic = 0x4c50;  // "PL"
constexpr size_t kTokenBytes = 16;
// Largest single READ/WRITE; a bigger length is a malformed frame. 1 GiB, like an MR limit.
constexpr uint32_t kMaxOpLength = 1u << 30;

#pragma pack(push, 1)
struct Hello {
  uint32_t magic;
  uint32_t version;
  uint8_t token[kTokenBytes];
};
struct HelloReply {
  uint32_t magic;
  uint32_t status;
};
struct ReqHeader {
  uint16_t magic;
  uint8_t op;
  uint8_t reserved0;
  uint32_t rkey;
  uint64_t wr_id;
  uint64_t addr;
  uint32_t length;
  uint32_t reserved1;
  uint64_t compare_add;
  uint64_t swap;
};
struct RespHeader {
  uint16_t magic;
  uint8_t op;
  uint8_t status;
  uint32_t length;
  uint64_t wr_id;
};
#pragma pack(pop)
static_assert(sizeof(Hello) == 24);
static_assert(sizeof(ReqHeader) == 48);
static_assert(sizeof(RespHeader) == 16);

// token hex (32 chars) <-> raw 16 bytes; false on bad input.
bool token_from_hex(const char* hex, size_t len, uint8_t out[kTokenBytes]);

}  // namespace legoos::tcp
