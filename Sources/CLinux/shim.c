// Out-of-line wrappers for the calls that need _GNU_SOURCE (set for this target in the package manifest).
#include "CLinux.h"
#include <malloc.h>

int clinux_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    return accept4(fd, addr, len, flags);
}

int clinux_pthread_setname_np(pthread_t thread, const char *name) {
    return pthread_setname_np(thread, name);
}

int clinux_malloc_trim(size_t pad) {
    return malloc_trim(pad);
}

size_t clinux_heap_bytes_in_use(void) {
    struct mallinfo2 info = mallinfo2();
    return info.uordblks + info.hblkhd;
}
