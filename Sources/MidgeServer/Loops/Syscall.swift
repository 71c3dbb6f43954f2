// The one door to the kernel: every system call the server makes goes through here, with one errno policy.
import CLinux
import Glibc

/// A failed system call: which call and why.
public struct SyscallError: Error, CustomStringConvertible {
    public let call: String
    public let errno: Int32

    public var description: String { "\(call) failed: \(String(cString: strerror(errno)))" }
}

/// What a non-blocking call can return besides an error: a result, or "try again when the fd is ready".
enum IOResult<Value> {
    case done(Value)
    case wouldBlock
}

/// The errno policy, in one place (as SwiftNIO's `syscall` wrapper does):
/// - EINTR: the call is retried; a signal is never an error.
/// - EAGAIN/EWOULDBLOCK: a value (`.wouldBlock`), the normal end of a non-blocking read, write or accept.
/// - EBADF/EFAULT: our bug (a closed fd or a bad pointer), never the network's doing: trap.
/// - anything else: thrown, for the caller to decide.
enum Syscall {
    @inline(__always)
    static func run(_ call: StaticString, _ body: () -> Int) throws(SyscallError) -> IOResult<Int> {
        while true {
            let result = body()
            if result >= 0 { return .done(result) }
            let error = Glibc.errno
            switch error {
            case EINTR:
                continue
            case EAGAIN, EWOULDBLOCK:
                return .wouldBlock
            case EBADF, EFAULT:
                fatalError("BUG: \(call) failed with \(String(cString: strerror(error)))")
            default:
                throw SyscallError(call: "\(call)", errno: error)
            }
        }
    }

    /// For calls that never legitimately block (socket, bind, epoll_ctl…): EAGAIN is an error there too.
    @inline(__always) @discardableResult
    static func blocking(_ call: StaticString, _ body: () -> Int32) throws(SyscallError) -> Int32 {
        switch try run(call, { Int(body()) }) {
        case .done(let value): return Int32(truncatingIfNeeded: value)
        case .wouldBlock: throw SyscallError(call: "\(call)", errno: EAGAIN)
        }
    }

    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SyscallError) -> IOResult<Int> {
        try run("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    static func write(_ fd: Int32, from buffer: UnsafeRawBufferPointer) throws(SyscallError) -> IOResult<Int> {
        try run("write") { Glibc.write(fd, buffer.baseAddress, buffer.count) }
    }

    /// Accepts one pending connection as a non-blocking, close-on-exec socket, with the peer's address.
    static func accept(_ fd: Int32, peer: inout sockaddr_storage) throws(SyscallError) -> IOResult<Int32> {
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = try run("accept4") {
            withUnsafeMutablePointer(to: &peer) { storage in
                storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                    Int(clinux_accept4(fd, address, &length, CLINUX_SOCK_NONBLOCK | CLINUX_SOCK_CLOEXEC))
                }
            }
        }
        switch result {
        case .done(let accepted): return .done(Int32(accepted))
        case .wouldBlock: return .wouldBlock
        }
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32 = 1) throws(SyscallError) {
        var value = value
        try blocking("setsockopt") { setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size)) }
    }

    /// Waits for events; EINTR returns no events instead of retrying, so the caller re-computes its timeout.
    static func epollWait(
        _ epollFD: Int32, into events: UnsafeMutableBufferPointer<epoll_event>, timeoutMilliseconds: Int32
    ) -> Int {
        let count = epoll_wait(epollFD, events.baseAddress, Int32(events.count), timeoutMilliseconds)
        if count >= 0 { return Int(count) }
        let error = Glibc.errno
        if error == EINTR { return 0 }
        fatalError("BUG: epoll_wait failed with \(String(cString: strerror(error)))")
    }

    /// Adds, changes or removes an fd's registration. `token` comes back in every event for it.
    static func epollControl(_ epollFD: Int32, _ operation: Int32, _ fd: Int32, events: UInt32, token: UInt64)
        throws(SyscallError)
    {
        var event = epoll_event()
        event.events = events
        event.data.u64 = token
        try blocking("epoll_ctl") { epoll_ctl(epollFD, operation, fd, &event) }
    }

    /// Closes an fd. EINTR is not retried: Linux has released the fd by then, and a retry could close a reused one.
    static func close(_ fd: Int32) {
        if Glibc.close(fd) < 0 && Glibc.errno == EBADF {
            fatalError("BUG: close of fd \(fd) that is not open")
        }
    }

    /// Wakes a loop blocked in epoll_wait on this eventfd. EAGAIN means the counter is already non-zero: awake.
    static func signalEventFD(_ fd: Int32) {
        var one: UInt64 = 1
        _ = try? run("eventfd write") { Glibc.write(fd, &one, 8) }
    }

    /// Resets an eventfd's counter so the next `signalEventFD` wakes epoll again.
    static func drainEventFD(_ fd: Int32) {
        var value: UInt64 = 0
        _ = try? run("eventfd read") { Glibc.read(fd, &value, 8) }
    }

    /// CLOCK_MONOTONIC in nanoseconds: never jumps with wall-clock changes, which is what deadlines need.
    static func monotonicNanoseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}
