// What the topic tries cost in heap bytes per node and per subscription (measured with the allocator's own count,
// not timed): the figures `Docs/security.md` quotes, and bounds that fail if a change makes them much larger.
import CLinux
import MQTTCodec
import XCTest

@testable import MidgeCore

final class TrieMemoryTests: XCTestCase {
    private func heap() -> Int { Int(clinux_heap_bytes_in_use()) }

    private func deepFilter(_ index: Int, levels: Int) -> TopicFilter {
        TopicFilter((["s\(index)"] + Array(repeating: "l", count: levels - 1)).joined(separator: "/"))!
    }

    /// 100,000 subscriptions of 200 levels each, every one parting from the others at the first level (no shared
    /// node), spread over 100 sessions: the case a per-level trie paid 200 nodes for.
    func test_deepSubscriptionsCostOneNodeEach() {
        let trie = SubscriptionTrie()
        let sessions = (0..<100).map { Session(clientID: "c\($0)", serial: UInt64($0 + 1), cleanSession: true) }
        let filters = (0..<100_000).map { deepFilter($0, levels: 200) }
        let filterBytes = filters.reduce(0) { $0 + $1.bytes.count }
        let before = heap()
        for (index, filter) in filters.enumerated() {
            _ = trie.subscribe(filter, session: sessions[index % sessions.count], qos: .atLeastOnce)
        }
        let perSubscription = Double(heap() - before) / Double(filters.count)
        print(
            "trie: 100,000 subscriptions of 200 levels (\(filterBytes / filters.count) bytes each): "
                + "\(trie.nodeCount) nodes, \(Int(perSubscription)) heap bytes per subscription")
        XCTAssertEqual(trie.nodeCount, filters.count, "one node per filter, not per level")
        // The node's label holds the filter's bytes once; the rest is the node and its parent's table slot.
        XCTAssertLessThan(perSubscription, Double(filterBytes / filters.count) + 400)
        var matched = 0
        trie.forEachMatch(TopicName(deepFilter(77_777, levels: 200).description)!) { _ in matched += 1 }
        XCTAssertEqual(matched, 1)
    }

    /// Short filters: the fixed cost of a node and a subscriber entry, which no compression removes.
    func test_shortSubscriptionsFixedCost() {
        let trie = SubscriptionTrie()
        let session = Session(clientID: "c", serial: 1, cleanSession: true)
        let filters = (0..<100_000).map { TopicFilter("a/\($0)")! }
        let before = heap()
        for filter in filters { _ = trie.subscribe(filter, session: session, qos: .atMostOnce) }
        let perSubscription = Double(heap() - before) / Double(filters.count)
        print("trie: 100,000 subscriptions of short filters: \(Int(perSubscription)) heap bytes per subscription")
        XCTAssertLessThan(perSubscription, 400)
        // Removing them gives the memory back to where it was, within the allocator's slack.
        for filter in filters { XCTAssertTrue(trie.unsubscribe(filter, session: session)) }
        XCTAssertEqual(trie.nodeCount, 0)
    }

    func test_deepRetainedTopicsCostOneNodeEach() {
        let store = RetainedStore()
        let topics = (0..<50_000).map { TopicName(deepFilter($0, levels: 200).description)! }
        let payload: [UInt8] = [1]
        let messages = topics.map { Message(topic: $0, payload: payload, qos: .atMostOnce) }
        let before = heap()
        for message in messages { store.store(message) }
        let perMessage = Double(heap() - before) / Double(messages.count)
        print("retained: 50,000 topics of 200 levels: \(Int(perMessage)) heap bytes per message beyond the message")
        // The node keeps its own copy of the topic's levels as its label.
        XCTAssertLessThan(perMessage, Double(topics[0].bytes.count) + 400)
    }
}
