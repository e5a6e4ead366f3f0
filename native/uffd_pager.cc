#include "uffd_pager.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "errors.h"

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

namespace legoos {
namespace pager {

namespace {
Error sys_error(const std::string& what, int err) { return Error::from_errno(what, err); }

uint64_t now_us() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}
}  // namespace

int open_uffd_device() {
  int fd = ::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    std::string fix = e == ENOENT ? " (the kernel has no /dev/userfaultfd: Linux >= 6.1 with CONFIG_USERFAULTFD is needed)"
                      : e == EACCES || e == EPERM ? " (the processor monitor must run as root, or be given access to /dev/userfaultfd)"
                                                  : "";
    throw sys_error("open /dev/userfaultfd" + fix, e);
  }
  return fd;
}

int new_uffd(int devfd) {
  int fd = ::ioctl(devfd, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw sys_error("USERFAULTFD_IOC_NEW", errno);
  return fd;
}

int memfd(const std::string& name, uint64_t size) {
  int fd = static_cast<int>(::syscall(SYS_memfd_create, name.c_str(), MFD_CLOEXEC));
  if (fd < 0) throw sys_error("memfd_create", errno);
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int e = errno;
    ::close(fd);
    throw sys_error("ftruncate memfd", e);
  }
  return fd;
}

std::pair<int, int> seqpacket_pair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) throw sys_error("socketpair", errno);
  return {sv[0], sv[1]};
}

std::pair<std::string, int> recv_msg(int sock, int timeout_ms) {
  pollfd p{sock, POLLIN, 0};
  int r;
  do r = ::poll(&p, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  if (r < 0) throw sys_error("poll control socket", errno);
  if (r == 0) throw Error("ETIMEDOUT", "no message from the process on its control socket within " + std::to_string(timeout_ms) + " ms", ETIMEDOUT);
  char buf[512];
  iovec iov{buf, sizeof buf};
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))];
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = cbuf;
  m.msg_controllen = sizeof cbuf;
  ssize_t n;
  do n = ::recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) throw sys_error("recvmsg control socket", errno);
  if (n == 0) throw Error("ECONNRESET", "the process closed its control socket", ECONNRESET);
  int fd = -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
    }
  }
  if (m.msg_flags & MSG_CTRUNC) {
    if (fd >= 0) ::close(fd);
    throw Error("EPROTO", "the process sent more than one fd on its control socket", EPROTO);
  }
  return {std::string(buf, static_cast<size_t>(n)), fd};
}

std::pair<int, int> stream_pair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw sys_error("socketpair", errno);
  return {sv[0], sv[1]};
}

namespace {
void send_fd(int sock, char tag, int fd) {
  char c = tag;
  iovec iov{&c, 1};
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))] = {};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  if (fd >= 0) {
    m.msg_control = cbuf;
    m.msg_controllen = sizeof cbuf;
    cmsghdr* h = CMSG_FIRSTHDR(&m);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(h), &fd, sizeof(int));
  }
  ssize_t n;
  do n = ::sendmsg(sock, &m, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n != 1) throw sys_error("send to the monitor", n < 0 ? errno : EIO);
}

void io_all(int fd, char* p, size_t n, bool writing, int timeout_ms) {
  while (n > 0) {
    pollfd pf{fd, static_cast<short>(writing ? POLLOUT : POLLIN), 0};
    int r = ::poll(&pf, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw sys_error("poll", errno);
    if (r == 0) throw Error("ETIMEDOUT", "no answer from the processor monitor", ETIMEDOUT);
    ssize_t k = writing ? ::send(fd, p, n, MSG_NOSIGNAL) : ::recv(fd, p, n, 0);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (k < 0) throw sys_error(writing ? "send" : "recv", errno);
    if (k == 0) throw Error("ECONNRESET", "the processor monitor closed the channel", ECONNRESET);
    p += k;
    n -= static_cast<size_t>(k);
  }
}
}  // namespace

void attach_region(int memfd, uint64_t base, uint64_t size, int devfd, int ctl) {
  void* want = reinterpret_cast<void*>(base);
  void* p = ::mmap(want, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE, memfd, 0);
  if (p == MAP_FAILED) throw sys_error("mmap region", errno);
  if (p != want) {
    ::munmap(p, size);
    throw Error("EEXIST", "the kernel placed the region elsewhere", EEXIST);
  }
  ::madvise(want, size, MADV_DONTFORK);
  int uffd = new_uffd(devfd);
  send_fd(ctl, 'U', uffd);
  auto reply = recv_msg(ctl, 30000);
  if (reply.second >= 0) ::close(reply.second);
  if (reply.first != "A") {
    ::close(uffd);
    throw Error("EPROTO", "the monitor refused the userfaultfd: " + reply.first, EPROTO);
  }
  uffdio_register reg{};
  reg.range.start = base;
  reg.range.len = size;
  reg.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP;
  if (::ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) {
    int e = errno;
    ::close(uffd);
    throw sys_error("UFFDIO_REGISTER", e);
  }
  send_fd(ctl, 'R', -1);
  ::close(uffd);
}

std::string call_sync(int fd, const std::string& request, int timeout_ms) {
  uint32_t len = static_cast<uint32_t>(request.size());
  io_all(fd, reinterpret_cast<char*>(&len), 4, true, timeout_ms);
  io_all(fd, const_cast<char*>(request.data()), request.size(), true, timeout_ms);
  io_all(fd, reinterpret_cast<char*>(&len), 4, false, timeout_ms);
  if (len > (16u << 20)) throw Error("EPROTO", "reply too large", EPROTO);
  std::string out(len, '\0');
  io_all(fd, out.data(), len, false, timeout_ms);
  return out;
}

void send_msg(int sock, const std::string& payload) {
  ssize_t n;
  do n = ::send(sock, payload.data(), payload.size(), MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) throw sys_error("send on control socket", errno);
}

uint64_t uffd_api(int uffd, uint64_t features) {
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = features;
  if (::ioctl(uffd, UFFDIO_API, &api) != 0) throw sys_error("UFFDIO_API", errno);
  return api.features;
}

int epoll_new() {
  int fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) throw sys_error("epoll_create1", errno);
  return fd;
}

void epoll_add(int epfd, int fd, uint64_t token) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLEXCLUSIVE;
  ev.data.u64 = token;
  if (::epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) throw sys_error("epoll_ctl ADD", errno);
}

void epoll_del(int epfd, int fd) {
  epoll_event ev{};
  if (::epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &ev) != 0 && errno != ENOENT && errno != EBADF) throw sys_error("epoll_ctl DEL", errno);
}

size_t wait_faults(int epfd, int timeout_ms, int spin_us, Fault* out, size_t max) {
  epoll_event ev[4];
  int n = 0;
  // Busy-poll first: a blocking wait costs a wake-up (~5 us here) on every fault.
  if (spin_us > 0) {
    uint64_t until = now_us() + static_cast<uint64_t>(spin_us);
    do n = ::epoll_wait(epfd, ev, 4, 0);
    while (n == 0 && now_us() < until);
  }
  if (n == 0) {
    do n = ::epoll_wait(epfd, ev, 4, timeout_ms);
    while (n < 0 && errno == EINTR);
  }
  if (n < 0) throw sys_error("epoll_wait", errno);
  size_t got = 0;
  uffd_msg msgs[16];
  for (int i = 0; i < n && got < max; i++) {
    int fd = static_cast<int>(ev[i].data.u64 & 0xffffffffu);
    size_t want = max - got < 16 ? max - got : 16;
    ssize_t r = ::read(fd, msgs, want * sizeof(uffd_msg));
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;  // another worker took it
      throw sys_error("read userfaultfd", errno);
    }
    size_t k = static_cast<size_t>(r) / sizeof(uffd_msg);
    for (size_t j = 0; j < k; j++) {
      if (msgs[j].event != UFFD_EVENT_PAGEFAULT) continue;
      out[got].token = ev[i].data.u64;
      out[got].address = msgs[j].arg.pagefault.address;
      out[got].flags = msgs[j].arg.pagefault.flags;
      got++;
    }
  }
  return got;
}

namespace {
bool benign(int e) { return e == EEXIST || e == ESRCH || e == ENOENT; }
}  // namespace

int copy(int uffd, uint64_t dst, const void* src, uint64_t len, bool write_protect) {
  uint64_t done = 0;
  while (done < len) {
    uffdio_copy c{};
    c.dst = dst + done;
    c.src = reinterpret_cast<uint64_t>(src) + done;
    c.len = len - done;
    c.mode = write_protect ? UFFDIO_COPY_MODE_WP : 0;
    if (::ioctl(uffd, UFFDIO_COPY, &c) == 0) return 0;
    int e = errno;
    if (e == EAGAIN && c.copy > 0) {  // partial: the mm changed under us, go on from there
      done += static_cast<uint64_t>(c.copy);
      continue;
    }
    if (e == EAGAIN) continue;
    if (benign(e)) return -e;
    throw sys_error("UFFDIO_COPY", e);
  }
  return 0;
}

int zeropage(int uffd, uint64_t dst, uint64_t len) {
  for (;;) {
    uffdio_zeropage z{};
    z.range.start = dst;
    z.range.len = len;
    if (::ioctl(uffd, UFFDIO_ZEROPAGE, &z) == 0) return 0;
    int e = errno;
    if (e == EAGAIN) continue;
    if (benign(e)) return -e;
    throw sys_error("UFFDIO_ZEROPAGE", e);
  }
}

int write_protect(int uffd, uint64_t addr, uint64_t len, bool protect, bool wake) {
  uffdio_writeprotect w{};
  w.range.start = addr;
  w.range.len = len;
  // The kernel refuses WP together with DONTWAKE (protecting wakes nobody anyway).
  w.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : (wake ? 0 : UFFDIO_WRITEPROTECT_MODE_DONTWAKE);
  for (;;) {
    if (::ioctl(uffd, UFFDIO_WRITEPROTECT, &w) == 0) return 0;
    int e = errno;
    if (e == EAGAIN) continue;
    if (benign(e)) return -e;
    throw sys_error("UFFDIO_WRITEPROTECT", e);
  }
}

int wake(int uffd, uint64_t addr, uint64_t len) {
  uffdio_range r{addr, len};
  if (::ioctl(uffd, UFFDIO_WAKE, &r) == 0) return 0;
  int e = errno;
  if (benign(e)) return -e;
  throw sys_error("UFFDIO_WAKE", e);
}

void punch_hole(int fd, uint64_t offset, uint64_t len) {
  if (::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset), static_cast<off_t>(len)) != 0)
    throw sys_error("fallocate(PUNCH_HOLE)", errno);
}

void read_region(int fd, uint64_t offset, void* dst, uint64_t len) {
  uint64_t done = 0;
  while (done < len) {
    ssize_t r = ::pread(fd, static_cast<char*>(dst) + done, len - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw sys_error("pread region", errno);
    }
    if (r == 0) throw Error("EIO", "pread region: short read past the end of the memfd", EIO);
    done += static_cast<uint64_t>(r);
  }
}

}  // namespace pager
}  // namespace legoos
