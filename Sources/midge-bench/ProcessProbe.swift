// Reads another process's CPU time and resident memory from /proc, so the benchmark can charge the broker
// (not itself) for the work done.
import Glibc

struct ProcessProbe {
    let pid: Int32
    private let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// User + system CPU seconds the process has used so far, or nil if it is gone.
    func cpuSeconds() -> Double? {
        guard let stat = readSmallFile("/proc/\(pid)/stat") else { return nil }
        // The command name (field 2) may contain spaces; fields are counted after its closing parenthesis.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After ")": state is fields[0], so utime (field 14) is fields[11] and stime (15) is fields[12].
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / ticksPerSecond
    }

    /// Resident set size in bytes (VmRSS), or nil if it is gone.
    func residentBytes() -> Int? {
        guard let status = readSmallFile("/proc/\(pid)/status") else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kilobytes = line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
            return kilobytes.map { $0 * 1024 }
        }
        return nil
    }
}

func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes = [UInt8](repeating: 0, count: 16384)
    var total = 0
    while total < bytes.count {
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
        if n <= 0 { break }
        total += n
    }
    return String(decoding: bytes[0..<total], as: UTF8.self)
}

func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}
