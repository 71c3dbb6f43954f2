// A session's queue of deliveries waiting for the in-flight window or for the client to come back (§3.1.2.4).
import MQTTCodec

/// One delivery waiting to be sent; it gets its packet id only when it leaves the queue.
struct QueuedMessage {
    let message: Message
    let qos: QoS
    let retain: Bool
}

/// A FIFO ring buffer: O(1) at both ends, and popped slots release their message at once.
struct MessageQueue {
    private var slots: [QueuedMessage?] = []
    private var head = 0
    private(set) var count = 0
    /// Payload bytes held, for `maxQueuedBytes`.
    private(set) var bytes = 0

    var isEmpty: Bool { count == 0 }

    var first: QueuedMessage? { count == 0 ? nil : slots[head] }

    mutating func append(_ item: QueuedMessage) {
        if count == slots.count { grow() }
        slots[(head + count) % slots.count] = item
        count += 1
        bytes += item.message.payload.count
    }

    mutating func popFirst() -> QueuedMessage? {
        guard count > 0, let item = slots[head] else { return nil }
        slots[head] = nil
        head = (head + 1) % slots.count
        count -= 1
        bytes -= item.message.payload.count
        return item
    }

    mutating func removeAll() {
        slots.removeAll()
        head = 0
        count = 0
        bytes = 0
    }

    private mutating func grow() {
        var larger = [QueuedMessage?](repeating: nil, count: max(8, slots.count * 2))
        for index in 0..<count { larger[index] = slots[(head + index) % slots.count] }
        slots = larger
        head = 0
    }
}
