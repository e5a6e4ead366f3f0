// The per-fault system calls of the ExCache pager (lib/excache/pager): userfaultfd, memfd,
// epoll and the fd hand-over from a sandboxed process. Plain C++ over Linux syscalls, no napi.h;
// every function throws legoos::Error (code = errno name) or returns a benign negative errno.
//
// The pager's protocol (see native/shim/legoos_shim.c for the process side):
//   monitor: memfd_create + ftruncate, open /dev/userfaultfd, socketpair(SEQPACKET)
//   process: mmap the memfd MAP_SHARED at a fixed base, USERFAULTFD_IOC_NEW, send 'U'+fd
//   monitor: UFFDIO_API (so it can ask for features an unprivileged process may not), reply 'A'
//   process: UFFDIO_REGISTER MODE_MISSING|MODE_WP over the region, send 'R'
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

namespace legoos {
namespace pager {

// A fault as read from a userfaultfd, with the epoll token of the fd it came from.
struct Fault {
  uint64_t token;
  uint64_t address;
  uint64_t flags;  // UFFD_PAGEFAULT_FLAG_WRITE (1) | UFFD_PAGEFAULT_FLAG_WP (2)
};

int open_uffd_device();                              // /dev/userfaultfd, O_RDWR|O_CLOEXEC
int new_uffd(int devfd);                           // USERFAULTFD_IOC_NEW (the monitor's own probe)
int memfd(const std::string& name, uint64_t size);   // MFD_CLOEXEC, ftruncated
std::pair<int, int> seqpacket_pair();                // both ends CLOEXEC
std::pair<int, int> stream_pair();                   // SOCK_STREAM, both ends CLOEXEC
// The process side of the hand-over (what native/shim does for native programs, here for a JS
// program's runtime): map the memfd at base, make a uffd, hand it to the monitor, register.
void attach_region(int memfd, uint64_t base, uint64_t size, int devfd, int ctl);
// One request/reply on a stream socket: u32 length + bytes each way; blocks (poll, bounded).
std::string call_sync(int fd, const std::string& request, int timeout_ms);
// Waits (poll, bounded) for one message; returns its payload and the SCM_RIGHTS fd (-1 if none).
// Throws ETIMEDOUT, or ECONNRESET when the peer closed.
std::pair<std::string, int> recv_msg(int sock, int timeout_ms);
void send_msg(int sock, const std::string& payload);
// UFFDIO_API with the wanted features; returns the features the kernel granted.
uint64_t uffd_api(int uffd, uint64_t features);

int epoll_new();
void epoll_add(int epfd, int fd, uint64_t token);  // EPOLLIN|EPOLLEXCLUSIVE
void epoll_del(int epfd, int fd);
// Waits up to timeout_ms for a readable uffd and reads up to `max` faults from it (non-pagefault
// events are skipped). Returns the number written to out[].
size_t wait_faults(int epfd, int timeout_ms, int spin_us, Fault* out, size_t max);

// The fill and eviction primitives. Each returns 0, or -errno for outcomes the pager handles:
// -EEXIST (already filled by another thread), -ESRCH/-ENOENT (the process is gone).
int copy(int uffd, uint64_t dst, const void* src, uint64_t len, bool write_protect);
int zeropage(int uffd, uint64_t dst, uint64_t len);
int write_protect(int uffd, uint64_t addr, uint64_t len, bool protect, bool wake);
int wake(int uffd, uint64_t addr, uint64_t len);
void punch_hole(int fd, uint64_t offset, uint64_t len);
// pread() of resident region pages (a hole reads as zeros without allocating).
void read_region(int fd, uint64_t offset, void* dst, uint64_t len);

}  // namespace pager
}  // namespace legoos
