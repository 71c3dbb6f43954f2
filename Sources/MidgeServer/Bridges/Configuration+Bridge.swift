// mosquitto's bridge keys: a `connection NAME` line starts a bridge, and the bridge keys after it belong to it
// until the next `connection` line. Other keys keep their global meaning wherever they appear, as in mosquitto.
import MQTTCodec
import MidgeTLS

extension Configuration {
    /// The bridge keys Midge reads, all with mosquitto's meaning.
    static let bridgeKeys: [String] = [
        "connection", "address", "addresses", "round_robin", "topic", "bridge_protocol_version", "cleansession",
        "local_cleansession", "remote_clientid", "clientid", "local_clientid", "remote_username", "remote_password",
        "local_username", "local_password", "keepalive_interval", "idle_timeout", "start_type", "threshold",
        "restart_timeout", "notifications", "notification_topic", "notifications_local_only", "try_private",
        "bridge_attempt_unsubscribe", "bridge_outgoing_retain", "bridge_bind_address", "bridge_cafile",
        "bridge_capath", "bridge_certfile", "bridge_keyfile", "bridge_insecure", "bridge_tls_version", "bridge_alpn",
    ]

    /// mosquitto bridge keys refused, each with the reason.
    static let refusedBridgeKeys: [String: String] = [
        "bridge_identity": "TLS-PSK bridges are not supported; use bridge_cafile and a client certificate",
        "bridge_psk": "TLS-PSK bridges are not supported; use bridge_cafile and a client certificate",
        "bridge_max_packet_size": "an MQTT v5 setting; Midge bridges speak MQTT 3.1.1 or 3.1",
        "bridge_require_ocsp": "OCSP checks of the remote certificate are not implemented",
        "bridge_reload_type": "bridges are not reloaded on SIGHUP; restart the broker to change them",
        "bridge_receive_maximum": "an MQTT v5 setting; Midge bridges speak MQTT 3.1.1 or 3.1",
        "bridge_session_expiry_interval": "an MQTT v5 setting; Midge bridges speak MQTT 3.1.1 or 3.1",
        "bridge_max_topic_alias": "an MQTT v5 setting; Midge bridges speak MQTT 3.1.1 or 3.1",
    ]
}

extension Parser {
    /// The bridge keys. False when `key` is not one of them.
    mutating func parseBridgeKey(_ line: ConfigLine) throws(ConfigError) -> Bool {
        let key = line.key
        if let why = Configuration.refusedBridgeKeys[key] { throw line.fail("not supported: \(why)") }
        guard Configuration.bridgeKeys.contains(key) else { return false }

        if key == "connection" {
            let name = try line.single()
            guard !configuration.bridges.contains(where: { $0.name == name }) else {
                throw line.fail("a bridge named '\(name)' is already configured")
            }
            var bridge = BridgeConfiguration(name: name)
            bridge.origin = ConfigOrigin(fileName: fileName, line: line.number, key: key)
            configuration.bridges.append(bridge)
            return true
        }
        guard !configuration.bridges.isEmpty else { throw line.fail("a bridge key must follow a 'connection' line") }
        var bridge = configuration.bridges.removeLast()
        defer { configuration.bridges.append(bridge) }
        switch key {
        case "address", "addresses":
            guard !line.arguments.isEmpty else { throw line.fail("expects HOST[:PORT] ...") }
            for word in line.arguments {
                guard let address = BridgeConfiguration.Address(configValue: word) else {
                    throw line.fail("'\(word)' is not HOST, HOST:PORT or [IPV6]:PORT")
                }
                bridge.addresses.append(address)
            }
        case "round_robin":
            bridge.roundRobin = try line.boolean()
        case "topic":
            bridge.topics.append(try topic(line))
        case "bridge_protocol_version":
            switch try line.single() {
            case "mqttv311": bridge.protocolVersion = .v3_1_1
            case "mqttv31": bridge.protocolVersion = .v3_1
            case "mqttv50": throw line.fail("MQTT v5 bridges are not supported; use mqttv311")
            case let value: throw line.fail("'\(value)' is not mqttv311 or mqttv31")
            }
        case "cleansession":
            bridge.cleanSession = try line.boolean()
        case "local_cleansession":
            bridge.localCleanSession = try line.boolean()
        case "remote_clientid", "clientid":
            bridge.remoteClientID = try line.single()
        case "local_clientid":
            bridge.localClientID = try line.single()
        case "remote_username":
            bridge.remoteUsername = try line.text()
        case "remote_password":
            bridge.remotePassword = try line.text()
        case "local_username":
            bridge.localUsername = try line.text()
        case "local_password":
            // The local side is in-process: there is nothing to prove to ourselves. Accepted for mosquitto files.
            _ = try line.text()
        case "keepalive_interval":
            bridge.keepaliveInterval = try line.integer(5...65535)
        case "idle_timeout":
            bridge.idleTimeout = try line.integer(1...Int(Int32.max))
        case "start_type":
            let value = try line.single()
            guard let type = BridgeConfiguration.StartType(rawValue: value) else {
                throw line.fail("'\(value)' is not automatic, lazy or once")
            }
            bridge.startType = type
        case "threshold":
            bridge.threshold = try line.integer(1...Int(Int32.max))
        case "restart_timeout":
            let values = line.arguments.compactMap { Int($0) }
            switch (line.arguments.count, values.count) {
            case (1, 1) where values[0] >= 1:
                bridge.restartTimeout = .constant(seconds: values[0])
            case (2, 2) where values[0] >= 1 && values[1] >= values[0]:
                bridge.restartTimeout = .backoff(base: values[0], cap: values[1])
            default:
                throw line.fail("expects SECONDS, or BASE CAP with 1 <= BASE <= CAP")
            }
        case "notifications":
            bridge.notifications = try line.boolean()
        case "notification_topic":
            let value = try line.single()
            guard TopicName(value) != nil else { throw line.fail("'\(value)' is not a valid topic name") }
            bridge.notificationTopic = value
        case "notifications_local_only":
            bridge.notificationsLocalOnly = try line.boolean()
        case "try_private":
            bridge.tryPrivate = try line.boolean()
        case "bridge_attempt_unsubscribe":
            bridge.attemptUnsubscribe = try line.boolean()
        case "bridge_outgoing_retain":
            bridge.outgoingRetain = try line.boolean()
        case "bridge_bind_address":
            let value = try line.single()
            guard IPAddress(value) != nil else { throw line.fail("'\(value)' is not an IP address") }
            bridge.bindAddress = value
        case "bridge_cafile":
            bridge.tls.caFile = try line.text()
        case "bridge_capath":
            bridge.tls.caPath = try line.text()
        case "bridge_certfile":
            bridge.tls.certificateFile = try line.text()
        case "bridge_keyfile":
            bridge.tls.keyFile = try line.text()
        case "bridge_insecure":
            bridge.tls.insecure = try line.boolean()
        case "bridge_tls_version":
            let value = try line.single()
            guard let version = TLSVersion(configValue: value) else {
                throw line.fail("'\(value)' is not tlsv1.1, tlsv1.2 or tlsv1.3")
            }
            bridge.tls.minimumVersion = version
        case "bridge_alpn":
            bridge.tls.alpn = try line.single()
        default:
            fatalError("BUG: \(key) is in bridgeKeys without a case")
        }
        return true
    }

    /// `topic PATTERN [DIRECTION [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]`; `""` is an empty word, as in mosquitto.
    private func topic(_ line: ConfigLine) throws(ConfigError) -> BridgeTopic {
        let words = line.arguments.map { $0 == "\"\"" ? "" : $0 }
        guard (1...5).contains(words.count), words.count != 4 else {
            throw line.fail("expects PATTERN [in|out|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]")
        }
        var direction = BridgeTopic.Direction.out
        if words.count > 1 {
            guard let value = BridgeTopic.Direction(rawValue: words[1]) else {
                throw line.fail("'\(words[1])' is not in, out or both")
            }
            direction = value
        }
        var qos = QoS.atMostOnce
        if words.count > 2 {
            guard let level = UInt8(words[2]), let value = QoS(rawValue: level) else {
                throw line.fail("'\(words[2])' is not a QoS (0, 1 or 2)")
            }
            qos = value
        }
        do {
            return try BridgeTopic(
                pattern: words[0], direction: direction, qos: qos,
                localPrefix: words.count == 5 ? words[3] : "", remotePrefix: words.count == 5 ? words[4] : "")
        } catch {
            throw line.fail(error.description)
        }
    }

    /// Every bridge needs somewhere to connect and something to carry.
    func checkBridges() throws(ConfigError) {
        for bridge in configuration.bridges {
            func fail(_ message: String) -> ConfigError {
                ConfigError(
                    fileName: bridge.origin.fileName, line: bridge.origin.line, key: "connection",
                    message: "bridge '\(bridge.name)': \(message)")
            }
            if bridge.addresses.isEmpty { throw fail("no address") }
            if bridge.topics.isEmpty { throw fail("no topic") }
            if (bridge.tls.certificateFile == nil) != (bridge.tls.keyFile == nil) {
                throw fail("bridge_certfile and bridge_keyfile go together")
            }
            if !bridge.tls.isEnabled
                && (bridge.tls.certificateFile != nil || bridge.tls.alpn != nil || bridge.tls.insecure)
            {
                throw fail("TLS keys need bridge_cafile or bridge_capath, which turn TLS on")
            }
            if let id = bridge.remoteClientID, bridge.protocolVersion == .v3_1, id.utf8.count > 23 {
                throw fail("remote_clientid is longer than MQTT 3.1's 23 bytes")
            }
        }
    }
}

extension BridgeConfiguration.Address {
    /// `host`, `host:port` or `[v6]:port`; port 1883 when absent.
    init?(configValue word: String) {
        var host = Substring(word)
        var port: UInt16 = 1883
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let after = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let value = UInt16(after.dropFirst()), value > 0 else { return nil }
                port = value
            }
        } else if let colon = host.lastIndex(of: ":"), host.firstIndex(of: ":") == colon {
            guard let value = UInt16(host[host.index(after: colon)...]), value > 0 else { return nil }
            port = value
            host = host[..<colon]
        }
        guard !host.isEmpty else { return nil }
        self.init(host: String(host), port: port)
    }
}
