// PUBACK, PUBREC, PUBREL, PUBCOMP (§3.4–3.7, §4.3): advancing the QoS 1/2 flows in both directions.
import MQTTCodec

extension Broker {
    /// Completes an outbound QoS 1 delivery; the freed slot goes to the next queued message.
    func handlePuback(_ id: PacketID, from client: ClientConnection, into actions: inout [Action]) {
        let session = client.session
        guard let flows = session.flows, let entry = flows.inflight[id], entry.state == .awaitingPuback else {
            ignoreAck("PUBACK", id, client)
            return
        }
        flows.inflight.remove(id)
        pump(session, into: &actions)
    }

    /// Outbound QoS 2, step two: answer with PUBREL, same id [MQTT-4.3.3-1], in PUBREC order [MQTT-4.6.0-4].
    /// A repeated PUBREC gets the PUBREL again.
    func handlePubrec(_ id: PacketID, from client: ClientConnection, into actions: inout [Action]) {
        guard let flows = client.session.flows, let entry = flows.inflight[id], entry.state != .awaitingPuback else {
            ignoreAck("PUBREC", id, client)
            return
        }
        if entry.state == .awaitingPubrec { flows.inflight.markReleased(id) }
        actions.append(.send(client.id, .control(.pubrel(id))))
    }

    /// Inbound QoS 2, last step: forget the id and answer PUBCOMP, also for ids not known [MQTT-4.3.3-2].
    func handlePubrel(_ id: PacketID, from client: ClientConnection, into actions: inout [Action]) {
        client.session.flows?.inboundQoS2.remove(id.rawValue)
        actions.append(.send(client.id, .control(.pubcomp(id))))
    }

    /// Completes an outbound QoS 2 delivery.
    func handlePubcomp(_ id: PacketID, from client: ClientConnection, into actions: inout [Action]) {
        let session = client.session
        guard let flows = session.flows, let entry = flows.inflight[id], entry.state == .awaitingPubcomp else {
            ignoreAck("PUBCOMP", id, client)
            return
        }
        flows.inflight.remove(id)
        pump(session, into: &actions)
    }

    private func ignoreAck(_ kind: String, _ id: PacketID, _ client: ClientConnection) {
        log(.debug, "Client \(client.clientID) sent \(kind) for packet id \(id), which is not awaiting one; ignored.")
    }
}
