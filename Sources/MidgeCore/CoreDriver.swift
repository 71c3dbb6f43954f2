// The one way a driver runs the core: events in, actions out, records out. The event loops, the core tests'
// harness and the fuzz target all go through here, so what they exercise is what the server runs.
import MQTTCodec

/// Something that happened outside the core and that the core must hear of. Drivers queue and hand these over as
/// they are (the event loops move them between threads in batches), then call `Broker.run` for each.
public enum CoreEvent: Sendable {
    /// A connection's CONNECT, with the facts the core keeps about the connection.
    case connect(ConnectionID, Packet, ConnectionInfo)
    /// The answer to the core's `Action.admit` for the connection. Indirect: the answer is large and rare, and
    /// every event (a PUBLISH's above all) is moved and copied at the size of the largest case.
    indirect case admission(ConnectionID, AdmissionAnswer)
    /// Any later packet. The core reads `ConnectionInfo` only with a CONNECT, so none is carried (and no string is
    /// retained and released with every PUBLISH).
    case packet(ConnectionID, Packet)
    /// The driver saw the connection end (EOF, socket error, a malformed packet, shutdown).
    case closed(ConnectionID, CloseReason)
    /// The connection's unsent output passed the driver's high-water mark.
    case outputCongested(ConnectionID)
    /// ... and fell back to the low-water mark.
    case outputDrained(ConnectionID)
    /// The answer to `ReadingChange.confirmOutput`.
    case outputConfirmed(ConnectionID)
    /// Time passed: keepalives, Will delays, session expiry.
    case tick
    /// The broker's own message (`$SYS`, a driver's notification).
    indirect case published(Message, retain: Bool)
    /// The record log confirmed every append up to this sequence (see `RecordLog`).
    case recordsDurable(through: UInt64)
    /// Whether the record log can write (see `Broker.setStoreWritable`).
    case storeWritable(Bool)
}

extension Broker {
    /// Facts for `.packet` events: the core never reads them after CONNECT.
    @usableFromInline
    static let laterPacketInfo = ConnectionInfo(remoteAddress: "", listenerPort: 0)

    /// One event into the core; the actions it causes are appended to `actions`, pauses and resumes of reading wait
    /// for `takeReadingChanges`, and records for `appendRecords`, which ends every run of events.
    ///
    /// Inlinable so that a driver's call compiles to the switch it used to write itself: no call, copy or
    /// allocation is added per packet on the event loops' path.
    @inlinable @inline(__always)
    public func run(_ event: CoreEvent, now: MonotonicTime, into actions: inout [Action]) {
        switch event {
        case .connect(let id, let packet, let info):
            handle(packet, from: id, info: info, now: now, into: &actions)
        case .admission(let id, let answer):
            admissionAnswered(answer, for: id, now: now, into: &actions)
        case .packet(let id, let packet):
            handle(packet, from: id, info: Self.laterPacketInfo, now: now, into: &actions)
        case .closed(let id, let reason):
            connectionClosed(id, reason: reason, now: now, into: &actions)
        case .outputCongested(let id):
            outputCongested(id)
        case .outputDrained(let id):
            outputDrained(id, now: now, into: &actions)
        case .outputConfirmed(let id):
            outputConfirmed(id, now: now, into: &actions)
        case .tick:
            tick(now: now, into: &actions)
        case .published(let message, let retain):
            publish(message, retain: retain, into: &actions)
        case .recordsDurable(let sequence):
            recordsDurable(through: sequence, into: &actions)
        case .storeWritable(let writable):
            setStoreWritable(writable)
        }
    }
}
