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
        if remove(topic.bytes, from: 0, below: root) { count -= 1 }
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
    /// particular order. Only the branches the filter can reach are visited.
    func forEachMatch(_ filter: TopicFilter, _ body: (Message) -> Void) {
        match(root, filter.bytes, 0, atRoot: true, body)
    }

    private func match(_ node: RetainedNode, _ filter: [UInt8], _ start: Int?, atRoot: Bool, _ body: (Message) -> Void)
    {
        guard let start else {
            if let message = node.message { body(message) }
            return
        }
        let end = TopicLevels.levelEnd(filter, from: start)
        let next = TopicLevels.nextStart(filter, afterLevelEndingAt: end)
        if TopicLevels.isWildcard(filter, start, end, UInt8(ascii: "#")) {
            // `sport/#` also matches `sport` itself; top-level wildcards skip `$` topics [MQTT-4.7.2-1].
            if let message = node.message { body(message) }
            for (key, child) in node.children where !(atRoot && key.isDollar) { visitAll(child, body) }
        } else if TopicLevels.isWildcard(filter, start, end, UInt8(ascii: "+")) {
            for (key, child) in node.children where !(atRoot && key.isDollar) {
                match(child, filter, next, atRoot: false, body)
            }
        } else if let child = node.children[LevelKey(filter[start..<end])] {
            match(child, filter, next, atRoot: false, body)
        }
    }

    private func visitAll(_ node: RetainedNode, _ body: (Message) -> Void) {
        if let message = node.message { body(message) }
        for child in node.children.values { visitAll(child, body) }
    }

    private func remove(_ topic: [UInt8], from start: Int, below node: RetainedNode) -> Bool {
        let end = TopicLevels.levelEnd(topic, from: start)
        let key = LevelKey(topic[start..<end])
        guard let child = node.children[key] else { return false }
        let removed: Bool
        if let next = TopicLevels.nextStart(topic, afterLevelEndingAt: end) {
            removed = remove(topic, from: next, below: child)
        } else {
            removed = child.message != nil
            child.message = nil
        }
        if child.message == nil && child.children.isEmpty { node.children[key] = nil }
        return removed
    }
}
