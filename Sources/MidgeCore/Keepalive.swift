// Keepalive deadlines (§3.1.2.10): a lazy min-heap, so a packet received costs nothing but a timestamp.
import MQTTCodec

/// Holds at most one entry per connection with keepalive. An entry may be earlier than the connection's real
/// deadline (packets arrived since it was pushed): popping it then re-arms it at the real one. Entries of
/// closed connections are dropped when they come up.
struct KeepaliveHeap {
    private struct Entry {
        let deadline: Int64
        let connection: ConnectionID
    }

    private var entries: [Entry] = []

    var earliest: MonotonicTime? { entries.first.map { MonotonicTime(nanoseconds: $0.deadline) } }

    mutating func push(_ deadline: MonotonicTime, _ connection: ConnectionID) {
        entries.append(Entry(deadline: deadline.nanoseconds, connection: connection))
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].deadline < entries[parent].deadline else { break }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    mutating func popDue(_ now: MonotonicTime) -> ConnectionID? {
        guard let top = entries.first, top.deadline <= now.nanoseconds else { return nil }
        let last = entries.removeLast()
        if !entries.isEmpty {
            entries[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1
                let right = left + 1
                var smallest = parent
                if left < entries.count && entries[left].deadline < entries[smallest].deadline { smallest = left }
                if right < entries.count && entries[right].deadline < entries[smallest].deadline { smallest = right }
                if smallest == parent { break }
                entries.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return top.connection
    }
}
