// PINGREQ (§3.12.4): answered with PINGRESP; receiving it already moved the keepalive deadline.
import MQTTCodec

extension Broker {
    func handlePingreq(from client: ClientConnection, into actions: inout [Action]) {
        actions.append(.send(client.id, .control(.pingresp)))  // [MQTT-3.12.4-1]
    }
}
