// The gateway's own MQTT session (§3.1, §3.8, §3.10, §4.3): subscribes to what HTTP subscribers asked for and keeps
// every delivery in the listener's topic history.
import MQTTCodec
import MidgeCore
import MidgeGateway

/// One per HTTP listener with subscribers, on a connection the loop made for it (no client behind its socket).
/// It acknowledges deliveries as it records them, so the core's in-flight window and queue for it stay empty as
/// long as the loop keeps up; its subscriptions are granted up to `max_qos`, so the history keeps each message's
/// own QoS.
final class GatewayRecorder: ConnectionTransport {
    private let hub: GatewayHub
    private let clientID: String
    private let decoder = FrameDecoder()
    private var connected = false
    private var connectWritten = false
    private var nextPacketID: UInt16 = 0
    /// SUBSCRIBEs written and not yet acknowledged, by packet id.
    private var pending: [UInt16: [TopicFilter]] = [:]
    private var partial: [UInt8] = []

    init(hub: GatewayHub, clientID: String) {
        self.hub = hub
        self.clientID = clientID
    }

    var connectIdentity: TransportIdentity { .authenticated(username: GatewayHub.recorderUsername) }

    func received(_ bytes: UnsafeRawBufferPointer, mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime)
        -> TransportStatus
    {
        work(mqtt: &mqtt, now: now)
        return .open
    }

    func poke(now: MonotonicTime, mqtt: inout [UInt8], wire: inout [UInt8]) -> TransportStatus {
        work(mqtt: &mqtt, now: now)
        return .open
    }

    func tick(now: MonotonicTime, mqtt: inout [UInt8], wire: inout [UInt8]) -> TransportStatus {
        work(mqtt: &mqtt, now: now)
        return .open
    }

    func send(_ mqttPackets: UnsafeRawBufferPointer, mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime)
        -> TransportStatus
    {
        partial.append(contentsOf: mqttPackets)
        var offset = 0
        var status = TransportStatus.open
        while offset < partial.count {
            let decoded = partial.withUnsafeBytes { bytes in
                try? decoder.decode(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
            }
            guard let (packet, consumed) = decoded else { break }
            offset += consumed
            if case .close = handle(packet, mqtt: &mqtt, now: now) { status = .close(.clientDisconnected) }
        }
        partial.removeFirst(offset)
        return status
    }

    func closing(_ reason: CloseReason, wire: inout [UInt8]) {
        hub.recorderEnded(afterConnecting: connected)
    }

    private func work(mqtt: inout [UInt8], now: MonotonicTime) {
        if !connectWritten {
            connectWritten = true
            // Clean: nothing of a previous recorder's session is wanted. Keepalive 0: the loop, not a timer, is alive.
            Packet.connect(Connect(cleanSession: true, keepAlive: 0, clientID: clientID)).encode(into: &mqtt)
        }
        let (subscribe, unsubscribe) = hub.recorderWork(now: now.nanoseconds)
        if !subscribe.isEmpty {
            let id = takePacketID()
            pending[id.rawValue] = subscribe
            let requests = subscribe.map { SubscriptionRequest(filter: $0, qos: hub.maxQoS) }
            Packet.subscribe(Subscribe(packetID: id, requests: requests)).encode(into: &mqtt)
        }
        if !unsubscribe.isEmpty {
            Packet.unsubscribe(Unsubscribe(packetID: takePacketID(), filters: unsubscribe)).encode(into: &mqtt)
        }
    }

    private func handle(_ packet: Packet, mqtt: inout [UInt8], now: MonotonicTime) -> TransportStatus {
        switch packet {
        case .connack(let connack):
            guard connack.returnCode == .accepted else { return .close(.clientDisconnected) }
            connected = true
        case .suback(let suback):
            guard let filters = pending.removeValue(forKey: suback.packetID.rawValue) else { break }
            hub.recorderSubscribed(filters, granted: suback.returnCodes.map { $0 != .failure })
        case .publish(let publish):
            if let id = publish.packetID {
                if publish.qos == .exactlyOnce {
                    Packet.pubrec(id).encode(into: &mqtt)
                    // A QoS 2 redelivery (DUP, same packet id) was recorded the first time [MQTT-4.3.3-2].
                    if publish.dup { break }
                } else {
                    Packet.puback(id).encode(into: &mqtt)
                }
            }
            // A retained message sent because a filter was just subscribed is state, not news [MQTT-3.3.1-8]:
            // each subscriber gets those from its own SUBSCRIBE.
            guard !publish.retain else { break }
            let message = GatewayMessage(
                topic: publish.topic, payload: publish.payload, qos: publish.qos, retain: false)
            hub.record(message, now: now.nanoseconds)
        case .pubrel(let id):
            Packet.pubcomp(id).encode(into: &mqtt)
        default:
            break
        }
        return .open
    }

    private func takePacketID() -> PacketID {
        nextPacketID = nextPacketID == UInt16.max ? 1 : nextPacketID + 1
        guard let id = PacketID(nextPacketID) else { fatalError("BUG: packet id 0 is skipped above") }
        return id
    }
}
