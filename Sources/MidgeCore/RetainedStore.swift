// Retained messages (§3.3.1.3): a trie of topics, so a new subscription finds its matches without a full scan.
import MQTTCodec

final class RetainedNode {
    var children: [LevelKey: RetainedNode] = [:]
    var message: Message?
}

final class RetainedStore {
    private let root = RetainedNode()
    private(set) var count = 0

    /// Stores the message as its topic's retained message, replacing any earlier one [MQTT-3.3.1-5][MQTT-3.3.1-7].
    func store(_ message: Message) {
        let bytes = message.topic.bytes
        var node = root
        var start = 0
        while true {
            let end = TopicLevels.levelEnd(bytes, from: start)
            let key = LevelKey(bytes[start..<end])
            if let existing = node.children[key] {
                node = existing
            } else {
                let created = RetainedNode()
                node.children[key.owned] = created
                node = created
            }
            guard let next = TopicLevels.nextStart(bytes, afterLevelEndingAt: end) else { break }
            start = next
        }
        if node.message == nil { count += 1 }
        node.message = message
    }

    /// Deletes the topic's retained message, if any [MQTT-3.3.1-10], pruning emptied nodes.
    func remove(_ topic: TopicName) {
        let bytes = topic.bytes
        var path: [(node: RetainedNode, key: LevelKey)] = []
        var node = root
        var start = 0
        while true {
            let end = TopicLevels.levelEnd(bytes, from: start)
            let key = LevelKey(bytes[start..<end])
            guard let child = node.children[key] else { return }
            path.append((node, key))
            node = child
            guard let next = TopicLevels.nextStart(bytes, afterLevelEndingAt: end) else { break }
            start = next
        }
        guard node.message != nil else { return }
        node.message = nil
        count -= 1
        while node.message == nil && node.children.isEmpty, let (parent, key) = path.popLast() {
            parent.children[key] = nil
            node = parent
        }
    }

    /// The retained message of exactly this topic.
    func message(for topic: TopicName) -> Message? {
        let bytes = topic.bytes
        var node = root
        var start = 0
        while true {
            let end = TopicLevels.levelEnd(bytes, from: start)
            guard let child = node.children[LevelKey(bytes[start..<end])] else { return nil }
            node = child
            guard let next = TopicLevels.nextStart(bytes, afterLevelEndingAt: end) else { return node.message }
            start = next
        }
    }

    /// Calls `body` for every retained message whose topic `filter` matches [MQTT-3.3.1-6], in no
    /// particular order. Only the branches the filter can reach are visited, with a loop rather than
    /// recursion: topics can be tens of thousands of levels deep.
    func forEachMatch(_ filter: TopicFilter, _ body: (Message) -> Void) {
        let bytes = filter.bytes
        // `start` is where the filter's next level begins, or -1 once every level has been consumed;
        // -2 marks a node whose whole subtree matches (below a `#`).
        var stack: [(node: RetainedNode, start: Int)] = [(root, 0)]
        while let (node, start) = stack.popLast() {
            let atRoot = node === root
            if start == -2 {
                if let message = node.message { body(message) }
                for child in node.children.values { stack.append((child, -2)) }
                continue
            }
            guard start >= 0 else {
                if let message = node.message { body(message) }
                continue
            }
            let end = TopicLevels.levelEnd(bytes, from: start)
            let next = TopicLevels.nextStart(bytes, afterLevelEndingAt: end) ?? -1
            if TopicLevels.isWildcard(bytes, start, end, UInt8(ascii: "#")) {
                // `sport/#` also matches `sport` itself; top-level wildcards skip `$` topics [MQTT-4.7.2-1].
                if let message = node.message { body(message) }
                for (key, child) in node.children where !(atRoot && key.isDollar) { stack.append((child, -2)) }
            } else if TopicLevels.isWildcard(bytes, start, end, UInt8(ascii: "+")) {
                for (key, child) in node.children where !(atRoot && key.isDollar) { stack.append((child, next)) }
            } else if let child = node.children[LevelKey(bytes[start..<end])] {
                stack.append((child, next))
            }
        }
    }
}
