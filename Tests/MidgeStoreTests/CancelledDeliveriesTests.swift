// Records cancelled before encoding: a message stored, delivered and acknowledged within one writer batch is never
// written, the state after recovery is what applying every record gives, and completions still wait their turn.
import MQTTCodec
import MQTTTestSupport
import Synchronization
import XCTest

@testable import MidgeRecords
@testable import MidgeStore

final class CancelledDeliveriesTests: XCTestCase {
    private func stored(_ id: UInt64) -> StoreRecord {
        .messageStored(id: id, topic: topic("m/\(id)"), payload: Array("body \(id)".utf8), qos: .atLeastOnce)
    }

    private func sent(_ client: String, _ id: UInt64, _ packetID: UInt16, state: DeliveryState = .publishSent)
        -> StoreRecord
    {
        .deliveryInFlight(
            clientID: client, messageID: id, packetID: packet(packetID), qos: .atLeastOnce, retain: false,
            state: state)
    }

    private func acked(_ client: String, _ packetID: UInt16) -> StoreRecord {
        .deliveryCompleted(clientID: client, delivery: .packet(packet(packetID)))
    }

    private func queued(_ client: String, _ id: UInt64) -> StoreRecord {
        .deliveryQueued(clientID: client, messageID: id, qos: .atLeastOnce, retain: false)
    }

    private let sessions: [StoreRecord] = [
        .sessionCreated(clientID: "a", unixSeconds: 1), .sessionCreated(clientID: "b", unixSeconds: 1),
        .subscriptionAdded(clientID: "a", filter: filter("m/#"), qos: .atLeastOnce),
    ]

    /// Which records of `batch` cancel, applied on top of `before`; checks the rest gives the same state as all.
    @discardableResult
    private func cancelledIndexes(
        _ batch: [StoreRecord], after before: [StoreRecord], file: StaticString = #filePath, line: UInt = #line
    ) -> [Int] {
        var state = StoreState(records: before)
        var cancelled = CancelledDeliveries()
        cancelled.examine(batch, against: &state)
        let indexes = batch.indices.filter { cancelled.isCancelled($0) }
        XCTAssertEqual(indexes.count, cancelled.count, file: file, line: line)
        var kept = state
        for index in batch.indices where !cancelled.isCancelled(index) { kept.apply(batch[index]) }
        XCTAssertEqual(kept, StoreState(records: before + batch), "the same state either way", file: file, line: line)
        return indexes
    }

    func testStoredSentAndAcknowledgedInOneBatchCancels() {
        let batch = [stored(1), sent("a", 1, 5), .inboundReceived(clientID: "b", packetID: packet(9)), acked("a", 5)]
        XCTAssertEqual(cancelledIndexes(batch, after: sessions), [0, 1, 3], "the inbound id stays")
    }

    func testQueuedThenSentThenAcknowledgedCancels() {
        let batch = [stored(1), queued("a", 1), stored(2), queued("a", 2), sent("a", 1, 1), acked("a", 1)]
        XCTAssertEqual(cancelledIndexes(batch, after: sessions), [0, 1, 4, 5], "message 2 still waits")
    }

    func testCompletedFromTheQueueCancels() {
        let batch = [stored(1), queued("a", 1), .deliveryCompleted(clientID: "a", delivery: .queued(messageID: 1))]
        XCTAssertEqual(cancelledIndexes(batch, after: sessions), [0, 1, 2])
    }

    func testAnotherDeliveryStillOpenKeepsEverything() {
        let batch = [stored(1), sent("a", 1, 5), queued("b", 1), acked("a", 5)]
        XCTAssertEqual(cancelledIndexes(batch, after: sessions), [], "b still needs the body")
    }

    func testAcknowledgementInALaterBatchKeepsEverything() {
        XCTAssertEqual(cancelledIndexes([stored(1), sent("a", 1, 5)], after: sessions), [])
        XCTAssertEqual(cancelledIndexes([acked("a", 5)], after: sessions + [stored(1), sent("a", 1, 5)]), [])
    }

    func testBodyAlreadyInTheStateKeepsEverything() {
        // A retained message stored again for a second subscriber: an earlier delivery still refers to it.
        let before = sessions + [stored(1), queued("b", 1)]
        XCTAssertEqual(cancelledIndexes([stored(1), sent("a", 1, 5), acked("a", 5)], after: before), [])
    }

    func testPubrelKeepsEverything() {
        let batch = [stored(1), sent("a", 1, 5), sent("a", 1, 5, state: .pubrelSent), acked("a", 5)]
        XCTAssertEqual(cancelledIndexes(batch, after: sessions), [])
    }

    func testPacketIDReusedWithinTheBatchMatchesEachAcknowledgementToItsDelivery() {
        let batch = [stored(1), sent("a", 1, 5), acked("a", 5), stored(2), sent("a", 2, 5), acked("a", 5)]
        XCTAssertEqual(cancelledIndexes(batch, after: sessions), [0, 1, 2, 3, 4, 5])
        let open = [stored(1), sent("a", 1, 5), acked("a", 5), stored(2), sent("a", 2, 5)]
        XCTAssertEqual(cancelledIndexes(open, after: sessions), [0, 1, 2])
    }

    func testDeliveryReplacingAnotherInFlightDeliveryKeepsBoth() {
        // Not what the core does, but the records say it: message 2 takes packet id 5 from message 1.
        let batch = [stored(1), sent("a", 1, 5), stored(2), sent("a", 2, 5), acked("a", 5)]
        XCTAssertEqual(cancelledIndexes(batch, after: sessions), [])
        let inState = sessions + [stored(7), sent("a", 7, 5)]
        XCTAssertEqual(cancelledIndexes([stored(2), sent("a", 2, 5), acked("a", 5)], after: inState), [])
    }

    func testSessionEndedOrUnknownKeepsEverything() {
        let ended = [stored(1), sent("a", 1, 5), .sessionEnded(clientID: "a"), acked("a", 5)]
        XCTAssertEqual(cancelledIndexes(ended, after: sessions), [])
        let endedFirst: [StoreRecord] = [.sessionEnded(clientID: "a"), stored(1), sent("a", 1, 5), acked("a", 5)]
        XCTAssertEqual(cancelledIndexes(endedFirst, after: sessions), [], "the body would stay, unreferenced")
        let unknown = [stored(1), sent("nobody", 1, 5), acked("nobody", 5)]
        XCTAssertEqual(cancelledIndexes(unknown, after: sessions), [])
        let created = [.sessionCreated(clientID: "new", unixSeconds: 2), stored(1), sent("new", 1, 5), acked("new", 5)]
        XCTAssertEqual(cancelledIndexes(created, after: sessions), [])
    }

    /// Random histories in the core's shapes, cut into random batches: whatever is cancelled, the state is the one
    /// applying every record gives, batch after batch.
    func testRandomHistoriesCutIntoBatchesGiveTheSameState() {
        var total = 0
        for seed in UInt64(1)...40 {
            let records = deliveryHistory(count: 3000, seed: seed)
            var state = StoreState()
            var applied: [StoreRecord] = []
            var cancelled = CancelledDeliveries()
            for batch in randomBatches(records, largest: 120, seed: seed) {
                cancelled.examine(batch, against: &state)
                total += cancelled.count
                for index in batch.indices where !cancelled.isCancelled(index) { state.apply(batch[index]) }
                applied += batch
                XCTAssertEqual(state, StoreState(records: applied), "seed \(seed) after \(applied.count) records")
                if state != StoreState(records: applied) { return }
            }
        }
        XCTAssertGreaterThan(total, 1000, "the histories exercise cancellation")
        print("cancelled \(total) of \(40 * 3000) records")
    }

    // MARK: Through the store

    /// The first fsync is held while `appends` arrive, so they all land in one batch after a blocker's. Returns the
    /// batches and records written from the blocker on, the records cancelled, and the order completions ran in.
    private func writeAsOneBatch(
        _ appends: [[StoreRecord]], after before: [StoreRecord], directory: TemporaryDirectory
    ) throws -> (batches: Int, records: Int, cancelled: Int, order: [Int]) {
        let fs = FaultyFileSystem()
        let (store, _, _) = try DurableStore.open(
            directory: directory.path, policy: .always, options: StoreOptions(), fileSystem: fs, log: { _, _ in })
        appendAndWait(store, before)
        let start = store.statistics
        let runs = Counter()
        fs.gateFirstSync.store(true, ordering: .releasing)
        let sequence = SequenceRecorder()
        store.append([.sessionSeen(clientID: "a", unixSeconds: 5)]) { sequence.record(0) }
        XCTAssertTrue(eventually { !fs.gateFirstSync.load(ordering: .acquiring) }, "the writer reached its fsync")
        for (index, records) in appends.enumerated() {
            store.append(records) {
                runs.increment()
                sequence.record(index + 1)
            }
        }
        XCTAssertEqual(runs.count, 0, "nothing completes before the fsync it waits for")
        fs.gate.signal()
        XCTAssertTrue(eventually { runs.count == appends.count })
        let end = store.statistics
        store.close()
        return (end.batches - start.batches, end.records - start.records, end.cancelledRecords, sequence.values)
    }

    func testCancelledRecordsAreNeverWrittenAndRecoveryGivesTheSameState() throws {
        let directory = TemporaryDirectory()
        // Publisher turn, subscriber's PUBACK in a later turn of the same batch, and a message still in flight.
        let appends: [[StoreRecord]] = [
            [stored(1), sent("a", 1, 1), .inboundReceived(clientID: "b", packetID: packet(3))],
            [stored(2), sent("a", 2, 2)],
            [acked("a", 1)],
        ]
        let written = try writeAsOneBatch(appends, after: sessions, directory: directory)
        XCTAssertEqual(written.order, [0, 1, 2, 3], "completions in append order")
        XCTAssertEqual(written.cancelled, 3)
        XCTAssertEqual(written.batches, 2)
        XCTAssertEqual(written.records, 1 + 3, "the blocker, message 2 and the inbound id")
        let (state, report) = try DurableStore.inspect(directory: directory.path)
        XCTAssertTrue(report.isClean, report.description)
        let blocker = StoreRecord.sessionSeen(clientID: "a", unixSeconds: 5)
        XCTAssertEqual(state, StoreState(records: sessions + [blocker] + appends.joined()))
        XCTAssertNil(state.messages[1])
        XCTAssertNotNil(state.messages[2])
        XCTAssertEqual(state.sessions["a"]?.inFlight.inSendOrder.map(\.messageID), [2])
        XCTAssertEqual(state.sessions["b"]?.inboundQoS2, [packet(3)])
    }

    /// A batch whose records all cancel writes nothing; its completions still run after the earlier batch's fsync.
    func testAFullyCancelledBatchWritesNothingAndCompletesInOrder() throws {
        let directory = TemporaryDirectory()
        let appends: [[StoreRecord]] = [[stored(1), sent("a", 1, 1)], [acked("a", 1)], []]
        let written = try writeAsOneBatch(appends, after: sessions, directory: directory)
        XCTAssertEqual(written.order, [0, 1, 2, 3])
        XCTAssertEqual(written.cancelled, 3)
        XCTAssertEqual(written.batches, 1, "the blocker's write, none for this batch")
        XCTAssertEqual(written.records, 1)
        let (state, report) = try DurableStore.inspect(directory: directory.path)
        XCTAssertTrue(report.isClean, report.description)
        XCTAssertEqual(state, StoreState(records: sessions + [.sessionSeen(clientID: "a", unixSeconds: 5)]))
    }
}

/// Values recorded from any thread, in the order they arrive.
final class SequenceRecorder: Sendable {
    private let recorded = Mutex<[Int]>([])
    func record(_ value: Int) { recorded.withLock { $0.append(value) } }
    var values: [Int] { recorded.withLock { $0 } }
}

/// Histories in the shapes the core writes for QoS 1/2 traffic to persistent sessions, with much churn: bodies
/// stored with their first deliveries, sent at once or queued, acknowledged soon or late, QoS 2 flows through
/// PUBREL, packet ids from a small range reused, retained bodies stored again for later subscribers, sessions
/// ending and coming back. Every record refers to things that exist, as the core's would.
func deliveryHistory(count: Int, seed: UInt64) -> [StoreRecord] {
    var random = SeededGenerator(state: seed)
    var records: [StoreRecord] = []
    var model = StoreState()
    var nextMessage: UInt64 = 1
    let clients = ["sub-0", "sub-1", "sub-2"]
    func emit(_ record: StoreRecord) {
        records.append(record)
        model.apply(record)
    }
    func freePacket(_ client: String) -> PacketID? {
        guard let session = model.sessions[client] else { return nil }
        return (1...8).lazy.compactMap(PacketID.init).first { session.inFlight[$0] == nil }
    }
    for client in clients { emit(.sessionCreated(clientID: client, unixSeconds: 0)) }
    while records.count < count {
        let client = clients[Int.random(in: 0..<clients.count, using: &random)]
        switch Int.random(in: 0..<100, using: &random) {
        case 0..<30:
            // A publish fanned out: stored once, sent where a packet id is free, queued elsewhere.
            let id = nextMessage
            nextMessage += 1
            let qos: QoS = Int.random(in: 0..<5, using: &random) == 0 ? .exactlyOnce : .atLeastOnce
            emit(.messageStored(id: id, topic: topic("t/\(id)"), payload: [UInt8(id & 0xFF)], qos: qos))
            for session in model.sessions.values.sorted(by: { $0.clientID < $1.clientID })
            where Bool.random(using: &random) || session.clientID == client {
                if session.queue.isEmpty, let packetID = freePacket(session.clientID) {
                    emit(
                        .deliveryInFlight(
                            clientID: session.clientID, messageID: id, packetID: packetID, qos: qos, retain: false,
                            state: .publishSent))
                } else {
                    emit(.deliveryQueued(clientID: session.clientID, messageID: id, qos: qos, retain: false))
                }
            }
        case 30..<40:
            guard let session = model.sessions[client], let first = session.queue.first,
                let packetID = freePacket(client)
            else { continue }
            emit(
                .deliveryInFlight(
                    clientID: client, messageID: first.messageID, packetID: packetID, qos: first.qos,
                    retain: first.retain, state: .publishSent))
        case 40..<75:
            guard let session = model.sessions[client],
                let done = session.inFlight.inSendOrder.randomElement(using: &random)
            else { continue }
            if done.qos == .exactlyOnce && done.state == .publishSent {
                emit(.deliveryInFlight(clientID: client, done, state: .pubrelSent))
            } else {
                emit(.deliveryCompleted(clientID: client, delivery: .packet(done.packetID)))
            }
        case 75..<79:
            guard let session = model.sessions[client], let last = session.queue.last else { continue }
            emit(.deliveryCompleted(clientID: client, delivery: .queued(messageID: last.messageID)))
        case 79..<84:
            // A resend: the same PUBLISH recorded again.
            guard let session = model.sessions[client],
                let again = session.inFlight.inSendOrder.first(where: { $0.state == .publishSent })
            else { continue }
            emit(.deliveryInFlight(clientID: client, again, state: .publishSent))
        case 84..<88:
            // A retained body stored again for a session subscribing later, under its first id.
            guard let id = model.messages.keys.sorted().randomElement(using: &random), let body = model.messages[id]
            else { continue }
            emit(.messageStored(id: id, topic: body.topic, payload: body.payload, qos: body.qos))
            emit(.deliveryQueued(clientID: client, messageID: id, qos: body.qos, retain: true))
        case 88..<91:
            emit(.inboundReceived(clientID: client, packetID: packet(UInt16.random(in: 1...20, using: &random))))
        case 91..<93:
            // Ended, and back at once or only later (deliveries meanwhile go nowhere, as the store ignores them).
            emit(.sessionEnded(clientID: client))
            if Bool.random(using: &random) { emit(.sessionCreated(clientID: client, unixSeconds: 0)) }
        case 93..<95:
            if model.sessions[client] == nil {
                emit(.sessionCreated(clientID: client, unixSeconds: Int64(records.count)))
            } else {
                emit(.sessionSeen(clientID: client, unixSeconds: Int64(records.count)))
            }
        default:
            guard let session = model.sessions[client],
                let id = session.inboundQoS2.min(by: { $0.rawValue < $1.rawValue })
            else { continue }
            emit(.inboundReleased(clientID: client, packetID: id))
        }
    }
    return records
}
