// The HTTP gateway's message buffer (as Nchan's per-channel buffer): each topic's latest messages with ids that are
// the same for every subscriber and every connection, and the bounds that keep it within its configuration.
import MQTTCodec

public struct TopicHistoryLimits: Sendable, Equatable {
    /// Messages kept per topic; the oldest of the topic goes first.
    public var messagesPerTopic: Int
    /// Seconds a message is kept.
    public var maxAgeSeconds: Int
    /// Payload and topic bytes kept in all, over every topic; the oldest message overall goes first.
    public var maxBytes: Int
    /// Topics with messages kept; beyond it the oldest messages go until a topic is empty.
    public var maxTopics: Int

    public init(
        messagesPerTopic: Int = 100, maxAgeSeconds: Int = 300, maxBytes: Int = 16 << 20, maxTopics: Int = 10_000
    ) {
        self.messagesPerTopic = messagesPerTopic
        self.maxAgeSeconds = maxAgeSeconds
        self.maxBytes = maxBytes
        self.maxTopics = maxTopics
    }
}

/// A message as the history keeps it, with its id.
public struct HistoryEvent: Sendable, Equatable {
    public let id: UInt64
    public let message: GatewayMessage
}

/// Every kept message in one list in id order (ids rise by one per recorded message, whatever its topic), so
/// "what came after id N for these filters" walks only the messages after N, and a wildcard subscription resumes in
/// the order the messages were recorded, across its topics. Per topic only the ids are kept, for the per-topic
/// bound and `info`. A message dropped by the per-topic bound leaves a hole (`message == nil`) in the list until the
/// list is compacted, which happens once holes outnumber messages.
///
/// Memory: at most `maxBytes` of payload and topic plus about 100 bytes per message (the slot, the topic's id
/// entry, the message value), for at most `maxTopics` × `messagesPerTopic` messages.
public struct TopicHistory: Sendable {
    public let limits: TopicHistoryLimits
    /// The id of the last message recorded (0: none yet).
    public private(set) var lastID: UInt64 = 0

    struct Slot: Sendable {
        let id: UInt64
        var message: GatewayMessage?
        let recordedAt: Int64
    }

    private struct TopicState: Sendable {
        var ids: [UInt64] = []
        var head = 0
        var count: Int { ids.count - head }
    }

    private(set) var slots: [Slot] = []
    private(set) var head = 0
    private var holes = 0
    private var topics: [TopicName: TopicState] = [:]
    public private(set) var byteCount = 0
    public private(set) var count = 0

    public init(limits: TopicHistoryLimits) {
        self.limits = limits
    }

    public var topicCount: Int { topics.count }

    /// Starts the ids above `id`: a gateway that begins at a time-based id never reuses an id a client kept from an
    /// earlier run of the broker.
    public mutating func continueAbove(_ id: UInt64) {
        if id > lastID { lastID = id }
    }

    private static func cost(_ message: GatewayMessage) -> Int { message.payload.count + message.topic.bytes.count }

    /// Keeps `message` under the next id and returns it. `now` is in nanoseconds on any clock that only rises.
    public mutating func record(_ message: GatewayMessage, now: Int64) -> UInt64 {
        lastID += 1
        let id = lastID
        slots.append(Slot(id: id, message: message, recordedAt: now))
        topics[message.topic, default: TopicState()].ids.append(id)
        byteCount += Self.cost(message)
        count += 1
        if let state = topics[message.topic], state.count > limits.messagesPerTopic {
            dropOldest(of: message.topic)
        }
        expire(now: now)
        return id
    }

    /// A message read back from a file, under the id it had (ids must rise from one call to the next).
    mutating func restore(_ message: GatewayMessage, id: UInt64, recordedAt: Int64) {
        precondition(id > lastID, "restored ids rise")
        lastID = id - 1
        _ = record(message, now: recordedAt)
    }

    /// Drops what is older than `maxAgeSeconds`, and the oldest messages while a bound is passed.
    public mutating func expire(now: Int64) {
        let oldestKept = now - Int64(limits.maxAgeSeconds) * 1_000_000_000
        while head < slots.count {
            let slot = slots[head]
            // The newest message stays whatever its size: subscribers on other threads have yet to read it.
            let overBounds = (byteCount > limits.maxBytes || topics.count > limits.maxTopics) && head < slots.count - 1
            guard slot.message == nil || slot.recordedAt < oldestKept || overBounds else { break }
            popFront()
        }
        compactIfWorthIt()
    }

    private mutating func popFront() {
        let slot = slots[head]
        head += 1
        guard let message = slot.message else {
            holes -= 1
            return
        }
        forget(message)
        if var state = topics[message.topic] {
            state.head += 1
            topics[message.topic] = state.count == 0 ? nil : state
        }
    }

    private mutating func forget(_ message: GatewayMessage) {
        byteCount -= Self.cost(message)
        count -= 1
    }

    private mutating func dropOldest(of topic: TopicName) {
        guard var state = topics[topic] else { return }
        let id = state.ids[state.head]
        state.head += 1
        if state.head > 64 && state.head * 2 > state.ids.count {
            state.ids.removeFirst(state.head)
            state.head = 0
        }
        topics[topic] = state
        guard let index = index(of: id), let message = slots[index].message else { return }
        slots[index].message = nil
        holes += 1
        forget(message)
    }

    private mutating func compactIfWorthIt() {
        if holes > 1024 && holes > count {
            slots = slots[head...].filter { $0.message != nil }
            head = 0
            holes = 0
        } else if head > 1024 && head * 2 > slots.count {
            slots.removeFirst(head)
            head = 0
        }
    }

    /// The position of the first slot with an id above `id`.
    private func firstIndex(after id: UInt64) -> Int {
        var low = head
        var high = slots.count
        while low < high {
            let middle = (low + high) / 2
            if slots[middle].id <= id { low = middle + 1 } else { high = middle }
        }
        return low
    }

    private func index(of id: UInt64) -> Int? {
        let index = firstIndex(after: id - 1)
        return index < slots.count && slots[index].id == id ? index : nil
    }

    /// Whether any of `filters` matches `topic`, with the rule that `#` and `+` do not match a `$` topic at the first
    /// level [MQTT-4.7.2-1].
    public static func matches(_ filters: [TopicFilter], _ topic: TopicName) -> Bool {
        filters.contains { filter in
            if topic.isDollarTopic, let first = filter.bytes.first,
                first == UInt8(ascii: "#") || first == UInt8(ascii: "+")
            {
                return false
            }
            return filter.matches(topic)
        }
    }

    /// The kept messages with an id above `id` on topics that `filters` match, in id order, at most `limit`.
    public func events(after id: UInt64, matching filters: [TopicFilter], limit: Int = .max) -> [HistoryEvent] {
        // Filters without wildcards name their topics: their own id lists say where their messages are, so a stream
        // on one of 5,000 topics does not walk the other 4,999 topics' messages (measured: a third of the broker's
        // CPU in the publish → SSE row on 5,000 topics).
        if !filters.contains(where: \.hasWildcards) {
            return literalEvents(after: id, topics: filters.map(\.bytes), limit: limit)
        }
        var found: [HistoryEvent] = []
        var matched: [TopicName: Bool] = [:]
        var index = firstIndex(after: id)
        while index < slots.count && found.count < limit {
            if let message = slots[index].message {
                let matches = matched[message.topic] ?? Self.matches(filters, message.topic)
                matched[message.topic] = matches
                if matches { found.append(HistoryEvent(id: slots[index].id, message: message)) }
            }
            index += 1
        }
        return found
    }

    /// `events(after:matching:limit:)` for filters that are topic names: each topic's ids after `id`, merged in id
    /// order (the order the messages were recorded, as the walk would give them).
    private func literalEvents(after id: UInt64, topics names: [[UInt8]], limit: Int) -> [HistoryEvent] {
        var ids: [UInt64] = []
        for name in Set(names) {
            guard let topic = TopicName(bytes: name), let state = topics[topic] else { continue }
            var position = state.ids.count
            while position > state.head && state.ids[position - 1] > id { position -= 1 }
            ids.append(contentsOf: state.ids[position...])
        }
        if names.count > 1 { ids.sort() }
        var found: [HistoryEvent] = []
        for candidate in ids where found.count < limit {
            if let index = index(of: candidate), let message = slots[index].message {
                found.append(HistoryEvent(id: candidate, message: message))
            }
        }
        return found
    }

    /// The id of the newest kept message that `filters` match.
    public func newestID(matching filters: [TopicFilter]) -> UInt64? {
        var index = slots.count - 1
        while index >= head {
            if let message = slots[index].message, Self.matches(filters, message.topic) { return slots[index].id }
            index -= 1
        }
        return nil
    }

    /// How many messages `topic` has kept, and the id of its last one.
    public func info(_ topic: TopicName) -> (count: Int, lastID: UInt64?) {
        guard let state = topics[topic] else { return (0, nil) }
        return (state.count, state.ids.last)
    }
}
