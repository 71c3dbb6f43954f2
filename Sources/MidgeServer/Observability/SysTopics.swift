// The `$SYS/broker/...` tree with mosquitto's topic names and formats, published by loop 0 every `sys_interval`
// seconds as retained QoS 0 messages through `Broker.publish`; `#` and `+` never match it [MQTT-4.7.2-1].
import Glibc
import MQTTCodec
import MidgeCore

/// What one `$SYS` round is computed from.
struct SysInputs: Sendable {
    var statistics: BrokerStatistics
    var clientsMaximum: Int
    var traffic: TrafficTotals
    /// Open sockets, counted by the server (clients that have not sent CONNECT yet included).
    var openConnections: Int
    var uptimeSeconds: Int64
    /// Resident memory now and the most seen, for `heap/current` and `heap/maximum`.
    var residentBytes: Int = 0
    var residentMaximum: Int = 0
}

/// Builds each round's messages. Like mosquitto, a topic is published only when its text changed since the last
/// round (uptime changes every round), so a quiet broker sends almost nothing; the first round sends everything.
/// Load figures are mosquitto's: exponentially smoothed rates per minute over 1, 5 and 15 minutes.
struct SysTopics: Sendable {
    let version: String
    private var published: [String: String] = [:]
    private var previous: SysInputs?
    private var previousTime: Double = 0
    /// Smoothed per-minute rates by load topic.
    private var loads: [String: Double] = [:]

    init(version: String) {
        self.version = version
    }

    /// The messages of one round, `(topic, payload)` in a stable order. `seconds` is monotonic time.
    mutating func round(_ inputs: SysInputs, at seconds: Double) -> [(topic: String, payload: String)] {
        var values: [(String, String)] = []
        let statistics = inputs.statistics
        let connected = statistics.connectedClients
        let disconnected = max(0, statistics.sessions - connected)
        let stored = statistics.retainedMessages + statistics.queuedMessages
        values.append(("$SYS/broker/version", "midge version \(version)"))
        values.append(("$SYS/broker/uptime", "\(inputs.uptimeSeconds) seconds"))
        values.append(("$SYS/broker/clients/total", "\(connected + disconnected)"))
        values.append(("$SYS/broker/clients/connected", "\(connected)"))
        values.append(("$SYS/broker/clients/active", "\(connected)"))
        values.append(("$SYS/broker/clients/disconnected", "\(disconnected)"))
        values.append(("$SYS/broker/clients/inactive", "\(disconnected)"))
        values.append(("$SYS/broker/clients/maximum", "\(inputs.clientsMaximum)"))
        values.append(("$SYS/broker/clients/expired", "\(statistics.clientsExpired)"))
        // mosquitto counts the bytes its allocator wrapper handed out; Midge the process's resident memory.
        values.append(("$SYS/broker/heap/current", "\(inputs.residentBytes)"))
        values.append(("$SYS/broker/heap/maximum", "\(inputs.residentMaximum)"))
        values.append(("$SYS/broker/messages/stored", "\(stored)"))
        values.append(("$SYS/broker/messages/inflight", "\(statistics.inflightMessages)"))
        values.append(("$SYS/broker/messages/received", "\(inputs.traffic.packetsReceived)"))
        values.append(("$SYS/broker/messages/sent", "\(inputs.traffic.packetsSent)"))
        values.append(("$SYS/broker/store/messages/count", "\(stored)"))
        values.append(("$SYS/broker/store/messages/bytes", "\(statistics.retainedBytes + statistics.queuedBytes)"))
        values.append(("$SYS/broker/retained messages/count", "\(statistics.retainedMessages)"))
        values.append(("$SYS/broker/subscriptions/count", "\(statistics.subscriptions)"))
        values.append(("$SYS/broker/shared_subscriptions/count", "\(statistics.sharedSubscriptions)"))
        values.append(("$SYS/broker/publish/messages/dropped", "\(statistics.messagesDropped)"))
        values.append(("$SYS/broker/publish/messages/received", "\(inputs.traffic.publishReceivedTotal)"))
        values.append(("$SYS/broker/publish/messages/sent", "\(inputs.traffic.publishSentTotal)"))
        values.append(("$SYS/broker/publish/bytes/received", "\(inputs.traffic.publishBytesReceived)"))
        values.append(("$SYS/broker/publish/bytes/sent", "\(inputs.traffic.publishBytesSent)"))
        values.append(("$SYS/broker/bytes/received", "\(inputs.traffic.bytesReceived)"))
        values.append(("$SYS/broker/bytes/sent", "\(inputs.traffic.bytesSent)"))
        values.append(contentsOf: loadValues(inputs, at: seconds))

        var messages: [(topic: String, payload: String)] = []
        for (topic, payload) in values where published[topic] != payload {
            published[topic] = payload
            messages.append((topic, payload))
        }
        return messages
    }

    /// mosquitto's `calc_load`: new = rate + e^(-Δt/window) × (old − rate), with rate per minute over the last
    /// interval. Nothing until a second round gives an interval.
    private mutating func loadValues(_ inputs: SysInputs, at seconds: Double) -> [(String, String)] {
        defer {
            previous = inputs
            previousTime = seconds
        }
        guard let previous, seconds > previousTime else { return [] }
        let elapsed = seconds - previousTime
        let counters: [(String, Double, Double)] = [
            ("messages/received", Double(inputs.traffic.packetsReceived), Double(previous.traffic.packetsReceived)),
            ("messages/sent", Double(inputs.traffic.packetsSent), Double(previous.traffic.packetsSent)),
            ("publish/dropped", Double(inputs.statistics.messagesDropped), Double(previous.statistics.messagesDropped)),
            (
                "publish/received", Double(inputs.traffic.publishReceivedTotal),
                Double(previous.traffic.publishReceivedTotal)
            ),
            ("publish/sent", Double(inputs.traffic.publishSentTotal), Double(previous.traffic.publishSentTotal)),
            ("bytes/received", Double(inputs.traffic.bytesReceived), Double(previous.traffic.bytesReceived)),
            ("bytes/sent", Double(inputs.traffic.bytesSent), Double(previous.traffic.bytesSent)),
            // Connections and sockets: mosquitto counts new ones per interval; open sockets is what is known here.
            ("sockets", Double(inputs.openConnections), Double(previous.openConnections)),
            ("connections", Double(inputs.statistics.connectedClients), Double(previous.statistics.connectedClients)),
        ]
        var values: [(String, String)] = []
        for (name, now, before) in counters {
            let rate = max(0, now - before) * 60 / elapsed
            for (window, label) in [(60.0, "1min"), (300.0, "5min"), (900.0, "15min")] {
                let topic = "$SYS/broker/load/\(name)/\(label)"
                let old = loads[topic] ?? 0
                let smoothed = rate + (old - rate) * exp(-elapsed / window)
                loads[topic] = smoothed
                values.append((topic, SysTopics.twoDecimals(smoothed)))
            }
        }
        return values
    }

    /// `%.2f` without Foundation's formatter.
    static func twoDecimals(_ value: Double) -> String {
        guard value.isFinite else { return "0.00" }
        let hundredths = Int64((abs(value) * 100).rounded())
        let sign = value < 0 && hundredths != 0 ? "-" : ""
        let fraction = hundredths % 100
        return "\(sign)\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}

extension EventLoop {
    /// Loop 0's periodic hook: about once a second a snapshot of the core's statistics for `/metrics`, and every
    /// `sys_interval` seconds a `$SYS` round published through the core like any broker message.
    func publishSystemTopics() {
        guard let broker, !stopping else { return }
        publishLogMessages(broker)
        let metrics = settings.metrics
        let state = metrics.loopZero
        guard now >= state.nextSnapshot else { return }
        state.nextSnapshot = now + 1_000_000_000
        let statistics = broker.statistics
        let openConnections = server.connectionCount.load(ordering: .relaxed)
        metrics.record(
            statistics, openConnections: openConnections, store: server.persistence?.statistics, at: now)
        guard metrics.sysInterval > 0, now >= state.nextSysRound else { return }
        state.nextSysRound = now + Int64(metrics.sysInterval) * 1_000_000_000
        let resident = MemoryCeiling.readResidentBytes() ?? 0
        state.residentMaximum = max(state.residentMaximum, resident)
        let inputs = SysInputs(
            statistics: statistics, clientsMaximum: metrics.core.withLock { $0.clientsMaximum },
            traffic: metrics.traffic, openConnections: openConnections,
            uptimeSeconds: (now - metrics.startedAt) / 1_000_000_000, residentBytes: resident,
            residentMaximum: state.residentMaximum)
        for (topic, payload) in state.sys.round(inputs, at: Double(now) / 1e9) {
            guard let name = TopicName(bytes: Array(topic.utf8)) else { continue }
            // Retained, as mosquitto publishes them, so a new subscriber sees the latest values at once.
            broker.publish(
                Message(topic: name, payload: Array(payload.utf8), qos: .atMostOnce), retain: true,
                into: &output.actions)
        }
        routeCoreActions()
    }

    /// `log_dest topic`: the lines logged since the last tick, as mosquitto publishes them (not retained).
    private func publishLogMessages(_ broker: Broker) {
        let lines = server.pendingLogMessages.withLock { pending in
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
        guard !lines.isEmpty else { return }
        for (topic, line) in lines {
            guard let name = TopicName(bytes: Array(topic.utf8)) else { continue }
            broker.publish(
                Message(topic: name, payload: Array(line.utf8), qos: .atMostOnce), retain: false,
                into: &output.actions)
        }
        routeCoreActions()
    }
}
