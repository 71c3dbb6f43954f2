// Writes the store the restart benchmark starts midge on: 1 million retained messages and 100,000 persistent
// sessions. Runs only when the benchmark asks for it (MIDGE_RESTART_FIXTURE names the directory to fill).
import Foundation
import MQTTCodec
import MidgeStore
import XCTest

@testable import MidgeRecords

final class RestartFixture: XCTestCase {
    func test_writeRestartFixture() throws {
        let environment = ProcessInfo.processInfo.environment
        guard let directory = environment["MIDGE_RESTART_FIXTURE"] else {
            throw XCTSkip("set MIDGE_RESTART_FIXTURE=DIR to write the restart benchmark's store")
        }
        let retainedCount = Int(environment["MIDGE_RESTART_RETAINED"] ?? "") ?? 1_000_000
        let sessionCount = Int(environment["MIDGE_RESTART_SESSIONS"] ?? "") ?? 100_000
        let (store, _, _) = try DurableStore.open(directory: directory, policy: .none)
        let payload = [UInt8](repeating: UInt8(ascii: "x"), count: 100)
        var batch: [StoreRecord] = []
        batch.reserveCapacity(10_000)
        func flush() {
            store.append(batch)
            batch.removeAll(keepingCapacity: true)
        }
        for number in 0..<retainedCount {
            // 1000 topics per branch, like devices under sites.
            guard let topic = TopicName("fixture/site\(number / 1000)/device\(number % 1000)/state") else {
                return XCTFail("fixture topic \(number)")
            }
            batch.append(.retainedSet(topic: topic, payload: payload, qos: .atLeastOnce))
            if batch.count == 10_000 { flush() }
        }
        let now = Int64(Date().timeIntervalSince1970)
        var messageID: UInt64 = 1
        for number in 0..<sessionCount {
            let clientID = "fixture-client-\(number)"
            batch.append(.sessionCreated(clientID: clientID, unixSeconds: now))
            guard let filter = TopicFilter("fixture/site\(number % 1000)/+/state"),
                let topic = TopicName("fixture/site\(number % 1000)/alarm")
            else { return XCTFail("fixture filter \(number)") }
            batch.append(.subscriptionAdded(clientID: clientID, filter: filter, qos: .atLeastOnce))
            // Every tenth session has a message waiting for it.
            if number % 10 == 0 {
                batch.append(.messageStored(id: messageID, topic: topic, payload: payload, qos: .atLeastOnce))
                batch.append(
                    .deliveryQueued(clientID: clientID, messageID: messageID, qos: .atLeastOnce, retain: false))
                messageID += 1
            }
            if batch.count >= 10_000 { flush() }
        }
        flush()
        store.close()
        let (state, report) = try DurableStore.inspect(directory: directory)
        print("restart fixture: \(state.retained.count) retained, \(state.sessions.count) sessions; \(report)")
        XCTAssertEqual(state.retained.count, retainedCount)
        XCTAssertEqual(state.sessions.count, sessionCount)
    }
}
