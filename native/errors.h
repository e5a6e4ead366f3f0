// The one error type of the plain C++ layer. The bindings turn it into the JS FabricError
// handed in at init. Completion statuses use ibv_wc_status numbers on both providers.
#pragma once
#include <cstdint>
#include <exception>
#include <string>

namespace legoos {

// Same numbering as enum ibv_wc_status (verbs.h), so tcp and verbs report identical codes.
enum WcStatus : int {
  kWcSuccess = 0,
  kWcLocLenErr = 1,
  kWcLocQpOpErr = 2,
  kWcLocEecOpErr = 3,
  kWcLocProtErr = 4,
  kWcWrFlushErr = 5,
  kWcMwBindErr = 6,
  kWcBadRespErr = 7,
  kWcLocAccessErr = 8,
  kWcRemInvReqErr = 9,
  kWcRemAccessErr = 10,
  kWcRemOpErr = 11,
  kWcRetryExcErr = 12,
  kWcRnrRetryExcErr = 13,
  kWcGeneralErr = 21,
};

const char* wc_status_name(int status);  // "IBV_WC_REM_ACCESS_ERR"
const char* wc_status_text(int status);  // ibv_wc_status_str() text
const char* errno_name(int err);         // "ECONNREFUSED"

class Error : public std::exception {
 public:
  Error(std::string code, std::string message, int err_no = 0, int wc_status = -1,
        uint32_t vendor_err = 0, uint64_t wr_id = 0)
      : code(std::move(code)), message(std::move(message)), err_no(err_no),
        wc_status(wc_status), vendor_err(vendor_err), wr_id(wr_id) {}
  const char* what() const noexcept override { return message.c_str(); }

  static Error from_errno(const std::string& what, int err);
  static Error from_wc(int status, uint32_t vendor_err, uint64_t wr_id, const std::string& context = "");
  static Error closed(const std::string& what);
  static Error invalid(const std::string& message);

  std::string code;
  std::string message;
  int err_no;
  int wc_status;
  uint32_t vendor_err;
  uint64_t wr_id;
};

}  // namespace legoos
