#include "errors.h"

#include <cerrno>
#include <cstring>

#ifdef LEGOOS_HAVE_VERBS
#include <infiniband/verbs.h>
#endif

namespace legoos {

namespace {
struct WcEntry {
  int status;
  const char* name;
  const char* text;
};
// Texts are those of rdma-core's ibv_wc_status_str(), so tcp messages read like verbs ones.
constexpr WcEntry kWc[] = {
    {0, "IBV_WC_SUCCESS", "success"},
    {1, "IBV_WC_LOC_LEN_ERR", "local length error"},
    {2, "IBV_WC_LOC_QP_OP_ERR", "local QP operation error"},
    {3, "IBV_WC_LOC_EEC_OP_ERR", "local EE context operation error"},
    {4, "IBV_WC_LOC_PROT_ERR", "local protection error"},
    {5, "IBV_WC_WR_FLUSH_ERR", "Work Request Flushed Error"},
    {6, "IBV_WC_MW_BIND_ERR", "memory management operation error"},
    {7, "IBV_WC_BAD_RESP_ERR", "bad response error"},
    {8, "IBV_WC_LOC_ACCESS_ERR", "local access error"},
    {9, "IBV_WC_REM_INV_REQ_ERR", "remote invalid request error"},
    {10, "IBV_WC_REM_ACCESS_ERR", "remote access error"},
    {11, "IBV_WC_REM_OP_ERR", "remote operation error"},
    {12, "IBV_WC_RETRY_EXC_ERR", "transport retry counter exceeded"},
    {13, "IBV_WC_RNR_RETRY_EXC_ERR", "RNR retry counter exceeded"},
    {14, "IBV_WC_LOC_RDD_VIOL_ERR", "local RDD violation error"},
    {15, "IBV_WC_REM_INV_RD_REQ_ERR", "remote invalid RD request"},
    {16, "IBV_WC_REM_ABORT_ERR", "aborted error"},
    {17, "IBV_WC_INV_EECN_ERR", "invalid EE context number"},
    {18, "IBV_WC_INV_EEC_STATE_ERR", "invalid EE context state"},
    {19, "IBV_WC_FATAL_ERR", "fatal error"},
    {20, "IBV_WC_RESP_TIMEOUT_ERR", "response timeout error"},
    {21, "IBV_WC_GENERAL_ERR", "general error"},
};
}  // namespace

const char* wc_status_name(int status) {
  for (const auto& e : kWc)
    if (e.status == status) return e.name;
  return "IBV_WC_GENERAL_ERR";
}

const char* wc_status_text(int status) {
#ifdef LEGOOS_HAVE_VERBS
  return ibv_wc_status_str(static_cast<enum ibv_wc_status>(status));
#else
  for (const auto& e : kWc)
    if (e.status == status) return e.text;
  return "unknown";
#endif
}

const char* errno_name(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENODEV: return "ENODEV";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case ENOSPC: return "ENOSPC";
    case EPIPE: return "EPIPE";
    case ERANGE: return "ERANGE";
    case ENOSYS: return "ENOSYS";
    case EPROTO: return "EPROTO";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case ENETUNREACH: return "ENETUNREACH";
    case ECONNABORTED: return "ECONNABORTED";
    case ECONNRESET: return "ECONNRESET";
    case ENOTCONN: return "ENOTCONN";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    default: return "EIO";
  }
}

Error Error::from_errno(const std::string& what, int err) {
  return Error(errno_name(err), what + ": " + std::strerror(err), err);
}

Error Error::from_wc(int status, uint32_t vendor_err, uint64_t wr_id, const std::string& context) {
  std::string msg = std::string(wc_status_text(status)) + " (" + wc_status_name(status) + ", wr_id " +
                    std::to_string(wr_id) + ", vendor_err " + std::to_string(vendor_err) + ")";
  if (!context.empty()) msg += ": " + context;
  return Error(wc_status_name(status), msg, 0, status, vendor_err, wr_id);
}

Error Error::closed(const std::string& what) { return Error("ECLOSED", what + " is closed"); }

Error Error::invalid(const std::string& message) { return Error("EINVAL", message, EINVAL); }

}  // namespace legoos
