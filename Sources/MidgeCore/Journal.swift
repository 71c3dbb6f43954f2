// What the core writes down for the durable store (§3.1.2.4, §3.3.1.3, §4.3): records, and the acknowledgements
// that must wait until the record log confirms them. Exists only while persistence is on.
import MQTTCodec
import MidgeRecords

/// The core's side of persistence. Every record is built here or next to a call into it, behind a
/// `if let journal` test, so a broker without persistence builds none.
final class Journal {
    /// Where `Broker.appendRecords` puts them.
    let log: any RecordLog
    /// Records since the last append, in the order the changes happened.
    @exclusivity(unchecked) var records: [StoreRecord] = []
    /// Sends waiting for `records` (and every earlier append) to be durable.
    @exclusivity(unchecked) var held: [Action] = []
    /// The sequence number of the last append.
    var lastAppend: UInt64 = 0
    /// Sends held behind appends the log has not confirmed yet, oldest append first; `awaitingStart` is the first
    /// entry still waiting (the array is emptied when none is).
    @exclusivity(unchecked) var awaiting: [(sequence: UInt64, held: [Action])] = []
    var awaitingStart = 0
    /// Held sends per connection not yet released. While a connection has any, its later acknowledgements are held
    /// too, so they leave in the order the core produced them [MQTT-4.6.0-2].
    @exclusivity(unchecked) var outstanding: [ConnectionID: Int] = [:]
    /// The next message body id; continues after the largest id the store holds.
    var nextMessageID: UInt64 = 1
    /// The body most recently written in this fan-out, so a message reaching many sessions is written once.
    var lastStoredMessage: UInt64 = 0
    /// Unix seconds at the monotonic instant `clockBase`, for the last-seen times `persistent_client_expiration`
    /// reads across restarts.
    let unixBase: Int64
    let clockBase: MonotonicTime
    /// False while the store cannot write: new QoS 1/2 publishes are refused (not acknowledged).
    var writable = true
    /// QoS 1/2 publishes refused in the current episode of an unwritable store, for the log.
    var refusedInEpisode: UInt64 = 0

    init(log: any RecordLog, nextMessageID: UInt64, unixSeconds: Int64, now: MonotonicTime) {
        self.log = log
        self.nextMessageID = max(1, nextMessageID)
        self.unixBase = unixSeconds
        self.clockBase = now
    }

    func allocateMessageID() -> UInt64 {
        defer { nextMessageID &+= 1 }
        return nextMessageID
    }

    func unixSeconds(at now: MonotonicTime) -> Int64 {
        unixBase &+ (now.nanoseconds &- clockBase.nanoseconds) / 1_000_000_000
    }

    /// Whether an acknowledgement for `connection` must wait: something produced before it is not durable yet.
    @inline(__always)
    func mustHold(_ connection: ConnectionID) -> Bool {
        !records.isEmpty || outstanding[connection] != nil
    }

    func hold(_ action: consuming Action, for connection: ConnectionID) {
        outstanding[connection, default: 0] += 1
        held.append(action)
    }

    /// A QoS 1/2 delivery to a persistent session entered its queue or its in-flight window. A new delivery's body
    /// goes first, once per fan-out (the store ignores a delivery whose body it does not have); one that leaves the
    /// queue for the window refers to the body its queued record kept.
    func recordDelivery(
        _ message: Message, qos: QoS, retain: Bool, to clientID: String, packetID: PacketID?, fromQueue: Bool = false
    ) {
        if !fromQueue && lastStoredMessage != message.storeID {
            lastStoredMessage = message.storeID
            records.append(
                .messageStored(id: message.storeID, topic: message.topic, payload: message.payload, qos: message.qos))
        }
        if let packetID {
            records.append(
                .deliveryInFlight(
                    clientID: clientID, messageID: message.storeID, packetID: packetID, qos: qos, retain: retain,
                    state: .publishSent))
        } else {
            records.append(.deliveryQueued(clientID: clientID, messageID: message.storeID, qos: qos, retain: retain))
        }
    }
}

/// `persistent_client_expiration`: when each persistent session without a connection was last seen.
struct SessionExpiry {
    let limit: Int64
    var offlineSince: [ClientIDKey: MonotonicTime] = [:]
    var nextScan = MonotonicTime(nanoseconds: 0)

    init(seconds: Int64) { limit = seconds }

    /// How often offline sessions are checked: a minute, or the limit itself when it is shorter.
    var scanInterval: Double { Double(min(60, max(1, limit))) }
}
