// Retained messages (§3.3.1.3): a path-compressed trie of topics, so a new subscription finds its matches without a
// full scan, and a deep topic costs one node rather than one per level.
import MQTTCodec

/// One stretch of a topic: `label` holds one or more whole levels joined by `/` (the root's is empty). A node
/// exists only where a topic ends or two topics part, so `a/b/c/…/z` alone is one node however deep it is:
/// one node per level cost ~250 bytes a level, which let a 400-byte topic of 200 levels take 50 KB.
final class RetainedNode {
    var label: [UInt8]
    /// Keyed by the first level of each child's label, a slice of that child's own label (no copy).
    var children: [LevelKey: RetainedNode] = [:]
    var message: Message?
    /// Who set `message`, for `check_retain_source`; nil for the broker's own and restored messages.
    var source: RetainSource?

    init(label: [UInt8]) {
        self.label = label
    }

    /// The key this node is filed under in its parent.
    var key: LevelKey { LevelKey(label[0..<TopicLevels.levelEnd(label, from: 0)]) }
}

/// What `RetainedStore.store(_:limits:)` did with a message.
enum RetainedStoreOutcome: Equatable {
    case stored
    /// Over `retained_messages_max` or `retained_bytes_max` (or the memory ceiling): not kept. Any earlier message
    /// of the topic is deleted too, so a subscriber never gets a value the publisher has replaced.
    case refused
}

final class RetainedStore {
    private let root = RetainedNode(label: [])
    private(set) var count = 0
    /// Topic and payload bytes of every message held, for `retained_bytes_max`.
    private(set) var bytes = 0

    /// Stores the message as its topic's retained message, replacing any earlier one [MQTT-3.3.1-5][MQTT-3.3.1-7],
    /// unless that would take the store past a limit (0 means none). `growthAllowed` false refuses anything that
    /// adds a topic or bytes (the broker is above its memory ceiling).
    func store(
        _ message: Message, source: RetainSource? = nil, maxCount: Int, maxBytes: Int, growthAllowed: Bool = true
    ) -> RetainedStoreOutcome {
        let size = Self.size(of: message)
        if let node = find(message.topic.bytes), let old = node.message {
            let grown = bytes - Self.size(of: old) + size
            if (maxBytes > 0 && grown > maxBytes) || (!growthAllowed && size > Self.size(of: old)) {
                remove(message.topic)
                return .refused
            }
            bytes = grown
            node.message = message
            node.source = source
            return .stored
        }
        if (maxCount > 0 && count >= maxCount) || (maxBytes > 0 && bytes + size > maxBytes) || !growthAllowed {
            return .refused
        }
        store(message).source = source
        return .stored
    }

    /// Stores without limits: what the durable store recovered was accepted before and is never dropped. Returns
    /// the topic's node.
    @discardableResult
    func store(_ message: Message) -> RetainedNode {
        let topic = message.topic.bytes
        var node = root
        var start = 0
        while true {
            let end = TopicLevels.levelEnd(topic, from: start)
            guard let child = node.children[LevelKey(topic[start..<end])] else {
                let leaf = RetainedNode(label: Array(topic[start...]))
                node.children[leaf.key] = leaf
                node = leaf
                break
            }
            let matched = TopicLevels.commonLevels(of: child.label, and: topic, from: start)
            let next = matched == child.label.count ? child : split(child, at: matched, under: node)
            node = next
            let after = start + matched
            if after == topic.count { break }
            start = after + 1
        }
        if let old = node.message {
            bytes -= Self.size(of: old)
        } else {
            count += 1
        }
        bytes += Self.size(of: message)
        node.message = message
        node.source = nil
        return node
    }

    /// Deletes the topic's retained message, if any [MQTT-3.3.1-10], pruning and re-joining emptied nodes.
    func remove(_ topic: TopicName) {
        remove(topic.bytes)
    }

    /// The retained message of exactly this topic.
    func message(for topic: TopicName) -> Message? {
        find(topic.bytes)?.message
    }

    /// Calls `body` for every retained message whose topic `filter` matches [MQTT-3.3.1-6], with who set it, in no
    /// particular order. Only the branches the filter can reach are visited, with a loop rather than
    /// recursion: topics can be tens of thousands of levels deep.
    func forEachMatch(_ filter: TopicFilter, _ body: (Message, RetainSource?) -> Void) {
        let bytes = filter.bytes
        // `start` is where the filter's next level begins; -1 once every level has been consumed at this node;
        // -2 marks a node whose whole subtree matches (below a `#`).
        var stack: [(node: RetainedNode, start: Int)] = [(root, 0)]
        while let (node, start) = stack.popLast() {
            if start == -2 {
                if let message = node.message { body(message, node.source) }
                for child in node.children.values { stack.append((child, -2)) }
                continue
            }
            guard start >= 0 else {
                if let message = node.message { body(message, node.source) }
                continue
            }
            let atRoot = node === root
            let end = TopicLevels.levelEnd(bytes, from: start)
            if TopicLevels.isWildcard(bytes, start, end, UInt8(ascii: "#")) {
                // `sport/#` also matches `sport` itself; top-level wildcards skip `$` topics [MQTT-4.7.2-1].
                if let message = node.message { body(message, node.source) }
                for (key, child) in node.children where !(atRoot && key.isDollar) { stack.append((child, -2)) }
            } else if TopicLevels.isWildcard(bytes, start, end, UInt8(ascii: "+")) {
                for (key, child) in node.children where !(atRoot && key.isDollar) {
                    if let state = Self.match(child.label, filter: bytes, from: start) { stack.append((child, state)) }
                }
            } else if let child = node.children[LevelKey(bytes[start..<end])],
                let state = Self.match(child.label, filter: bytes, from: start)
            {
                stack.append((child, state))
            }
        }
    }

    // MARK: - Nodes

    /// A message's share of `retained_bytes_max`.
    private static func size(of message: Message) -> Int { message.topic.bytes.count + message.payload.count }

    /// The node where exactly `topic` ends, if there is one.
    private func find(_ topic: [UInt8]) -> RetainedNode? {
        var node = root
        var start = 0
        while true {
            let end = TopicLevels.levelEnd(topic, from: start)
            guard let child = node.children[LevelKey(topic[start..<end])] else { return nil }
            let matched = TopicLevels.commonLevels(of: child.label, and: topic, from: start)
            guard matched == child.label.count else { return nil }
            node = child
            let after = start + matched
            if after == topic.count { return node }
            start = after + 1
        }
    }

    private func remove(_ topic: [UInt8]) {
        var path: [RetainedNode] = []
        var node = root
        var start = 0
        while true {
            let end = TopicLevels.levelEnd(topic, from: start)
            guard let child = node.children[LevelKey(topic[start..<end])] else { return }
            let matched = TopicLevels.commonLevels(of: child.label, and: topic, from: start)
            guard matched == child.label.count else { return }
            path.append(node)
            node = child
            let after = start + matched
            if after == topic.count { break }
            start = after + 1
        }
        guard let old = node.message else { return }
        node.message = nil
        node.source = nil
        count -= 1
        bytes -= Self.size(of: old)
        while node.message == nil && node.children.isEmpty, let parent = path.popLast() {
            parent.children[node.key] = nil
            node = parent
        }
        // A node left with no message and one child is only a stretch of its child's path: join them.
        if node !== root, node.message == nil, node.children.count == 1, let parent = path.last,
            let only = node.children.values.first
        {
            parent.children[node.key] = nil
            node.label = node.label + [TopicLevels.separator] + only.label
            node.message = only.message
            node.source = only.source
            node.children = only.children
            parent.children[node.key] = node
        }
    }

    /// Cuts `child`'s label after `matched` bytes (a level boundary): a new node holding the first part takes its
    /// place under `parent`, with `child` below it keeping the rest.
    private func split(_ child: RetainedNode, at matched: Int, under parent: RetainedNode) -> RetainedNode {
        parent.children[child.key] = nil
        let middle = RetainedNode(label: Array(child.label[0..<matched]))
        child.label = Array(child.label[(matched + 1)...])
        middle.children[child.key] = child
        parent.children[middle.key] = middle
        return middle
    }

    /// Matches a node's label, level by level, against the filter from `start`: nil when it does not match; else
    /// the filter position where matching goes on below the node, -1 when the filter ends with the label, -2 when
    /// a `#` takes everything from here down.
    private static func match(_ label: [UInt8], filter: [UInt8], from start: Int) -> Int? {
        var labelStart = 0
        var filterStart = start
        while true {
            let filterEnd = TopicLevels.levelEnd(filter, from: filterStart)
            if TopicLevels.isWildcard(filter, filterStart, filterEnd, UInt8(ascii: "#")) { return -2 }
            let labelEnd = TopicLevels.levelEnd(label, from: labelStart)
            if !TopicLevels.isWildcard(filter, filterStart, filterEnd, UInt8(ascii: "+")) {
                guard filterEnd - filterStart == labelEnd - labelStart,
                    filter[filterStart..<filterEnd].elementsEqual(label[labelStart..<labelEnd])
                else { return nil }
            }
            let filterNext = TopicLevels.nextStart(filter, afterLevelEndingAt: filterEnd)
            guard let labelNext = TopicLevels.nextStart(label, afterLevelEndingAt: labelEnd) else {
                return filterNext ?? -1
            }
            // The label goes deeper than the filter: `a` does not match `a/b`.
            guard let filterNext else { return nil }
            labelStart = labelNext
            filterStart = filterNext
        }
    }
}
