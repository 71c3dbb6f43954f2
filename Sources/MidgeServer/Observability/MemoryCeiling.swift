// `memory_limit`: the process's resident memory measured against a ceiling, for the core to refuse new work above it.
import CLinux
import Glibc
import Synchronization

/// mosquitto counts the bytes its own allocator wrapper hands out; Midge measures what the kernel charges the process
/// (resident pages from `/proc/self/statm`: heap, stacks, buffers and allocator slack alike), which is what an
/// out-of-memory killer or a container limit sees. Loop 0 samples it: every `relaxedInterval` normally and every
/// `closeInterval` once within a quarter of the limit, so a flood overshoots by at most what arrives in that time.
/// glibc keeps freed memory in its arenas, so while above the limit it is asked to hand free pages back
/// (`malloc_trim`, at most once a second) before the next reading decides.
final class MemoryCeiling: Sendable {
    /// Bytes; 0 means no ceiling (nothing is sampled).
    let limit: Int
    /// The latest reading, for `/metrics` and `$SYS`.
    let residentBytes = Atomic<Int>(0)
    /// Whether the latest reading was above the limit.
    let reached = Atomic<Bool>(false)
    /// Times a reading found the limit passed after being below it.
    let episodes = Atomic<UInt64>(0)
    private let state = LoopLocked(SamplingState())

    static let relaxedInterval: Int64 = 100_000_000
    static let closeInterval: Int64 = 2_000_000
    static let trimInterval: Int64 = 1_000_000_000

    private struct SamplingState {
        var nextSample: Int64 = 0
        var nextTrim: Int64 = 0
    }

    init(limit: Int) {
        self.limit = max(0, limit)
    }

    /// Reads the resident size when due and returns whether the ceiling is reached; nil when nothing was read.
    func sampleIfDue(now: Int64) -> Bool? {
        guard limit > 0 else { return nil }
        return state.withLock { sampling -> Bool? in
            guard now >= sampling.nextSample else { return nil }
            var resident = MemoryCeiling.readResidentBytes() ?? residentBytes.load(ordering: .relaxed)
            if resident > limit && now >= sampling.nextTrim {
                sampling.nextTrim = now + Self.trimInterval
                _ = clinux_malloc_trim(0)
                resident = MemoryCeiling.readResidentBytes() ?? resident
            }
            residentBytes.store(resident, ordering: .relaxed)
            let isReached = resident > limit
            if isReached && !reached.load(ordering: .relaxed) { episodes.add(1, ordering: .relaxed) }
            reached.store(isReached, ordering: .relaxed)
            sampling.nextSample = now + (resident > limit - limit / 4 ? Self.closeInterval : Self.relaxedInterval)
            return isReached
        }
    }

    /// Resident bytes of this process: the second field of `/proc/self/statm`, in pages.
    static func readResidentBytes() -> Int? {
        let fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 128)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        let fields = buffer[0..<count].split(separator: UInt8(ascii: " "))
        guard fields.count >= 2, let pages = Int(String(decoding: fields[1], as: UTF8.self)) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
