// A small epoll echo server for the connection-rate benchmark, so the
// backends are never what limits the rate: echo-server [-p PORT] [-t THREADS] [-x].
// -x: each connection starts with a PROXY protocol header (v1 or v2, as
// Fulcrum's send_proxy writes it, in one segment before any data), which is
// skipped, not echoed; a connection whose first read holds no whole header
// is closed.
// Each thread has its own SO_REUSEPORT listener on 127.0.0.1. Prints
// {"port":N} once listening (-p 0: a port the kernel picks); runs until
// SIGTERM, whose default action ends the process — there is no state to save.
//
// Build: cc -std=c17 -O2 -Wall -Wextra -pthread -o echo-server echo-server.c
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
#include <sys/socket.h>
#include <unistd.h>

static int port;
static int expect_proxy;
// -x: connections whose PROXY header is still to come, by fd.
static unsigned char header_pending[65536];

// The length of the PROXY header at the start of buf[0, n), or -1 when there
// is no whole one. v1: up to CRLF (at most 107 bytes); v2: 16 + its length.
static ssize_t proxy_header_length(const char* buf, ssize_t n) {
  static const char v2[12] = {'\r', '\n', '\r', '\n', 0, '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};
  if (n >= 16 && memcmp(buf, v2, 12) == 0) {
    ssize_t len = 16 + (((unsigned char)buf[14] << 8) | (unsigned char)buf[15]);
    return len <= n ? len : -1;
  }
  if (n >= 6 && memcmp(buf, "PROXY ", 6) == 0) {
    for (ssize_t i = 6; i + 1 < n && i < 107; i++) {
      if (buf[i] == '\r' && buf[i + 1] == '\n') return i + 2;
    }
  }
  return -1;
}

static int listener(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) { perror("echo-server: socket"); exit(1); }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(fd, (struct sockaddr*)&a, sizeof a) < 0 || listen(fd, 4096) < 0) {
    perror("echo-server: bind/listen");
    exit(1);
  }
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr*)&a, &len);
  port = ntohs(a.sin_port);
  return fd;
}

static void* serve(void* arg) {
  int lfd = (int)(intptr_t)arg;
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  struct epoll_event events[256];
  char buf[16384];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        for (;;) {
          int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          int one = 1;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          if (c < (int)sizeof header_pending) header_pending[c] = (unsigned char)expect_proxy;
          struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        ssize_t skip = 0;
        if (r > 0 && fd < (int)sizeof header_pending && header_pending[fd]) {
          skip = proxy_header_length(buf, r);
          if (skip < 0) { close(fd); break; }
          header_pending[fd] = 0;
          if (skip == r) continue;
        }
        if (r > 0) {
          // Small messages: the socket buffer always has room, a short write
          // would only mean the peer is gone.
          if (write(fd, buf + skip, (size_t)(r - skip)) < 0) { close(fd); break; }
          continue;
        }
        if (r < 0 && errno == EAGAIN) break;
        close(fd);  // EOF or error
        break;
      }
    }
  }
  return NULL;
}

int main(int argc, char** argv) {
  int threads = 1;
  int opt;
  while ((opt = getopt(argc, argv, "p:t:x")) != -1) {
    if (opt == 'p') port = atoi(optarg);
    else if (opt == 't') threads = atoi(optarg);
    else if (opt == 'x') expect_proxy = 1;
    else { fprintf(stderr, "usage: echo-server [-p PORT] [-t THREADS] [-x]\n"); return 2; }
  }
  if (port < 0 || port > 65535 || threads < 1 || threads > 64) {
    fprintf(stderr, "echo-server: expected -p 0..65535 and -t 1..64\n");
    return 2;
  }
  int first = listener();
  pthread_t tid;
  for (int i = 1; i < threads; i++) pthread_create(&tid, NULL, serve, (void*)(intptr_t)listener());
  printf("{\"port\":%d}\n", port);
  fflush(stdout);
  serve((void*)(intptr_t)first);
  return 0;
}
