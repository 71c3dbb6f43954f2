// Per-subscriber bookkeeping of what arrived: unique messages, duplicates, reordering and latency samples.

/// What one subscriber saw from one publisher. Sequence numbers start at 0 and rise by one per message.
struct PublisherTrack {
    private var seen: [UInt64] = []
    private(set) var highest: Int64 = -1
    private(set) var unique = 0
    private(set) var duplicates = 0
    private(set) var outOfOrder = 0

    mutating func record(sequence: UInt64) {
        let word = Int(sequence >> 6), bit = UInt64(1) << (sequence & 63)
        if word >= seen.count { seen.append(contentsOf: repeatElement(0, count: word - seen.count + 1024)) }
        if seen[word] & bit != 0 {
            duplicates += 1
            return
        }
        seen[word] |= bit
        unique += 1
        if Int64(sequence) < highest { outOfOrder += 1 } else { highest = Int64(sequence) }
    }
}

/// Everything one benchmark thread's subscribers saw; merged across threads at the end.
struct DeliveryTracker {
    var perPublisher: [[PublisherTrack]]  // [subscriber][publisher]
    var latencies: [UInt64] = []
    var receivedInWindow = 0
    /// Keep at most this many latency samples; past it, one in `sampleEvery` is kept.
    private let sampleLimit = 4_000_000
    private var sampleEvery = 1
    private var sampleCounter = 0

    init(subscribers: Int, publishers: Int) {
        perPublisher = Array(repeating: Array(repeating: PublisherTrack(), count: publishers), count: subscribers)
        latencies.reserveCapacity(1 << 20)
    }

    mutating func record(subscriber: Int, publisher: Int, sequence: UInt64, latency: UInt64, inWindow: Bool) {
        guard subscriber < perPublisher.count, publisher < perPublisher[subscriber].count else { return }
        perPublisher[subscriber][publisher].record(sequence: sequence)
        if inWindow { receivedInWindow += 1 }
        sampleCounter += 1
        if sampleCounter >= sampleEvery {
            sampleCounter = 0
            latencies.append(latency)
            if latencies.count >= sampleLimit {
                // Halve the sample set and the sampling rate together so later traffic keeps equal weight.
                latencies = latencies.enumerated().compactMap { $0.offset % 2 == 0 ? $0.element : nil }
                sampleEvery *= 2
            }
        }
    }

    var unique: Int { perPublisher.joined().reduce(0) { $0 + $1.unique } }
    var duplicates: Int { perPublisher.joined().reduce(0) { $0 + $1.duplicates } }
    var outOfOrder: Int { perPublisher.joined().reduce(0) { $0 + $1.outOfOrder } }

    /// The latency at quantile `q` (0...1) in nanoseconds; `sorted` must be ascending.
    static func quantile(_ q: Double, of sorted: [UInt64]) -> UInt64 {
        guard !sorted.isEmpty else { return 0 }
        let index = min(sorted.count - 1, Int((Double(sorted.count) * q).rounded(.down)))
        return sorted[index]
    }
}
