// The `http_*` keys of a `protocol http` listener: what the push gateway used to fix in code (heartbeat, retry,
// idle timeout, long-poll limits, history sizes), who may read /metrics, and CORS.

/// One HTTP listener's settings as the configuration file gives them. Each key belongs to the last `listener` line
/// above it, as mosquitto's listener keys do.
public struct HTTPListenerSettings: Sendable, Equatable {
    /// `http_sse_heartbeat`: seconds without a byte on a stream before a comment line keeps proxies from closing it.
    public var heartbeatSeconds = 15
    /// `http_sse_retry`: the `retry:` milliseconds a stream opens with (how long EventSource waits to reconnect).
    public var retryMilliseconds = 2000
    /// `http_idle_timeout`: seconds a kept-alive connection may wait for its next request.
    public var idleSeconds = 60
    /// `http_longpoll_timeout` / `http_longpoll_max_timeout`: a poll's wait without `timeout=`, and the most it may
    /// ask.
    public var longPollSeconds = 30
    public var maxLongPollSeconds = 300
    /// `http_history_messages` / `http_history_seconds` / `http_history_bytes` / `http_history_topics`: the shared
    /// topic history that `Last-Event-ID` resumes from: messages kept per topic, for how long, how many payload and
    /// topic bytes in all, and on how many topics.
    public var historyMessages = 100
    public var historySeconds = 300
    public var historyBytes = 16 * 1024 * 1024
    public var historyTopics = 10_000
    /// `http_max_body_size`: the largest request body.
    public var maxBodyBytes = 1024 * 1024
    /// `http_metrics_open`: /metrics without credentials even when `allow_anonymous` is false.
    public var metricsOpen = false
    /// `http_cors_origins`: origins whose pages may call the API (`*` for any); empty sends no CORS headers.
    public var corsOrigins: [String] = []
    /// `http_compression`: gzip answers and streams for clients that accept it.
    public var compression = false
    /// `http_console`: serve the web console at `GET /console`.
    public var console = false
    /// `http_cors_credentials`: let those pages send cookies and `Authorization` (Access-Control-Allow-Credentials).
    public var corsCredentials = false

    public init() {}

    /// The keys `apply` reads, for `Configuration.supportedKeys`.
    public static let keys: [String] = [
        "http_sse_heartbeat", "http_sse_retry", "http_idle_timeout", "http_longpoll_timeout",
        "http_longpoll_max_timeout", "http_history_messages", "http_history_seconds", "http_history_bytes",
        "http_history_topics",
        "http_max_body_size", "http_metrics_open", "http_cors_origins", "http_cors_credentials", "http_compression",
        "http_console",
    ]

    /// The whole-number keys, their ranges and the setting each one writes. Key paths are not `Sendable` yet; these
    /// tables are constants, never written after their initialisation.
    nonisolated(unsafe) private static let numbers:
        [String: (range: ClosedRange<Int>, setting: WritableKeyPath<Self, Int>)] = [
            "http_sse_heartbeat": (1...3600, \.heartbeatSeconds),
            "http_sse_retry": (0...3_600_000, \.retryMilliseconds),
            "http_idle_timeout": (1...86_400, \.idleSeconds),
            "http_longpoll_timeout": (0...86_400, \.longPollSeconds),
            "http_longpoll_max_timeout": (0...86_400, \.maxLongPollSeconds),
            "http_history_messages": (1...1_000_000, \.historyMessages),
            "http_history_bytes": (1...Int(Int32.max), \.historyBytes),
            "http_history_seconds": (1...604_800, \.historySeconds),
            "http_history_topics": (1...10_000_000, \.historyTopics),
            "http_max_body_size": (1...268_435_456, \.maxBodyBytes),
        ]

    /// The true/false keys and the setting each one writes.
    nonisolated(unsafe) private static let flags: [String: WritableKeyPath<Self, Bool>] = [
        "http_metrics_open": \.metricsOpen, "http_console": \.console, "http_compression": \.compression,
        "http_cors_credentials": \.corsCredentials,
    ]

    /// Applies one `key value…` line; returns what is wrong with the value, or nil.
    public mutating func apply(key: String, arguments: [String]) -> String? {
        let shown = arguments.joined(separator: " ")
        if let (range, setting) = Self.numbers[key] {
            guard arguments.count == 1, let value = Int(arguments[0]), range.contains(value) else {
                return "'\(shown)' is not a whole number in \(range.lowerBound)...\(range.upperBound)"
            }
            self[keyPath: setting] = value
        } else if let setting = Self.flags[key] {
            guard arguments.count == 1, let value = ["true": true, "false": false][arguments[0]] else {
                return "'\(shown)' is not true or false"
            }
            self[keyPath: setting] = value
        } else if key == "http_cors_origins" {
            guard !arguments.isEmpty else { return "missing value" }
            for origin in arguments where origin != "*" && !Self.isOrigin(origin) {
                return "'\(origin)' is not an origin (scheme://host[:port], no path) or *"
            }
            corsOrigins = arguments
        } else {
            fatalError("BUG: \(key) is in HTTPListenerSettings.keys but not applied")
        }
        return nil
    }

    /// `https://example.com` or `http://localhost:8080`: what a browser sends in `Origin` (RFC 6454 §7).
    static func isOrigin(_ text: String) -> Bool {
        guard let separator = text.range(of: "://") else { return false }
        let scheme = text[..<separator.lowerBound]
        let authority = text[separator.upperBound...]
        return !scheme.isEmpty && scheme.allSatisfy({ $0.isLetter || $0.isNumber || "+-.".contains($0) })
            && !authority.isEmpty && !authority.contains(where: { "/?#@ ".contains($0) })
    }
}
