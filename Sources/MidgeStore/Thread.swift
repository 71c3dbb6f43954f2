// Plain pthreads for the writer and snapshot threads: they block in fsync, which must not tie up Dispatch workers.
import CLinux
import Glibc

private final class ThreadBody: Sendable {
    let name: String
    let body: @Sendable () -> Void
    init(name: String, body: @escaping @Sendable () -> Void) {
        self.name = name
        self.body = body
    }
}

/// Starts a joinable thread named `name` (shown by `top -H` and debuggers; Linux keeps 15 bytes of it); the caller
/// joins it. Also the server's event loops: they block in `epoll_wait`, which Dispatch workers must not either.
public func startThread(name: String, _ body: @escaping @Sendable () -> Void) -> pthread_t {
    let context = Unmanaged.passRetained(ThreadBody(name: name, body: body)).toOpaque()
    var thread = pthread_t()
    let result = pthread_create(
        &thread, nil,
        { argument in
            guard let argument else { return nil }
            let box = Unmanaged<ThreadBody>.fromOpaque(argument).takeRetainedValue()
            _ = clinux_pthread_setname_np(pthread_self(), String(box.name.utf8.prefix(15)) ?? box.name)
            box.body()
            return nil
        }, context)
    precondition(result == 0, "pthread_create failed: \(String(cString: strerror(result)))")
    return thread
}

/// Monotonic nanoseconds.
func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}
