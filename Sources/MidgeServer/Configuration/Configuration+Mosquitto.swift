// The mosquitto 2.0 keys that make a mosquitto installation's configuration start Midge: include_dir, pid_file,
// user, listener options, logging options, and the keys that are moot for Midge (accepted with one warning).
import Glibc

/// A key accepted without effect, located like a `ConfigError`; logged once as the broker starts.
public struct ConfigWarning: Sendable, Equatable, CustomStringConvertible {
    public var fileName: String
    public var line: Int
    public var key: String
    public var message: String

    public var description: String { "\(fileName):\(line): \(key): \(message)" }
}

/// Where `include_dir` finds its files; the executable reads the file system, tests hand in a dictionary.
public protocol ConfigFileSource {
    /// The names (not paths) of the directory's entries, or nil when it cannot be read.
    func entries(ofDirectory path: String) -> [String]?
    /// The file's text, or nil when it cannot be read.
    func text(ofFile path: String) -> String?
}

/// `socket_domain`: one address family for a listener.
public enum SocketDomain: String, Sendable, Equatable {
    case ipv4, ipv6

    var family: Int32 { self == .ipv4 ? AF_INET : AF_INET6 }
}

extension Configuration {
    /// mosquitto keys that have no effect in Midge, and why: accepted with that one warning line.
    public static let mootKeys: [String: String] = [
        "autosave_interval":
            "Midge writes every change to its write-ahead log as it happens; there is no periodic save",
        "autosave_on_changes":
            "Midge writes every change to its write-ahead log as it happens; there is no periodic save",
        "persistence_file": "Midge's store is a set of files in persistence_location, not one named file",
        "set_tcp_nodelay": "Midge always sets TCP_NODELAY on client connections",
        "allow_duplicate_messages": "deprecated by mosquitto 2.0; Midge sends one copy per client, at the highest "
            + "QoS its matching subscriptions grant [MQTT-3.3.5-1]",
        "auth_plugin_deny_special_chars": "Midge loads no authentication plugins",
        "websockets_log_level": "libwebsockets' log level; Midge's WebSocket code logs through log_type",
        "http_dir": "Midge's WebSocket listeners serve no files; serve the directory with a web server",
        "dhparamfile": "Midge's TLS offers ECDHE key exchange only; the DHE suites that use this file are not offered",
        "max_topic_alias": "an MQTT 5 setting; Midge speaks MQTT 3.1.1, which has no topic aliases",
        "retry_interval": "removed in mosquitto 2.0, which ignores it too; QoS 1/2 messages are resent on reconnect",
        "store_clean_interval": "removed in mosquitto 2.0, which ignores it too",
    ]
}

extension Parser {
    mutating func warn(_ line: Int, _ key: String, _ message: String) {
        configuration.warnings.append(ConfigWarning(fileName: fileName, line: line, key: key, message: message))
    }

    /// Letters, digits, `-` and `.` (RFC 1123 labels): anything else in an address position is a typo.
    static func isHostName(_ text: String) -> Bool {
        !text.isEmpty && text.count <= 253 && !text.hasPrefix("-") && !text.hasPrefix(".")
            && text.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == 0x2D || byte == 0x2E
            }
    }

    /// The keys of this file. False when `key` is not one of them.
    mutating func parseDropInKey(_ line: ConfigLine) throws(ConfigError) -> Bool {
        let key = line.key
        func listener(_ change: (inout ListenerConfiguration) -> Void) { changeCurrentListener(change) }

        if let why = Configuration.mootKeys[key] {
            guard !line.arguments.isEmpty else { throw line.fail("missing value") }
            warn(line.number, key, "accepted, no effect: \(why)")
            return true
        }
        switch key {
        case "pid_file":
            configuration.pidFile = try line.text()
        case "user":
            configuration.user = try line.single()
        case "include_dir":
            try include(directory: try line.text(), line: line.number)
        case "bind_interface":
            let name = try line.single()
            guard name.utf8.count < 16 else { throw line.fail("'\(name)' is longer than an interface name (15 bytes)") }
            listener { $0.bindInterface = name }
        case "socket_domain":
            let value = try line.single()
            guard let domain = SocketDomain(rawValue: value) else { throw line.fail("'\(value)' is not ipv4 or ipv6") }
            listener { $0.socketDomain = domain }
        case "log_timestamp_format":
            configuration.logTimestampFormat = try line.text()
        case "log_facility":
            let value = try line.single()
            guard let facility = Int(value), (0...7).contains(facility) else {
                throw line.fail("'\(value)' is not 0-7 (for LOG_LOCAL0 to LOG_LOCAL7)")
            }
            configuration.logFacility = facility
        case "connection_messages":
            configuration.connectionMessages = try line.boolean()
        case "per_listener_settings":
            if try line.boolean() { try enablePerListenerSettings(number: line.number) }
        case "check_retain_source":
            configuration.broker.checkRetainSource = try line.boolean()
        case "upgrade_outgoing_qos":
            configuration.broker.upgradeOutgoingQoS = try line.boolean()
        case "max_inflight_bytes":
            let value = try line.single()
            guard let bytes = Int(value), bytes >= 0 else { throw line.fail("'\(value)' is not a byte count") }
            configuration.broker.maxInflightBytes = bytes
        default:
            return false
        }
        return true
    }

    /// mosquitto's `include_dir`: every `*.conf` file of the directory, in sorted order, as if written here.
    private mutating func include(directory: String, line: Int) throws(ConfigError) {
        func fail(_ message: String) -> ConfigError {
            ConfigError(fileName: fileName, line: line, key: "include_dir", message: message)
        }
        guard let files else { throw fail("include_dir is only read from configuration files") }
        guard includeDepth < 8 else {
            throw fail("include_dir nested more than 8 deep (a directory including itself?)")
        }
        guard let names = files.entries(ofDirectory: directory) else {
            throw fail("unable to open the directory \(directory); create it or remove the line")
        }
        let base = directory.hasSuffix("/") ? directory : directory + "/"
        let outer = fileName
        includeDepth += 1
        defer {
            includeDepth -= 1
            fileName = outer
        }
        // Byte order, like mosquitto's strcmp-sorted scandir.
        for name in names.filter({ $0.hasSuffix(".conf") }).sorted(by: {
            Array($0.utf8).lexicographicallyPrecedes($1.utf8)
        }) {
            let path = base + name
            guard let text = files.text(ofFile: path) else {
                throw fail("unable to read \(path); fix its permissions or remove it")
            }
            fileName = path
            try parse(text: text)
        }
    }
}
