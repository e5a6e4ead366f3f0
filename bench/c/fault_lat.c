/* Fixture of the pager benchmark (bench/pager.ts): page-fault latency and throughput as a
 * faulting program sees them. Run under `legoos run` its malloc'd buffers live in the paged heap
 * (the preload shim's region); its sample arrays are mmap'd outside it, so recording a sample
 * never faults on the pager. Every result is one JSON object per line on stdout.
 *
 *   fault_lat lat PAGES CYCLE_PAGES
 *     Phases over a buffer A of PAGES pages (CYCLE_PAGES >= 4x the cache's lines):
 *       plocal_empty  read A          never written, cache empty: p-local fill (zeros), no victim
 *       wp            write A         first store to a clean line: write-protect fault
 *       cycle_clean   read B          CYCLE_PAGES fresh pages: evicts (writes back) A, leaves the
 *                                     cache full of clean lines
 *       plocal_clean  read C          PAGES fresh pages: p-local fill + clean victim (no network)
 *       miss_clean    read A          remote miss (one-sided READ) + clean victim
 *       cycle_dirty   write D         CYCLE_PAGES fresh pages: the cache full of dirty lines
 *       miss_dirty    read A          remote miss + dirty victim (its write-back first)
 *     A touch faster than 1.5 us is a hit (the line was still resident) and is left out.
 *
 *   fault_lat mt PAGES CYCLE_PAGES ROUNDS T1 [T2 ...]
 *     Miss throughput: for each round and each thread count T (odd rounds in reverse order), T
 *     threads read-touch PAGES pages between them (each its own PAGES/T), all written and evicted
 *     before; wall time from a barrier to the last thread's end.
 *
 *   fault_lat floor PAGES SPIN_US
 *     The local userfaultfd floor, no pager and no network: a memfd region (shmem, as the
 *     pager's) registered for MISSING faults, served by a thread of this process that busy-polls
 *     the uffd for SPIN_US (as a pager worker does), reads the fault and UFFDIO_COPYs a zero
 *     page; PAGES read touches timed as above. Run as root (or vm.unprivileged_userfaultfd=1).
 *
 *   fault_lat rss OUTFILE PROGRAM [ARGS...]
 *     Run PROGRAM (stdio inherited), write {"maxrss_kb","wall_ms","status"} to OUTFILE: the peak
 *     RSS of a normal run (wait4's ru_maxrss), for the benchmark's cache ratios. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define HIT_NS 1500

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "fault_lat: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* Outside the paged heap: anonymous memory, touched up front. */
static void *outside(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) die("mmap");
  return p;
}

static char *heap_pages(size_t pages) {
  char *p = malloc(pages * PAGE + PAGE);
  if (p == NULL) die("malloc");
  return (char *)(((uintptr_t)p + PAGE - 1) & ~(uintptr_t)(PAGE - 1));
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* The paged heap's place in a legoos process (lib/monitors/processor/native-runner.ts
 * REGION_BASE, at most 64 GiB): "in_region" false means the shim did not take the buffers. */
static int in_region(const void *p) {
  return (uintptr_t)p >= 0x200000000000ull && (uintptr_t)p < 0x200000000000ull + (64ull << 30);
}

/* Touch every page of buf (read or write), time each, print the faulting ones' distribution. */
static volatile char sink;
static void pass(const char *phase, char *buf, size_t pages, int write, uint64_t *ns) {
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < pages; i++) {
    volatile char *p = buf + i * PAGE;
    uint64_t a = now_ns();
    if (write) *p = (char)i;
    else sink = *p;
    ns[i] = now_ns() - a;
  }
  uint64_t total = now_ns() - t0;
  size_t n = 0;
  double sum = 0;
  for (size_t i = 0; i < pages; i++) {
    if (ns[i] < HIT_NS) continue;
    ns[n++] = ns[i];
    sum += (double)ns[i];
  }
  qsort(ns, n, sizeof *ns, cmp_u64);
  printf("{\"phase\":\"%s\",\"touches\":%zu,\"faults\":%zu,\"p50_us\":%.2f,\"p99_us\":%.2f,\"mean_us\":%.2f,\"wall_ms\":%.1f,\"in_region\":%s}\n", phase, pages, n,
         n ? ns[n / 2] / 1e3 : 0, n ? ns[n * 99 / 100] / 1e3 : 0, n ? sum / n / 1e3 : 0, total / 1e6, in_region(buf) ? "true" : "false");
  fflush(stdout);
}

static int lat(size_t pages, size_t cycle) {
  uint64_t *ns = outside((cycle > pages ? cycle : pages) * sizeof(uint64_t));
  char *A = heap_pages(pages), *B = heap_pages(cycle), *C = heap_pages(pages), *D = heap_pages(cycle);
  pass("plocal_empty", A, pages, 0, ns);
  pass("wp", A, pages, 1, ns);
  pass("cycle_clean", B, cycle, 0, ns);
  pass("plocal_clean", C, pages, 0, ns);
  pass("miss_clean", A, pages, 0, ns);
  pass("cycle_dirty", D, cycle, 1, ns);
  pass("miss_dirty", A, pages, 0, ns);
  return 0;
}

struct worker {
  pthread_t th;
  pthread_barrier_t *go;
  char *buf;
  size_t pages;
  uint64_t end;
  uint64_t faults;
};

static void *mt_thread(void *arg) {
  struct worker *w = arg;
  pthread_barrier_wait(w->go);
  uint64_t f = 0;
  for (size_t i = 0; i < w->pages; i++) {
    uint64_t a = now_ns();
    sink = w->buf[i * PAGE];
    if (now_ns() - a >= HIT_NS) f++;
  }
  w->faults = f;
  w->end = now_ns();
  return NULL;
}

static int mt(size_t pages, size_t cycle, int rounds, int nt, int *ts) {
  char **bufs = outside((size_t)rounds * nt * sizeof(char *));
  for (int k = 0; k < rounds * nt; k++) {
    bufs[k] = heap_pages(pages);
    for (size_t i = 0; i < pages; i++) bufs[k][i * PAGE] = 1; /* dirty: written back when evicted */
  }
  char *B = heap_pages(cycle);
  for (size_t i = 0; i < cycle; i++) sink = B[i * PAGE]; /* the cache full of clean lines */
  for (int r = 0; r < rounds; r++) {
    for (int jj = 0; jj < nt; jj++) {
      int j = r % 2 ? nt - 1 - jj : jj; /* odd rounds in reverse order: drift hits every T alike */
      int T = ts[j];
      char *buf = bufs[r * nt + jj];
      struct worker *w = outside((size_t)T * sizeof *w);
      pthread_barrier_t go;
      pthread_barrier_init(&go, NULL, (unsigned)T + 1);
      size_t per = pages / (size_t)T;
      for (int t = 0; t < T; t++) {
        w[t].go = &go;
        w[t].buf = buf + (size_t)t * per * PAGE;
        w[t].pages = per;
        if (pthread_create(&w[t].th, NULL, mt_thread, &w[t]) != 0) die("pthread_create");
      }
      pthread_barrier_wait(&go);
      uint64_t t0 = now_ns(), end = t0, faults = 0;
      for (int t = 0; t < T; t++) {
        pthread_join(w[t].th, NULL);
        if (w[t].end > end) end = w[t].end;
        faults += w[t].faults;
      }
      pthread_barrier_destroy(&go);
      double s = (end - t0) / 1e9;
      printf("{\"round\":%d,\"threads\":%d,\"touches\":%zu,\"faults\":%llu,\"wall_ms\":%.2f,\"faults_per_sec\":%.0f}\n", r, T, per * (size_t)T,
             (unsigned long long)faults, s * 1e3, faults / s);
      fflush(stdout);
      munmap(w, (size_t)T * sizeof *w);
    }
  }
  return 0;
}

/* ---- the local userfaultfd floor ---------------------------------------------------------- */

struct floor_srv {
  int uffd;
  char *zero;
  uint64_t spin_ns;
  volatile int stop;
};

/* Serves faults as a pager worker does (native/uffd_pager.cc wait_faults): busy-poll the uffd
 * for spin_ns, then block in poll. */
static void *floor_thread(void *arg) {
  struct floor_srv *s = arg;
  struct pollfd pfd = {.fd = s->uffd, .events = POLLIN};
  while (!s->stop) {
    struct uffd_msg m;
    ssize_t r = -1;
    for (uint64_t until = now_ns() + s->spin_ns; r < 0 && now_ns() < until;) r = read(s->uffd, &m, sizeof m);
    if (r < 0) {
      if (poll(&pfd, 1, 100) <= 0) continue;
      r = read(s->uffd, &m, sizeof m);
    }
    if (r != (ssize_t)sizeof m || m.event != UFFD_EVENT_PAGEFAULT) continue;
    struct uffdio_copy c = {.dst = m.arg.pagefault.address & ~(uint64_t)(PAGE - 1), .src = (uintptr_t)s->zero, .len = PAGE, .mode = 0};
    if (ioctl(s->uffd, UFFDIO_COPY, &c) < 0 && errno != EEXIST) die("UFFDIO_COPY");
  }
  return NULL;
}

static int floor_mode(size_t pages, uint64_t spin_us) {
  size_t bytes = pages * PAGE;
  int memfd = (int)syscall(SYS_memfd_create, "fault_lat_floor", 0);
  if (memfd < 0) die("memfd_create");
  if (ftruncate(memfd, (off_t)bytes) < 0) die("ftruncate");
  char *region = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (region == MAP_FAILED) die("mmap memfd");
  int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (uffd < 0) die("userfaultfd (run as root, or sysctl vm.unprivileged_userfaultfd=1)");
  struct uffdio_api api = {.api = UFFD_API, .features = 0};
  if (ioctl(uffd, UFFDIO_API, &api) < 0) die("UFFDIO_API");
  struct uffdio_register reg = {.range = {.start = (uintptr_t)region, .len = bytes}, .mode = UFFDIO_REGISTER_MODE_MISSING};
  if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) die("UFFDIO_REGISTER");
  struct floor_srv s = {.uffd = uffd, .zero = outside(PAGE), .spin_ns = spin_us * 1000, .stop = 0};
  pthread_t th;
  if (pthread_create(&th, NULL, floor_thread, &s) != 0) die("pthread_create");
  uint64_t *ns = outside(pages * sizeof(uint64_t));
  pass("floor", region, pages, 0, ns);
  s.stop = 1;
  pthread_join(th, NULL);
  return 0;
}

/* ---- peak RSS of a normal run ----------------------------------------------------------- */

static int rss(const char *out, char **argv) {
  uint64_t t0 = now_ns();
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    execv(argv[0], argv);
    fprintf(stderr, "fault_lat: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  int status;
  struct rusage ru;
  if (wait4(pid, &status, 0, &ru) < 0) die("wait4");
  double ms = (now_ns() - t0) / 1e6;
  FILE *f = fopen(out, "w");
  if (f == NULL) die(out);
  fprintf(f, "{\"maxrss_kb\":%ld,\"wall_ms\":%.1f,\"status\":%d}\n", ru.ru_maxrss, ms, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  fclose(f);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "lat") == 0 && argc == 4) return lat(strtoul(argv[2], NULL, 10), strtoul(argv[3], NULL, 10));
  if (strcmp(mode, "mt") == 0 && argc >= 6) {
    int nt = argc - 5, ts[16];
    if (nt > 16) nt = 16;
    for (int j = 0; j < nt; j++) ts[j] = atoi(argv[5 + j]);
    return mt(strtoul(argv[2], NULL, 10), strtoul(argv[3], NULL, 10), atoi(argv[4]), nt, ts);
  }
  if (strcmp(mode, "floor") == 0 && argc == 4) return floor_mode(strtoul(argv[2], NULL, 10), strtoul(argv[3], NULL, 10));
  if (strcmp(mode, "rss") == 0 && argc >= 4) return rss(argv[2], argv + 3);
  fprintf(stderr,
          "usage: fault_lat lat PAGES CYCLE_PAGES | mt PAGES CYCLE_PAGES ROUNDS T1 [T2 ...] | floor PAGES SPIN_US | rss OUTFILE PROGRAM [ARGS...]\n");
  return 2;
}
