// The debug-build ownership checks: a loop's state belongs to its thread or the holder of its turn lock, the core to
// the holder of its lock. Each check is asked directly, so a violation shows as false here instead of an assertion
// that would stop the test process.
import Foundation
import XCTest

@testable import MidgeServer

final class OwnershipTests: XCTestCase {
    /// Runs `body` on a thread of its own and returns what it returned.
    private func onAnotherThread(_ body: @escaping @Sendable () -> Bool) -> Bool {
        let answer = LoopLocked<Bool?>(nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            let value = body()
            answer.withLock { $0 = value }
            done.signal()
        }
        thread.start()
        done.wait()
        return answer.withLock { $0 } ?? false
    }

    private func skipInRelease() throws {
        #if !DEBUG
            throw XCTSkip("release builds keep no owner or holder to check")
        #endif
    }

    func testALoopLockKnowsWhetherTheCurrentThreadHoldsIt() throws {
        try skipInRelease()
        let lock = LoopLock()
        XCTAssertFalse(lock.isHeldByCurrentThread)
        lock.withLock {
            XCTAssertTrue(lock.isHeldByCurrentThread)
            XCTAssertFalse(onAnotherThread { lock.isHeldByCurrentThread }, "another thread is not the holder")
        }
        XCTAssertFalse(lock.isHeldByCurrentThread)
        let tried = lock.withLockIfAvailable { lock.isHeldByCurrentThread }
        XCTAssertEqual(tried, true)
        XCTAssertTrue(onAnotherThread { lock.withLock { lock.isHeldByCurrentThread } })
    }

    func testALoopBelongsToItsThreadAndToTheHolderOfItsTurnLock() throws {
        try skipInRelease()
        let owner = LoopOwner(turnLock: LoopLock())
        owner.claim()
        XCTAssertTrue(owner.isCurrentThreadAllowed)
        // The violation the assertions catch: a thread that is neither the loop's nor holds its turn lock.
        XCTAssertFalse(onAnotherThread { owner.isCurrentThreadAllowed })
        // A loop that ran the core, writing a small batch for this one while it sleeps (`deliverWhileAsleep`).
        XCTAssertTrue(onAnotherThread { owner.turnLock.withLock { owner.isCurrentThreadAllowed } })
        XCTAssertTrue(onAnotherThread { owner.turnLock.withLockIfAvailable { owner.isCurrentThreadAllowed } ?? false })
        // Let go, the other thread is out again.
        XCTAssertFalse(onAnotherThread { owner.isCurrentThreadAllowed })
    }

    func testALoopsTablesAskItsOwner() throws {
        try skipInRelease()
        let owner = LoopOwner(turnLock: LoopLock())
        owner.claim()
        var transports = TransportTable()
        var bridges = BridgeTable()
        #if DEBUG
            transports.owner = owner
            bridges.owner = owner
        #endif
        // Handed to another thread on purpose: that is the mistake the check is there to catch.
        nonisolated(unsafe) let checkedTransports = transports
        let checkedBridges = bridges
        XCTAssertTrue(transports.isOwnedByCurrentThread)
        XCTAssertTrue(bridges.isOwnedByCurrentThread)
        XCTAssertFalse(onAnotherThread { checkedTransports.isOwnedByCurrentThread })
        XCTAssertFalse(onAnotherThread { checkedBridges.isOwnedByCurrentThread })
        XCTAssertTrue(onAnotherThread { owner.turnLock.withLock { checkedTransports.isOwnedByCurrentThread } })
    }

    func testTheCoreBelongsToTheHolderOfItsLock() throws {
        try skipInRelease()
        let core = SharedCore()
        XCTAssertFalse(core.isHeldByCurrentThread)
        core.lock.withLock {
            XCTAssertTrue(core.isHeldByCurrentThread)
            core.latestNow = 5
            XCTAssertFalse(
                onAnotherThread { core.isHeldByCurrentThread }, "loop 0 holds it; another loop must not run it")
        }
        XCTAssertFalse(core.isHeldByCurrentThread)
        XCTAssertTrue(onAnotherThread { core.lock.withLock { core.isHeldByCurrentThread && core.latestNow == 5 } })
    }
}
