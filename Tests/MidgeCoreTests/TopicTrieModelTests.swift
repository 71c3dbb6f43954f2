// The path-compressed tries held against the plain definition of matching (`TopicFilter.matches`) over random
// subscribe / unsubscribe / store / delete sequences, with empty levels, `$` topics and shared prefixes.
import MQTTCodec
import XCTest

@testable import MidgeCore

final class TopicTrieModelTests: XCTestCase {
    /// A deterministic generator, so a failure replays.
    private struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var mixed = state
            mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
            mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
            return mixed ^ (mixed >> 31)
        }
    }

    private static let levels = ["a", "b", "ab", "", "$x"]

    private func randomTopic(_ random: inout SplitMix) -> TopicName {
        let depth = Int.random(in: 1...5, using: &random)
        var parts: [String] = []
        for _ in 0..<depth {
            var level = Self.levels.randomElement(using: &random)!
            if !parts.isEmpty && level.hasPrefix("$") { level = "c" }
            parts.append(level)
        }
        let joined = parts.joined(separator: "/")
        return TopicName(joined.isEmpty ? "a" : joined)!
    }

    private func randomFilter(_ random: inout SplitMix) -> TopicFilter {
        let depth = Int.random(in: 1...5, using: &random)
        var parts: [String] = []
        for index in 0..<depth {
            switch Int.random(in: 0..<10, using: &random) {
            case 0, 1: parts.append("+")
            case 2 where index == depth - 1: parts.append("#")
            default:
                var level = Self.levels.randomElement(using: &random)!
                if index > 0 && level.hasPrefix("$") { level = "c" }
                parts.append(level)
            }
        }
        let joined = parts.joined(separator: "/")
        return TopicFilter(joined.isEmpty ? "b" : joined)!
    }

    func test_subscriptionTrieMatchesTheDefinitionAfterEveryChange() {
        var random = SplitMix(state: 0x5EED)
        let trie = SubscriptionTrie()
        let sessions = (0..<6).map { Session(clientID: "s\($0)", serial: UInt64($0 + 1), cleanSession: true) }
        var model: [UInt64: Set<TopicFilter>] = [:]
        for step in 0..<3000 {
            let session = sessions.randomElement(using: &random)!
            let filter = randomFilter(&random)
            if Bool.random(using: &random) {
                let added = trie.subscribe(filter, session: session, qos: .atMostOnce)
                XCTAssertEqual(added, model[session.serial, default: []].insert(filter).inserted, "step \(step)")
            } else {
                let removed = trie.unsubscribe(filter, session: session)
                XCTAssertEqual(removed, model[session.serial]?.remove(filter) != nil, "step \(step): \(filter)")
            }
            for _ in 0..<4 {
                let topic = randomTopic(&random)
                var seen: [UInt64: Int] = [:]
                trie.forEachMatch(topic) { seen[$0.session.takeUnretainedValue().serial, default: 0] += 1 }
                var expected: [UInt64: Int] = [:]
                for (serial, filters) in model {
                    let count = filters.filter { $0.matches(topic) }.count
                    if count > 0 { expected[serial] = count }
                }
                XCTAssertEqual(seen, expected, "step \(step): topic \(topic)")
            }
        }
        // Everything removed again: only the root is left.
        for (serial, filters) in model {
            for filter in filters { XCTAssertTrue(trie.unsubscribe(filter, session: sessions[Int(serial) - 1])) }
        }
        XCTAssertEqual(trie.nodeCount, 0)
    }

    func test_retainedStoreMatchesTheDefinitionAfterEveryChange() {
        var random = SplitMix(state: 0xBEEF)
        let store = RetainedStore()
        var model: [TopicName: Int] = [:]
        for step in 0..<3000 {
            let topic = randomTopic(&random)
            if Int.random(in: 0..<3, using: &random) > 0 {
                store.store(Message(topic: topic, payload: [UInt8(step & 0xFF)], qos: .atMostOnce))
                model[topic] = step & 0xFF
            } else {
                store.remove(topic)
                model[topic] = nil
            }
            XCTAssertEqual(store.count, model.count)
            XCTAssertEqual(store.bytes, model.keys.reduce(0) { $0 + $1.bytes.count + 1 })
            let probe = randomTopic(&random)
            XCTAssertEqual(store.message(for: probe)?.payload.first.map(Int.init), model[probe], "step \(step)")
            for _ in 0..<3 {
                let filter = randomFilter(&random)
                var seen: [TopicName: Int] = [:]
                store.forEachMatch(filter) { message, _ in seen[message.topic, default: 0] += 1 }
                let expected = model.keys.filter { filter.matches($0) }
                XCTAssertEqual(Set(seen.keys), Set(expected), "step \(step): filter \(filter)")
                XCTAssertTrue(seen.values.allSatisfy { $0 == 1 }, "step \(step): a message seen twice for \(filter)")
            }
        }
    }

    func test_retainedLimitsRefuseNewTopicsAndOversizedReplacements() {
        let store = RetainedStore()
        func message(_ topic: String, _ size: Int) -> Message {
            Message(topic: TopicName(topic)!, payload: Array(repeating: 1, count: size), qos: .atMostOnce)
        }
        XCTAssertEqual(store.store(message("a", 9), maxCount: 2, maxBytes: 40), .stored)
        XCTAssertEqual(store.store(message("b", 9), maxCount: 2, maxBytes: 40), .stored)
        XCTAssertEqual(store.store(message("c", 1), maxCount: 2, maxBytes: 40), .refused, "count limit")
        XCTAssertEqual(store.store(message("a", 19), maxCount: 2, maxBytes: 40), .stored, "replacement within bytes")
        XCTAssertEqual(store.bytes, 30)
        XCTAssertEqual(store.store(message("b", 30), maxCount: 2, maxBytes: 40), .refused, "bytes limit")
        XCTAssertNil(store.message(for: TopicName("b")!), "a refused replacement deletes the stale message")
        XCTAssertEqual(store.count, 1)
        XCTAssertEqual(store.store(message("d", 1), maxCount: 0, maxBytes: 0, growthAllowed: false), .refused)
        XCTAssertEqual(store.store(message("a", 5), maxCount: 0, maxBytes: 0, growthAllowed: false), .stored)
    }
}
