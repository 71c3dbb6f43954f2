// A CONNECT on its way to the core, and the core's admission requests answered: the identity a transport vouches for
// (TLS `use_identity_as_username`), the password check on the auth gate's queue while the connection's input waits,
// and the answer handed back to the core.
import MQTTCodec
import MidgeCore

extension EventLoop {
    /// The first packet was CONNECT: the core gets it at once, and the connection's later packets wait (held) until
    /// the core's admission request for it is answered (or the core refused it on its own checks).
    func beginConnect(_ connection: Connection, _ packet: Packet) {
        guard case .connect(var connect) = packet else { return }
        switch transportIdentity(of: connection) {
        case .internalClient(let username):
            connect.username = username
            connect.password = nil
        case .authenticated(let username):
            // As mosquitto: the certificate is the credential; the CONNECT's user name and password are ignored.
            connect.username = username
        case .missing, .unchanged:
            break
        }
        connection.state = .authenticating
        connection.reachedCore = true
        hold(connection)
        report(.connect(connection.id, .connect(connect), connection.info))
    }

    /// The core's `Action.admit` for one of this loop's connections. A transport's identity or a gate without work
    /// answers at once (at the next safe point of the turn: the core may be running); a password or token waits
    /// for the gate's queue.
    func admit(_ request: AdmissionRequest) {
        guard let connection = connections[request.connection], connection.state == .authenticating else {
            return  // closed meanwhile: the core heard of it
        }
        if request.info.isInternal {
            // A bridge's own session (its primer included): the broker vouches for it.
            admissionsReady.append((request.connection, .accepted(request)))
            return
        }
        switch transportIdentity(of: connection) {
        case .missing:
            logger.log(
                .notice,
                "Client \(request.clientID) from \(connection.info.remoteAddress) presented no certificate identity.")
            admissionsReady.append((request.connection, .refused(.badUsernameOrPassword)))
        case .internalClient, .authenticated:
            // `beginConnect` put the transport's user name in the CONNECT the core asks about.
            admissionsReady.append((request.connection, .accepted(request)))
        case .unchanged:
            let gate = server.authGate(for: request.info.securityProfile)
            guard gate.checksOffLoop else {
                admissionsReady.append((request.connection, gate.authenticator.admit(request)))
                return
            }
            let address = connection.info.remoteAddress
            if let refused = gate.submit(request, address: address, loop: index) {
                admissionsReady.append((request.connection, refused))
            }
        }
    }

    /// Answers decided on this loop since the last call, and the gates' answers for this loop's connections: each
    /// goes to the core, and the connection's held input follows it.
    func takeAdmissionAnswers() {
        var ready: [(ConnectionID, AdmissionAnswer)] = []
        swap(&ready, &admissionsReady)
        for (id, answer) in ready { answered(id, answer) }
        for verdict in server.authGate.takeVerdicts(loop: index) { answered(verdict.connection, verdict.answer) }
        for gate in server.listenerGates {
            for verdict in gate.takeVerdicts(loop: index) { answered(verdict.connection, verdict.answer) }
        }
    }

    private func answered(_ id: ConnectionID, _ answer: AdmissionAnswer) {
        guard let connection = connections[id], connection.state == .authenticating else {
            return  // closed while its check ran
        }
        connection.state = .connected
        report(.admission(id, answer))
        release(connection)
    }

    private func transportIdentity(of connection: Connection) -> TransportIdentity {
        guard connection.hasTransport, let slot = transports.slots[connection.id.rawValue] else { return .unchanged }
        return slot.transport.connectIdentity
    }
}
