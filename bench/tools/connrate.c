// Connection-rate load generator for bench/tcp-connrate.mjs: C concurrent
// clients spread over T epoll threads, each client in a loop of connect, send
// SIZE bytes, read them back, close — for D seconds. Prints one JSON line:
// completed cycles, the rate, connect+echo latency percentiles, and errors
// counted by errno name (EADDRNOTAVAIL = the client ran out of source ports).
//
//   connrate -p PORT [-c 50] [-t 1] [-d 5] [-s 64] [-a 16]
//
// Build: cc -std=c17 -O2 -Wall -Wextra -pthread -o connrate connrate.c
//
// Source addresses (-a A): client sockets bind to 127.0.0.2 .. 127.0.0.(1+A)
// in turn (all of 127.0.0.0/8 is loopback) with IP_BIND_ADDRESS_NO_PORT, so
// the kernel still picks the port at connect() time, per full 4-tuple. Why:
// the client closes first, so every cycle leaves a TIME_WAIT socket on the
// client side for 60 s; at 20k cycles/s that is far more than the 28k
// ephemeral ports (32768-60999) of one source address toward one
// destination. Linux's tcp_tw_reuse=2 default reuses loopback TIME_WAIT ports
// anyway, but only when timestamps allow and the table (tcp_max_tw_buckets)
// keeps up; 16 source addresses make the port space 16x wider so the run does
// not depend on that. A connect() that still fails with EADDRNOTAVAIL is
// counted, reported, and the client retries after the next epoll round.
// No SO_LINGER {1,0}: connections close normally (FIN), as real clients do.
// -a 0 disables the binding (source 127.0.0.1, kernel's choice).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kIdle, kConnecting, kReading };
enum { kMaxSize = 4096, kErrnoSlots = 256 };

struct client {
  int fd;
  int state;
  size_t got;
  uint64_t started_us;
};

// One load thread: its own epoll set, clients, latency samples and counters,
// merged by main() after the threads end (no sharing while measuring).
struct worker {
  pthread_t tid;
  int ep;
  int clients;
  struct client* all;
  uint32_t source;  // next source-address index
  int idle;         // clients waiting to (re)connect
  uint32_t* samples;
  size_t sample_count, sample_capacity;
  uint64_t cycles, errors;
  uint64_t errors_by[kErrnoSlots];
};

static int port, size = 64, sources = 16;
static uint64_t end_us;
static char payload[kMaxSize];

static uint64_t now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

static void record(struct worker* w, uint64_t us) {
  if (w->sample_count == w->sample_capacity) {
    w->sample_capacity = w->sample_capacity ? w->sample_capacity * 2 : 1 << 16;
    w->samples = realloc(w->samples, w->sample_capacity * sizeof *w->samples);
    if (!w->samples) { perror("connrate: realloc"); exit(1); }
  }
  w->samples[w->sample_count++] = (uint32_t)(us > UINT32_MAX ? UINT32_MAX : us);
}

static void count_error(struct worker* w, int error) {
  w->errors++;
  w->errors_by[(unsigned)error % kErrnoSlots]++;
}

// Close the client's socket (if any) and leave it idle: start() picks it up.
static void finish(struct worker* w, struct client* c) {
  if (c->fd >= 0) close(c->fd);  // close() also removes it from the epoll set
  c->fd = -1;
  c->state = kIdle;
  w->idle++;
}

// Open a socket and begin a non-blocking connect; on an immediate failure
// (EADDRNOTAVAIL, EMFILE...) count it and leave the client idle for a retry.
static void start(struct worker* w, struct client* c) {
  w->idle--;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) { count_error(w, errno); finish(w, c); return; }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (sources > 0) {
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in from = {.sin_family = AF_INET,
                               .sin_addr.s_addr = htonl(0x7f000002u + w->source++ % (uint32_t)sources)};
    if (bind(c->fd, (struct sockaddr*)&from, sizeof from) < 0) { count_error(w, errno); finish(w, c); return; }
  }
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  c->state = kConnecting;
  c->got = 0;
  c->started_us = now_us();
  if (connect(c->fd, (struct sockaddr*)&to, sizeof to) < 0 && errno != EINPROGRESS) {
    count_error(w, errno);
    finish(w, c);
    return;
  }
  struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.ptr = c};
  epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void start_idle(struct worker* w) {
  for (int i = 0; i < w->clients && w->idle > 0; i++) {
    if (w->all[i].state == kIdle) start(w, &w->all[i]);
  }
}

static void on_event(struct worker* w, struct client* c, uint32_t events) {
  if (c->state == kConnecting) {
    int error = 0;
    socklen_t len = sizeof error;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0) { count_error(w, error); finish(w, c); return; }
    if (!(events & EPOLLOUT)) return;
    // 64 bytes into an empty socket buffer: a short write cannot happen.
    if (write(c->fd, payload, (size_t)size) != size) { count_error(w, errno ? errno : EIO); finish(w, c); return; }
    c->state = kReading;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
    return;
  }
  char buf[kMaxSize];
  ssize_t r = read(c->fd, buf, sizeof buf);
  if (r > 0) {
    c->got += (size_t)r;
    if (c->got >= (size_t)size) {
      record(w, now_us() - c->started_us);
      w->cycles++;
      finish(w, c);
    }
  } else if (r == 0 || errno != EAGAIN) {
    count_error(w, r == 0 ? ECONNRESET : errno);  // closed before the whole echo
    finish(w, c);
  }
}

static void* run(void* arg) {
  struct worker* w = arg;
  w->ep = epoll_create1(EPOLL_CLOEXEC);
  if (w->ep < 0) { perror("connrate: epoll_create1"); exit(1); }
  w->all = calloc((size_t)w->clients, sizeof *w->all);
  if (!w->all) { perror("connrate: calloc"); exit(1); }
  for (int i = 0; i < w->clients; i++) w->all[i] = (struct client){.fd = -1, .state = kIdle};
  w->idle = w->clients;
  struct epoll_event events[512];
  // Bounded by the deadline; epoll_wait's timeout keeps checking it.
  while (now_us() < end_us) {
    if (w->idle > 0) start_idle(w);
    // With clients idle after a failed connect, poll briefly rather than spin.
    int n = epoll_wait(w->ep, events, 512, w->idle > 0 ? 1 : 50);
    for (int i = 0; i < n; i++) {
      struct client* c = events[i].data.ptr;
      if (c->fd >= 0) on_event(w, c, events[i].events);
    }
  }
  for (int i = 0; i < w->clients; i++) {
    if (w->all[i].fd >= 0) close(w->all[i].fd);
  }
  return NULL;
}

static int cmp(const void* a, const void* b) {
  uint32_t x = *(const uint32_t*)a, y = *(const uint32_t*)b;
  return x < y ? -1 : x > y;
}

static uint32_t percentile(const uint32_t* s, size_t n, double p) {
  return n ? s[(size_t)(p * (double)(n - 1))] : 0;
}

int main(int argc, char** argv) {
  int clients = 50, threads = 1;
  double seconds = 5;
  int opt;
  while ((opt = getopt(argc, argv, "p:c:t:d:s:a:")) != -1) {
    switch (opt) {
      case 'p': port = atoi(optarg); break;
      case 'c': clients = atoi(optarg); break;
      case 't': threads = atoi(optarg); break;
      case 'd': seconds = atof(optarg); break;
      case 's': size = atoi(optarg); break;
      case 'a': sources = atoi(optarg); break;
      default:
        fprintf(stderr, "usage: connrate -p PORT [-c clients] [-t threads] [-d seconds] [-s size] [-a sources]\n");
        return 2;
    }
  }
  if (port <= 0 || port > 65535 || clients <= 0 || threads <= 0 || threads > clients || size <= 0 || size > kMaxSize ||
      seconds <= 0 || seconds > 3600 || sources < 0 || sources > 250) {
    fprintf(stderr, "connrate: expected -p 1..65535, -c >= 1, -t 1..clients, -s 1..%d, -d 0..3600 s, -a 0..250\n", kMaxSize);
    return 2;
  }
  memset(payload, 'x', sizeof payload);
  struct worker* workers = calloc((size_t)threads, sizeof *workers);
  if (!workers) { perror("connrate: calloc"); return 1; }
  const uint64_t began = now_us();
  end_us = began + (uint64_t)(seconds * 1e6);
  for (int i = 0; i < threads; i++) {
    workers[i].clients = clients / threads + (i < clients % threads);
    workers[i].source = (uint32_t)i;
    if (pthread_create(&workers[i].tid, NULL, run, &workers[i]) != 0) { perror("connrate: pthread_create"); return 1; }
  }
  uint64_t cycles = 0, errors = 0, errors_by[kErrnoSlots] = {0};
  size_t total = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(workers[i].tid, NULL);
    cycles += workers[i].cycles;
    errors += workers[i].errors;
    total += workers[i].sample_count;
    for (int e = 0; e < kErrnoSlots; e++) errors_by[e] += workers[i].errors_by[e];
  }
  const double elapsed = (double)(now_us() - began) / 1e6;
  // Our own CPU (% of one core), so the caller can tell whether the load
  // generator was the bottleneck.
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  const double cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                       (double)ru.ru_stime.tv_usec / 1e6;
  uint32_t* all = malloc((total ? total : 1) * sizeof *all);
  if (!all) { perror("connrate: malloc"); return 1; }
  size_t at = 0;
  for (int i = 0; i < threads; i++) {
    if (workers[i].sample_count) memcpy(all + at, workers[i].samples, workers[i].sample_count * sizeof *all);
    at += workers[i].sample_count;
  }
  qsort(all, total, sizeof *all, cmp);
  printf("{\"cycles\":%llu,\"seconds\":%.3f,\"rate\":%.1f,\"clients\":%d,\"threads\":%d,\"sources\":%d,\"cpu_pct\":%.0f,"
         "\"p50_us\":%u,\"p99_us\":%u,\"p999_us\":%u,\"max_us\":%u,\"errors\":%llu,\"errors_by\":{",
         (unsigned long long)cycles, elapsed, (double)cycles / elapsed, clients, threads, sources, 100 * cpu_s / elapsed, percentile(all, total, 0.5),
         percentile(all, total, 0.99), percentile(all, total, 0.999), total ? all[total - 1] : 0, (unsigned long long)errors);
  int first = 1;
  for (int e = 1; e < kErrnoSlots; e++) {
    if (!errors_by[e]) continue;
    const char* name = strerrorname_np(e);
    printf("%s\"%s\":%llu", first ? "" : ",", name ? name : "unknown", (unsigned long long)errors_by[e]);
    first = 0;
  }
  printf("}}\n");
  return 0;
}
