// The core as the loops share it: loop 0 creates it and runs it every turn; any other loop runs it when it is free.
import MidgeCore
import Synchronization

/// Loop 0 holds `lock` for each of its turns. Another loop takes it only when it is free, at the end of its own
/// turn, to run its events through the core at once instead of handing them to loop 0: when the broker is quiet
/// a message then crosses no thread at all on its way from a publisher to a subscriber on the same loop, and one
/// at most to a subscriber elsewhere. When loop 0 is busy the other loops hand their events over as before, in
/// batches. Everything here is touched only by the thread holding `lock`, which is what makes it Sendable; debug
/// builds assert it on every access (`LoopLock.isHeldByCurrentThread`), release builds check nothing.
final class SharedCore: @unchecked Sendable {
    let lock = LoopLock()
    /// Set by loop 0 under the lock as it starts (after restoring from the store); nil until then.
    var broker: Broker? {
        get {
            assertLocked()
            return storedBroker
        }
        set {
            assertLocked()
            storedBroker = newValue
        }
    }
    /// The core's dropped-delivery count last published to `ServerState.droppedMessages`.
    var publishedDropCount: UInt64 {
        get {
            assertLocked()
            return storedDropCount
        }
        set {
            assertLocked()
            storedDropCount = newValue
        }
    }
    /// The core's clock: the time of the loop running it, or a later one another loop gave it before (see
    /// `EventLoop.startCoreRun`), so it never runs backwards.
    var latestNow: Int64 {
        get {
            assertLocked()
            return storedNow
        }
        set {
            assertLocked()
            storedNow = newValue
        }
    }

    private var storedBroker: Broker?
    private var storedDropCount: UInt64 = 0
    private var storedNow: Int64 = 0

    init() {}

    /// Whether the current thread may touch the core now: it holds `lock`. Always true in release builds.
    var isHeldByCurrentThread: Bool { lock.isHeldByCurrentThread }

    @inline(__always)
    private func assertLocked() {
        assert(lock.isHeldByCurrentThread, "the core touched without its lock")
    }
}
