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
        if !spare.actions.spent.isEmpty { handle.returnSpent(&spare.actions) }
        return seen
    }

    func testTheNextProducerReleasesWhatTheLoopCarriedOut() {
        var spare = Mailbox()
        var noChanges: [ReadingChange] = []
        var (actions, firstMessage) = batch("one")
        handle.post(actions: &actions, readingChanges: &noChanges)
        XCTAssertEqual(consume(into: &spare), ["one"])
        XCTAssertNotNil(firstMessage(), "kept in the returned buffer until a producer takes it")

        let secondMessage: () -> Message?
        (actions, secondMessage) = batch("two")
        handle.post(actions: &actions, readingChanges: &noChanges)
        XCTAssertNil(firstMessage(), "released by the producer that took the buffer")
        XCTAssertTrue(actions.isEmpty)
        // The loop's next turn, with loop 0's tick between its take and its return: the tick finds nothing of this
        // turn's, and the loop frees nothing; the next tick releases it.
        handle.take(into: &spare)
        handle.releaseSpentActions()
        spare.actions.visit { _ in }
        handle.returnSpent(&spare.actions)
        XCTAssertNotNil(secondMessage(), "returned, not freed by the loop")
        handle.releaseSpentActions()
        XCTAssertNil(secondMessage())
    }

    func testLoopZerosTickReleasesWhatNoProducerReused() {
        var spare = Mailbox()
        var noChanges: [ReadingChange] = []
        var watchers: [() -> Message?] = []
        // Six batches before the loop looks (more than any buffer cap): all come back holding their message.
        for text in ["a", "b", "c", "d", "e", "f"] {
            var (actions, watcher) = batch(text)
            handle.post(actions: &actions, readingChanges: &noChanges)
            watchers.append(watcher)
        }
        XCTAssertEqual(consume(into: &spare), ["a", "b", "c", "d", "e", "f"])
        XCTAssertEqual(watchers.filter { $0() != nil }.count, 6, "none freed by the loop")

        handle.releaseSpentActions()
        XCTAssertEqual(watchers.filter { $0() != nil }.count, 0)
        // A later batch still arrives whole and in order.
        var (actions, _) = batch("g")
        handle.post(actions: &actions, readingChanges: &noChanges)
        XCTAssertEqual(consume(into: &spare), ["g"])
    }
}
