// The least a user-space TCP proxy can do per message, as a reference for the
// request/response benchmarks (bench/redis.mjs, bench/tcp-latency.mjs): what
// is left between this and Fulcrum is Fulcrum's own overhead; what this costs
// is the kernel's floor for any proxy built on recv/send.
//
//   floor-proxy -p LISTEN_PORT -b BACKEND_PORT[,BACKEND_PORT...] [-t THREADS]
//               [-a LISTEN_ADDR] [-B BACKEND_ADDR]
//
// Each thread has its own SO_REUSEPORT listener on 127.0.0.1 (or -a) and epoll
// (edge-triggered); an accepted client gets a backend by round robin,
// connected with a blocking connect() (loopback); both sockets TCP_NODELAY.
// A readable socket: recv() into a 16 KiB buffer and send() it on, until a
// short read (the socket is drained: the same rule Fulcrum uses). It waits
// for a full destination with poll() instead of buffering, and closes both
// sockets on EOF or error. That is not a proxy anyone should run — no
// timeouts, no health, no half-close — only the syscalls a small message
// cannot do without. Prints {"port":N} once listening; ends on SIGTERM.
//
// Build: cc -std=c17 -O2 -Wall -Wextra -pthread -o floor-proxy floor-proxy.c
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_BACKENDS 16
#define MAX_FDS 65536

static int listen_port;
// Network byte order; loopback unless -a / -B (benchmarks across network namespaces).
static in_addr_t listen_addr;
static in_addr_t backend_addr;
static int backends[MAX_BACKENDS];
static int backend_count;
static atomic_uint next_backend;
// peer[fd]: the other socket of fd's pair (both directions are symmetric).
static int peer[MAX_FDS];

static int tcp_socket(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static int make_listener(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) { perror("floor-proxy: socket"); exit(1); }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)listen_port), .sin_addr.s_addr = listen_addr};
  if (bind(fd, (struct sockaddr*)&a, sizeof a) < 0 || listen(fd, 4096) < 0) {
    perror("floor-proxy: bind/listen");
    exit(1);
  }
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr*)&a, &len);
  listen_port = ntohs(a.sin_port);
  return fd;
}

static void close_pair(int fd) {
  int other = peer[fd];
  close(fd);
  if (other >= 0) close(other);
}

// Sends all of buf, waiting with poll() when the destination is full.
static int send_all(int fd, const char* buf, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      buf += n;
      len -= (size_t)n;
    } else if (n < 0 && errno == EAGAIN) {
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      poll(&p, 1, 1000);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return -1;
    }
  }
  return 0;
}

static void accept_all(int ep, int lfd) {
  for (;;) {
    int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) return;
    int b = tcp_socket();
    unsigned which = atomic_fetch_add(&next_backend, 1) % (unsigned)backend_count;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)backends[which]), .sin_addr.s_addr = backend_addr};
    if (b < 0 || b >= MAX_FDS || c >= MAX_FDS || connect(b, (struct sockaddr*)&a, sizeof a) < 0) {
      close(c);
      if (b >= 0) close(b);
      continue;
    }
    // Non-blocking from here on (the connect was blocking).
    fcntl(b, F_SETFL, fcntl(b, F_GETFL) | O_NONBLOCK);
    peer[c] = b;
    peer[b] = c;
    struct epoll_event ce = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.fd = c};
    struct epoll_event be = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.fd = b};
    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
    epoll_ctl(ep, EPOLL_CTL_ADD, b, &be);
  }
}

static void* serve(void* arg) {
  int lfd = (int)(intptr_t)arg;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  struct epoll_event events[256];
  static _Thread_local char buf[16384];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        accept_all(ep, lfd);
        continue;
      }
      for (;;) {
        ssize_t got = recv(fd, buf, sizeof buf, 0);
        if (got > 0) {
          if (send_all(peer[fd], buf, (size_t)got) < 0) {
            close_pair(fd);
            break;
          }
          if ((size_t)got < sizeof buf && !(events[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) break;
        } else if (got < 0 && errno == EAGAIN) {
          break;
        } else if (got < 0 && errno == EINTR) {
          continue;
        } else {
          close_pair(fd);
          break;
        }
      }
    }
  }
  return NULL;
}

int main(int argc, char** argv) {
  int threads = 2;
  int opt;
  listen_addr = backend_addr = htonl(INADDR_LOOPBACK);
  while ((opt = getopt(argc, argv, "p:b:t:a:B:")) != -1) {
    if (opt == 'a' || opt == 'B') {
      if (inet_pton(AF_INET, optarg, opt == 'a' ? &listen_addr : &backend_addr) != 1) {
        fprintf(stderr, "floor-proxy: -%c: not an IPv4 address: %s\n", opt, optarg);
        return 2;
      }
    } else if (opt == 'p') {
      listen_port = atoi(optarg);
    } else if (opt == 'b') {
      for (char* s = strtok(optarg, ","); s && backend_count < MAX_BACKENDS; s = strtok(NULL, ",")) backends[backend_count++] = atoi(s);
    } else if (opt == 't') {
      threads = atoi(optarg);
    } else {
      fprintf(stderr, "usage: floor-proxy -p PORT -b PORT[,PORT...] [-t THREADS] [-a LISTEN_ADDR] [-B BACKEND_ADDR]\n");
      return 2;
    }
  }
  if (backend_count == 0 || threads < 1 || threads > 64) {
    fprintf(stderr, "usage: floor-proxy -p PORT -b PORT[,PORT...] [-t THREADS] [-a LISTEN_ADDR] [-B BACKEND_ADDR]\n");
    return 2;
  }
  for (int i = 0; i < MAX_FDS; i++) peer[i] = -1;
  int first = make_listener();
  for (int i = 0; i < threads; i++) {
    int lfd = i == 0 ? first : make_listener();
    pthread_t t;
    pthread_create(&t, NULL, serve, (void*)(intptr_t)lfd);
  }
  printf("{\"port\":%d}\n", listen_port);
  fflush(stdout);
  pause();
  return 0;
}
