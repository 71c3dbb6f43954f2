// CONNECTs waiting for the driver's verdict on their credentials (`Action.admit`): what the core keeps meanwhile,
// and what it does with the answer.
import MQTTCodec

/// A CONNECT that passed the core's own checks, waiting for its `AdmissionAnswer`.
struct PendingAdmission {
    let connect: Connect
    let info: ConnectionInfo
    /// As the core decided it (assigned, or the user name), so the answer completes the CONNECT that was asked about.
    let clientID: String
    /// What the connection sent after CONNECT, in order. A driver that holds input while admitting sends nothing;
    /// one that does not loses nothing.
    var laterPackets: [Packet] = []
}

/// A client's own permissions (`AdmissionAnswer.accessControl`) on its session, boxed so a session without them
/// pays one word.
final class GrantedAccess {
    let control: any AccessControl

    init(_ control: any AccessControl) {
        self.control = control
    }
}

extension Broker {
    /// The verdict on the connection's `Action.admit`. Ignored when the connection has closed (or was refused)
    /// since; an acceptance completes its CONNECT (Will permission, takeover, session, CONNACK), and then what it
    /// sent meanwhile is handled.
    public func admissionAnswered(
        _ answer: AdmissionAnswer, for connection: ConnectionID, now: MonotonicTime, into actions: inout [Action]
    ) {
        currentTime = now
        guard let pending = pendingAdmissions.removeValue(forKey: connection) else { return }
        admit(
            pending.connect, from: connection, info: pending.info, clientID: pending.clientID, answer, now: now,
            into: &actions)
        for packet in pending.laterPackets {
            handle(packet, from: connection, info: pending.info, now: now, into: &actions)
        }
    }

    /// Whether a CONNECT from the connection waits for its answer.
    public func isAwaitingAdmission(_ connection: ConnectionID) -> Bool { pendingAdmissions[connection] != nil }

    /// A packet from a connection whose admission is pending: kept for after it, except that a second CONNECT is
    /// a protocol violation [MQTT-3.1.0-2] that ends the wait.
    func holdWhileAdmitting(_ packet: Packet, from connection: ConnectionID, into actions: inout [Action]) {
        guard case .connect = packet else {
            pendingAdmissions[connection]?.laterPackets.append(packet)
            return
        }
        pendingAdmissions[connection] = nil
        recentlyClosed.insert(connection)
        actions.append(.close(connection, ProtocolViolation.secondConnect.closeReason))
    }

    /// The ACL that checks what the session receives: its client's own, or its listener's.
    func accessControl(of session: Session) -> any AccessControl {
        session.grantedAccess?.control ?? security(session.securityProfile).accessControl
    }

    /// A session handed over in an `AdmissionAnswer`, with its subscriptions in the trie (and on record, with
    /// persistence on).
    func restore(_ restored: RestoredSession, clientID: String) -> Session {
        nextSessionSerial += 1
        let session = Session(clientID: clientID, serial: nextSessionSerial, cleanSession: false)
        // On record before its subscriptions, which the store only adds to a session it has.
        if let journal {
            journal.records.append(
                .sessionCreated(clientID: clientID, unixSeconds: journal.unixSeconds(at: currentTime)))
        }
        for subscription in restored.subscriptions {
            if subscriptionTrie.subscribe(subscription.filter, session: session, qos: subscription.qos) {
                counters.subscriptions += 1
            }
            session.subscriptions[subscription.filter] = subscription.qos
            journal?.records.append(
                .subscriptionAdded(clientID: clientID, filter: subscription.filter, qos: subscription.qos))
        }
        let count = restored.subscriptions.count
        log(.info, "Client \(clientID) continues a session of \(count) subscriptions handed over.")
        return session
    }
}
