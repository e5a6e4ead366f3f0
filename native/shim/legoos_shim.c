// legoos native-process shim (LD_PRELOAD).
//
// Points malloc and friends at a mimalloc arena over the process's "region": a memfd owned by
// the processor monitor, mapped MAP_SHARED at a fixed base and registered with userfaultfd so
// the monitor serves the page faults (fills from remote memory, evicts).
//
// Protocol with the monitor (environment set by the monitor; all decimal except the base):
//   LEGOOS_REGION_FD    memfd, already ftruncated to the region size
//   LEGOOS_REGION_BASE  hex address, aligned to 1 GiB
//   LEGOOS_REGION_SIZE  bytes, a multiple of 32 MiB (mimalloc's arena block)
//   LEGOOS_UFFD_DEV_FD  an opened /dev/userfaultfd (access is checked at open, so
//                       USERFAULTFD_IOC_NEW works after the program dropped privileges)
//   LEGOOS_CTL_FD       AF_UNIX SOCK_SEQPACKET socket to the monitor
// 1. no LEGOOS_REGION_FD: "unmanaged" (e.g. an exec'd grandchild that still had LD_PRELOAD),
// everything goes to mimalloc with its default options; 2. mmap the region at base; 3. uffd =
// USERFAULTFD_IOC_NEW; 4. send 'U' + uffd (SCM_RIGHTS); 5. the monitor answers 'A' (it did
// UFFDIO_API) or 'E<message>'; 6. UFFDIO_REGISTER the region (MISSING|WP); 7. send 'R', close
// uffd, /dev/userfaultfd, ctl and the memfd; 8. unsetenv the LEGOOS_* variables and LD_PRELOAD
// so exec'd children run normally; 9. give the region to mimalloc as its only arena.
//
// Every failure in managed mode prints "legoos-shim: <step>: <error>" and _exit(127)s: the
// program must never run with an unpaged heap. Nothing here may call malloc before the state
// reaches 2 (the initialising thread would recurse into itself).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <mimalloc.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define EXPORT __attribute__((visibility("default")))

enum { ST_NONE = 0, ST_BUSY = 1, ST_DONE = 2 };
static _Atomic int g_state = ST_NONE;
static bool g_managed; // written before g_state becomes ST_DONE (release), read after (acquire)
static bool g_in_ctor; // for the debug line: did the constructor or an allocation start the init
static __thread int t_initialising __attribute__((tls_model("initial-exec")));

// ---- output without malloc -------------------------------------------------------------

static void put(const char* s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(2, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

static const char* err_text(int e) {
  // strerror() may load translations (malloc); strerrordesc_np returns a static English text.
  const char* d = strerrordesc_np(e);
  return d != NULL ? d : "unknown error";
}

__attribute__((noreturn)) static void fail(const char* step, const char* why) {
  put("legoos-shim: ");
  put(step);
  put(": ");
  put(why);
  put("\n");
  _exit(127);
}

__attribute__((noreturn)) static void fail_errno(const char* step, int e) { fail(step, err_text(e)); }

static char* fmt_u(char* end, uint64_t v, unsigned base) {
  *--end = '\0';
  do {
    *--end = "0123456789abcdef"[v % base];
    v /= base;
  } while (v != 0);
  return end;
}

// ---- environment parsing ---------------------------------------------------------------

static uint64_t env_u64(const char* name, int base) {
  const char* s = getenv(name);
  if (s == NULL) fail(name, "not set (the monitor sets all LEGOOS_* variables together)");
  char* end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, base);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-') fail(name, "not a valid number");
  return (uint64_t)v;
}

static int env_fd(const char* name) {
  uint64_t v = env_u64(name, 10);
  if (v > 0x7fffffff) fail(name, "not a valid file descriptor");
  int fd = (int)v;
  if (fcntl(fd, F_GETFD) < 0) fail_errno(name, errno);
  return fd;
}

// ---- the protocol with the monitor -----------------------------------------------------

static void send_byte(int ctl, char c, int fd_to_pass, const char* step) {
  struct iovec iov = {.iov_base = &c, .iov_len = 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } cmsg;
  struct msghdr m;
  memset(&m, 0, sizeof m);
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  if (fd_to_pass >= 0) {
    memset(&cmsg, 0, sizeof cmsg);
    m.msg_control = cmsg.buf;
    m.msg_controllen = sizeof cmsg.buf;
    struct cmsghdr* h = CMSG_FIRSTHDR(&m);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(h), &fd_to_pass, sizeof(int));
  }
  ssize_t n;
  do n = sendmsg(ctl, &m, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) fail_errno(step, errno);
  if (n != 1) fail(step, "short send");
}

static void await_api_ack(int ctl) {
  char buf[512];
  ssize_t n;
  do n = recv(ctl, buf, sizeof buf - 1, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) fail_errno("recv from monitor", errno);
  if (n == 0) fail("recv from monitor", "the monitor closed the control socket");
  buf[n] = '\0';
  if (n == 1 && buf[0] == 'A') return;
  if (buf[0] == 'E') fail("monitor", n > 1 ? buf + 1 : "error (no message)");
  fail("recv from monitor", "unexpected reply (wanted 'A' or 'E...')");
}

static void init_managed(void) {
  int memfd = env_fd("LEGOOS_REGION_FD");
  uint64_t base = env_u64("LEGOOS_REGION_BASE", 16);
  uint64_t size = env_u64("LEGOOS_REGION_SIZE", 10);
  int devfd = env_fd("LEGOOS_UFFD_DEV_FD");
  int ctl = env_fd("LEGOOS_CTL_FD");
  if (base == 0 || (base & ((1ull << 30) - 1)) != 0) fail("LEGOOS_REGION_BASE", "not a non-zero multiple of 1 GiB");
  if (size == 0 || (size & ((32ull << 20) - 1)) != 0) fail("LEGOOS_REGION_SIZE", "not a non-zero multiple of 32 MiB");
  if (base + size < base || base + size > (1ull << 47)) fail("LEGOOS_REGION_SIZE", "region does not fit the user address space");
  // mimalloc reads these at its own load, before we run, and would then allocate from OS memory
  // outside the region (an arena it reserved earlier is tried before ours).
  if (getenv("MIMALLOC_RESERVE_OS_MEMORY") != NULL || getenv("MIMALLOC_RESERVE_HUGE_OS_PAGES") != NULL ||
      getenv("MIMALLOC_RESERVE_HUGE_OS_PAGES_AT") != NULL) {
    fail("environment", "MIMALLOC_RESERVE_* would give mimalloc memory outside the region; unset it");
  }

  // 2. the region
  void* want = (void*)(uintptr_t)base;
  void* p = mmap(want, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE, memfd, 0);
  if (p == MAP_FAILED) fail_errno("mmap region", errno);
  if (p != want) {
    munmap(p, size); // a kernel older than 4.17 ignores MAP_FIXED_NOREPLACE
    fail("mmap region", "the kernel placed the region elsewhere (MAP_FIXED_NOREPLACE unsupported?)");
  }
  // Defence in depth: a fork that bypasses our fork() (glibc-internal __fork, a raw clone)
  // must not share this heap unpaged; without the mapping the child faults instead.
  if (madvise(want, size, MADV_DONTFORK) != 0) fail_errno("madvise(MADV_DONTFORK) region", errno);

  // 3. a userfaultfd of this process
  int uffd = ioctl(devfd, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
  if (uffd < 0) fail_errno("ioctl(USERFAULTFD_IOC_NEW)", errno);

  // 4./5. hand it to the monitor, which does UFFDIO_API
  send_byte(ctl, 'U', uffd, "send uffd to monitor");
  await_api_ack(ctl);

  // 6. register the region
  struct uffdio_register reg;
  memset(&reg, 0, sizeof reg);
  reg.range.start = base;
  reg.range.len = size;
  reg.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP;
  if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) fail_errno("ioctl(UFFDIO_REGISTER)", errno);

  // 7. registered; the monitor keeps its own copy of the uffd
  send_byte(ctl, 'R', -1, "send registered to monitor");
  close(uffd);
  close(devfd);
  close(ctl);
  close(memfd);

  // 8. exec'd children run normally and never map the same region (unsetenv does not allocate)
  unsetenv("LEGOOS_REGION_FD");
  unsetenv("LEGOOS_REGION_BASE");
  unsetenv("LEGOOS_REGION_SIZE");
  unsetenv("LEGOOS_UFFD_DEV_FD");
  unsetenv("LEGOOS_CTL_FD");
  bool debug = false;
  const char* dbg = getenv("LEGOOS_SHIM_DEBUG");
  if (dbg != NULL && strcmp(dbg, "1") == 0) debug = true;
  unsetenv("LEGOOS_SHIM_DEBUG");
  unsetenv("LD_PRELOAD");

  // 9. the region is mimalloc's only memory. No decommit/reset: madvise(DONTNEED) on the region
  // would drop pages behind the monitor's back and lose the uffd write-protection state.
  // is_large=1 crashes threaded programs.
  mi_option_set(mi_option_limit_os_alloc, 1);
  mi_option_set(mi_option_allow_decommit, 0);
  mi_option_set(mi_option_page_reset, 0);
  mi_option_set(mi_option_eager_commit_delay, 0);
  if (!mi_manage_os_memory(want, size, /*is_committed*/ true, /*is_large*/ false, /*is_zero*/ true, -1)) {
    fail("mi_manage_os_memory", "mimalloc refused the region");
  }

  if (debug) {
    char b1[24], b2[24], b3[24];
    put("legoos-shim: region base 0x");
    put(fmt_u(b1 + sizeof b1, base, 16));
    put(" size ");
    put(fmt_u(b2 + sizeof b2, size, 10));
    put(" pid ");
    put(fmt_u(b3 + sizeof b3, (uint64_t)getpid(), 10));
    put(g_in_ctor ? " (initialised by the constructor)\n" : " (initialised by an allocation before the constructor)\n");
  }
}

__attribute__((noinline, cold)) static void init_slow(void) {
  int expected = ST_NONE;
  if (atomic_compare_exchange_strong_explicit(&g_state, &expected, ST_BUSY, memory_order_acq_rel,
                                              memory_order_acquire)) {
    t_initialising = 1;
    bool managed = getenv("LEGOOS_REGION_FD") != NULL;
    if (managed) init_managed();
    g_managed = managed;
    t_initialising = 0;
    atomic_store_explicit(&g_state, ST_DONE, memory_order_release);
    return;
  }
  if (expected == ST_DONE) return;
  if (t_initialising) {
    put("legoos-shim: an allocation during the shim's own initialisation (recursion); aborting\n");
    abort();
  }
  while (atomic_load_explicit(&g_state, memory_order_acquire) != ST_DONE) sched_yield();
}

static inline void ensure_init(void) {
  // Acquire (a plain load on x86): another thread's initialisation must be visible.
  if (__builtin_expect(atomic_load_explicit(&g_state, memory_order_acquire) == ST_DONE, 1)) return;
  init_slow();
}

__attribute__((constructor)) static void legoos_shim_ctor(void) {
  g_in_ctor = true;
  ensure_init();
  g_in_ctor = false;
}

// ---- the malloc family -----------------------------------------------------------------

EXPORT void* malloc(size_t size) {
  ensure_init();
  return mi_malloc(size);
}
EXPORT void free(void* p) {
  ensure_init();
  mi_free(p);
}
EXPORT void cfree(void* p) {
  ensure_init();
  mi_cfree(p);
}
EXPORT void* calloc(size_t n, size_t size) {
  ensure_init();
  return mi_calloc(n, size);
}
EXPORT void* realloc(void* p, size_t size) {
  ensure_init();
  return mi_realloc(p, size);
}
EXPORT void* reallocarray(void* p, size_t n, size_t size) {
  ensure_init();
  return mi_reallocarray(p, n, size);
}
EXPORT void* memalign(size_t alignment, size_t size) {
  ensure_init();
  return mi_memalign(alignment, size);
}
EXPORT int posix_memalign(void** out, size_t alignment, size_t size) {
  ensure_init();
  return mi_posix_memalign(out, alignment, size);
}
EXPORT void* aligned_alloc(size_t alignment, size_t size) {
  ensure_init();
  return mi_aligned_alloc(alignment, size);
}
EXPORT void* valloc(size_t size) {
  ensure_init();
  return mi_valloc(size);
}
EXPORT void* pvalloc(size_t size) {
  ensure_init();
  return mi_pvalloc(size);
}
EXPORT size_t malloc_usable_size(void* p) {
  ensure_init();
  return mi_malloc_usable_size(p);
}

// ---- fork ------------------------------------------------------------------------------
// A forked child would share the parent's MAP_SHARED paged heap (and the memfd pages would be
// touched without the monitor seeing the faults). posix_spawn, vfork and system() use
// clone(CLONE_VM|CLONE_VFORK) in glibc >= 2.34 and keep working.

static int fork_refused(void) {
  put("legoos: fork() is not supported for processes on disaggregated memory (the child would share the "
      "parent's paged heap); use posix_spawn or vfork+exec\n");
  errno = ENOSYS;
  return -1;
}

static void* real_symbol(_Atomic(void*)* cache, const char* name) {
  void* f = atomic_load_explicit(cache, memory_order_acquire);
  if (f == NULL) {
    f = dlsym(RTLD_NEXT, name);
    atomic_store_explicit(cache, f, memory_order_release);
  }
  return f;
}

EXPORT pid_t fork(void) {
  ensure_init();
  if (g_managed) return fork_refused();
  static _Atomic(void*) real;
  pid_t (*f)(void) = (pid_t(*)(void))real_symbol(&real, "fork");
  if (f == NULL) {
    errno = ENOSYS;
    return -1;
  }
  return f();
}

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
EXPORT pid_t _Fork(void) {
  ensure_init();
  if (g_managed) return fork_refused();
  static _Atomic(void*) real;
  pid_t (*f)(void) = (pid_t(*)(void))real_symbol(&real, "_Fork");
  if (f == NULL) {
    errno = ENOSYS;
    return -1;
  }
  return f();
}
#endif

// glibc's daemon() calls its internal __fork directly, which the fork() above cannot see.
EXPORT int daemon(int nochdir, int noclose) {
  ensure_init();
  if (g_managed) return fork_refused();
  static _Atomic(void*) real;
  int (*f)(int, int) = (int (*)(int, int))real_symbol(&real, "daemon");
  if (f == NULL) {
    errno = ENOSYS;
    return -1;
  }
  return f(nochdir, noclose);
}
