// Reading mosquitto 2.0's mosquitto.db: a file written by mosquitto 2.0.11 itself, and damaged variants of it.
import MQTTCodec
import XCTest

@testable import MidgeRecords
@testable import MidgeStore

final class MosquittoDatabaseTests: XCTestCase {
    /// mosquitto 2.0.11 after: retained QoS 1 `ret/a` and QoS 0 `ret/b`; client `sess1` (clean session 0)
    /// subscribed to `q/#` (QoS 1) and `x/+` (QoS 1), disconnected; then QoS 1 `q/1` and QoS 2 `q/2` published.
    static let fixtureHex = [
        "00b5006d6f7371756974746f2064620000000000000006000000010000001038000000000000000108000000000000000000020000005438",
        "0000000000000000000000000000000000000800010029000000036e0a02006175746f2d44333044353935412d354132382d304237312d44",
        "4542372d384646303843433846363630712f327175657565642d320000000200000054370000000000000000000000000000000000000800",
        "010029000000036e0a01006175746f2d35333943413645392d303534372d313542332d414534412d434337354439423044323034712f3171",
        "75657565642d310000000200000058360000000000000000000000000000000000000a00000029000000056e0a00016175746f2d33383445",
        "413744372d433732392d344339342d363736382d3633463534393832323337397265742f6272657461696e65642d42000000020000005835",
        "0000000000000000000000000000000000000a00010029000000056e0a01016175746f2d38463945443736342d363645412d453343422d42",
        "3943332d4642383132383641314541437265742f6172657461696e65642d41000000060000001d0000000000000000ffffffff000200056e",
        "0a00000000000073657373310000000300000015370000000000000000010005010b00017365737331000000030000001538000000000000",
        "0000020005010b0001736573733100000005000000140000000000050003010000007365737331712f230000000500000014000000000005",
        "0003010000007365737331782f2b0000000400000008350000000000000000000004000000083600000000000000",
    ]

    static var fixture: [UInt8] {
        let hex = Array(fixtureHex.joined().utf8)
        return stride(from: 0, to: hex.count, by: 2).map { index in
            UInt8(String(decoding: hex[index..<index + 2], as: UTF8.self), radix: 16) ?? 0
        }
    }

    func testReadsRetainedMessagesSessionsSubscriptionsAndQueuedMessages() throws {
        let database = try MosquittoDatabase(bytes: Self.fixture)
        XCTAssertEqual(database.retained.map(\.topic).sorted(), ["ret/a", "ret/b"])
        let retainedA = database.retained.first { $0.topic == "ret/a" }
        XCTAssertEqual(retainedA?.payload, Array("retained-A".utf8))
        XCTAssertEqual(retainedA?.qos, 1)
        XCTAssertEqual(Array(database.clients.keys), ["sess1"])
        let client = try XCTUnwrap(database.clients["sess1"])
        XCTAssertEqual(client.subscriptions.map(\.filter), ["q/#", "x/+"])
        XCTAssertEqual(client.subscriptions.map(\.qos), [1, 1])
        XCTAssertEqual(client.messages.map(\.topic), ["q/1", "q/2"])
        XCTAssertEqual(client.messages.map(\.payload), [Array("queued-1".utf8), Array("queued-2".utf8)])
        // Delivered at the subscription's QoS 1, as mosquitto queued them.
        XCTAssertEqual(client.messages.map(\.qos), [1, 1])
        XCTAssertEqual(database.skipped, [])
    }

    /// The records rebuild the same retained messages and session in this store's state.
    func testRecordsRebuildTheStateInThisStore() throws {
        let database = try MosquittoDatabase(bytes: Self.fixture)
        let (records, skipped) = database.records(firstMessageID: 7, unixSeconds: 1000)
        XCTAssertEqual(skipped, [])
        let state = StoreState(records: records)
        XCTAssertEqual(state.retained.count, 2)
        XCTAssertEqual(state.retained[TopicName("ret/b")!]?.payload, Array("retained-B".utf8))
        let session = try XCTUnwrap(state.sessions["sess1"])
        XCTAssertEqual(session.subscriptions.count, 2)
        XCTAssertEqual(session.queue.map(\.messageID), [7, 8])
        XCTAssertEqual(state.nextMessageID, 9)
    }

    func testDamagedFilesAreErrorsNotCrashes() {
        let fixture = Self.fixture
        XCTAssertThrowsError(try MosquittoDatabase(bytes: Array("not a database".utf8)))
        var otherVersion = fixture
        otherVersion[22] = 5
        XCTAssertThrowsError(try MosquittoDatabase(bytes: otherVersion))
        // Every truncation either reads cleanly up to a chunk boundary or reports the damage.
        for length in stride(from: 23, to: fixture.count, by: 1) {
            _ = try? MosquittoDatabase(bytes: Array(fixture.prefix(length)))
        }
        var hugeLength = fixture
        hugeLength[27...30] = [0xFF, 0xFF, 0xFF, 0xFF]
        XCTAssertThrowsError(try MosquittoDatabase(bytes: hugeLength))
    }
}
