// Deliveries to a loop that sleeps in epoll_wait are written by the loop that ran the core, under the sleeper's
// turn lock (`EventLoop.deliverWhileAsleep`): the sleeper is not woken, and what it must still do itself is not lost.
import Glibc
import MQTTCodec
import MQTTTestSupport
import XCTest

@testable import MidgeServer

final class SleepingLoopDeliveryTests: XCTestCase {
    /// A subscriber to `topic` on loop 0 or on another loop, and a connected publisher on a loop other than its.
    private func connectPair(
        _ running: RunningServer, _ subscriberOnLoopZero: Bool, topic: String
    ) throws -> (subscriber: RawClient, publisher: RawClient, subscriberLoop: Int) {
        let (subscriber, loop) = try running.client(onLoopOtherThan: subscriberOnLoopZero ? [1, 2] : [0])
        let (publisher, _) = try running.client(onLoopOtherThan: [loop])
        try subscriber.connect("sub")
        try subscriber.subscribe(topic)
        try publisher.connect("pub")
        return (subscriber, publisher, loop)
    }

    /// A subscriber alone on its loop (loop 0, which runs the core, or another) gets a one-at-a-time QoS 0 stream
    /// from a publisher on another loop. Nothing arrives on the subscriber's socket, so its loop has no reason to
    /// wake: the deliveries are written for it.
    func testDeliveriesToASleepingLoopAreWrittenWithoutWakingIt() throws {
        for subscriberOnLoopZero in [true, false] {
            let running = try RunningServer()
            defer { running.stop() }
            let (subscriber, publisher, loop) = try connectPair(running, subscriberOnLoopZero, topic: "stream")
            let before = running.metrics.loopTurns[loop]

            let messages = 50
            for sequence in 0..<messages {
                try publisher.publish("stream", [UInt8(sequence)])
                let received = try subscriber.receivePublish()
                XCTAssertEqual(received.payload, [UInt8(sequence)])
            }

            let after = running.metrics.loopTurns[loop]
            let written = after.whileAsleep - before.whileAsleep
            let woken = after.own - before.own
            // Loop 0 also wakes for its 100 ms tick; a handful of turns either way is not the point.
            XCTAssertGreaterThanOrEqual(
                written, UInt64(messages / 2), "loop \(loop): \(written) batches written for it")
            XCTAssertLessThan(woken, UInt64(messages / 2), "loop \(loop) woke \(woken) times for \(messages) messages")
        }
    }

    /// Single messages, written for the sleeping subscriber loop, alternate with bursts of 40 in one write (a batch
    /// too large to write for it, so it goes through its mailbox): every message arrives once and in order
    /// [MQTT-4.6.0-6], whichever way each went.
    func testSmallAndLargeBatchesToASleepingLoopKeepTheirOrder() throws {
        for subscriberOnLoopZero in [true, false] {
            let running = try RunningServer()
            defer { running.stop() }
            let (subscriber, publisher, loop) = try connectPair(running, subscriberOnLoopZero, topic: "mixed")
            var next = 0
            var expected = 0
            for round in 0..<20 {
                let count = round % 2 == 0 ? 1 : 40
                var wire: [UInt8] = []
                for _ in 0..<count {
                    let payload = withUnsafeBytes(of: UInt32(next).bigEndian) { Array($0) }
                    Packet.publish(Publish(topic: TopicName("mixed")!, payload: payload)).encode(into: &wire)
                    next += 1
                }
                try publisher.send(wire)
                for _ in 0..<count {
                    let received = try subscriber.receivePublish()
                    XCTAssertEqual(received.payload.reduce(0) { $0 << 8 | Int($1) }, expected, "loop \(loop)")
                    expected += 1
                }
            }
            XCTAssertEqual(expected, next)
        }
    }

    /// With an output window of 8 KiB, a 1 KiB stream needs a confirmation from the subscriber's loop every few
    /// messages. Those deliveries are written while that loop sleeps, so its confirmations are reports made
    /// outside its own turn: they must still reach the core (for loop 0 too, which hands nothing to anyone), or the
    /// window stays shut and the stream stops.
    func testOutputConfirmationsMadeWhileAsleepReachTheCore() throws {
        for subscriberOnLoopZero in [true, false] {
            let running = try RunningServer { $0.broker.outputWindowBytes = 8 * 1024 }
            defer { running.stop() }
            let (subscriber, publisher, loop) = try connectPair(running, subscriberOnLoopZero, topic: "window")
            let before = running.metrics.loopTurns[loop].whileAsleep

            let messages = 200
            for sequence in 0..<messages {
                let payload = [UInt8](repeating: UInt8(truncatingIfNeeded: sequence), count: 1024)
                try publisher.publish("window", payload)
                let received = try subscriber.receivePublish()
                XCTAssertEqual(received.payload, payload, "message \(sequence), loop \(loop)")
            }
            XCTAssertGreaterThan(running.metrics.loopTurns[loop].whileAsleep, before)
        }
    }
}
