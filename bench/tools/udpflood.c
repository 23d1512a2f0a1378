// UDP packet-rate load generator for bench/udp-pps.mjs: F flows (one
// connected socket each, so each is its own 5-tuple) send SIZE-byte
// datagrams to 127.0.0.1:PORT (or ADDR:PORT) and count the echoes that come back, for D
// seconds. T threads (default 1) each own every T-th flow; non-blocking
// sockets, sendmmsg/recvmmsg batches, no locks (each thread counts alone and
// the totals are summed after the threads are joined).
//
//   udpflood -p PORT [-a ADDR] [-f 8] [-t 1] [-d 5] [-s 64] [-r RATE]
//
// -r 0 (default): as fast as the threads can send (a burst of 16 per flow,
// then whatever replies are waiting). -r N: N datagrams per second in all,
// split evenly over the threads, each paced every 200 µs. Each datagram
// carries its flow and sequence number; a reply is counted once, and only if
// its bytes are what was sent. After the sending time, replies are
// collected until none has come for 200 ms (1 s at most). One thread is
// enough when the path is slow; on a path faster than one sending thread (the
// echo server straight, or a fast proxy), more threads keep the client from
// being what is measured.
// Prints one JSON line: sent, received, bad, send errors, loss, rates, and
// client_drops: datagrams the kernel dropped at this client's own sockets
// (full receive buffers; SO_MEMINFO), so a loss can be placed.
//
// Build: cc -std=c17 -O2 -Wall -Wextra -pthread -o udpflood udpflood.c
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kBurst = 16, kMaxFlows = 1024, kMaxThreads = 64, kMaxSize = 1400, kRecvBatch = 64 };

static uint64_t now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

struct flow {
  int fd;
  uint64_t next_seq;
};

static struct flow flows[kMaxFlows];
static int flow_count = 8;
static size_t size = 64;

/** One sending thread: flows first, first + stride, ...; its own buffers and counters. */
struct sender {
  pthread_t thread;
  int first, stride;
  long rate;  // this thread's share of -r, 0 = as fast as it can
  uint64_t start, end;
  uint64_t sent, received, received_in_time, bad, send_errors;
  unsigned char send_data[kBurst][kMaxSize];
  unsigned char recv_data[kRecvBatch][kMaxSize + 1];
};

// Payload: flow id (4 bytes), sequence (8 bytes), then a pattern derived from both.
static void fill(unsigned char* p, uint32_t flow, uint64_t seq) {
  memcpy(p, &flow, 4);
  memcpy(p + 4, &seq, 8);
  for (size_t i = 12; i < size; i++) p[i] = (unsigned char)(flow * 31u + seq * 7u + i);
}

static int check(const unsigned char* p, size_t len, uint32_t flow) {
  if (len != size) return 0;
  uint32_t f;
  uint64_t seq;
  memcpy(&f, p, 4);
  memcpy(&seq, p + 4, 8);
  if (f != flow) return 0;
  for (size_t i = 12; i < size; i++) {
    if (p[i] != (unsigned char)(flow * 31u + seq * 7u + i)) return 0;
  }
  return 1;
}

static void send_burst(struct sender* s, int index, int count) {
  struct mmsghdr msgs[kBurst];
  struct iovec iov[kBurst];
  struct flow* f = &flows[index];
  for (int i = 0; i < count; i++) {
    fill(s->send_data[i], (uint32_t)index, f->next_seq + (uint64_t)i);
    iov[i] = (struct iovec){s->send_data[i], size};
    msgs[i].msg_hdr = (struct msghdr){.msg_iov = &iov[i], .msg_iovlen = 1};
  }
  int n = sendmmsg(f->fd, msgs, (unsigned)count, MSG_DONTWAIT);
  if (n < 0) {
    s->send_errors++;  // EAGAIN (our buffer is full) or ECONNREFUSED (nothing listening)
    return;
  }
  f->next_seq += (uint64_t)n;
  s->sent += (uint64_t)n;
}

static void drain(struct sender* s, int index) {
  struct mmsghdr msgs[kRecvBatch];
  struct iovec iov[kRecvBatch];
  for (;;) {
    for (int i = 0; i < kRecvBatch; i++) {
      iov[i] = (struct iovec){s->recv_data[i], sizeof s->recv_data[i]};
      msgs[i].msg_hdr = (struct msghdr){.msg_iov = &iov[i], .msg_iovlen = 1};
    }
    int n = recvmmsg(flows[index].fd, msgs, kRecvBatch, MSG_DONTWAIT, NULL);
    if (n <= 0) return;  // EAGAIN, or ECONNREFUSED reported once
    for (int i = 0; i < n; i++) {
      if (check(s->recv_data[i], msgs[i].msg_len, (uint32_t)index)) s->received++;
      else s->bad++;
    }
    if (n < kRecvBatch) return;
  }
}

static void drain_all(struct sender* s) {
  for (int i = s->first; i < flow_count; i += s->stride) drain(s, i);
}

static void* run_sender(void* arg) {
  struct sender* s = arg;
  uint64_t due = 0;  // datagrams owed so far at the fixed rate
  int next_flow = s->first;
  for (uint64_t t = now_us(); t < s->end; t = now_us()) {
    if (s->rate == 0) {
      for (int i = s->first; i < flow_count; i += s->stride) send_burst(s, i, kBurst);
    } else {
      // Pace: what the clock says is owed, round robin over this thread's flows.
      const uint64_t owed = (t - s->start) * (uint64_t)s->rate / 1000000u;
      while (due < owed) {
        int n = (int)(owed - due < kBurst ? owed - due : kBurst);
        send_burst(s, next_flow, n);
        next_flow += s->stride;
        if (next_flow >= flow_count) next_flow = s->first;
        due += (uint64_t)n;
      }
    }
    drain_all(s);
    if (s->rate != 0) usleep(200);
  }
  s->received_in_time = s->received;
  // Stragglers still in flight when sending stopped (a proxy or echo server
  // kept off the CPU by other work may hold some for a few hundred ms): up to
  // 1 s, ending once nothing has come for 200 ms, so the CPU figures taken
  // around the whole run are not diluted by a long idle tail.
  uint64_t last_arrival = now_us();
  for (uint64_t t = last_arrival, stop = t + 1000000; t < stop && t - last_arrival < 200000; t = now_us()) {
    const uint64_t before = s->received + s->bad;
    drain_all(s);
    if (s->received + s->bad != before) last_arrival = t;
    usleep(1000);
  }
  return NULL;
}

static double cpu_seconds(const struct rusage* r) {
  return (double)(r->ru_utime.tv_sec + r->ru_stime.tv_sec) + (double)(r->ru_utime.tv_usec + r->ru_stime.tv_usec) / 1e6;
}

int main(int argc, char** argv) {
  int port = 0;
  int thread_count = 1;
  double duration = 5;
  long rate = 0;
  in_addr_t addr = htonl(INADDR_LOOPBACK);
  int opt;
  while ((opt = getopt(argc, argv, "p:a:f:t:d:s:r:")) != -1) {
    switch (opt) {
      case 'p': port = atoi(optarg); break;
      case 'a':
        if (inet_pton(AF_INET, optarg, &addr) != 1) { fprintf(stderr, "udpflood: -a: not an IPv4 address: %s\n", optarg); return 2; }
        break;
      case 'f': flow_count = atoi(optarg); break;
      case 't': thread_count = atoi(optarg); break;
      case 'd': duration = atof(optarg); break;
      case 's': size = (size_t)atol(optarg); break;
      case 'r': rate = atol(optarg); break;
      default: fprintf(stderr, "usage: udpflood -p PORT [-a ADDR] [-f 8] [-t 1] [-d 5] [-s 64] [-r RATE]\n"); return 2;
    }
  }
  if (port <= 0 || flow_count < 1 || flow_count > kMaxFlows || thread_count < 1 || thread_count > kMaxThreads ||
      thread_count > flow_count || size < 12 || size > kMaxSize || duration <= 0 || rate < 0 || (rate > 0 && rate < thread_count)) {
    fprintf(stderr, "udpflood: need -p PORT; 1..%d flows; 1..%d threads, no more than flows; 12..%d bytes; -d > 0; -r 0 or >= threads\n",
            kMaxFlows, kMaxThreads, kMaxSize);
    return 2;
  }
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = addr};
  for (int i = 0; i < flow_count; i++) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int bytes = 8 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
    if (fd < 0 || connect(fd, (struct sockaddr*)&to, sizeof to) < 0) { perror("udpflood: socket/connect"); return 1; }
    flows[i].fd = fd;
  }
  struct sender* senders = calloc((size_t)thread_count, sizeof *senders);
  if (!senders) { perror("udpflood: calloc"); return 1; }
  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  const uint64_t start = now_us();
  const uint64_t end = start + (uint64_t)(duration * 1e6);
  for (int i = 0; i < thread_count; i++) {
    struct sender* s = &senders[i];
    s->first = i;
    s->stride = thread_count;
    // The remainder of an uneven split goes to the first threads, so the rates add up to -r exactly.
    s->rate = rate / thread_count + (i < rate % thread_count ? 1 : 0);
    s->start = start;
    s->end = end;
    int err = pthread_create(&s->thread, NULL, run_sender, s);
    if (err != 0) { fprintf(stderr, "udpflood: pthread_create: %s\n", strerror(err)); return 1; }
  }
  uint64_t sent = 0, received = 0, received_in_time = 0, bad = 0, send_errors = 0;
  for (int i = 0; i < thread_count; i++) {
    struct sender* s = &senders[i];
    pthread_join(s->thread, NULL);
    sent += s->sent;
    received += s->received;
    received_in_time += s->received_in_time;
    bad += s->bad;
    send_errors += s->send_errors;
  }
  // Every thread stops sending at `end`; rates are over the sending time.
  const double send_seconds = (double)(end - start) / 1e6;
  getrusage(RUSAGE_SELF, &ru1);
  const double cpu = cpu_seconds(&ru1) - cpu_seconds(&ru0);
  const uint64_t lost = sent > received ? sent - received : 0;
  uint64_t client_drops = 0;
  for (int i = 0; i < flow_count; i++) {
    uint32_t meminfo[SK_MEMINFO_VARS] = {0};
    socklen_t len = sizeof meminfo;
    if (getsockopt(flows[i].fd, SOL_SOCKET, SO_MEMINFO, meminfo, &len) == 0 && len > SK_MEMINFO_DROPS * sizeof(uint32_t)) {
      client_drops += meminfo[SK_MEMINFO_DROPS];
    }
  }
  // cpu_pct: % of one core over the sending time (the straggler second is spent asleep).
  printf("{\"sent\":%llu,\"received\":%llu,\"bad\":%llu,\"send_errors\":%llu,\"lost\":%llu,\"loss_pct\":%.4f,"
         "\"sent_rate\":%.0f,\"delivered_rate\":%.0f,\"seconds\":%.3f,\"threads\":%d,\"cpu_pct\":%.0f,\"client_drops\":%llu}\n",
         (unsigned long long)sent, (unsigned long long)received, (unsigned long long)bad,
         (unsigned long long)send_errors, (unsigned long long)lost, sent ? 100.0 * (double)lost / (double)sent : 0.0,
         (double)sent / send_seconds, (double)received_in_time / send_seconds, send_seconds, thread_count,
         100.0 * cpu / send_seconds, (unsigned long long)client_drops);
  free(senders);
  return 0;
}
