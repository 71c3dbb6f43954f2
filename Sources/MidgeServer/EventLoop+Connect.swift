// A CONNECT on its way to the core: the identity a transport vouches for (TLS `use_identity_as_username`), the
// password check on the auth gate's queue while the connection's input waits, and the verdict handed on.
import MQTTCodec
import MidgeCore

extension EventLoop {
    /// The first packet was CONNECT. The connection's later packets wait (held) until the verdict is known.
    func beginConnect(_ connection: Connection, _ packet: Packet) {
        guard case .connect(var connect) = packet else { return }
        let gate = server.authGate(for: connection.info.securityProfile)
        var identity = TransportIdentity.unchanged
        if connection.hasTransport, let slot = transports.slots[connection.id.rawValue] {
            identity = slot.transport.connectIdentity
        }
        switch identity {
        case .missing:
            logger.log(
                .notice,
                "Client \(connect.clientID) from \(connection.info.remoteAddress) presented no certificate identity.")
            finishConnect(connection, connect, code: .badUsernameOrPassword)
        case .internalClient(let username):
            connect.username = username
            connect.password = nil
            finishConnect(connection, connect, code: .accepted)
        case .authenticated(let username):
            // As mosquitto: the certificate is the credential; the CONNECT's user name and password are ignored.
            connect.username = username
            finishConnect(connection, connect, code: .accepted)
        case .unchanged:
            guard gate.checksOffLoop else {
                let code = gate.authenticator.authenticate(
                    clientID: connect.clientID, username: connect.username, password: connect.password)
                finishConnect(connection, connect, code: code)
                return
            }
            connection.state = .authenticating
            hold(connection)
            let address = connection.info.remoteAddress
            if let refused = gate.submit(connect, from: connection.id, address: address, loop: index) {
                finishConnect(connection, connect, code: refused)
                release(connection)
            }
        }
    }

    /// Hands the CONNECT to the core with the verdict sealed in place of its password.
    private func finishConnect(_ connection: Connection, _ connect: Connect, code: ConnectReturnCode) {
        var connect = connect
        connect.password = server.authGate.seal(code)
        connection.state = .connected
        connection.reachedCore = true
        report(.connect(connection.id, .connect(connect), connection.info))
    }

    /// Verdicts from the gate for this loop's connections; the held input behind each CONNECT follows it.
    func takeAuthVerdicts() {
        takeVerdicts(from: server.authGate)
        for gate in server.listenerGates { takeVerdicts(from: gate) }
    }

    private func takeVerdicts(from gate: AuthGate) {
        for verdict in gate.takeVerdicts(loop: index) {
            guard let connection = connections[verdict.connection], connection.state == .authenticating else {
                continue  // closed while its check ran
            }
            finishConnect(connection, verdict.connect, code: verdict.code)
            release(connection)
        }
    }
}
