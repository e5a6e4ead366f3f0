/* Baseline for the fabric benchmarks: the cheapest TCP request/response two processes can do
 * on the same loopback path (blocking sockets, TCP_NODELAY, one write and one read loop per
 * message). Forks a server child, runs ITERS round trips of REQ bytes out / RESP bytes back,
 * prints {"p50_us","p99_us","mean_us","iters"} as JSON on stdout.
 *   tcp_rr REQ_BYTES RESP_BYTES ITERS WARMUP */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int full_io(int fd, char *buf, size_t n, int writing) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = writing ? write(fd, buf + done, n - done) : read(fd, buf + done, n - done);
    if (r <= 0) return -1;
    done += (size_t)r;
  }
  return 0;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: tcp_rr REQ RESP ITERS WARMUP\n");
    return 2;
  }
  size_t req = strtoul(argv[1], 0, 10), resp = strtoul(argv[2], 0, 10);
  int iters = atoi(argv[3]), warm = atoi(argv[4]);
  int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1)) return perror("listen"), 1;
  socklen_t al = sizeof a;
  getsockname(ls, (struct sockaddr *)&a, &al);
  char *buf = malloc(req > resp ? req : resp);
  memset(buf, 1, req > resp ? req : resp);
  pid_t pid = fork();
  if (pid == 0) {
    int c = accept(ls, 0, 0);
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    while (full_io(c, buf, req, 0) == 0 && full_io(c, buf, resp, 1) == 0) {}
    _exit(0);
  }
  close(ls);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(s, (struct sockaddr *)&a, sizeof a)) return perror("connect"), 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  double *lat = malloc(sizeof(double) * (size_t)iters), sum = 0;
  for (int i = -warm; i < iters; i++) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (full_io(s, buf, req, 1) || full_io(s, buf, resp, 0)) return fprintf(stderr, "io failed\n"), 1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (i >= 0) {
      lat[i] = (double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3;
      sum += lat[i];
    }
  }
  close(s);
  kill(pid, SIGKILL);
  waitpid(pid, 0, 0);
  qsort(lat, (size_t)iters, sizeof(double), cmp);
  printf("{\"p50_us\":%.3f,\"p99_us\":%.3f,\"mean_us\":%.3f,\"iters\":%d}\n", lat[iters / 2],
         lat[(int)((double)iters * 0.99)], sum / iters, iters);
  return 0;
}
