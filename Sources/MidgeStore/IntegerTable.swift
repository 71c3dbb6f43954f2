// A small hash table from UInt64 keys to Int32 values for the writer's per-batch bookkeeping.

/// Open addressing with linear probing, Fibonacci hashing and backward-shift deletion, cleared in O(1) by bumping a
/// generation. Swift's `Dictionary` hashes every integer key with SipHash; for the few lookups per record that
/// `CancelledDeliveries` makes, that hashing was a third of its time (durable QoS 1 fan-in profile). The keys here
/// are message ids, packet ids and per-batch session numbers, not chosen by clients, so no seeded hash is needed.
struct IntegerTable {
    private var keys: [UInt64]
    private var values: [Int32]
    /// A slot is in use when its generation is the table's.
    private var generations: [UInt32]
    private var generation: UInt32 = 1
    private var shift: UInt64
    private(set) var count = 0

    init(capacity: Int = 1024) {
        var size = 16
        while size < capacity * 2 { size *= 2 }
        keys = [UInt64](repeating: 0, count: size)
        values = [Int32](repeating: 0, count: size)
        generations = [UInt32](repeating: 0, count: size)
        shift = UInt64(64 - size.trailingZeroBitCount)
    }

    var isEmpty: Bool { count == 0 }

    /// Empties the table, keeping its size.
    mutating func removeAll() {
        count = 0
        generation &+= 1
        if generation == 0 {
            // Wrapped: stale slots could look current again.
            for index in generations.indices { generations[index] = 0 }
            generation = 1
        }
    }

    @inline(__always)
    private func home(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift) }

    @inline(__always)
    private func slot(of key: UInt64) -> (index: Int, found: Bool) {
        let mask = keys.count - 1
        var index = home(key)
        while generations[index] == generation {
            if keys[index] == key { return (index, true) }
            index = (index + 1) & mask
        }
        return (index, false)
    }

    subscript(key: UInt64) -> Int32? {
        get {
            let (index, found) = slot(of: key)
            return found ? values[index] : nil
        }
        set {
            guard let newValue else {
                _ = removeValue(forKey: key)
                return
            }
            let (index, found) = slot(of: key)
            values[index] = newValue
            guard !found else { return }
            keys[index] = key
            generations[index] = generation
            count += 1
            if count * 2 > keys.count { grow() }
        }
    }

    @discardableResult
    mutating func removeValue(forKey key: UInt64) -> Int32? {
        let (found, wasFound) = slot(of: key)
        guard wasFound else { return nil }
        let removed = values[found]
        let mask = keys.count - 1
        // Backward shift: move later entries of the probe run into the hole, so lookups never stop early.
        var hole = found
        var next = (hole + 1) & mask
        while generations[next] == generation {
            let wanted = home(keys[next])
            // Stays put if its home lies cyclically in (hole, next].
            let stays = hole <= next ? (hole < wanted && wanted <= next) : (hole < wanted || wanted <= next)
            if !stays {
                keys[hole] = keys[next]
                values[hole] = values[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        generations[hole] = 0
        count -= 1
        return removed
    }

    /// Every entry, in no particular order.
    func forEach(_ body: (UInt64, Int32) -> Void) {
        for index in keys.indices where generations[index] == generation { body(keys[index], values[index]) }
    }

    private mutating func grow() {
        var bigger = IntegerTable(capacity: keys.count)
        forEach { bigger[$0] = $1 }
        self = bigger
    }
}
