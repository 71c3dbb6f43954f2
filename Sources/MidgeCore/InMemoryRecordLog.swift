// A record log in memory: appends wait until the caller confirms them, so a test or the fuzz target decides when
// the "disk" catches up, and what a crash at any moment would keep.
import MidgeRecords

/// Keeps appended records unconfirmed until `confirm(through:)` or `confirmAll()`; confirmed ones are what a
/// restart would recover (`durableState`). Hand the sequence they return to the broker as
/// `CoreEvent.recordsDurable(through:)`.
public final class InMemoryRecordLog: RecordLog {
    public struct Append: Sendable, Equatable {
        public let sequence: UInt64
        public let records: [StoreRecord]
        /// The core holds sends until this append is confirmed.
        public let confirm: Bool
    }

    /// Appends not yet confirmed, oldest first.
    public private(set) var pending: [Append] = []
    /// Every confirmed record, in append order.
    public private(set) var durableRecords: [StoreRecord] = []
    /// What a restart would recover: the state handed to `init` with `durableRecords` applied.
    public private(set) var durableState: StoreState
    /// The highest sequence confirmed so far.
    public private(set) var confirmedThrough: UInt64 = 0

    /// `state` is what the log held before this run: what the broker was restored from.
    public init(holding state: StoreState = StoreState()) {
        durableState = state
    }

    public func append(_ records: [StoreRecord], sequence: UInt64, confirm: Bool) {
        precondition(sequence > (pending.last?.sequence ?? confirmedThrough), "appends out of order")
        pending.append(Append(sequence: sequence, records: records, confirm: confirm))
    }

    /// Makes every append up to `sequence` durable, oldest first. Returns the sequence to hand the broker, nil when
    /// no append was pending up to there.
    @discardableResult
    public func confirm(through sequence: UInt64) -> UInt64? {
        var confirmed: UInt64?
        while let first = pending.first, first.sequence <= sequence {
            pending.removeFirst()
            for record in first.records { durableState.apply(record) }
            durableRecords.append(contentsOf: first.records)
            confirmedThrough = first.sequence
            confirmed = first.sequence
        }
        return confirmed
    }

    /// Makes every pending append durable.
    @discardableResult
    public func confirmAll() -> UInt64? {
        guard let last = pending.last else { return nil }
        return confirm(through: last.sequence)
    }
}
