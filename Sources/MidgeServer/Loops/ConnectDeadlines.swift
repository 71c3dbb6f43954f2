// `connect_timeout`: when each new connection of a loop must have sent CONNECT, in the order they were accepted.
import MidgeCore

/// A FIFO of deadlines: accept order is deadline order, since every connection gets the same timeout. Entries of
/// clients that connected are not removed one by one; they are skipped when due, and dropped in bulk once they
/// dominate the queue, so it stays proportional to the connections still waiting.
struct ConnectDeadlines {
    private var entries: [(deadline: Int64, id: ConnectionID)] = []
    private var head = 0
    private var pruneAt = 1024

    /// The earliest deadline still queued.
    var next: Int64? { head < entries.count ? entries[head].deadline : nil }

    /// `stillWaiting` says which connections have not sent CONNECT yet; it is asked only when the queue is pruned.
    mutating func add(_ deadline: Int64, _ id: ConnectionID, stillWaiting: (ConnectionID) -> Bool) {
        if entries.count - head >= pruneAt {
            entries = entries[head...].filter { stillWaiting($0.id) }
            head = 0
            pruneAt = max(1024, entries.count * 2)
        }
        entries.append((deadline, id))
    }

    /// The next connection whose deadline is at or before `now`, taken off the queue; nil when none is due.
    mutating func popDue(now: Int64) -> ConnectionID? {
        guard head < entries.count, entries[head].deadline <= now else {
            compact()
            return nil
        }
        head += 1
        return entries[head - 1].id
    }

    private mutating func compact() {
        if head == entries.count && head > 0 {
            entries = []
            head = 0
        } else if head > 1024 && head * 2 > entries.count {
            entries.removeFirst(head)
            head = 0
        }
    }
}
