// The Linux calls the Glibc module map leaves out: epoll, eventfd, accept4 and thread names.
#ifndef CLINUX_H
#define CLINUX_H
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>

// accept4 and pthread_setname_np are only declared under _GNU_SOURCE, which the Glibc Clang module is
// not built with; the wrappers live in shim.c, which is compiled with it.
int clinux_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int clinux_pthread_setname_np(pthread_t thread, const char *name);

// EPOLL* are enumerators of `enum EPOLL_EVENTS` plus self-referential #defines; plain uint32_t constants
// spare the Swift side `.rawValue` conversions.
static const uint32_t CLINUX_EPOLLIN = EPOLLIN;
static const uint32_t CLINUX_EPOLLOUT = EPOLLOUT;
static const uint32_t CLINUX_EPOLLERR = EPOLLERR;
static const uint32_t CLINUX_EPOLLHUP = EPOLLHUP;
static const uint32_t CLINUX_EPOLLRDHUP = EPOLLRDHUP;

static const int CLINUX_SOCK_STREAM = SOCK_STREAM;
static const int CLINUX_SOCK_NONBLOCK = SOCK_NONBLOCK;
static const int CLINUX_SOCK_CLOEXEC = SOCK_CLOEXEC;
static const int CLINUX_EPOLL_CLOEXEC = EPOLL_CLOEXEC;
static const int CLINUX_EFD_NONBLOCK = EFD_NONBLOCK;
static const int CLINUX_EFD_CLOEXEC = EFD_CLOEXEC;
#endif
