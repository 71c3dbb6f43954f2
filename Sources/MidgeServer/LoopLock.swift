// The lock of a loop's turn and of the shared core: pthread's mutex, whose try-lock ThreadSanitizer understands.
import Glibc

/// Synchronization's `Mutex.withLockIfAvailable` takes the lock in a way ThreadSanitizer does not see as an acquire:
/// a two-thread counter under it is reported as a race although it never loses a count, and so was every run of the
/// core by a loop other than loop 0. The two locks that are tried (the core's, a loop's turn) use this instead:
/// pthread's mutex, which ThreadSanitizer intercepts for lock and try-lock alike, and which costs about what
/// `Mutex` does when uncontended. The mutex lives in its own allocation: it must not move.
final class LoopLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    func withLock<Result>(_ body: () throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Runs `body` only if the lock is free now; nil when another thread holds it.
    func withLockIfAvailable<Result>(_ body: () throws -> Result) rethrows -> Result? {
        guard pthread_mutex_trylock(mutex) == 0 else { return nil }
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}
