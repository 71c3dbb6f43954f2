// The Linux calls the Glibc module map leaves out (epoll, eventfd, accept4, thread names) and hardware CRC-32C.
#ifndef CLINUX_H
#define CLINUX_H
#include <stddef.h>
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
// glibc's malloc_trim: hands free arena pages back to the kernel (memory_limit measures resident pages).
int clinux_malloc_trim(size_t pad);
// Bytes the allocator has handed out and not had back (mallinfo2: arena plus mmap'd chunks), for memory tests.
size_t clinux_heap_bytes_in_use(void);

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

// CRC-32C (Castagnoli) in hardware, in crc32c.c. `clinux_crc32c_available` is 1 when this CPU has the instruction
// (SSE4.2 on x86_64, the CRC extension on arm64); only then may `clinux_crc32c_update` be called. It continues the
// CRC register `state` (the inverted CRC, without the final XOR) over `count` bytes and returns the new register.
int clinux_crc32c_available(void);
uint32_t clinux_crc32c_update(uint32_t state, const void *bytes, size_t count);
#endif
