// DISCONNECT (§3.14.4): the Will is discarded, then the connection closes.
import MQTTCodec

extension Broker {
    func handleDisconnect(from client: ClientConnection, into actions: inout [Action]) {
        client.will = nil  // [MQTT-3.14.4-3]
        endConnection(client, reason: .clientDisconnected, tellDriver: true, into: &actions)
    }
}
