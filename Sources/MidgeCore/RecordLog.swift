// The seam between the core and durable storage (§3.1.2.4, §4.3): the core appends records to a log it does not own,
// and releases the acknowledgements that promise durability only when the log says the records before them are safe.
import MidgeRecords

/// Where the core appends its records: the server's write-ahead log, or an `InMemoryRecordLog` in tests.
///
/// The driver ends every run of events with `Broker.appendRecords()`, which makes one append of the run's records,
/// numbered 1, 2, 3… An append with `confirm` has sends held behind it (PUBACK, PUBREC, PUBCOMP, SUBACK,
/// UNSUBACK, a persistent session's QoS 2 delivery); an empty one is then a barrier that keeps their order. Once
/// its records and every earlier append's are durable, the log must bring `sequence` back to the thread that drives
/// the broker, where it goes in as `CoreEvent.recordsDurable(through:)` and the held sends go out, in order. An
/// append without `confirm` needs no answer: the next confirmation covers it.
public protocol RecordLog: AnyObject {
    /// Called on the broker's thread, in sequence order. Must not call back into the broker.
    func append(_ records: [StoreRecord], sequence: UInt64, confirm: Bool)
}
