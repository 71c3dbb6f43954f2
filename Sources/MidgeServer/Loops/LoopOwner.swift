// Debug builds check that a loop's state is touched only where the design says: on the loop's own thread, or by a
// thread holding its turn lock. Release builds keep nothing and check nothing.
import Glibc
import Synchronization

/// Who may touch one event loop's state (the `EventLoop`, its connections, their transports, its tables): the loop's
/// thread, recorded as it starts (`claim`), or whoever holds the loop's turn lock — another loop that ran the core
/// and writes a small batch for it while it sleeps (`EventLoop.deliverWhileAsleep`). The loop claims it first thing
/// in its `init`, which runs on the loop's own thread.
///
/// Why check at all: the loop's hot fields are `@exclusivity(unchecked)` and the classes around them are not
/// `Sendable`-checked, so nothing in the compiler stops a new path from touching a loop from the wrong thread; these
/// assertions do, in every debug build and test run, at the entry points that mutate loop state.
final class LoopOwner: Sendable {
    let turnLock: LoopLock
    #if DEBUG
        /// `pthread_self()` of the loop's thread, 0 until it claims the loop.
        private let thread = Atomic<UInt>(0)
    #endif

    init(turnLock: LoopLock) {
        self.turnLock = turnLock
    }

    /// The loop's thread, as it starts.
    func claim() {
        #if DEBUG
            thread.store(UInt(pthread_self()), ordering: .relaxed)
        #endif
    }

    /// Whether the current thread may touch the loop's state now. Always true in release builds, which keep no
    /// record; callers `assert` it, which release builds compile out.
    var isCurrentThreadAllowed: Bool {
        #if DEBUG
            return thread.load(ordering: .relaxed) == UInt(pthread_self()) || turnLock.isHeldByCurrentThread
        #else
            return true
        #endif
    }
}

extension EventLoop {
    /// Whether the current thread may touch this loop now (see `LoopOwner`); always true in release builds.
    var isOwnedByCurrentThread: Bool { handle.owner.isCurrentThreadAllowed }

    /// At the entry points that change the loop's state. Compiled out of release builds.
    @inline(__always)
    func assertOwned(_ function: StaticString = #function) {
        assert(handle.owner.isCurrentThreadAllowed, "event loop \(index) touched off its thread in \(function)")
    }

    /// At the entry points that run the core. Compiled out of release builds.
    @inline(__always)
    func assertRunsCore(_ function: StaticString = #function) {
        assert(runningCore && sharedCore.isHeldByCurrentThread, "the core run without its lock in \(function)")
    }
}
