// The outbound QoS 1/2 flow of one delivery (§4.3.2, §4.3.3) as an explicit state, and the in-flight window.
import MQTTCodec

/// Where an outbound QoS 1/2 delivery stands. QoS 0 deliveries never enter this.
enum OutboundFlowState: Equatable {
    /// QoS 1 PUBLISH sent; complete on PUBACK [MQTT-4.3.2-1].
    case awaitingPuback
    /// QoS 2 PUBLISH sent; PUBREC moves it on [MQTT-4.3.3-1].
    case awaitingPubrec
    /// PUBREL sent; complete on PUBCOMP. The PUBLISH is never resent from here [MQTT-4.3.3-1].
    case awaitingPubcomp
}

/// One outbound QoS 1/2 delivery holding a packet id.
struct InflightMessage {
    let packetID: PacketID
    let message: Message
    let qos: QoS
    let retain: Bool
    var state: OutboundFlowState
    /// Resend order on reconnect: when the PUBLISH was first sent, or when its PUBREC arrived once it is
    /// at the PUBREL stage [MQTT-4.6.0-1][MQTT-4.6.0-4].
    var order: UInt64

    /// What goes on the wire when this delivery is (re)sent.
    func packet(dup: Bool) -> OutboundPacket {
        switch state {
        case .awaitingPuback, .awaitingPubrec:
            .publish(Delivery(message: message, qos: qos, retain: retain, dup: dup, packetID: packetID))
        case .awaitingPubcomp:
            .control(.pubrel(packetID))
        }
    }
}

/// A session's outbound deliveries holding packet ids, keyed by id.
struct InflightWindow {
    private(set) var messages: [UInt16: InflightMessage] = [:]
    private var nextID: UInt16 = 1
    private var nextOrder: UInt64 = 0
    /// Payload bytes of the deliveries held, for `max_inflight_bytes` (mosquitto counts payloads only).
    private(set) var payloadBytes = 0

    var count: Int { messages.count }

    /// A non-zero id not used by any delivery still in flight [MQTT-2.3.1-4]; nil when all 65535 are taken.
    /// Ids rotate instead of restarting at 1, so an id is not reused soon after its flow completed.
    mutating func allocateID() -> PacketID? {
        guard messages.count < Int(UInt16.max) else { return nil }
        var candidate = nextID
        while true {
            if candidate == 0 { candidate = 1 }
            if messages[candidate] == nil, let id = PacketID(candidate) {
                nextID = candidate &+ 1
                return id
            }
            candidate &+= 1
        }
    }

    mutating func insert(_ packetID: PacketID, message: Message, qos: QoS, retain: Bool) -> InflightMessage {
        let state: OutboundFlowState = qos == .exactlyOnce ? .awaitingPubrec : .awaitingPuback
        return insert(packetID, message: message, qos: qos, retain: retain, state: state)
    }

    /// Inserts as the newest entry in `state`: a fresh send, or a flow restored from the durable store.
    @discardableResult
    mutating func insert(
        _ packetID: PacketID, message: Message, qos: QoS, retain: Bool, state: OutboundFlowState
    ) -> InflightMessage {
        nextOrder += 1
        let entry = InflightMessage(
            packetID: packetID, message: message, qos: qos, retain: retain, state: state, order: nextOrder)
        // Ids come from `allocateID` or a restored window, never one in use: nothing is replaced, no bytes to take off.
        assert(messages[packetID.rawValue] == nil, "packet id \(packetID) already in flight")
        messages[packetID.rawValue] = entry
        payloadBytes += message.payload.count
        return entry
    }

    subscript(id: PacketID) -> InflightMessage? { messages[id.rawValue] }

    /// PUBREC arrived: the delivery waits for PUBCOMP now and is resent as a PUBREL, in PUBREC order.
    mutating func markReleased(_ id: PacketID) {
        nextOrder += 1
        messages[id.rawValue]?.state = .awaitingPubcomp
        messages[id.rawValue]?.order = nextOrder
    }

    mutating func remove(_ id: PacketID) {
        if let removed = messages.removeValue(forKey: id.rawValue) { payloadBytes -= removed.message.payload.count }
    }

    mutating func removeAll() {
        messages.removeAll()
        payloadBytes = 0
    }

    /// Every delivery in flight, in the order it must be resent on a reconnect [MQTT-4.6.0-1].
    var inResendOrder: [InflightMessage] {
        messages.values.sorted { $0.order < $1.order }
    }
}
