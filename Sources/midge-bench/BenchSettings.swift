// Command-line settings of midge-bench and the named scenarios they start from.
import MQTTCodec

struct BenchSettings: Sendable {
    var host = "127.0.0.1"
    var port: UInt16 = 1883
    /// Where subscribers connect when it is not `port`: a bridged broker, with the bridging one at `port`.
    var subscriberPort: UInt16?
    var scenario = "fanin"
    var publishers = 8
    var subscribers = 1
    var qos: QoS = .atMostOnce
    var payloadSize = 100
    var duration = 10.0
    /// Total messages per second over all publishers; 0 = as fast as the broker takes them.
    var rate = 0.0
    /// QoS 1/2 messages a publisher may have unacknowledged.
    var window = 100
    var topics = ["bench/fanin"]
    var filter = "bench/fanin"
    var idleConnections = 1000
    /// Spread connections over 127.0.0.1 ... 127.0.0.N (one source address holds at most ~64k connections).
    var sourceAddresses = 1
    var brokerPID: Int32?
    var drainSeconds = 10.0
    /// Subscribers connect with clean session 0, so a broker with persistence writes their deliveries to disk.
    var persistentSubscribers = false
    /// The subscribers are the members of one shared group (`$share/…`): each message is expected once between them.
    var sharedGroup: Bool { filter.hasPrefix("$share/") }
    /// Copies of each message the subscribers should get between them.
    var expectedCopies: Int { sharedGroup ? 1 : subscribers }

    static let usage = """
        usage: midge-bench [--scenario fanin|fanout|topics|latency|shared|idle] [--host 127.0.0.1] [--port 1883]
                           [--subscriber-port PORT (default: --port; the far side of a bridge)]
                           [--qos 0|1|2] [--publishers N] [--subscribers N] [--payload BYTES] [--duration SECONDS]
                           [--rate MSG_PER_S] [--window N] [--topics N] [--connections N] [--sources N]
                           [--broker-pid PID] [--drain SECONDS] [--persistent 0|1]
        Scenarios set defaults that later options override:
          fanin    8 publishers -> 1 subscriber, one topic
          fanout   1 publisher -> 100 subscribers, one topic
          topics   8 publishers over 1000 topics -> one bench/# subscriber
          latency  1 -> 1 at QoS 1, 1000 msg/s
          shared   1 publisher -> 8 subscribers sharing $share/workers/bench/shared (each message to one of them)
          idle     N connections that only connect; reports broker RSS per connection (needs --broker-pid)
        """

    static func parse(_ arguments: [String]) throws(BenchError) -> BenchSettings {
        var settings = BenchSettings()
        var options: [String: String] = [:]
        var index = 0
        while index < arguments.count {
            let key = arguments[index]
            guard key.hasPrefix("--"), index + 1 < arguments.count else {
                throw BenchError("bad argument \(key)\n\(usage)")
            }
            options[String(key.dropFirst(2))] = arguments[index + 1]
            index += 2
        }
        if let scenario = options.removeValue(forKey: "scenario") { settings.scenario = scenario }
        switch settings.scenario {
        case "fanin": break
        case "fanout":
            settings.publishers = 1
            settings.subscribers = 100
            settings.topics = ["bench/fanout"]
            settings.filter = "bench/fanout"
        case "topics":
            settings.topics = (0..<1000).map { "bench/t/\($0)" }
            settings.filter = "bench/#"
        case "latency":
            settings.publishers = 1
            settings.qos = .atLeastOnce
            settings.rate = 1000
            settings.topics = ["bench/latency"]
            settings.filter = "bench/latency"
        case "shared":
            settings.publishers = 1
            settings.subscribers = 8
            settings.topics = ["bench/shared"]
            settings.filter = "$share/workers/bench/shared"
        case "idle":
            settings.publishers = 0
            settings.subscribers = 0
        default:
            throw BenchError("unknown scenario \(settings.scenario)\n\(usage)")
        }
        func number(_ key: String) throws(BenchError) -> Double? {
            guard let text = options.removeValue(forKey: key) else { return nil }
            guard let value = Double(text), value >= 0 else { throw BenchError("--\(key) needs a number, got \(text)") }
            return value
        }
        if let host = options.removeValue(forKey: "host") { settings.host = host }
        if let value = try number("port") { settings.port = UInt16(value) }
        if let value = try number("subscriber-port") { settings.subscriberPort = UInt16(value) }
        if let value = try number("qos") {
            guard let qos = QoS(rawValue: UInt8(value)) else { throw BenchError("--qos must be 0, 1 or 2") }
            settings.qos = qos
        }
        if let value = try number("publishers") { settings.publishers = Int(value) }
        if let value = try number("subscribers") { settings.subscribers = Int(value) }
        if let value = try number("payload") { settings.payloadSize = max(PayloadLayout.minimumSize, Int(value)) }
        if let value = try number("duration") { settings.duration = value }
        if let value = try number("rate") { settings.rate = value }
        if let value = try number("window") { settings.window = max(1, Int(value)) }
        if let value = try number("topics") {
            settings.topics = (0..<max(1, Int(value))).map { "bench/t/\($0)" }
            settings.filter = "bench/#"
        }
        if let value = try number("connections") { settings.idleConnections = Int(value) }
        if let value = try number("sources") { settings.sourceAddresses = max(1, min(254, Int(value))) }
        if let value = try number("broker-pid") { settings.brokerPID = Int32(value) }
        if let value = try number("drain") { settings.drainSeconds = value }
        if let value = try number("persistent") { settings.persistentSubscribers = value != 0 }
        if let unknown = options.keys.first { throw BenchError("unknown option --\(unknown)\n\(usage)") }
        return settings
    }

    /// The source address for the n-th connection, or nil to let the kernel choose.
    func sourceAddress(for connection: Int) -> String? {
        guard sourceAddresses > 1, host.hasPrefix("127.") else { return nil }
        return "127.0.0.\(connection % sourceAddresses + 1)"
    }
}
