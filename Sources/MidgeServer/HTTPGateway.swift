// What every HTTP connection of one `protocol http` listener shares: the router, authentication and ACL, the
// counters, and each persistent client's recent events, which `Last-Event-ID` resumes from.
import Foundation  // JSONSerialization, only to read a Bearer token's `sub` claim once per request
import Glibc
import MQTTCodec
import MidgeCore
import MidgeGateway
import Synchronization

/// The gateway's behaviour, from the listener's `http_*` keys (`HTTPListenerSettings`).
struct HTTPGatewaySettings: Sendable {
    /// Seconds without a byte on an SSE stream before a heartbeat comment goes out, so proxies keep it open.
    var heartbeatSeconds: Int64 = 15
    /// Seconds a kept-alive connection may wait for its next request.
    var idleSeconds: Int64 = 60
    /// `retry:` sent at the start of a stream: how long `EventSource` waits before it reconnects, in milliseconds.
    var retryMilliseconds = 2000
    /// Events remembered per persistent client id for `Last-Event-ID`, and how many client ids are remembered.
    var historyEvents = 1000
    var historyBytes = 4 * 1024 * 1024
    var historyClients = 10_000
    /// Messages a long poll or an SSE stream keeps while its client is not reading them (before the stream starts).
    var router = GatewayRouterConfiguration()
    var limits = HTTPLimits()
    /// /metrics answers without credentials even when anonymous clients are refused.
    var metricsOpen = false
}

extension HTTPGatewaySettings {
    init(_ listener: HTTPListenerSettings) {
        heartbeatSeconds = Int64(listener.heartbeatSeconds)
        idleSeconds = Int64(listener.idleSeconds)
        retryMilliseconds = listener.retryMilliseconds
        historyEvents = listener.historyMessages
        historyBytes = listener.historyBytes
        historyClients = listener.historyClients
        // A default above the maximum would refuse every poll that names no timeout: the maximum wins.
        router = GatewayRouterConfiguration(
            defaultLongPollSeconds: min(listener.longPollSeconds, listener.maxLongPollSeconds),
            maxLongPollSeconds: listener.maxLongPollSeconds,
            cors: CORSPolicy(origins: listener.corsOrigins, credentials: listener.corsCredentials))
        limits = HTTPLimits(maxBodyBytes: listener.maxBodyBytes)
        metricsOpen = listener.metricsOpen
    }
}

/// A message as a stream delivered it, with the id it got.
struct RecordedEvent: Sendable {
    let sequence: UInt64
    let message: GatewayMessage
}

/// The recent events of one client id: what was written to (or buffered for) its streams, so a client that
/// reconnects with `Last-Event-ID: N` gets every event after N, also those its previous connection lost in flight.
/// Sequence numbers rise per client id across connections.
struct EventHistory: Sendable {
    private(set) var nextSequence: UInt64 = 1
    private(set) var events: [RecordedEvent] = []
    private var head = 0
    private var bytes = 0
    var lastUsed: Int64 = 0
    /// The sequence the latest delivery with each packet id got. A connection that drops before its acknowledgement
    /// reaches the core gets the delivery again on the next connection, with DUP set [MQTT-3.3.1-1] and the same
    /// packet id [MQTT-4.4.0-1]: that is the recorded event, not a new one.
    private var sequenceByPacketID: [UInt16: UInt64] = [:]

    var retained: ArraySlice<RecordedEvent> { events[head...] }

    /// Gives the message the next id and remembers it, forgetting the oldest beyond the limits. A redelivery
    /// (`dup` with a packet id already recorded) keeps its first id.
    mutating func record(
        _ message: GatewayMessage, packetID: UInt16? = nil, dup: Bool = false, maxEvents: Int, maxBytes: Int
    ) -> UInt64 {
        if dup, let packetID, let sequence = sequenceByPacketID[packetID] { return sequence }
        let sequence = nextSequence
        if let packetID { sequenceByPacketID[packetID] = sequence }
        nextSequence += 1
        events.append(RecordedEvent(sequence: sequence, message: message))
        bytes += message.payload.count + message.topic.bytes.count
        while events.count - head > maxEvents || (bytes > maxBytes && events.count - head > 1) {
            bytes -= events[head].message.payload.count + events[head].message.topic.bytes.count
            head += 1
        }
        if head > 64 && head * 2 > events.count {
            events.removeFirst(head)
            head = 0
        }
        return sequence
    }

    /// Events after `lastSeen`, oldest first.
    func events(after lastSeen: UInt64) -> [RecordedEvent] {
        Array(events[head...].filter { $0.sequence > lastSeen })
    }

    /// A client that saw ids this history never gave (the broker restarted): continue above them, so ids keep rising.
    mutating func continueAbove(_ lastSeen: UInt64) {
        if lastSeen >= nextSequence { nextSequence = lastSeen &+ 1 }
    }
}

/// Shared by the listener's connections on every loop; HTTP is not a hot path, so a mutex per event is fine.
final class HTTPGateway: Sendable {
    let settings: HTTPGatewaySettings
    let router: GatewayRouter
    let accessControl: any AccessControl
    let allowAnonymous: Bool
    let metrics: ServerMetrics
    let maxQoS: QoS
    /// Where refused requests are logged (nil in tests that drive transports without a server).
    let logger: Logger?
    private let histories = Mutex<[String: EventHistory]>([:])
    /// Generated client ids: a per-process random prefix and a counter, unique and not guessable from outside.
    private let clientIDPrefix: String
    private let clientSerial = Atomic<UInt64>(0)

    init(
        settings: HTTPGatewaySettings, accessControl: any AccessControl,
        broker: BrokerConfiguration, metrics: ServerMetrics, logger: Logger? = nil
    ) {
        self.settings = settings
        self.logger = logger
        self.router = GatewayRouter(configuration: settings.router)
        self.accessControl = accessControl
        self.allowAnonymous = broker.allowAnonymous
        self.maxQoS = broker.maxQoS
        self.metrics = metrics
        var random = SystemRandomNumberGenerator()
        clientIDPrefix = "http-" + String(random.next() as UInt32, radix: 16) + "-"
        // The client ids must pass any `max_client_id_length` a 3.1.1 broker applies; this form is ~20 bytes.
    }

    func generatedClientID() -> String {
        clientIDPrefix + String(clientSerial.wrappingAdd(1, ordering: .relaxed).newValue, radix: 16)
    }

    /// Records an event of a persistent client id, returning its id (the first one for a redelivery).
    func record(_ message: GatewayMessage, packetID: UInt16?, dup: Bool, clientID: String, now: Int64) -> UInt64 {
        histories.withLock { histories in
            if histories[clientID] == nil && histories.count >= settings.historyClients {
                // Forget the client id idle longest; one scan per new client beyond the cap.
                if let oldest = histories.min(by: { $0.value.lastUsed < $1.value.lastUsed })?.key {
                    histories[oldest] = nil
                }
            }
            var history = histories[clientID] ?? EventHistory()
            let sequence = history.record(
                message, packetID: packetID, dup: dup, maxEvents: settings.historyEvents,
                maxBytes: settings.historyBytes)
            history.lastUsed = now
            histories[clientID] = history
            return sequence
        }
    }

    /// The events a reconnecting client missed: after `lastSeen`, from this client id's history.
    func resume(clientID: String, after lastSeen: UInt64, now: Int64) -> [RecordedEvent] {
        histories.withLock { histories in
            guard var history = histories[clientID] else {
                var fresh = EventHistory()
                fresh.continueAbove(lastSeen)
                fresh.lastUsed = now
                histories[clientID] = fresh
                return []
            }
            history.continueAbove(lastSeen)
            history.lastUsed = now
            histories[clientID] = history
            return history.events(after: lastSeen)
        }
    }

    /// The user name an HTTP client is known by. Basic gives one. A Bearer token (or `access_token`) carries none,
    /// while MQTT requires a user name with a password [MQTT-3.1.2-22] and the token authenticator reads a missing
    /// one as an anonymous client: the token's `sub` claim is used, which the token authenticator checks against
    /// the signed token, so a forged `sub` fails with the signature. A token without `sub` (or not a JWT) goes
    /// under the fixed name `token`.
    static func username(for credentials: GatewayCredentials?, bearer: Bool) -> String? {
        guard let credentials else { return nil }
        if !bearer { return credentials.username }
        guard let token = credentials.password else { return nil }
        return subject(ofToken: token) ?? "token"
    }

    static func subject(ofToken token: [UInt8]) -> String? {
        let parts = token.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3, let payload = base64URLDecode(parts[1]),
            let object = try? JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any],
            let subject = object["sub"] as? String, !subject.isEmpty
        else { return nil }
        return subject
    }

    /// RFC 4648 §5, padding optional.
    static func base64URLDecode<C: Collection>(_ text: C) -> [UInt8]? where C.Element == UInt8 {
        var output: [UInt8] = []
        output.reserveCapacity(text.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in text {
            let value: UInt8
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = byte - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = byte - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0") + 52
            case UInt8(ascii: "-"), UInt8(ascii: "+"): value = 62
            case UInt8(ascii: "_"), UInt8(ascii: "/"): value = 63
            case UInt8(ascii: "="): continue
            default: return nil
            }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        return output
    }

    /// The factory the listener registers for `protocol http`.
    static func factory(
        listener: ListenerConfiguration, settings: ServerSettings, logger: Logger? = nil,
        gatewaySettings: HTTPGatewaySettings? = nil
    ) -> TransportFactory {
        let gateway = HTTPGateway(
            settings: gatewaySettings ?? HTTPGatewaySettings(listener.http), accessControl: settings.accessControl,
            broker: settings.broker, metrics: settings.metrics, logger: logger)
        return { context in HTTPTransport(gateway: gateway, now: context.now, remoteAddress: context.remoteAddress) }
    }
}
