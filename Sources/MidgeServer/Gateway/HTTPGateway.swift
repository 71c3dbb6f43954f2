// What every HTTP connection of one `protocol http` listener shares: the router, authentication and ACL, the
// counters, and the hub with the topic history that `Last-Event-ID` resumes from.
import Dispatch
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
    /// The shared topic history's bounds (`GatewayHub`).
    var history = TopicHistoryLimits()
    /// Ids start above this. The server starts them at the time in microseconds, so an id a client kept from an
    /// earlier run of the broker is below every new one; tests start at 0.
    var firstEventID: UInt64 = 0
    /// Events one subscriber reads from the history per wake-up; more wait for the next (which it asks at once).
    var readBatch = 1000
    var router = GatewayRouterConfiguration()
    var limits = HTTPLimits()
    /// /metrics answers without credentials even when anonymous clients are refused.
    var metricsOpen = false
    /// gzip for clients that accept it: answers of 256 bytes or more, and SSE streams.
    var compression = false
    /// `GET /console` serves the web console.
    var console = false
}

extension HTTPGatewaySettings {
    init(_ listener: HTTPListenerSettings) {
        heartbeatSeconds = Int64(listener.heartbeatSeconds)
        idleSeconds = Int64(listener.idleSeconds)
        retryMilliseconds = listener.retryMilliseconds
        history = TopicHistoryLimits(
            messagesPerTopic: listener.historyMessages, maxAgeSeconds: listener.historySeconds,
            maxBytes: listener.historyBytes, maxTopics: listener.historyTopics)
        // A default above the maximum would refuse every poll that names no timeout: the maximum wins.
        router = GatewayRouterConfiguration(
            defaultLongPollSeconds: min(listener.longPollSeconds, listener.maxLongPollSeconds),
            maxLongPollSeconds: listener.maxLongPollSeconds,
            cors: CORSPolicy(origins: listener.corsOrigins, credentials: listener.corsCredentials))
        limits = HTTPLimits(maxBodyBytes: listener.maxBodyBytes)
        metricsOpen = listener.metricsOpen
        compression = listener.compression
        console = listener.console
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
    /// The topic history and the recorder's subscriptions, shared by every subscriber of the listener.
    let hub: GatewayHub
    /// Where the history is kept across restarts (`persistence true`), and the timer that writes it.
    let historyFile: String?
    let historyQueue = DispatchQueue(label: "midge.http-history")
    let savingHistory = Atomic<Bool>(false)
    /// Generated client ids: a per-process random prefix and a counter, unique and not guessable from outside.
    private let clientIDPrefix: String
    private let clientSerial = Atomic<UInt64>(0)

    init(
        settings: HTTPGatewaySettings, accessControl: any AccessControl,
        broker: BrokerConfiguration, metrics: ServerMetrics, logger: Logger? = nil, historyFile: String? = nil
    ) {
        self.historyFile = historyFile
        self.settings = settings
        self.logger = logger
        self.router = GatewayRouter(configuration: settings.router)
        self.accessControl = accessControl
        self.allowAnonymous = broker.allowAnonymous
        self.maxQoS = broker.maxQoS
        self.metrics = metrics
        hub = GatewayHub(limits: settings.history, maxQoS: broker.maxQoS, firstID: settings.firstEventID)
        var random = SystemRandomNumberGenerator()
        clientIDPrefix = "http-" + String(random.next() as UInt32, radix: 16) + "-"
        // The client ids must pass any `max_client_id_length` a 3.1.1 broker applies; this form is ~20 bytes.
    }

    /// The gateway of a `protocol http` listener in a running server.
    convenience init(listener: ListenerConfiguration, settings: ServerSettings, logger: Logger?) {
        var gatewaySettings = HTTPGatewaySettings(listener.http)
        gatewaySettings.firstEventID = UInt64(max(0, time(nil))) * 1_000_000
        // With per_listener_settings, the listener's own ACL decides what its HTTP callers may publish and read.
        let profile = listener.securityProfile
        let accessControl =
            profile > 0 && profile <= settings.listenerAuth.count
            ? settings.listenerAuth[profile - 1].security.accessControl : settings.accessControl
        self.init(
            settings: gatewaySettings, accessControl: accessControl, broker: settings.broker,
            metrics: settings.metrics, logger: logger,
            historyFile: settings.persistence.map { Self.historyPath(directory: $0.directory, port: listener.port) })
        loadHistory()
    }

    func generatedClientID() -> String {
        clientIDPrefix + String(clientSerial.wrappingAdd(1, ordering: .relaxed).newValue, radix: 16)
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
}
