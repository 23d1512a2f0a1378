// A UDP echo server for bench/udp-pps.mjs, so the backend is never what
// limits the packet rate: udp-echo [-p PORT] [-t THREADS] [-a ADDR]. Each thread has
// its own SO_REUSEPORT socket on 127.0.0.1 (or ADDR) and answers in batches
// (recvmmsg/sendmmsg of up to 64 datagrams). Prints {"port":N} once bound;
// on SIGTERM prints {"received":N,"sent":N} and exits.
//
// Build: cc -std=c17 -O2 -Wall -Wextra -pthread -o udp-echo udp-echo.c
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { kBatch = 64, kSlot = 2048 };

static int port;
// Network byte order; loopback unless -a (benchmarks across network namespaces).
static in_addr_t bind_addr;
static atomic_ulong received_total;
static atomic_ulong sent_total;

static int open_socket(void) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) { perror("udp-echo: socket"); exit(1); }
  int one = 1;
  int bytes = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) < 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = bind_addr};
  if (bind(fd, (struct sockaddr*)&a, sizeof a) < 0) { perror("udp-echo: bind"); exit(1); }
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr*)&a, &len);
  port = ntohs(a.sin_port);
  return fd;
}

static void* serve(void* arg) {
  int fd = (int)(intptr_t)arg;
  static __thread char data[kBatch][kSlot];
  struct mmsghdr msgs[kBatch];
  struct iovec iov[kBatch];
  struct sockaddr_in names[kBatch];
  for (;;) {
    for (int i = 0; i < kBatch; i++) {
      iov[i] = (struct iovec){data[i], kSlot};
      msgs[i].msg_hdr = (struct msghdr){.msg_name = &names[i], .msg_namelen = sizeof names[i], .msg_iov = &iov[i], .msg_iovlen = 1};
    }
    // Blocking: wait for the first datagram, then take what else is queued.
    int n = recvmmsg(fd, msgs, kBatch, MSG_WAITFORONE, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("udp-echo: recvmmsg");
      exit(1);
    }
    atomic_fetch_add(&received_total, (unsigned long)n);
    for (int i = 0; i < n; i++) iov[i].iov_len = msgs[i].msg_len;
    int done = 0;
    while (done < n) {
      int sent = sendmmsg(fd, msgs + done, (unsigned)(n - done), 0);
      if (sent <= 0) break;  // a full client buffer: the rest is lost, as on a wire
      done += sent;
    }
    atomic_fetch_add(&sent_total, (unsigned long)done);
  }
  return NULL;
}

static void on_term(int sig) {
  (void)sig;
  char line[128];
  int len = snprintf(line, sizeof line, "{\"received\":%lu,\"sent\":%lu}\n", atomic_load(&received_total), atomic_load(&sent_total));
  if (write(1, line, (size_t)len) < 0) _exit(1);
  _exit(0);
}

int main(int argc, char** argv) {
  int threads = 1;
  int opt;
  bind_addr = htonl(INADDR_LOOPBACK);
  while ((opt = getopt(argc, argv, "p:t:a:")) != -1) {
    if (opt == 'p') port = atoi(optarg);
    else if (opt == 't') threads = atoi(optarg);
    else if (opt == 'a' && inet_pton(AF_INET, optarg, &bind_addr) == 1) continue;
    else { fprintf(stderr, "usage: udp-echo [-p PORT] [-t THREADS] [-a IPV4_ADDR]\n"); return 2; }
  }
  if (threads < 1 || threads > 64) { fprintf(stderr, "udp-echo: -t 1..64\n"); return 2; }
  signal(SIGTERM, on_term);
  int fds[64];
  for (int i = 0; i < threads; i++) fds[i] = open_socket();
  printf("{\"port\":%d}\n", port);
  fflush(stdout);
  pthread_t tid;
  for (int i = 1; i < threads; i++) pthread_create(&tid, NULL, serve, (void*)(intptr_t)fds[i]);
  serve((void*)(intptr_t)fds[0]);
  return 0;
}
