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

    /// Applies one `key value…` line; returns what is wrong with the value, or nil.
    public mutating func apply(key: String, arguments: [String]) -> String? {
        func number(_ range: ClosedRange<Int>) -> Int? {
            guard arguments.count == 1, let value = Int(arguments[0]), range.contains(value) else { return nil }
            return value
        }
        func flag() -> Bool? {
            guard arguments.count == 1 else { return nil }
            return ["true": true, "false": false][arguments[0]]
        }
        let shown = arguments.joined(separator: " ")
        func outside(_ range: ClosedRange<Int>) -> String {
            "'\(shown)' is not a whole number in \(range.lowerBound)...\(range.upperBound)"
        }
        switch key {
        case "http_sse_heartbeat":
            guard let value = number(1...3600) else { return outside(1...3600) }
            heartbeatSeconds = value
        case "http_sse_retry":
            guard let value = number(0...3_600_000) else { return outside(0...3_600_000) }
            retryMilliseconds = value
        case "http_idle_timeout":
            guard let value = number(1...86_400) else { return outside(1...86_400) }
            idleSeconds = value
        case "http_longpoll_timeout":
            guard let value = number(0...86_400) else { return outside(0...86_400) }
            longPollSeconds = value
        case "http_longpoll_max_timeout":
            guard let value = number(0...86_400) else { return outside(0...86_400) }
            maxLongPollSeconds = value
        case "http_history_messages":
            guard let value = number(1...1_000_000) else { return outside(1...1_000_000) }
            historyMessages = value
        case "http_history_bytes":
            guard let value = number(1...Int(Int32.max)) else { return outside(1...Int(Int32.max)) }
            historyBytes = value
        case "http_history_seconds":
            guard let value = number(1...604_800) else { return outside(1...604_800) }
            historySeconds = value
        case "http_history_topics":
            guard let value = number(1...10_000_000) else { return outside(1...10_000_000) }
            historyTopics = value
        case "http_max_body_size":
            guard let value = number(1...268_435_456) else { return outside(1...268_435_456) }
            maxBodyBytes = value
        case "http_metrics_open":
            guard let value = flag() else { return "'\(shown)' is not true or false" }
            metricsOpen = value
        case "http_console":
            guard let value = flag() else { return "'\(shown)' is not true or false" }
            console = value
        case "http_compression":
            guard let value = flag() else { return "'\(shown)' is not true or false" }
            compression = value
        case "http_cors_credentials":
            guard let value = flag() else { return "'\(shown)' is not true or false" }
            corsCredentials = value
        case "http_cors_origins":
            guard !arguments.isEmpty else { return "missing value" }
            for origin in arguments where origin != "*" && !Self.isOrigin(origin) {
                return "'\(origin)' is not an origin (scheme://host[:port], no path) or *"
            }
            corsOrigins = arguments
        default:
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
