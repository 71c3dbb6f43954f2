// Publishing a Will (§3.1.2.5) when a connection ends without DISCONNECT.
import MQTTCodec

extension Broker {
    /// Sends the Will to subscribers with its QoS, retained if its retain flag says so
    /// [MQTT-3.1.2-8][MQTT-3.1.2-16][MQTT-3.1.2-17].
    func publishWill(_ will: Message, of client: ClientConnection, into actions: inout [Action]) {
        // Clients may not publish into `$SYS` (but for bridge states); a Will is no way around that.
        guard !will.topic.isReservedForBroker else {
            log(.debug, "Will of client \(client.clientID) on \(will.topic) dropped: $SYS is reserved.")
            return
        }
        let will = withStoreID(will)
        if client.willRetain { updateRetained(with: will, source: retainSource(of: client)) }
        route(will, retain: client.willRetain, from: nil, origin: client.session, into: &actions)
    }
}
