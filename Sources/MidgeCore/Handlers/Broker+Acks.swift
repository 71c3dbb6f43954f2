// PUBACK, PUBREC, PUBREL, PUBCOMP (§3.4–3.7, §4.3): advancing the QoS 1/2 flows in both directions.
import MQTTCodec

extension Broker {
    /// Completes an outbound QoS 1 delivery; the freed slot goes to the next queued message.
    func handlePuback(_ id: PacketID, from client: ClientConnection, into actions: inout [Action]) {
        let session = client.session
        guard let flows = session.flows, let entry = flows.inflight[id] else {
            ignoreAck("PUBACK", id, client)
            return
        }
        guard entry.state == .awaitingPuback else {
            close(client, for: .wrongAcknowledgement(.puback, deliveryQoS: entry.qos), into: &actions)
            return
        }
        flows.inflight.remove(id)
        if let journal, !session.cleanSession {
            journal.records.append(.deliveryCompleted(clientID: session.clientID, delivery: .packet(id)))
        }
        pump(session, into: &actions)
    }

    /// Outbound QoS 2, step two: answer with PUBREL, same id [MQTT-4.3.3-1], in PUBREC order [MQTT-4.6.0-4].
    /// A repeated PUBREC gets the PUBREL again.
    func handlePubrec(_ id: PacketID, from client: ClientConnection, into actions: inout [Action]) {
        guard let flows = client.session.flows, let entry = flows.inflight[id] else {
            ignoreAck("PUBREC", id, client)
            return
        }
        guard entry.state != .awaitingPuback else {
            close(client, for: .wrongAcknowledgement(.pubrec, deliveryQoS: entry.qos), into: &actions)
            return
        }
        if entry.state == .awaitingPubrec {
            flows.inflight.markReleased(id)
            // PUBREL only once this is durable: a restart that resent the PUBLISH after the client completed the
            // flow would deliver the message twice.
            if let journal, !client.session.cleanSession {
                journal.records.append(
                    .deliveryInFlight(
                        clientID: client.session.clientID, messageID: entry.message.storeID, packetID: id,
                        qos: entry.qos, retain: entry.retain, state: .pubrelSent))
            }
        }
        sendAcknowledgement(.pubrel(id), to: client.id, into: &actions)
    }

    /// Inbound QoS 2, last step: forget the id and answer PUBCOMP, also for ids not known [MQTT-4.3.3-2].
    func handlePubrel(_ id: PacketID, from client: ClientConnection, into actions: inout [Action]) {
        let session = client.session
        if session.flows?.inboundQoS2.remove(id.rawValue) != nil, let journal, !session.cleanSession {
            // PUBCOMP only once this is durable: after a restart that still knew the id, the client's next
            // PUBLISH reusing it would look like a repeat and be lost.
            journal.records.append(.inboundReleased(clientID: session.clientID, packetID: id))
        }
        sendAcknowledgement(.pubcomp(id), to: client.id, into: &actions)
    }

    /// Completes an outbound QoS 2 delivery.
    func handlePubcomp(_ id: PacketID, from client: ClientConnection, into actions: inout [Action]) {
        let session = client.session
        guard let flows = session.flows, let entry = flows.inflight[id], entry.state != .awaitingPubrec else {
            // Unknown, or before its PUBREC: nothing to complete yet.
            ignoreAck("PUBCOMP", id, client)
            return
        }
        guard entry.state == .awaitingPubcomp else {
            close(client, for: .wrongAcknowledgement(.pubcomp, deliveryQoS: entry.qos), into: &actions)
            return
        }
        flows.inflight.remove(id)
        if let journal, !session.cleanSession {
            journal.records.append(.deliveryCompleted(clientID: session.clientID, delivery: .packet(id)))
        }
        pump(session, into: &actions)
    }

    private func ignoreAck(_ kind: String, _ id: PacketID, _ client: ClientConnection) {
        log(.debug, "Client \(client.clientID) sent \(kind) for packet id \(id), which is not awaiting one; ignored.")
    }
}
