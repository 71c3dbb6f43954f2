// PUBLISH to `$CONTROL/...` (mosquitto 2.0's control API): handed to the control handler, never routed; its answer is
// published by the broker on the response topic.
import MQTTCodec

extension Broker {
    /// Whether a PUBLISH the client may send is a control request, which is then consumed here. As in mosquitto, no
    /// `$CONTROL/` message reaches subscribers: those without a handler are acknowledged and dropped. Costs one byte
    /// comparison for every other topic, and nothing at all while no handler is configured.
    @inline(__always)
    func consumeControlRequest(_ request: Publish, from client: ClientConnection, into actions: inout [Action]) -> Bool
    {
        // The first byte before anything else: loading the optional handler costs an existential copy per message.
        guard request.topic.bytes.first == UInt8(ascii: "$") else { return false }
        return consumeDollarRequest(request, from: client, into: &actions)
    }

    private func consumeDollarRequest(_ request: Publish, from client: ClientConnection, into actions: inout [Action])
        -> Bool
    {
        guard let handler = controlHandler, request.topic.bytes.starts(with: Self.controlPrefix) else { return false }
        guard request.topic.bytes == handler.topic.bytes else { return true }
        let reply = handler.handle(payload: request.payload, clientID: client.clientID, username: client.username)
        if let responseTopic = controlResponseTopic {
            publish(
                Message(topic: responseTopic, payload: reply.response, qos: .atMostOnce), retain: false, into: &actions)
        }
        disconnect(reply.disconnect, into: &actions)
        return true
    }

    private static let controlPrefix = Array("$CONTROL/".utf8)

    /// mosquitto's `mosquitto_kick_client_by_username(name, false)`: the connections go, their Wills are not
    /// published, and they may log in again under whatever rules now apply.
    private func disconnect(_ targets: [ControlReply.Disconnect], into actions: inout [Action]) {
        guard !targets.isEmpty else { return }
        let targets = Set(targets)
        let affected = connections.values.filter { client in
            guard let username = client.username else { return targets.contains(.anonymous) }
            return targets.contains(.username(username))
        }
        for client in affected {
            client.will = nil
            endConnection(
                client, reason: .limitExceeded("its permissions were changed by the dynamic security plugin"),
                tellDriver: true, into: &actions)
        }
    }
}
