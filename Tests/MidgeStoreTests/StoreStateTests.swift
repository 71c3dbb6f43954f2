// Record semantics: what each record does to the state, and that a state's records rebuild it exactly.
import MQTTCodec
import XCTest

@testable import MidgeRecords
@testable import MidgeStore

final class StoreStateTests: XCTestCase {
    private func stored(_ id: UInt64, qos: QoS = .atLeastOnce) -> StoreRecord {
        .messageStored(id: id, topic: topic("m/\(id)"), payload: Array("body \(id)".utf8), qos: qos)
    }

    func testBodyIsDroppedWhenTheLastDeliveryReferringToItCompletes() {
        var state = StoreState(records: [
            .sessionCreated(clientID: "a", unixSeconds: 1),
            .sessionCreated(clientID: "b", unixSeconds: 1),
            stored(1),
            .deliveryQueued(clientID: "a", messageID: 1, qos: .atLeastOnce, retain: false),
            .deliveryQueued(clientID: "b", messageID: 1, qos: .atLeastOnce, retain: false),
        ])
        XCTAssertNotNil(state.messages[1])
        state.apply(
            .deliveryInFlight(
                clientID: "a", messageID: 1, packetID: packet(5), qos: .atLeastOnce, retain: false,
                state: .publishSent))
        XCTAssertTrue(state.sessions["a"]?.queue.isEmpty ?? false, "sending takes the delivery off the queue")
        XCTAssertEqual(state.sessions["a"]?.inFlight[packet(5)]?.messageID, 1)
        state.apply(.deliveryCompleted(clientID: "a", delivery: .packet(packet(5))))
        XCTAssertNotNil(state.messages[1], "b still has it queued")
        state.apply(.deliveryCompleted(clientID: "b", delivery: .queued(messageID: 1)))
        XCTAssertNil(state.messages[1])
        XCTAssertTrue(state.sessions["b"]?.queue.isEmpty ?? false)
        XCTAssertEqual(state, StoreState(records: state.records))
    }

    /// The same PUBLISH recorded in flight again (a resend moved to the end of the order) keeps its own reference:
    /// it must not take a second queued copy of the message off the queue and drop it.
    func testRecordingAnInFlightPublishAgainLeavesQueuedCopiesAlone() {
        var state = StoreState(records: [
            .sessionCreated(clientID: "a", unixSeconds: 1),
            stored(1),
            stored(2),
            .deliveryQueued(clientID: "a", messageID: 1, qos: .atLeastOnce, retain: false),
            .deliveryQueued(clientID: "a", messageID: 1, qos: .atLeastOnce, retain: false),
        ])
        let sent = StoreRecord.deliveryInFlight(
            clientID: "a", messageID: 1, packetID: packet(5), qos: .atLeastOnce, retain: false, state: .publishSent)
        let other = StoreRecord.deliveryInFlight(
            clientID: "a", messageID: 2, packetID: packet(6), qos: .atLeastOnce, retain: false, state: .publishSent)
        state.apply(sent)
        state.apply(other)
        state.apply(sent)
        XCTAssertEqual(state.sessions["a"]?.queue.map(\.messageID), [1], "the second copy is still queued")
        XCTAssertEqual(state.sessions["a"]?.inFlight.inSendOrder.map(\.packetID), [packet(6), packet(5)])
        state.apply(.deliveryCompleted(clientID: "a", delivery: .packet(packet(5))))
        XCTAssertNotNil(state.messages[1], "the queued copy still needs the body")
        state.apply(.deliveryCompleted(clientID: "a", delivery: .queued(messageID: 1)))
        XCTAssertNil(state.messages[1])
        XCTAssertEqual(state, StoreState(records: state.records))
    }

    func testQoS2FlowKeepsThePubrelAfterTheBodyIsGone() {
        var state = StoreState(records: [
            .sessionCreated(clientID: "a", unixSeconds: 1),
            stored(1, qos: .exactlyOnce),
            .deliveryInFlight(
                clientID: "a", messageID: 1, packetID: packet(9), qos: .exactlyOnce, retain: true, state: .publishSent),
        ])
        state.apply(
            .deliveryInFlight(
                clientID: "a", messageID: 1, packetID: packet(9), qos: .exactlyOnce, retain: true, state: .pubrelSent))
        XCTAssertNil(state.messages[1], "a PUBREL is resent without the message [MQTT-4.3.3-1]")
        XCTAssertEqual(state.sessions["a"]?.inFlight[packet(9)]?.state, .pubrelSent)
        XCTAssertEqual(state, StoreState(records: state.records), "a snapshot keeps the PUBREL with no body")
        state.apply(.deliveryCompleted(clientID: "a", delivery: .packet(packet(9))))
        XCTAssertTrue(state.sessions["a"]?.inFlight.isEmpty ?? false)
    }

    /// Resend order: PUBLISHes in the order first sent, PUBRELs in the order PUBREC arrived [MQTT-4.6.0-1].
    func testInFlightOrderFollowsTheLatestTransition() {
        var state = StoreState(records: [
            .sessionCreated(clientID: "a", unixSeconds: 1), stored(1), stored(2), stored(3),
        ])
        for (id, raw) in [(UInt64(1), UInt16(10)), (2, 11), (3, 12)] {
            state.apply(
                .deliveryInFlight(
                    clientID: "a", messageID: id, packetID: packet(raw), qos: .exactlyOnce, retain: false,
                    state: .publishSent))
        }
        state.apply(
            .deliveryInFlight(
                clientID: "a", messageID: 1, packetID: packet(10), qos: .exactlyOnce, retain: false, state: .pubrelSent)
        )
        let order = state.sessions["a"]?.inFlight.inSendOrder.map(\.packetID.rawValue)
        XCTAssertEqual(order, [11, 12, 10])
        XCTAssertEqual(
            StoreState(records: state.records).sessions["a"]?.inFlight.inSendOrder.map(\.packetID.rawValue), order)
    }

    func testQueueIsFirstInFirstOutAndKeepsDuplicates() {
        var state = StoreState(records: [.sessionCreated(clientID: "a", unixSeconds: 1), stored(1), stored(2)])
        for id in [UInt64(1), 2, 1] {
            state.apply(.deliveryQueued(clientID: "a", messageID: id, qos: .atLeastOnce, retain: false))
        }
        state.apply(
            .deliveryInFlight(
                clientID: "a", messageID: 1, packetID: packet(1), qos: .atLeastOnce, retain: false, state: .publishSent)
        )
        XCTAssertEqual(state.sessions["a"]?.queue.map(\.messageID), [2, 1])
        state.apply(.deliveryCompleted(clientID: "a", delivery: .packet(packet(1))))
        XCTAssertNotNil(state.messages[1], "the second queued copy still refers to it")
        XCTAssertEqual(state, StoreState(records: state.records))
    }

    func testEndingASessionReleasesItsBodies() {
        var state = StoreState(records: [
            .sessionCreated(clientID: "a", unixSeconds: 1),
            .subscriptionAdded(clientID: "a", filter: filter("#"), qos: .atLeastOnce),
            stored(1), stored(2),
            .deliveryQueued(clientID: "a", messageID: 1, qos: .atLeastOnce, retain: false),
            .deliveryInFlight(
                clientID: "a", messageID: 2, packetID: packet(1), qos: .atLeastOnce, retain: false,
                state: .publishSent),
            .inboundReceived(clientID: "a", packetID: packet(4)),
        ])
        state.apply(.sessionEnded(clientID: "a"))
        XCTAssertEqual(state, StoreState())
    }

    func testSessionCreatedTwiceKeepsTheSession() {
        var state = StoreState(records: [
            .sessionCreated(clientID: "a", unixSeconds: 1),
            .subscriptionAdded(clientID: "a", filter: filter("x/+"), qos: .atMostOnce),
        ])
        state.apply(.sessionCreated(clientID: "a", unixSeconds: 50))
        XCTAssertEqual(state.sessions["a"]?.subscriptions, [filter("x/+"): .atMostOnce])
        XCTAssertEqual(state.sessions["a"]?.lastSeen, 50)
    }

    /// The same filter again replaces the granted QoS [MQTT-3.8.4-3].
    func testSubscriptionsReplaceAndRemove() {
        var state = StoreState(records: [
            .sessionCreated(clientID: "a", unixSeconds: 1),
            .subscriptionAdded(clientID: "a", filter: filter("x"), qos: .atMostOnce),
            .subscriptionAdded(clientID: "a", filter: filter("x"), qos: .exactlyOnce),
            .subscriptionAdded(clientID: "a", filter: filter("y"), qos: .atLeastOnce),
        ])
        XCTAssertEqual(state.sessions["a"]?.subscriptions, [filter("x"): .exactlyOnce, filter("y"): .atLeastOnce])
        state.apply(.subscriptionRemoved(clientID: "a", filter: filter("x")))
        XCTAssertEqual(state.sessions["a"]?.subscriptions, [filter("y"): .atLeastOnce])
    }

    /// An empty retained payload deletes and is not stored itself [MQTT-3.3.1-10][MQTT-3.3.1-11].
    func testRetainedSetReplaceClear() {
        var state = StoreState(records: [
            .retainedSet(topic: topic("r"), payload: [1], qos: .atLeastOnce),
            .retainedSet(topic: topic("r"), payload: [2], qos: .atMostOnce),
            .retainedSet(topic: topic("s"), payload: [3], qos: .atMostOnce),
        ])
        XCTAssertEqual(state.retained[topic("r")], RetainedMessage(payload: [2], qos: .atMostOnce))
        state.apply(.retainedCleared(topic: topic("r")))
        state.apply(.retainedSet(topic: topic("s"), payload: [], qos: .atMostOnce))
        XCTAssertTrue(state.retained.isEmpty)
    }

    func testInboundQoS2Ids() {
        var state = StoreState(records: [
            .sessionCreated(clientID: "a", unixSeconds: 1),
            .inboundReceived(clientID: "a", packetID: packet(1)),
            .inboundReceived(clientID: "a", packetID: packet(2)),
            .inboundReleased(clientID: "a", packetID: packet(1)),
        ])
        XCTAssertEqual(state.sessions["a"]?.inboundQoS2, [packet(2)])
        state.apply(.inboundReleased(clientID: "a", packetID: packet(2)))
        XCTAssertEqual(state.sessions["a"]?.inboundQoS2, [])
    }

    /// Records for sessions that do not exist, or deliveries of bodies never stored, change nothing.
    func testRecordsForUnknownSessionsOrBodiesAreIgnored() {
        let state = StoreState(records: [
            .subscriptionAdded(clientID: "nobody", filter: filter("#"), qos: .atLeastOnce),
            .inboundReceived(clientID: "nobody", packetID: packet(1)),
            .sessionSeen(clientID: "nobody", unixSeconds: 5),
            .sessionCreated(clientID: "a", unixSeconds: 1),
            .deliveryQueued(clientID: "a", messageID: 77, qos: .atLeastOnce, retain: false),
            .deliveryInFlight(
                clientID: "a", messageID: 77, packetID: packet(1), qos: .atLeastOnce, retain: false, state: .publishSent
            ),
            .deliveryCompleted(clientID: "a", delivery: .packet(packet(3))),
        ])
        XCTAssertEqual(state, StoreState(records: [.sessionCreated(clientID: "a", unixSeconds: 1)]))
    }

    func testExpiredSessions() {
        let state = StoreState(records: [
            .sessionCreated(clientID: "old", unixSeconds: 100),
            .sessionCreated(clientID: "edge", unixSeconds: 200),
            .sessionCreated(clientID: "new", unixSeconds: 100),
            .sessionSeen(clientID: "new", unixSeconds: 250),
        ])
        XCTAssertEqual(state.expiredSessions(now: 300, olderThan: 100), ["edge", "old"])
        XCTAssertEqual(state.expiredSessions(now: 300, olderThan: 1000), [])
    }

    /// Times are whatever the records on disk say: extreme ones must not trap when the age is computed.
    func testExpiredSessionsWithExtremeTimes() {
        let state = StoreState(records: [
            .sessionCreated(clientID: "ancient", unixSeconds: Int64.min),
            .sessionCreated(clientID: "future", unixSeconds: Int64.max),
        ])
        XCTAssertEqual(state.expiredSessions(now: 300, olderThan: 100), ["ancient"])
        XCTAssertEqual(state.expiredSessions(now: Int64.min, olderThan: 0), ["ancient"])
        XCTAssertEqual(state.expiredSessions(now: Int64.max, olderThan: 1), ["ancient"])
    }

    func testNextMessageIDIsPastEveryIDInUse() {
        XCTAssertEqual(StoreState().nextMessageID, 1)
        var state = StoreState(records: [.sessionCreated(clientID: "a", unixSeconds: 1), stored(4), stored(9)])
        state.apply(
            .deliveryInFlight(
                clientID: "a", messageID: 9, packetID: packet(1), qos: .exactlyOnce, retain: false, state: .publishSent)
        )
        state.apply(
            .deliveryInFlight(
                clientID: "a", messageID: 9, packetID: packet(1), qos: .exactlyOnce, retain: false, state: .pubrelSent))
        XCTAssertNil(state.messages[9])
        XCTAssertEqual(state.nextMessageID, 10, "the PUBREL still names message 9")
    }

    /// The snapshot's contract: a state's records rebuild it, at every point of a long history.
    func testRecordsRebuildTheStateThroughoutAHistory() {
        let history = brokerHistory(count: 3000, seed: 42)
        var state = StoreState()
        for (index, record) in history.enumerated() {
            state.apply(record)
            if index % 100 == 0 || index == history.count - 1 {
                XCTAssertEqual(StoreState(records: state.records), state, "after record \(index)")
                XCTAssertEqual(state.records.count, state.recordCount)
            }
        }
        XCTAssertFalse(state.sessions.isEmpty)
        XCTAssertFalse(state.messages.isEmpty)
    }
}
