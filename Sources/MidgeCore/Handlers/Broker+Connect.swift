// CONNECT (§3.1.4): refusals, client id assignment, takeover, session resume or discard, CONNACK.
import MQTTCodec

/// Why a CONNECT is refused. Each carries its CONNACK code, so the wire consequence lives here only.
enum ConnectRefusal {
    /// MQTT 3.1 has no zero-length client ids.
    case emptyClientIDOnMQTT31
    /// [MQTT-3.1.3-8]
    case emptyClientIDWithPersistentSession
    /// `allow_zero_length_clientid false` [MQTT-3.1.3-9]
    case emptyClientIDNotAllowed
    /// More than 23 bytes on MQTT 3.1, or more than `maxClientIDLength` [MQTT-3.1.3-9].
    case clientIDTooLong(Int)
    /// Above `max_keepalive`: mosquitto 2.0 refuses 3.1/3.1.1 clients that ask for more.
    case keepaliveTooLarge(UInt16)
    /// `allow_anonymous false` and no user name.
    case anonymous
    /// The `AdmissionAnswer`'s verdict.
    case authentication(ConnectReturnCode)
    /// The client may not publish to its own Will topic.
    case willDenied
    /// The broker is above `memory_limit`: it keeps serving the clients it has and takes no new ones.
    case memoryLimit
    /// `clientid_prefixes`: the client id does not start with the required prefix (mosquitto: not authorised).
    case clientIDPrefix(String)

    var returnCode: ConnectReturnCode {
        switch self {
        case .emptyClientIDOnMQTT31, .emptyClientIDWithPersistentSession, .emptyClientIDNotAllowed,
            .clientIDTooLong, .keepaliveTooLarge:
            .identifierRejected
        case .anonymous, .willDenied, .clientIDPrefix: .notAuthorized
        case .authentication(let code): code
        case .memoryLimit: .serverUnavailable
        }
    }

    var description: String {
        switch self {
        case .emptyClientIDOnMQTT31: "identifier rejected (empty client id on MQTT 3.1)"
        case .emptyClientIDWithPersistentSession: "identifier rejected (empty client id with clean session 0)"
        case .emptyClientIDNotAllowed: "identifier rejected (zero length client ids are not allowed)"
        case .clientIDTooLong(let length): "identifier rejected (client id of \(length) bytes is too long)"
        case .keepaliveTooLarge(let seconds): "identifier rejected (keepalive \(seconds) above the maximum)"
        case .anonymous: "not authorised (anonymous clients are not allowed)"
        case .authentication(.badUsernameOrPassword): "bad user name or password"
        case .authentication(let code): "not authorised (\(code))"
        case .willDenied: "not authorised (will topic denied)"
        case .memoryLimit: "server unavailable (memory_limit reached)"
        case .clientIDPrefix(let prefix): "not authorised (client id does not start with clientid_prefixes '\(prefix)')"
        }
    }
}

extension Broker {
    func handleConnect(
        _ connect: Connect, from connection: ConnectionID, info: ConnectionInfo, now: MonotonicTime,
        into actions: inout [Action]
    ) {
        var clientID = connect.clientID
        if let will = connect.will, TopicDepth.exceeds(will.topic.bytes, limit: configuration.maxTopicLevels) {
            // As mosquitto: a protocol error, closed without a CONNACK.
            let levels = TopicDepth.levelCount(will.topic.bytes)
            counters.topicsTooDeep += 1
            log(
                .notice,
                "Client \(clientID) from \(info.remoteAddress) disconnected: Will topic of \(levels) levels, above max_topic_levels."
            )
            recentlyClosed.insert(connection)
            actions.append(.close(connection, ProtocolViolation.topicTooDeep(.connect, levels: levels).closeReason))
            return
        }
        if let refusal = refusal(of: connect, info: info, assigning: &clientID) {
            refuse(connection, clientID: clientID, info: info, refusal, into: &actions)
            return
        }
        guard security(info.securityProfile).asksAdmission else {
            let answer = AdmissionAnswer(verdict: .accepted, username: connect.username)
            admit(connect, from: connection, info: info, clientID: clientID, answer, now: now, into: &actions)
            return
        }
        // The credentials are the driver's to judge (an internal client's too: the driver knows what it vouches for);
        // the connection waits, and so does everything it sends.
        pendingAdmissions[connection] = PendingAdmission(connect: connect, info: info, clientID: clientID)
        actions.append(
            .admit(
                AdmissionRequest(
                    connection: connection, clientID: clientID,
                    clientIDWasAssigned: clientID
                        != (configuration.useUsernameAsClientID ? connect.username ?? "" : connect.clientID),
                    username: connect.username, password: connect.password, cleanSession: connect.cleanSession,
                    info: info)))
    }

    /// The rest of CONNECT once the credentials are judged: the Will's permission, takeover, the session, CONNACK.
    func admit(
        _ connect: Connect, from connection: ConnectionID, info: ConnectionInfo, clientID: String,
        _ answer: AdmissionAnswer, now: MonotonicTime, into actions: inout [Action]
    ) {
        if answer.verdict != .accepted {
            refuse(connection, clientID: clientID, info: info, .authentication(answer.verdict), into: &actions)
            return
        }
        var connect = connect
        connect.username = answer.username
        let accessControl = answer.accessControl ?? security(info.securityProfile).accessControl
        if !info.isInternal, let will = connect.will {
            // The Will is published under the listener's mount point, so that is where it is authorised.
            guard let topic = Mount.topic(will.topic, under: info.mountPoint),
                accessControl.mayPublish(clientID: clientID, username: connect.username, topic: topic)
            else {
                refuse(connection, clientID: clientID, info: info, .willDenied, into: &actions)
                return
            }
        }

        // Takeover: the connected client with this id goes first, its Will published [MQTT-3.1.4-2].
        let key = ClientIDKey(clientID)
        if let existing = sessions[key], let old = existing.connection, let oldClient = connections[old] {
            log(.notice, "Client \(clientID) already connected, closing old connection.")
            endConnection(oldClient, reason: .takenOver, tellDriver: true, into: &actions)
        }
        if let restored = answer.restoredSession, !connect.cleanSession {
            // Another holder's session replaces whatever this broker kept under the id.
            if let stored = sessions[key] { discardSession(stored) }
            sessions[key] = restore(restored, clientID: clientID)
        }

        let session: Session
        let sessionPresent: Bool
        if !connect.cleanSession, let stored = sessions[key] {
            session = stored  // [MQTT-3.1.2-4]
            sessionPresent = true  // [MQTT-3.2.2-2]
        } else {
            if let stored = sessions[key] { discardSession(stored) }  // [MQTT-3.1.2-6]
            nextSessionSerial += 1
            session = Session(clientID: clientID, serial: nextSessionSerial, cleanSession: connect.cleanSession)
            sessions[key] = session
            sessionPresent = false  // [MQTT-3.2.2-1][MQTT-3.2.2-3]
        }
        session.username = connect.username
        session.securityProfile = info.securityProfile
        session.grantedAccess = answer.accessControl.map(GrantedAccess.init)
        if answer.accessControl?.checksDeliveries == true { checksDeliveries = true }
        session.isBridge = connect.isBridge
        session.connection = connection
        session.outputBlocks = []
        if let flows = session.flows {
            flows.unconfirmedOutputBytes = 0
            flows.confirmingOutputBytes = 0
        }
        if !session.cleanSession {
            // Created, or seen again: the last-seen time `persistent_client_expiration` starts from.
            if let journal {
                journal.records.append(.sessionCreated(clientID: clientID, unixSeconds: journal.unixSeconds(at: now)))
            }
            expiry?.offlineSince[key] = nil
        }

        let client = ClientConnection(
            id: connection, info: info, session: session, connect: connect, now: now,
            accessControl: accessControl)
        connections[connection] = client
        if let deadline = client.keepaliveDeadline { keepalive.push(deadline, connection) }
        logConnected(client, cleanSession: connect.cleanSession, isBridge: connect.isBridge)

        // CONNACK first [MQTT-3.2.0-1], then what the resumed session still owes the client. With persistence on, once
        // the session's creation or discarding is on disk, and everything after it waits behind it.
        sendAcknowledgement(
            .connack(ConnAck(sessionPresent: sessionPresent, returnCode: .accepted)), to: connection, into: &actions)
        resume(session, into: &actions)
    }

    /// The core's own checks, in mosquitto's order, all before the password check; assigns an id to an acceptable empty one [MQTT-3.1.3-6].
    private func refusal(
        of connect: Connect, info: ConnectionInfo, assigning clientID: inout String
    ) -> ConnectRefusal? {
        if info.isInternal { return nil }
        let security = security(info.securityProfile)
        if configuration.useUsernameAsClientID {
            // mosquitto's use_username_as_clientid: the user name is the client id; without one, not authorised.
            guard let username = connect.username else { return .anonymous }
            clientID = username
        }
        if clientID.isEmpty {
            if connect.protocolVersion == .v3_1 { return .emptyClientIDOnMQTT31 }
            if !connect.cleanSession { return .emptyClientIDWithPersistentSession }
            if !security.allowZeroLengthClientID { return .emptyClientIDNotAllowed }
            clientID = generateClientID(prefix: security.autoIDPrefix)
        } else {
            let length = clientID.utf8.count
            if connect.protocolVersion == .v3_1 && length > 23 { return .clientIDTooLong(length) }
            if length > configuration.maxClientIDLength { return .clientIDTooLong(length) }
        }
        if let prefix = configuration.requiredClientIDPrefix, !clientID.utf8.starts(with: prefix.utf8) {
            return .clientIDPrefix(prefix)
        }
        if connect.keepAlive > configuration.maxKeepalive { return .keepaliveTooLarge(connect.keepAlive) }
        if memoryCeilingReached {
            counters.connectionsRefusedForMemory += 1
            return .memoryLimit
        }
        if connect.username == nil && !security.allowAnonymous { return .anonymous }
        // Then the credentials (`Action.admit`), then the Will's permission (`admit`), as mosquitto orders them.
        return nil
    }

    /// A non-zero CONNACK, with session present 0 [MQTT-3.2.2-4], then close [MQTT-3.2.2-5]. The connection is
    /// never registered, so nothing it sent afterwards is processed [MQTT-3.1.4-5] and no Will fires.
    func refuse(
        _ connection: ConnectionID, clientID: String, info: ConnectionInfo, _ refusal: ConnectRefusal,
        into actions: inout [Action]
    ) {
        let code = refusal.returnCode
        let shownID = clientID.isEmpty ? "<unknown>" : clientID
        log(.notice, "Client \(shownID) from \(info.remoteAddress) disconnected, \(refusal.description).")
        recentlyClosed.insert(connection)
        actions.append(.send(connection, .control(.connack(ConnAck(sessionPresent: false, returnCode: code)))))
        actions.append(.close(connection, .connectRefused(code)))
    }

    /// `autoIDPrefix` plus a random UUID, as mosquitto does. Random rather than a counter, so another client cannot
    /// guess an assigned id and take its connection over; the only output of the core that is not reproducible.
    private func generateClientID(prefix: String) -> String {
        var generator = SystemRandomNumberGenerator()
        while true {
            // Version 4 UUID: the version nibble is 4, the variant bits 10.
            let high = (generator.next() as UInt64) & 0xFFFF_FFFF_FFFF_0FFF | 0x0000_0000_0000_4000
            let low = (generator.next() as UInt64) & 0x3FFF_FFFF_FFFF_FFFF | 0x8000_0000_0000_0000
            let candidate =
                prefix + hex(high >> 32, 8) + "-" + hex(high >> 16 & 0xFFFF, 4) + "-"
                + hex(high & 0xFFFF, 4) + "-" + hex(low >> 48, 4) + "-" + hex(low & 0xFFFF_FFFF_FFFF, 12)
            if sessions[ClientIDKey(candidate)] == nil { return candidate }
        }
    }

    private func hex(_ value: UInt64, _ digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }

    private func logConnected(_ client: ClientConnection, cleanSession: Bool, isBridge: Bool) {
        // mosquitto numbers MQTT 3.1 as p1 and 3.1.1 as p2, and names bridges so.
        let protocolNumber = client.protocolVersion == .v3_1 ? 1 : 2
        var line = isBridge ? "New bridge" : "New client"
        line += " connected from \(client.info.remoteAddress) as \(client.clientID) "
        line += "(p\(protocolNumber), c\(cleanSession ? 1 : 0), k\(client.keepAlive)"
        if let username = client.username { line += ", u'\(username)'" }
        line += ")."
        log(.notice, line)
    }
}
