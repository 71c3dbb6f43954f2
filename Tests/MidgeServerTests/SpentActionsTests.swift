// Actions a loop carried out go back to the thread that runs the core with their messages still in them, so the
// messages are freed where they were allocated; an idle loop gives them up at loop 0's next tick.
import CLinux
import Glibc
import MQTTCodec
import MidgeCore
import XCTest

@testable import MidgeServer

final class SpentActionsTests: XCTestCase {
    private var handle: LoopHandle!

    override func setUpWithError() throws {
        let wakeFD = eventfd(0, CLINUX_EFD_NONBLOCK | CLINUX_EFD_CLOEXEC)
        XCTAssertGreaterThanOrEqual(wakeFD, 0)
        handle = LoopHandle(index: 1, epollFD: -1, wakeFD: wakeFD, listeners: [])
    }

    override func tearDown() {
        close(handle.wakeFD)
        handle = nil
    }

    /// A batch of one delivery of a fresh message, and a weak reference to see when the message is freed. The
    /// test keeps no other reference to the action.
    private func batch(_ text: String) -> ([Action], () -> Message?) {
        let message = Message(topic: TopicName("t")!, payload: Array(text.utf8), qos: .atMostOnce)
        weak let watched = message
        let action = Action.send(
            ConnectionID(loop: 1, serial: 1),
            .publish(Delivery(message: message, qos: .atMostOnce, retain: false, dup: false, packetID: nil)))
        return ([action], { watched })
    }

    /// The loop's side of a turn: takes the mailbox, carries the actions out (here: records their payloads) and
    /// returns the buffers.
    private func consume(into spare: inout Mailbox) -> [String] {
        handle.take(into: &spare)
        var seen: [String] = []
        spare.actions.visit { action in
            if case .send(_, .publish(let delivery)) = action {
                seen.append(String(decoding: delivery.message.payload, as: UTF8.self))
            }
        }
        if spare.actions.hasRecycled { handle.returnSpent(&spare.actions) }
        return seen
    }

    func testTheNextProducerReleasesWhatTheLoopCarriedOut() {
        var spare = Mailbox()
        var noChanges: [ReadingChange] = []
        var (actions, firstMessage) = batch("one")
        handle.post(actions: &actions, readingChanges: &noChanges)
        XCTAssertEqual(consume(into: &spare), ["one"])
        XCTAssertNotNil(firstMessage(), "kept in the returned buffer until a producer reuses it")

        let secondMessage: () -> Message?
        (actions, secondMessage) = batch("two")
        handle.post(actions: &actions, readingChanges: &noChanges)
        XCTAssertNil(firstMessage(), "released by the producer that reused the buffer")
        XCTAssertTrue(actions.isEmpty)
        XCTAssertEqual(consume(into: &spare), ["two"])
        XCTAssertNotNil(secondMessage())
    }

    func testLoopZerosTickReleasesWhatNoProducerReused() {
        var spare = Mailbox()
        var noChanges: [ReadingChange] = []
        var watchers: [() -> Message?] = []
        // Three batches before the loop looks: three buffers come back, all holding their message.
        for text in ["a", "b", "c"] {
            var (actions, watcher) = batch(text)
            handle.post(actions: &actions, readingChanges: &noChanges)
            watchers.append(watcher)
        }
        XCTAssertEqual(consume(into: &spare), ["a", "b", "c"])
        XCTAssertEqual(watchers.filter { $0() != nil }.count, 3)

        handle.releaseSpentActions()
        XCTAssertEqual(watchers.filter { $0() != nil }.count, 0)
        // The emptied buffers stay for producers; a later batch still arrives whole and in order.
        var (actions, _) = batch("d")
        handle.post(actions: &actions, readingChanges: &noChanges)
        XCTAssertEqual(consume(into: &spare), ["d"])
    }
}
