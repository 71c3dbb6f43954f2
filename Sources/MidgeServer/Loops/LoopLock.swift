// The locks the loops hand work over with: pthread's mutex, whose lock and try-lock ThreadSanitizer understands.
import Glibc
import Synchronization

/// Synchronization's `Mutex.withLockIfAvailable` takes the lock in a way ThreadSanitizer does not see as an acquire:
/// a two-thread counter under it is reported as a race although it never loses a count, and so was every run of the
/// core by a loop other than loop 0. The two locks that are tried (the core's, a loop's turn) use this instead:
/// pthread's mutex, which ThreadSanitizer intercepts for lock and try-lock alike, and which costs about what
/// `Mutex` does when uncontended. The mutex lives in its own allocation: it must not move.
///
/// Debug builds also record the thread holding it, so the ownership assertions (`LoopOwner`, `SharedCore`) can ask
/// whether the current thread holds it; release builds keep no such record.
final class LoopLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    #if DEBUG
        /// `pthread_self()` of the holder, 0 when free. Atomic: other threads read it to learn they are not the holder.
        private let holder = Atomic<UInt>(0)
    #endif

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
        noteAcquired()
        defer { release() }
        return try body()
    }

    /// Runs `body` only if the lock is free now; nil when another thread holds it.
    func withLockIfAvailable<Result>(_ body: () throws -> Result) rethrows -> Result? {
        guard pthread_mutex_trylock(mutex) == 0 else { return nil }
        noteAcquired()
        defer { release() }
        return try body()
    }

    /// Whether the current thread holds the lock. Debug builds only; release builds keep no holder and say true, so
    /// an assertion built on this never fires there (and is compiled out anyway).
    var isHeldByCurrentThread: Bool {
        #if DEBUG
            holder.load(ordering: .relaxed) == UInt(pthread_self())
        #else
            true
        #endif
    }

    @inline(__always)
    private func noteAcquired() {
        #if DEBUG
            holder.store(UInt(pthread_self()), ordering: .relaxed)
        #endif
    }

    @inline(__always)
    private func release() {
        #if DEBUG
            holder.store(0, ordering: .relaxed)
        #endif
        pthread_mutex_unlock(mutex)
    }
}

/// A value behind a `LoopLock`: a loop's mailbox, which producers fill while the loop or another thread holding a
/// tried lock takes from it, and every other lock the loops share (the logger's, the metrics', the auth gate's,
/// the request inboxes'). With Synchronization's `Mutex` here ThreadSanitizer saw no order between them either
/// (14 reports, every one on the mailbox).
final class LoopLocked<Value>: @unchecked Sendable {
    private let lock = LoopLock()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        try lock.withLock { try body(&value) }
    }
}
