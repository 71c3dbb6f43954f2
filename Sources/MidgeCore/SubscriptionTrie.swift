// The subscription index (§4.7): a trie over filter levels, matched by walking a topic's bytes level by level.
import MQTTCodec

/// One session's subscription to a filter, as the trie stores it.
struct Subscriber {
    /// Not retained: the broker's session table owns every session, and `Broker.discardSession` takes a session
    /// out of the trie before letting it go. Skipping a retain/release pair per matched subscription (and per
    /// entry of the routing scratch list) halved the core's cost of QoS 0 fan-out to 100 subscribers
    /// (release build: ~108 → ~53 ns per delivery).
    let session: Unmanaged<Session>
    var qos: QoS
}

/// The subscribers of one filter: a dense array so fan-out walks contiguous memory. Past a few subscribers, each
/// session's position is indexed too, so replacing or removing one is O(1) even on a filter with many thousands of
/// them; below that a scan is as fast and saves a dictionary per filter (~200 bytes, most of a lone subscription).
struct SubscriberSet {
    private(set) var entries: [Subscriber] = []
    private var positions: [UInt64: Int] = [:]
    private static let indexedFrom = 8

    var isEmpty: Bool { entries.isEmpty }

    /// Adds the session or changes its QoS [MQTT-3.8.4-3]. True when it was not subscribed yet.
    mutating func set(_ session: Session, qos: QoS) -> Bool {
        if let position = position(of: session.serial) {
            entries[position].qos = qos
            return false
        }
        if !positions.isEmpty || entries.count + 1 >= Self.indexedFrom {
            if positions.isEmpty {
                for (index, entry) in entries.enumerated() {
                    positions[entry.session.takeUnretainedValue().serial] = index
                }
            }
            positions[session.serial] = entries.count
        }
        entries.append(Subscriber(session: Unmanaged.passUnretained(session), qos: qos))
        return true
    }

    /// True when the session was subscribed.
    mutating func remove(_ session: Session) -> Bool {
        guard let position = position(of: session.serial) else { return false }
        let last = entries.count - 1
        if position != last {
            entries[position] = entries[last]
            if !positions.isEmpty { positions[entries[position].session.takeUnretainedValue().serial] = position }
        }
        entries.removeLast()
        if !positions.isEmpty {
            positions[session.serial] = nil
            if entries.isEmpty { positions = [:] }
        }
        return true
    }

    private func position(of serial: UInt64) -> Int? {
        if !positions.isEmpty { return positions[serial] }
        return entries.firstIndex { $0.session.takeUnretainedValue().serial == serial }
    }
}

/// A node of the trie. A node reached through `children` holds one or more whole literal levels in `label`, joined
/// by `/`: nodes exist only where a filter ends, filters part, or a wildcard follows, so `a/b/…/z` alone is one node
/// however deep. (One node per level cost ~220 bytes a level: a 65 KB filter of 32,000 levels took 14 MB.) The root
/// and the `+` and `#` nodes have empty labels.
final class SubscriptionNode {
    @exclusivity(unchecked) var label: [UInt8]
    /// Keyed by the first level of each child's label, a slice of that child's own label (no copy).
    @exclusivity(unchecked) var children: [LevelKey: SubscriptionNode] = [:]
    /// The `+` level below this one.
    @exclusivity(unchecked) var singleLevel: SubscriptionNode?
    /// The `#` level below this one; `#` is always last [MQTT-4.7.1-2], so that node only has subscribers.
    @exclusivity(unchecked) var multiLevel: SubscriptionNode?
    @exclusivity(unchecked) var subscribers = SubscriberSet()
    /// Shared subscriptions to this filter, one entry per group (`$share/<group>/…`).
    @exclusivity(unchecked) var sharedGroups: [SharedGroup] = []

    init(label: [UInt8]) {
        self.label = label
    }

    var isEmpty: Bool {
        subscribers.isEmpty && sharedGroups.isEmpty && children.isEmpty && singleLevel == nil && multiLevel == nil
    }

    /// The key a literal node is filed under in its parent's `children`.
    var key: LevelKey { LevelKey(label[0..<TopicLevels.levelEnd(label, from: 0)]) }
}

/// Which filters a topic reaches, level by level (the rules live in `SubscriptionTrie.match`):
///
/// | topic       | filters that match                             | filters that do not              |
/// |-------------|------------------------------------------------|----------------------------------|
/// | `a/b`       | `a/b`, `a/+`, `+/b`, `+/+`, `a/#`, `#`, `a/b/#`| `a`, `a/b/c`, `A/b`, `a/+/+`     |
/// | `a`         | `a`, `+`, `#`, `a/#`, `+/#`                    | `a/+`, `/a`                      |
/// | `a/`        | `a/`, `a/+`, `+/+`, `a/#`                      | `a`, `+`                         |
/// | `$SYS/x`    | `$SYS/x`, `$SYS/+`, `$SYS/#`                   | `#`, `+/x`, `+/#` [MQTT-4.7.2-1] |
/// Every walk is a loop, never recursion: a 65535-byte topic can have 32768 levels, too deep for a thread's stack.
final class SubscriptionTrie {
    let root = SubscriptionNode(label: [])
    /// The match walk's pending branches, kept between calls so a PUBLISH allocates nothing here.
    /// `start` is where the topic's next level begins, or -1 once every level has been consumed.
    @exclusivity(unchecked) private var pending: [(node: SubscriptionNode, start: Int)] = []
    /// Rises with every change to any subscription, so a remembered match result (`RouteCache`) can tell it is
    /// still what a walk would find.
    private(set) var version: UInt64 = 0
    /// Nodes below the root, for the memory figures in `Docs/security.md`.
    private(set) var nodeCount = 0

    /// Shared subscriptions held, over all groups.
    private(set) var sharedSubscriptionCount = 0

    /// Adds or replaces the session's subscription to `filter`, which may be a shared one (`$share/<group>/…`, valid:
    /// the SUBSCRIBE handler refuses the others). True when it is new.
    func subscribe(_ filter: TopicFilter, session: Session, qos: QoS) -> Bool {
        let (group, bytes) = Self.split(filter)
        var node = root
        var start = 0
        while true {
            let end = TopicLevels.levelEnd(bytes, from: start)
            let consumed: Int
            if TopicLevels.isWildcard(bytes, start, end, UInt8(ascii: "+")) {
                node = wildcardChild(of: node, \.singleLevel)
                consumed = end
            } else if TopicLevels.isWildcard(bytes, start, end, UInt8(ascii: "#")) {
                node = wildcardChild(of: node, \.multiLevel)
                consumed = end
            } else if let child = node.children[LevelKey(bytes[start..<end])] {
                let matched = TopicLevels.commonLevels(of: child.label, and: bytes, from: start)
                node = matched == child.label.count ? child : split(child, at: matched, under: node)
                consumed = start + matched
            } else {
                // A new branch: every literal level up to the next wildcard (or the end) in one node.
                var runEnd = end
                while let next = TopicLevels.nextStart(bytes, afterLevelEndingAt: runEnd) {
                    let nextEnd = TopicLevels.levelEnd(bytes, from: next)
                    if TopicLevels.isWildcard(bytes, next, nextEnd, UInt8(ascii: "+"))
                        || TopicLevels.isWildcard(bytes, next, nextEnd, UInt8(ascii: "#"))
                    {
                        break
                    }
                    runEnd = nextEnd
                }
                let created = SubscriptionNode(label: Array(bytes[start..<runEnd]))
                node.children[created.key] = created
                nodeCount += 1
                node = created
                consumed = runEnd
            }
            guard let next = TopicLevels.nextStart(bytes, afterLevelEndingAt: consumed) else { break }
            start = next
        }
        version &+= 1
        guard let group else { return node.subscribers.set(session, qos: qos) }
        let shared: SharedGroup
        if let existing = node.sharedGroups.first(where: { $0.name == group }) {
            shared = existing
        } else {
            shared = SharedGroup(name: group)
            node.sharedGroups.append(shared)
        }
        guard shared.members.set(session, qos: qos) else { return false }
        sharedSubscriptionCount += 1
        return true
    }

    /// A filter's group, if it is a shared subscription, and the filter its messages are matched with.
    private static func split(_ filter: TopicFilter) -> (group: [UInt8]?, filter: [UInt8]) {
        if case .shared(let group, let inner) = SharedSubscription(filter) { return (group, inner) }
        return (nil, filter.bytes)
    }

    /// Removes the session's subscription to exactly `filter` [MQTT-3.10.4-1], pruning emptied nodes and joining a
    /// literal node left with a single literal child. True when there was one.
    func unsubscribe(_ filter: TopicFilter, session: Session) -> Bool {
        let (group, bytes) = Self.split(filter)
        // The nodes on the filter's path, each with its parent.
        var path: [(parent: SubscriptionNode, node: SubscriptionNode)] = []
        var node = root
        var start = 0
        while true {
            let end = TopicLevels.levelEnd(bytes, from: start)
            let child: SubscriptionNode
            let consumed: Int
            if TopicLevels.isWildcard(bytes, start, end, UInt8(ascii: "+")) {
                guard let single = node.singleLevel else { return false }
                (child, consumed) = (single, end)
            } else if TopicLevels.isWildcard(bytes, start, end, UInt8(ascii: "#")) {
                guard let multi = node.multiLevel else { return false }
                (child, consumed) = (multi, end)
            } else {
                guard let literal = node.children[LevelKey(bytes[start..<end])] else { return false }
                let matched = TopicLevels.commonLevels(of: literal.label, and: bytes, from: start)
                guard matched == literal.label.count else { return false }
                (child, consumed) = (literal, start + matched)
            }
            path.append((node, child))
            node = child
            guard let next = TopicLevels.nextStart(bytes, afterLevelEndingAt: consumed) else { break }
            start = next
        }
        if let group {
            guard let index = node.sharedGroups.firstIndex(where: { $0.name == group }),
                node.sharedGroups[index].members.remove(session)
            else { return false }
            if node.sharedGroups[index].members.isEmpty { node.sharedGroups.remove(at: index) }
            sharedSubscriptionCount -= 1
        } else {
            guard node.subscribers.remove(session) else { return false }
        }
        version &+= 1
        while node.isEmpty, let (parent, emptied) = path.popLast() {
            detach(emptied, from: parent)
            node = parent
        }
        if let (parent, kept) = path.last { joinWithOnlyChild(kept, under: parent) }
        return true
    }

    /// Calls `body` once per matching subscription; a session with several matching filters is seen once
    /// per filter (the caller merges them [MQTT-3.3.5-1]). `group` is called once per shared group on a matching
    /// filter, for the caller to pick the member that gets the message.
    func forEachMatch(_ topic: TopicName, _ body: (Subscriber) -> Void, group: (SharedGroup) -> Void = { _ in }) {
        let bytes = topic.bytes
        // Wildcards at the root never match a `$` topic [MQTT-4.7.2-1].
        let dollar = topic.isDollarTopic
        var stack = pending
        pending = []
        stack.append((root, 0))
        while let (node, start) = stack.popLast() {
            let skipWildcards = dollar && node === root
            // `x/#` matches below `x` and `x` itself (`sport/#` ~ `sport`) [MQTT-4.7.1-2].
            if !skipWildcards, let multi = node.multiLevel {
                for subscriber in multi.subscribers.entries { body(subscriber) }
                for shared in multi.sharedGroups { group(shared) }
            }
            guard start >= 0 else {
                for subscriber in node.subscribers.entries { body(subscriber) }
                for shared in node.sharedGroups { group(shared) }
                continue
            }
            let end = TopicLevels.levelEnd(bytes, from: start)
            // Exact byte comparison of the levels, no normalisation [MQTT-4.7.3-4]: a label is whole levels joined
            // by `/`, so it matches when the topic holds the same bytes followed by a level end.
            if let child = node.children[LevelKey(bytes[start..<end])] {
                let labelEnd = start + child.label.count
                if labelEnd == end
                    || (labelEnd <= bytes.count && (labelEnd == bytes.count || bytes[labelEnd] == TopicLevels.separator)
                        && bytes[start..<labelEnd].elementsEqual(child.label))
                {
                    stack.append((child, TopicLevels.nextStart(bytes, afterLevelEndingAt: labelEnd) ?? -1))
                }
            }
            if !skipWildcards, let single = node.singleLevel {
                stack.append((single, TopicLevels.nextStart(bytes, afterLevelEndingAt: end) ?? -1))
            }
        }
        pending = stack
    }

    // MARK: - Nodes

    private func wildcardChild(
        of node: SubscriptionNode, _ slot: ReferenceWritableKeyPath<SubscriptionNode, SubscriptionNode?>
    ) -> SubscriptionNode {
        if let existing = node[keyPath: slot] { return existing }
        let created = SubscriptionNode(label: [])
        node[keyPath: slot] = created
        nodeCount += 1
        return created
    }

    /// Cuts `child`'s label after `matched` bytes (a level boundary): a new node holding the first part takes its
    /// place under `parent`, with `child` below it keeping the rest.
    private func split(_ child: SubscriptionNode, at matched: Int, under parent: SubscriptionNode) -> SubscriptionNode {
        parent.children[child.key] = nil
        let middle = SubscriptionNode(label: Array(child.label[0..<matched]))
        child.label = Array(child.label[(matched + 1)...])
        middle.children[child.key] = child
        parent.children[middle.key] = middle
        nodeCount += 1
        return middle
    }

    private func detach(_ node: SubscriptionNode, from parent: SubscriptionNode) {
        nodeCount -= 1
        if parent.singleLevel === node {
            parent.singleLevel = nil
        } else if parent.multiLevel === node {
            parent.multiLevel = nil
        } else {
            parent.children[node.key] = nil
        }
    }

    /// A literal node with no subscribers and no wildcard below it, whose only child is literal, is just a stretch
    /// of that child's path: the two become one node again, as if the filter that parted them had never come.
    private func joinWithOnlyChild(_ node: SubscriptionNode, under parent: SubscriptionNode) {
        guard parent.singleLevel !== node, parent.multiLevel !== node, node.subscribers.isEmpty,
            node.sharedGroups.isEmpty, node.singleLevel == nil, node.multiLevel == nil, node.children.count == 1,
            let only = node.children.values.first
        else { return }
        parent.children[node.key] = nil
        node.label = node.label + [TopicLevels.separator] + only.label
        node.children = only.children
        node.singleLevel = only.singleLevel
        node.multiLevel = only.multiLevel
        node.subscribers = only.subscribers
        node.sharedGroups = only.sharedGroups
        parent.children[node.key] = node
        nodeCount -= 1
    }
}
