// The store's queue lock: pthread's mutex, whose lock ThreadSanitizer understands.
import Glibc

/// A value behind a pthread mutex, for what loop 0 and the writer thread share. Synchronization's `Mutex` gave
/// ThreadSanitizer no order between them: it reported the appends and the writer's takes, each under the lock, as
/// races whenever they came close (as the server's own `LoopLocked` explains). Costs about what `Mutex` does when
/// uncontended; the mutex lives in its own allocation, since it must not move.
final class StoreLocked<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
