// Inbound PUBLISH (§3.3.4, §4.3): acknowledgement, authorisation, the retained store, then routing.
import MQTTCodec

extension Broker {
    func handlePublish(_ publish: Publish, from client: ClientConnection, into actions: inout [Action]) {
        counters.messagesReceived += 1
        guard publish.qos <= configuration.maxQoS else {
            close(client, for: .qosAboveMaximum(publish.qos), into: &actions)
            return
        }
        let session = client.session
        switch publish.qos {
        case .atMostOnce:
            accept(publish, from: client, into: &actions)
        case .atLeastOnce:
            accept(publish, from: client, into: &actions)
            // Same id [MQTT-4.3.2-2], in arrival order since each PUBLISH is answered as it is handled [MQTT-4.6.0-2].
            if let id = publish.packetID { actions.append(.send(client.id, .control(.puback(id)))) }
        case .exactlyOnce:
            guard let id = publish.packetID else { return }
            // Method B: route now, remember the id until PUBREL; a repeat is answered but not routed again
            // [MQTT-4.3.3-2].
            if session.activeFlows.inboundQoS2.insert(id.rawValue).inserted {
                accept(publish, from: client, into: &actions)
            }
            actions.append(.send(client.id, .control(.pubrec(id))))  // [MQTT-4.6.0-3]
        }
    }

    /// Takes ownership of the message, unless the client may not publish it: then it is acknowledged as
    /// usual and dropped [MQTT-3.3.5-2]. `$SYS` is the broker's own (mosquitto drops it the same way).
    private func accept(_ publish: Publish, from client: ClientConnection, into actions: inout [Action]) {
        guard !publish.topic.isSysTopic,
            accessControl.mayPublish(clientID: client.clientID, username: client.username, topic: publish.topic)
        else { return }
        // The publisher's DUP is never copied [MQTT-3.3.1-3]; the message keeps its own QoS for downgrading.
        let message = Message(topic: publish.topic, payload: publish.payload, qos: publish.qos)
        if publish.retain { updateRetained(with: message) }
        route(message, from: client, into: &actions)
    }

    /// RETAIN=1: store or replace [MQTT-3.3.1-5], or delete on an empty payload, which is never stored
    /// itself [MQTT-3.3.1-10][MQTT-3.3.1-11]. RETAIN=0 never gets here [MQTT-3.3.1-12].
    func updateRetained(with message: Message) {
        guard configuration.retainAvailable else { return }
        if message.payload.isEmpty {
            retained.remove(message.topic)
        } else {
            retained.store(message)
        }
    }
}
