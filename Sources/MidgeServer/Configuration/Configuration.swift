// The mosquitto-style configuration file: a pure parser from text to settings (`key value…` lines, `#` comments).
import MQTTCodec
import MidgeCore
import MidgeTLS

/// A configuration mistake, located by file, line and key.
public struct ConfigError: Error, Equatable, CustomStringConvertible {
    public var fileName: String
    public var line: Int
    public var key: String
    public var message: String

    /// Line 0 is the file as a whole (it cannot be opened).
    public var description: String {
        line > 0 ? "\(fileName):\(line): \(key): \(message)" : "\(fileName): \(message)"
    }

    public init(fileName: String, line: Int, key: String, message: String) {
        self.fileName = fileName
        self.line = line
        self.key = key
        self.message = message
    }
}

/// Everything the configuration file can say. Values not given keep mosquitto 2.0's defaults.
public struct Configuration: Sendable {
    /// Listeners declared in the file (`listener`, or `port`/`bind_address`); empty means local-only mode.
    public var listeners: [ListenerConfiguration] = []
    /// Event loops; nil means one per online core.
    public var threads: Int?
    /// Seconds between `$SYS` updates; 0 turns them off [sys_interval].
    public var sysInterval: Int = 10
    /// Seconds a new connection may take to send CONNECT.
    public var connectTimeout: Int = 10
    /// Simultaneous client connections; -1 means no limit.
    public var maxConnections: Int = -1
    /// `max_client_message_rate`: PUBLISH packets per second a client may send before its socket is not read
    /// for the rest of the second; 0 means no limit.
    public var maxClientMessageRate: Int = 0
    /// `max_client_byte_rate`: bytes per second, likewise.
    public var maxClientByteRate: Int = 0
    /// Largest accepted packet (remaining length); 0 means the protocol maximum.
    public var messageSizeLimit: Int = 0
    /// Largest accepted packet as a whole, fixed header included (mosquitto 2.0's `max_packet_size`); 0 means no
    /// limit.
    public var maxPacketSize: Int = 0
    /// What the core obeys. `allowAnonymous` already has its listener-dependent default applied.
    public var broker = BrokerConfiguration()
    public var logTypes: LogTypes = .default
    public var logDestinations: [LogDestination] = [.stderr]
    public var logTimestamp = true
    public var passwordFile: String?
    public var aclFile: String?
    /// `per_listener_settings true`: the security keys belong to each listener (`ListenerConfiguration.security`).
    public var perListenerSettings = false
    /// `jwt_hs256_secret_file` / `jwt_rs256_public_key`: clients may present a signed JWT as their password.
    public var tokenKey: TokenKeySetting?
    /// `jwt_issuer` / `jwt_audience`: claims a token must carry when set.
    public var tokenIssuer: String?
    public var tokenAudience: String?
    /// `persistence true`: retained messages and persistent sessions survive restarts (see `PersistenceSettings`).
    public var persistence = false
    /// `persistence_location`: the store's directory; empty means the working directory, as in mosquitto.
    public var persistenceLocation = ""
    /// `memory_limit`: resident bytes above which new connections, retained and queued messages are refused; 0 means
    /// no limit (mosquitto's default).
    public var memoryLimit = 0
    /// `persistence_fsync`: when acknowledged QoS 1/2 messages are forced to disk.
    public var persistenceFsync = PersistenceFsync.always
    /// `pid_file`: written with the broker's pid once it runs, removed when it stops.
    public var pidFile: String?
    /// `user`: the account to switch to after binding and opening files, when started as root.
    public var user: String?
    /// `log_timestamp_format`: an strftime(3) format for the timestamps; nil prints seconds since 1970.
    public var logTimestampFormat: String?
    /// `log_facility`: the syslog facility number 0-7 of LOG_LOCAL0..7; nil is LOG_DAEMON.
    public var logFacility: Int?
    /// `connection` sections: bridges to other brokers.
    public var bridges: [BridgeConfiguration] = []
    /// `connection_messages`: log clients connecting and disconnecting.
    public var connectionMessages = true
    /// Keys accepted without effect, one line each, for the log once it is open.
    public var warnings: [ConfigWarning] = []
    /// `plugin …/mosquitto_dynamic_security.so` with `plugin_opt_config_file PATH`: clients, groups and roles from
    /// this JSON file, managed over `$CONTROL/dynamic-security/v1`.
    public var dynamicSecurityFile: String?

    public init() {}

    /// Remaining length cap for the frame decoder: `max_packet_size`, or the protocol maximum (§2.2.3). A larger packet
    /// is refused from its fixed header and closes the connection. `message_size_limit` is the core's (an oversized
    /// payload is acknowledged and dropped); a packet too long to hold a payload within it even with the longest
    /// topic (65,535 bytes, plus the lengths and the packet id) is refused here as well, so it is never buffered.
    public var maxRemainingLength: Int {
        var limit = 268_435_455
        if messageSizeLimit > 0 { limit = min(limit, messageSizeLimit + 2 + 65_535 + 2) }
        if maxPacketSize > 0 { limit = min(limit, Configuration.remainingLengthLimit(packetSize: maxPacketSize)) }
        return limit
    }

    /// The largest remaining length whose whole packet (type byte, 1-4 length bytes, body) fits in `size` bytes.
    static func remainingLengthLimit(packetSize size: Int) -> Int {
        var best = 0
        for lengthBytes in 1...4 {
            let smallest = lengthBytes == 1 ? 0 : 1 << (7 * (lengthBytes - 1))
            let largest = (1 << (7 * lengthBytes)) - 1
            let fitting = min(size - 1 - lengthBytes, largest)
            if fitting >= smallest { best = max(best, fitting) }
        }
        return best
    }

    /// What is listened on: the file's listeners, or with none mosquitto 2.0's local-only mode, loopback on
    /// `commandLinePort` (`-p`) or 1883. As in mosquitto, `-p` is ignored when the file declares listeners.
    public func effectiveListeners(commandLinePort: UInt16?) -> [ListenerConfiguration] {
        effectiveListeners(commandLinePorts: commandLinePort.map { [$0] } ?? [])
    }

    /// As above with several `-p` options: each port on both loopback addresses.
    public func effectiveListeners(commandLinePorts: [UInt16]) -> [ListenerConfiguration] {
        if !listeners.isEmpty { return listeners }
        return (commandLinePorts.isEmpty ? [1883] : commandLinePorts).flatMap { port in
            [
                ListenerConfiguration(port: port, address: .loopbackIPv4),
                ListenerConfiguration(port: port, address: .loopbackIPv6),
            ]
        }
    }

    /// Every key the parser reads; `broker.conf.example` documents each of them.
    public static let supportedKeys: [String] =
        [
            "listener", "port", "bind_address", "threads", "connect_timeout", "allow_anonymous", "max_connections",
            "message_size_limit", "max_packet_size", "max_inflight_messages", "max_queued_messages", "max_queued_bytes",
            "queue_full_policy", "queue_qos0_messages", "max_keepalive", "allow_zero_length_clientid", "auto_id_prefix",
            "retain_available", "max_qos", "log_type", "log_dest", "log_timestamp", "password_file", "acl_file",
            "jwt_hs256_secret_file", "jwt_rs256_public_key", "jwt_issuer", "jwt_audience",
            "persistence", "persistence_location", "persistence_fsync", "persistent_client_expiration",
            "protocol", "websockets_headers_size", "websockets_compression", "certfile", "keyfile", "cafile", "capath",
            "tls_version", "ciphers",
            "ciphers_tls1.3", "require_certificate", "use_identity_as_username", "sys_interval", "max_connection_rate",
            "crlfile", "use_subject_as_username", "psk_hint", "psk_file",
            "max_client_message_rate", "max_client_byte_rate", "max_topic_levels", "max_subscriptions",
            "retained_messages_max", "retained_bytes_max", "memory_limit", "mount_point", "use_username_as_clientid",
            "clientid_prefixes",
            "pid_file", "include_dir", "user", "bind_interface", "socket_domain", "log_timestamp_format",
            "log_facility",
            "connection_messages", "per_listener_settings", "check_retain_source", "upgrade_outgoing_qos",
            "max_inflight_bytes", "plugin", "plugin_opt_config_file",
        ] + HTTPListenerSettings.keys + Configuration.bridgeKeys

    /// mosquitto keys Midge knows about but does not implement yet: refused with a message that says so,
    /// rather than silently ignored or reported as typos.
    public static let unimplementedMosquittoKeys: Set<String> = [
        "acl_file_reload", "auth_plugin", "enable_control_api", "global_max_clients", "global_max_connections",
        "global_plugin", "tls_engine", "tls_engine_kpass_sha1", "tls_keyform",
    ]

    /// Parses a whole file. `fileName` only labels errors.
    /// `files` serves `include_dir`; without one an `include_dir` line is an error.
    public static func parse(text: String, fileName: String, files: (any ConfigFileSource)? = nil)
        throws(ConfigError) -> Configuration
    {
        var parser = Parser(fileName: fileName, files: files)
        try parser.parse(text: text)
        return try parser.finish()
    }
}

/// The parse state that only matters while reading: which defaults a line has already replaced.
struct Parser {
    /// The file being read: changes while an `include_dir` file is read.
    var fileName: String
    let files: (any ConfigFileSource)?
    /// `include_dir` nesting, bounded so a directory that includes itself cannot recurse for ever.
    var includeDepth = 0
    var configuration = Configuration()
    var allowAnonymous: Bool?
    var legacyPort: UInt16?
    var legacyBindAddress: IPAddress?
    var legacyBindHost: String?
    var legacyOrigin = ConfigOrigin(fileName: "", line: 0, key: "")
    var logTypeGiven = false
    var logDestGiven = false
    /// Listener settings given before any `listener` line belong to mosquitto's default listener (`port`).
    var defaultListener = ListenerConfiguration(port: 1883)
    var defaultListenerSettingsGiven = false
    /// TLS keys per listener (index into `configuration.listeners`, -1 for the default listener), turned into a
    /// `TLSConfiguration` once the whole file is read, since the keys may come in any order.
    var tlsSettings: [Int: ListenerTLSSettings] = [:]
    /// `max_connection_rate` before any `listener` line.
    var defaultConnectionRate: Int?
    /// With `per_listener_settings true`, the security keys given before the first listener.
    var perListenerDefaults = ListenerSecuritySettings()
    /// `psk_file` before any `listener` line (and its line): mosquitto's global form, for every `psk_hint` listener.
    var defaultPSKFile: (path: String, line: Int)?
    /// A `plugin` line named mosquitto's dynamic security plugin; its `plugin_opt_*` lines follow.
    var dynamicSecurityPluginGiven = false

    init(fileName: String, files: (any ConfigFileSource)?) {
        self.fileName = fileName
        self.files = files
    }

    /// The listener a listener-scoped key applies to: the last `listener` line's, or the default listener's.
    mutating func changeCurrentListener(_ change: (inout ListenerConfiguration) -> Void) {
        if configuration.listeners.isEmpty {
            defaultListenerSettingsGiven = true
            change(&defaultListener)
        } else {
            change(&configuration.listeners[configuration.listeners.count - 1])
        }
    }

    mutating func parse(text: String) throws(ConfigError) {
        var lineNumber = 0
        // "\r\n" is one Character in Swift, and a newline: CRLF files split the same way.
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            lineNumber += 1
            try parse(line: line, number: lineNumber)
        }
    }

    mutating func finish() throws(ConfigError) -> Configuration {
        for (index, settings) in tlsSettings.sorted(by: { $0.key < $1.key }) {
            let tls = try settings.configuration(fileName: fileName, defaultPSKFile: defaultPSKFile?.path)
            if index < 0 {
                defaultListener.tls = tls
            } else {
                configuration.listeners[index].tls = tls
            }
        }
        if let defaultPSKFile, !tlsSettings.values.contains(where: { $0.pskHint != nil }) {
            throw ConfigError(
                fileName: fileName, line: defaultPSKFile.line, key: "psk_file", message: "no listener has psk_hint")
        }
        if legacyPort != nil || legacyBindAddress != nil || legacyBindHost != nil || defaultListenerSettingsGiven {
            // mosquitto's "default listener": `port`, `bind_address` and listener settings outside any `listener`
            // block.
            var legacy = defaultListener
            legacy.port = legacyPort ?? 1883
            legacy.address = legacyBindAddress
            legacy.host = legacyBindHost
            legacy.origin = legacyOrigin
            configuration.listeners.insert(legacy, at: 0)
        }
        if let defaultConnectionRate {
            for index in configuration.listeners.indices where configuration.listeners[index].maxConnectionRate == nil {
                configuration.listeners[index].maxConnectionRate = defaultConnectionRate
            }
        }
        // mosquitto 2.0: anonymous clients are allowed by default only in local-only mode (no listener declared).
        configuration.broker.allowAnonymous = allowAnonymous ?? configuration.listeners.isEmpty
        finishPerListenerSettings()
        try finishPlugin()
        try checkBridges()
        return configuration
    }

    mutating func parse(line rawLine: Substring, number: Int) throws(ConfigError) {
        let line = rawLine.drop { $0 == " " || $0 == "\t" }
        if line.isEmpty || line.first == "#" { return }
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
        guard let key = words.first else { return }
        let arguments = Array(words.dropFirst())
        // The text after the key, spaces kept, for paths and prefixes.
        let rest = String(line.dropFirst(key.count)).trimmingWhitespace()
        let entry = ConfigLine(key: key, arguments: arguments, rest: rest, fileName: fileName, number: number)

        /// A numeric address, or a host name resolved when the listener is opened.
        func address(_ value: String) throws(ConfigError) -> (IPAddress?, String?) {
            if let address = IPAddress(value) { return (address, nil) }
            guard Parser.isHostName(value) else { throw entry.fail("'\(value)' is not an IP address or a host name") }
            return (nil, value)
        }

        func listener(_ change: (inout ListenerConfiguration) -> Void) { changeCurrentListener(change) }
        func tls(_ change: (inout ListenerTLSSettings) -> Void) {
            let index = configuration.listeners.count - 1
            if index < 0 { defaultListenerSettingsGiven = true }
            var settings = tlsSettings[index] ?? ListenerTLSSettings(line: number)
            change(&settings)
            tlsSettings[index] = settings
        }

        if try parsePerListenerKey(entry) { return }
        switch key {
        case "listener":
            guard (1...2).contains(arguments.count) else { throw entry.fail("expects PORT [ADDRESS]") }
            guard let port = UInt16(arguments[0]) else { throw entry.fail("'\(arguments[0])' is not a port (0-65535)") }
            var listener = ListenerConfiguration(port: port)
            listener.origin = ConfigOrigin(fileName: fileName, line: number, key: key)
            if arguments.count == 2, arguments[1].hasPrefix("/") {
                // mosquitto's unix socket form: port 0 and a path.
                guard port == 0 else {
                    throw entry.fail("a unix socket listener takes port 0: listener 0 \(arguments[1])")
                }
                guard arguments[1].utf8.count < 108 else {
                    throw entry.fail("a unix socket path has at most 107 bytes")
                }
                listener.unixSocketPath = arguments[1]
            } else if arguments.count == 2 {
                (listener.address, listener.host) = try address(arguments[1])
            }
            configuration.listeners.append(listener)
        case "protocol":
            let value = try entry.single()
            guard let kind = ListenerProtocol(rawValue: value) else {
                throw entry.fail("'\(value)' is not mqtt, websockets or http")
            }
            listener { $0.protocol = kind }
        case "max_connection_rate":
            // Before any `listener` line: every listener's (unless it sets its own); after one: that listener's.
            let rate = try entry.integer(0...1_000_000)
            if configuration.listeners.isEmpty {
                defaultConnectionRate = rate
            } else {
                configuration.listeners[configuration.listeners.count - 1].maxConnectionRate = rate
            }
        case "max_client_message_rate":
            configuration.maxClientMessageRate = try entry.integer(0...Int(Int32.max))
        case "max_client_byte_rate":
            configuration.maxClientByteRate = try entry.integer(0...Int.max)
        case _ where HTTPListenerSettings.keys.contains(key):
            var problem: String?
            listener { problem = $0.http.apply(key: key, arguments: arguments) }
            if let problem { throw entry.fail(problem) }
        case "websockets_headers_size":
            let size = try entry.integer(1024...1_048_576)
            listener { $0.webSocketHeadersSize = size }
        case "websockets_compression":
            let enabled = try entry.boolean()
            listener { $0.webSocketCompression = enabled }
        case "certfile":
            let path = try entry.text()
            tls { $0.certificateFile = path }
        case "keyfile":
            let path = try entry.text()
            tls { $0.privateKeyFile = path }
        case "cafile":
            let path = try entry.text()
            tls { $0.caFile = path }
        case "capath":
            let path = try entry.text()
            tls { $0.caPath = path }
        case "tls_version":
            let value = try entry.single()
            guard let version = TLSVersion(configValue: value) else {
                throw entry.fail("'\(value)' is not tlsv1.3, tlsv1.2 or tlsv1.1")
            }
            tls { $0.minimumVersion = version }
        case "ciphers":
            let list = try entry.single()
            tls { $0.ciphers = list }
        case "ciphers_tls1.3":
            let list = try entry.single()
            tls { $0.ciphersuites = list }
        case "require_certificate":
            let value = try entry.boolean()
            tls { $0.requireCertificate = value }
        case "use_identity_as_username":
            let value = try entry.boolean()
            tls { $0.useIdentityAsUsername = value }
        case "crlfile":
            let path = try entry.text()
            tls { $0.crlFile = path }
        case "use_subject_as_username":
            let value = try entry.boolean()
            tls { $0.useSubjectAsUsername = value }
        case "psk_hint":
            let hint = try entry.text()
            tls { $0.pskHint = hint }
        case "psk_file":
            // mosquitto (without per_listener_settings) has one psk_file for all listeners; Midge reads it per
            // listener when it follows a `listener` line, and as that shared file before any.
            let path = try entry.text()
            if configuration.listeners.isEmpty { defaultPSKFile = (path, number) } else { tls { $0.pskFile = path } }
        case "sys_interval":
            configuration.sysInterval = try entry.integer(0...86_400)
        case "port":
            legacyPort = UInt16(try entry.integer(0...65535))
            legacyOrigin = ConfigOrigin(fileName: fileName, line: number, key: key)
        case "bind_address":
            (legacyBindAddress, legacyBindHost) = try address(try entry.single())
        case "threads":
            // ConnectionID keeps the loop index in 8 bits and epoll tokens need the top bit: 128 loops at most.
            configuration.threads = try entry.integer(1...128)
        case "connect_timeout":
            configuration.connectTimeout = try entry.integer(1...86_400)
        case "allow_anonymous":
            allowAnonymous = try entry.boolean()
        case "max_connections":
            // Before any `listener` line: every connection of the broker (Midge's reading of mosquitto's
            // default-listener limit, which is all there is then); after one: that listener's connections.
            let limit = try entry.integer(-1...Int(Int32.max))
            if configuration.listeners.isEmpty {
                configuration.maxConnections = limit
            } else {
                configuration.listeners[configuration.listeners.count - 1].maxConnections = limit
            }
        case "message_size_limit":
            configuration.messageSizeLimit = try entry.integer(0...268_435_455)
            configuration.broker.messageSizeLimit = configuration.messageSizeLimit
        case "max_packet_size":
            // The smallest whole packets are 2 bytes; mosquitto's limit counts the fixed header too.
            let value = try entry.integer(0...268_435_460)
            guard value == 0 || value >= 2 else { throw entry.fail("'\(value)' is below the smallest packet, 2 bytes") }
            configuration.maxPacketSize = value
        case "max_inflight_messages":
            // mosquitto's 0 ("no maximum") is every packet id a client can have outstanding [MQTT-2.3.1-4].
            let value = try entry.integer(0...65535)
            configuration.broker.maxInflightMessages = value == 0 ? 65535 : value
        case "max_queued_messages":
            configuration.broker.maxQueuedMessages = try entry.integer(0...Int(Int32.max))
        case "max_queued_bytes":
            configuration.broker.maxQueuedBytes = try entry.integer(0...Int.max)
        case "queue_full_policy":
            switch try entry.single() {
            case "drop": configuration.broker.queueFullPolicy = .drop
            case "block": configuration.broker.queueFullPolicy = .block
            case let value: throw entry.fail("'\(value)' is not drop or block")
            }
        case "clientid_prefixes":
            configuration.broker.requiredClientIDPrefix = try entry.text()
        case "mount_point":
            // mosquitto refuses wildcards in it; it is a topic prefix, usually ending in `/`.
            let prefix = try entry.text()
            guard TopicName(prefix) != nil else {
                throw entry.fail("'\(prefix)' is not a topic prefix (no + or #, valid UTF-8)")
            }
            listener { $0.mountPoint = Array(prefix.utf8) }
        case "use_username_as_clientid":
            configuration.broker.useUsernameAsClientID = try entry.boolean()
        case "max_topic_levels":
            configuration.broker.maxTopicLevels = try entry.integer(0...65535)
        case "max_subscriptions":
            configuration.broker.maxSubscriptions = try entry.integer(0...Int(Int32.max))
        case "retained_messages_max":
            configuration.broker.retainedMessagesMax = try entry.integer(0...Int(Int32.max))
        case "retained_bytes_max":
            configuration.broker.retainedBytesMax = try entry.integer(0...Int.max)
        case "memory_limit":
            configuration.memoryLimit = try entry.integer(0...Int.max)
        case "queue_qos0_messages":
            configuration.broker.queueQoS0Messages = try entry.boolean()
        case "max_keepalive":
            configuration.broker.maxKeepalive = UInt16(try entry.integer(0...65535))
        case "allow_zero_length_clientid":
            configuration.broker.allowZeroLengthClientID = try entry.boolean()
        case "auto_id_prefix":
            configuration.broker.autoIDPrefix = try entry.text()
        case "retain_available":
            configuration.broker.retainAvailable = try entry.boolean()
        case "max_qos":
            guard let qos = QoS(rawValue: UInt8(try entry.integer(0...2))) else { throw entry.fail("not a QoS") }
            configuration.broker.maxQoS = qos
        case "log_type":
            let value = try entry.single()
            guard let types = LogTypes(name: value) else {
                throw entry.fail(
                    "unknown log type '\(value)' (error, warning, notice, information, debug, subscribe, "
                        + "unsubscribe, websockets, all, none)")
            }
            if value == "websockets" {
                warn(number, key, "WebSocket events are logged under the other types; this type adds nothing")
            }
            // The first log_type line replaces the default set; later ones add to it, as in mosquitto.
            if !logTypeGiven { configuration.logTypes = [] }
            logTypeGiven = true
            configuration.logTypes = types.isEmpty ? [] : configuration.logTypes.union(types)
        case "log_dest":
            guard let kind = arguments.first else { throw entry.fail("missing value") }
            let destination: LogDestination?
            switch kind {
            case "stderr": destination = .stderr
            case "stdout": destination = .stdout
            case "none": destination = nil
            case "file":
                let path = String(rest.dropFirst(kind.count)).trimmingWhitespace()
                guard !path.isEmpty else { throw entry.fail("'file' needs a path") }
                destination = .file(path)
            case "syslog": destination = .syslog
            case "topic": destination = .topic
            case "dlt":
                throw entry.fail("log destination 'dlt' (the GENIVI diagnostic log) is not available in Midge")
            default:
                throw entry.fail("unknown log destination '\(kind)' (stderr, stdout, file PATH, syslog, topic, none)")
            }
            if kind != "file" && arguments.count != 1 { throw entry.fail("expects one value, got \(arguments.count)") }
            if !logDestGiven { configuration.logDestinations = [] }
            logDestGiven = true
            if let destination, !configuration.logDestinations.contains(destination) {
                configuration.logDestinations.append(destination)
            }
        case "log_timestamp":
            configuration.logTimestamp = try entry.boolean()
        case "persistence":
            configuration.persistence = try entry.boolean()
        case "persistence_location":
            configuration.persistenceLocation = try entry.text()
        case "persistence_fsync":
            guard let policy = PersistenceFsync(arguments) else {
                throw entry.fail("expects always, periodic MILLISECONDS (1-60000) or none")
            }
            configuration.persistenceFsync = policy
        case "persistent_client_expiration":
            guard let seconds = PersistenceFsync.expirationSeconds(try entry.single()) else {
                throw entry.fail("expects a positive count with a unit: s, h, d, w, m (30 days) or y, e.g. 14d")
            }
            configuration.broker.persistentClientExpiration = seconds
        case "password_file":
            configuration.passwordFile = try entry.text()
        case "acl_file":
            configuration.aclFile = try entry.text()
        case "jwt_hs256_secret_file", "jwt_rs256_public_key":
            // One key verifies tokens: as with other settings, a later line replaces an earlier one.
            let path = try entry.text()
            configuration.tokenKey = key == "jwt_hs256_secret_file" ? .hs256SecretFile(path) : .rs256PublicKey(path)
        case "jwt_issuer":
            configuration.tokenIssuer = try entry.text()
        case "jwt_audience":
            configuration.tokenAudience = try entry.text()
        default:
            if try parseDropInKey(entry) { return }
            if try parseBridgeKey(entry) { return }
            if try parsePluginKey(key, rest: rest, number: number) { return }
            if Configuration.unimplementedMosquittoKeys.contains(key) || key.hasPrefix("auth_opt_")
                || key.hasPrefix("plugin_opt_")
            {
                throw entry.fail("a mosquitto option that Midge does not implement yet")
            }
            throw entry.fail("unknown configuration key")
        }
    }
}
