// CRC-32C with the CPU's own instruction: SSE4.2 `crc32` on x86_64, the ARMv8 CRC extension on arm64. Only these
// functions are compiled for that instruction set, so the rest of the program still runs on CPUs without it; the
// caller asks `clinux_crc32c_available` once and keeps its table-driven code for the others.
#include "CLinux.h"
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>

int clinux_crc32c_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
}

__attribute__((target("sse4.2")))
uint32_t clinux_crc32c_update(uint32_t state, const void *bytes, size_t count) {
    const uint8_t *next = bytes;
    uint64_t wide = state;
    // Eight bytes per instruction; memcpy is the alignment-safe load (it compiles to one mov).
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, next, 8);
        wide = _mm_crc32_u64(wide, word);
        next += 8;
        count -= 8;
    }
    uint32_t narrow = (uint32_t)wide;
    while (count > 0) {
        narrow = _mm_crc32_u8(narrow, *next);
        next += 1;
        count -= 1;
    }
    return narrow;
}

#elif defined(__aarch64__)
#include <sys/auxv.h>

#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif

int clinux_crc32c_available(void) {
    return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0 ? 1 : 0;
}

__attribute__((target("crc")))
uint32_t clinux_crc32c_update(uint32_t state, const void *bytes, size_t count) {
    const uint8_t *next = bytes;
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, next, 8);
        state = __builtin_arm_crc32cd(state, word);
        next += 8;
        count -= 8;
    }
    while (count > 0) {
        state = __builtin_arm_crc32cb(state, *next);
        next += 1;
        count -= 1;
    }
    return state;
}

#else
int clinux_crc32c_available(void) {
    return 0;
}

uint32_t clinux_crc32c_update(uint32_t state, const void *bytes, size_t count) {
    (void)bytes;
    (void)count;
    return state;
}
#endif
