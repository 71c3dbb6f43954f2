// The shared topic history: ids per message whatever the topic, resume in id order across a wildcard's topics, and
// every bound (per topic, age, bytes, topics) with the memory it frees.
import MQTTCodec
import XCTest

@testable import MidgeGateway

final class TopicHistoryTests: XCTestCase {
    private func message(_ topic: String, _ payload: String) -> GatewayMessage {
        GatewayMessage(topic: TopicName(topic)!, payload: Array(payload.utf8))
    }

    private func filters(_ texts: String...) -> [TopicFilter] { texts.map { TopicFilter($0)! } }

    private let second: Int64 = 1_000_000_000

    func testIdsRiseAcrossTopicsAndAWildcardResumesInRecordedOrder() {
        var history = TopicHistory(limits: TopicHistoryLimits())
        XCTAssertEqual(history.record(message("a/1", "x"), now: 0), 1)
        XCTAssertEqual(history.record(message("b", "y"), now: 0), 2)
        XCTAssertEqual(history.record(message("a/2", "z"), now: 0), 3)
        let after1 = history.events(after: 1, matching: filters("a/#"))
        XCTAssertEqual(after1.map(\.id), [3])
        XCTAssertEqual(history.events(after: 0, matching: filters("a/#", "b")).map(\.id), [1, 2, 3])
        XCTAssertEqual(history.events(after: 0, matching: filters("#"), limit: 2).map(\.id), [1, 2])
        XCTAssertEqual(history.newestID(matching: filters("a/+")), 3)
        XCTAssertEqual(history.newestID(matching: filters("b")), 2)
        XCTAssertNil(history.newestID(matching: filters("c")))
        XCTAssertEqual(history.info(TopicName("a/1")!).lastID, 1)
    }

    func testWildcardsDoNotMatchDollarTopics() {
        var history = TopicHistory(limits: TopicHistoryLimits())
        _ = history.record(message("$SYS/x", "s"), now: 0)
        XCTAssertEqual(history.events(after: 0, matching: filters("#")).count, 0)
        XCTAssertEqual(history.events(after: 0, matching: filters("+/x")).count, 0)
        XCTAssertEqual(history.events(after: 0, matching: filters("$SYS/#")).count, 1)
    }

    func testTopicNameFiltersFindWhatTheWalkFinds() {
        // Filters without wildcards take each topic's own ids; the answer must be the walk's, in the same order,
        // with the per-topic bound's holes and `limit` too.
        var history = TopicHistory(limits: TopicHistoryLimits(messagesPerTopic: 3))
        let topics = ["a", "b", "a/b", "$x", "c"]
        for index in 0..<60 { _ = history.record(message(topics[(index * 7) % topics.count], "\(index)"), now: 0) }
        let nothing = filters("never/+")  // a wildcard that matches nothing: forces the walk
        for chosen in [["a"], ["b", "a/b"], ["$x", "c", "a"], ["missing"]] {
            let literal = chosen.map { TopicFilter($0)! }
            for after in [0, history.lastID - 10, history.lastID - 2, history.lastID] {
                for limit in [1, 2, Int.max] {
                    XCTAssertEqual(
                        history.events(after: after, matching: literal, limit: limit).map(\.id),
                        history.events(after: after, matching: literal + nothing, limit: limit).map(\.id),
                        "\(chosen) after \(after) limit \(limit)")
                }
            }
        }
    }

    func testPerTopicBoundDropsThatTopicsOldestOnly() {
        var history = TopicHistory(limits: TopicHistoryLimits(messagesPerTopic: 2))
        _ = history.record(message("quiet", "q"), now: 0)
        for index in 0..<5 { _ = history.record(message("busy", "\(index)"), now: 0) }
        XCTAssertEqual(history.events(after: 0, matching: filters("busy")).map(\.id), [5, 6])
        XCTAssertEqual(history.events(after: 0, matching: filters("quiet")).map(\.id), [1])
        XCTAssertEqual(history.count, 3)
        XCTAssertEqual(history.info(TopicName("busy")!).count, 2)
    }

    func testAgeBytesAndTopicBounds() {
        var aged = TopicHistory(limits: TopicHistoryLimits(maxAgeSeconds: 10))
        _ = aged.record(message("t", "old"), now: 0)
        _ = aged.record(message("t", "new"), now: 5 * second)
        aged.expire(now: 11 * second)
        XCTAssertEqual(aged.events(after: 0, matching: filters("t")).map(\.id), [2])

        var small = TopicHistory(limits: TopicHistoryLimits(maxBytes: 10))
        _ = small.record(message("t", "12345"), now: 0)  // 6 bytes with the topic
        _ = small.record(message("t", "12345"), now: 0)
        XCTAssertEqual(small.byteCount, 6)
        _ = small.record(message("t", String(repeating: "x", count: 50)), now: 0)
        XCTAssertEqual(small.events(after: 0, matching: filters("t")).map(\.id), [3], "the newest stays")

        var few = TopicHistory(limits: TopicHistoryLimits(maxTopics: 2))
        _ = few.record(message("a", "1"), now: 0)
        _ = few.record(message("b", "2"), now: 0)
        _ = few.record(message("c", "3"), now: 0)
        XCTAssertEqual(few.topicCount, 2)
        XCTAssertEqual(few.events(after: 0, matching: filters("#")).map(\.id), [2, 3])
    }

    /// Many messages on a capped topic beside one long-lived message: holes are compacted, memory stays bounded.
    func testHolesAreCompacted() {
        var history = TopicHistory(limits: TopicHistoryLimits(messagesPerTopic: 10))
        _ = history.record(message("cold", "c"), now: 0)
        for index in 0..<20_000 { _ = history.record(message("hot", "\(index)"), now: 0) }
        XCTAssertEqual(history.count, 11)
        XCTAssertEqual(history.events(after: 0, matching: filters("#")).count, 11)
        XCTAssertEqual(history.events(after: 19_991, matching: filters("hot")).map(\.id), Array(19_992...20_001))
    }
}

/// The history's file form: a round trip keeps ids, topics, payloads, QoS and ages; damage of any kind is refused.
final class TopicHistoryFileTests: XCTestCase {
    private let second: Int64 = 1_000_000_000

    private func sample() -> TopicHistory {
        var history = TopicHistory(limits: TopicHistoryLimits())
        history.continueAbove(1000)
        let first = GatewayMessage(topic: TopicName("a/b")!, payload: Array("one".utf8), qos: .atLeastOnce)
        _ = history.record(first, now: 0)
        _ = history.record(GatewayMessage(topic: TopicName("c")!, payload: [0, 255, 10]), now: 10 * second)
        return history
    }

    func testRoundTripKeepsIdsMessagesAndAges() throws {
        let bytes = sample().encoded(wallNow: 5_000 * second, now: 20 * second)
        // Restarted: the monotonic clock began again, the wall clock moved on by 100 s.
        let restored = try XCTUnwrap(
            TopicHistory.decode(
                bytes, limits: TopicHistoryLimits(maxAgeSeconds: 115), wallNow: 5_100 * second, now: 3 * second))
        XCTAssertEqual(restored.lastID, 1002)
        let events = restored.events(after: 0, matching: [TopicFilter("#")!])
        XCTAssertEqual(events.map(\.id), [1002], "120 s and 110 s old now: the first is past the 115 s allowed")
        XCTAssertEqual(events.first?.message.payload, [0, 255, 10])
        let everything = try XCTUnwrap(
            TopicHistory.decode(bytes, limits: TopicHistoryLimits(), wallNow: 5_100 * second, now: 3 * second))
        XCTAssertEqual(
            everything.events(after: 0, matching: [TopicFilter("#")!]).map(\.message.qos), [.atLeastOnce, .atMostOnce])
    }

    func testDamagedOrTruncatedFilesAreRefused() {
        let bytes = sample().encoded(wallNow: 0, now: 0)
        XCTAssertNotNil(TopicHistory.decode(bytes, limits: TopicHistoryLimits(), wallNow: 0, now: 0))
        for cut in [0, 8, 20, bytes.count / 2, bytes.count - 1] {
            let cutBytes = Array(bytes.prefix(cut))
            XCTAssertNil(TopicHistory.decode(cutBytes, limits: TopicHistoryLimits(), wallNow: 0, now: 0))
        }
        for position in [9, 30, bytes.count - 6] {
            var flipped = bytes
            flipped[position] ^= 0x40
            XCTAssertNil(TopicHistory.decode(flipped, limits: TopicHistoryLimits(), wallNow: 0, now: 0), "\(position)")
        }
    }
}
