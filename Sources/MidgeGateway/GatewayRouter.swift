// The HTTP API's routes (POST /publish, GET /subscribe, GET /metrics): requests in, GatewayRequest or a 4xx out.

import Foundation  // JSONSerialization only, for JSON bodies of POST /publish.
import MQTTCodec
import MidgeText

public struct GatewayRouterConfiguration: Sendable, Equatable {
    /// The most messages one `POST /publish` may carry; more is refused with 413.
    public var maxMessagesPerRequest: Int
    /// The most `topic` filters one subscription request may name.
    public var maxFiltersPerSubscription: Int
    public var defaultLongPollSeconds: Int
    public var maxLongPollSeconds: Int
    /// Which pages of other origins may call the API; answers OPTIONS preflights.
    public var cors: CORSPolicy

    public init(
        maxMessagesPerRequest: Int = 1000, maxFiltersPerSubscription: Int = 32, defaultLongPollSeconds: Int = 30,
        maxLongPollSeconds: Int = 300, cors: CORSPolicy = CORSPolicy()
    ) {
        self.maxMessagesPerRequest = maxMessagesPerRequest
        self.maxFiltersPerSubscription = maxFiltersPerSubscription
        self.defaultLongPollSeconds = defaultLongPollSeconds
        self.maxLongPollSeconds = maxLongPollSeconds
        self.cors = cors
    }
}

public enum GatewayRouting: Sendable, Equatable {
    /// Authenticate `credentials` (nil: none were given), check the ACL, then carry out the request.
    case request(GatewayRequest, credentials: GatewayCredentials?)
    /// The request is refused: write this response (a JSON error with the right 4xx).
    case response(HTTPResponse)
}

/// Maps a parsed request to what the broker should do. Pure: no I/O, no broker state.
///
/// | request                                            | result                                              |
/// |----------------------------------------------------|-----------------------------------------------------|
/// | `POST /publish?topic=a/b&qos=1&retain=true` + body | `.publish` of the body, as is, to `a/b`             |
/// | `POST /publish` + `{"topic":"a/b","payload":"hi"}` | `.publish` of one message                           |
/// | `POST /publish` + `[{…}, {…}]`                     | `.publish` of each (bulk); `?qos=`/`?retain=` are defaults |
/// | `GET /subscribe?topic=a/%2B/c&topic=d/%23`         | `.subscribe` as Server-Sent Events                  |
/// | `GET /subscribe?topic=a&mode=longpoll&timeout=20`  | `.subscribe` as a long poll                         |
/// | `GET /metrics`                                     | `.metrics`                                          |
/// | `GET /subscribe?topic=a&mode=poll&since=42`        | `.subscribe` as a short poll (answered at once)     |
/// | `GET /subscribe?topic=a` + `Upgrade: websocket`    | `.subscribe` over a WebSocket (text frames of JSON) |
/// | `GET /topic?topic=a/b`                             | `.topicInfo`                                        |
/// | `GET /console`                                     | `.console` (the web console page)                   |
/// | `OPTIONS` on any of them                           | 204, or the CORS preflight answer (`CORSPolicy`)    |
/// | other paths / other methods / bad parameters       | 404 / 405 with `Allow` / 400 (413 beyond limits)    |
///
/// Query values are percent-decoded and `+` stays a plus sign (it is a wildcard in filters): write a space as `%20`
/// and `#` as `%23`, since clients cut a URL at `#`. A subscription filter ending in `/` is refused for that reason:
/// it is what `topic=a/#` becomes once the client has cut it. Credentials come from `Authorization: Basic` or
/// `Bearer`, or from `access_token` in the query (RFC 6750 §2.3), which a browser's `EventSource` needs as it cannot
/// set headers.
public struct GatewayRouter: Sendable {
    public let configuration: GatewayRouterConfiguration

    public init(configuration: GatewayRouterConfiguration = GatewayRouterConfiguration()) {
        self.configuration = configuration
    }

    public func route(_ request: HTTPRequest) -> GatewayRouting {
        do throws(RouteError) {
            let allowed: String
            switch request.path {
            case "/publish": allowed = "POST"
            case "/subscribe", "/metrics", "/topic", "/console": allowed = "GET"
            default: throw RouteError(.notFound, "no such endpoint: \(request.path)")
            }
            if request.method == "OPTIONS" { return .response(configuration.cors.preflight(request, method: allowed)) }
            guard request.method == allowed else {
                throw RouteError(
                    .methodNotAllowed, "\(request.path) takes \(allowed)", headers: [("Allow", "\(allowed), OPTIONS")])
            }
            let query = try Query(request.query ?? "")
            let credentials = try GatewayRouter.credentials(request, query: query)
            let routed: GatewayRequest
            switch request.path {
            case "/publish": routed = .publish(try publishCommands(request, query: query))
            case "/subscribe": routed = .subscribe(try subscribeCommand(request, query: query))
            case "/topic":
                guard let name = query.first("topic") else { throw RouteError(.badRequest, "topic is required") }
                routed = .topicInfo(try GatewayRouter.topicName(name))
            case "/console":
                routed = .console
            default: routed = .metrics
            }
            return .request(routed, credentials: credentials)
        } catch {
            return .response(error.response)
        }
    }

    // MARK: - Credentials

    static func credentials(_ request: HTTPRequest, query: Query) throws(RouteError) -> GatewayCredentials? {
        let authorizations = request.headers.values(for: "Authorization")
        guard authorizations.count <= 1 else { throw RouteError(.badRequest, "more than one Authorization header") }
        guard let authorization = authorizations.first else {
            guard let token = query.first("access_token") else { return nil }
            return GatewayCredentials(username: nil, password: token)
        }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2 else { throw RouteError(.badRequest, "malformed Authorization header") }
        let scheme = parts[0].lowercased()
        let value = HTTPHeaders.trim(parts[1])
        switch scheme {
        case "basic":
            // RFC 7617: base64 of `user-id:password`; the user id cannot hold a colon, the password can.
            guard let decoded = Base64.decode(Array(value.utf8)), let colon = decoded.firstIndex(of: UInt8(ascii: ":")),
                let username = String(validating: decoded[..<colon], as: UTF8.self)
            else {
                throw RouteError(.badRequest, "malformed Basic credentials")
            }
            return GatewayCredentials(
                username: username.isEmpty ? nil : username, password: Array(decoded[(colon + 1)...]))
        case "bearer":
            guard !value.isEmpty else { throw RouteError(.badRequest, "empty Bearer token") }
            return GatewayCredentials(username: nil, password: Array(value.utf8))
        default:
            throw RouteError(
                .unauthorized, "unsupported authorization scheme \(parts[0])",
                headers: [("WWW-Authenticate", HTTPResponse.authenticationChallenge)])
        }
    }

    // MARK: - POST /publish

    private func publishCommands(_ request: HTTPRequest, query: Query) throws(RouteError) -> [GatewayMessage] {
        let qos = try query.first("qos").map { value throws(RouteError) in try GatewayRouter.qos(value) }
        let retain = try query.first("retain").map { value throws(RouteError) in
            try GatewayRouter.flag(value, "retain")
        }
        if let topicBytes = query.first("topic") {
            // The raw form: the body is the payload, whatever its type, JSON included.
            let topic = try GatewayRouter.topicName(topicBytes)
            return [
                GatewayMessage(topic: topic, payload: request.body, qos: qos ?? .atMostOnce, retain: retain ?? false)
            ]
        }
        guard !request.body.isEmpty else {
            throw RouteError(.badRequest, "give ?topic= for a raw payload, or a JSON body")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(request.body), options: [.fragmentsAllowed])
        } catch {
            throw RouteError(.badRequest, "the body is not valid JSON (give ?topic= to publish a raw body)")
        }
        if let object = json as? [String: Any] {
            return [try publishCommand(object, defaultQoS: qos, defaultRetain: retain, label: "")]
        }
        guard let array = json as? [Any] else {
            throw RouteError(.badRequest, "the JSON body must be an object or an array of objects")
        }
        guard !array.isEmpty else { throw RouteError(.badRequest, "the JSON array is empty") }
        guard array.count <= configuration.maxMessagesPerRequest else {
            throw RouteError(
                .contentTooLarge, "more than \(configuration.maxMessagesPerRequest) messages in one request")
        }
        var commands: [GatewayMessage] = []
        commands.reserveCapacity(array.count)
        for (index, element) in array.enumerated() {
            let label = "message \(index): "
            guard let object = element as? [String: Any] else { throw RouteError(.badRequest, label + "not an object") }
            commands.append(try publishCommand(object, defaultQoS: qos, defaultRetain: retain, label: label))
        }
        return commands
    }

    private func publishCommand(
        _ object: [String: Any], defaultQoS: QoS?, defaultRetain: Bool?, label: String
    ) throws(RouteError) -> GatewayMessage {
        let known: Set<String> = ["topic", "payload", "payload_base64", "qos", "retain"]
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw RouteError(.badRequest, label + "unknown field \(JSONText.string(unknown))")
        }
        guard let topicText = object["topic"] as? String else {
            throw RouteError(.badRequest, label + "\"topic\" must be a string")
        }
        let topic = try GatewayRouter.topicName(Array(topicText.utf8), label: label)
        var payload: [UInt8] = []
        switch (object["payload"], object["payload_base64"]) {
        case (nil, nil):
            break
        case (let text?, nil):
            guard let text = text as? String else {
                throw RouteError(.badRequest, label + "\"payload\" must be a string")
            }
            payload = Array(text.utf8)
        case (nil, let encoded?):
            guard let encoded = encoded as? String, let bytes = Base64.decode(Array(encoded.utf8)) else {
                throw RouteError(.badRequest, label + "\"payload_base64\" must be a base64 string")
            }
            payload = bytes
        default:
            throw RouteError(.badRequest, label + "give \"payload\" or \"payload_base64\", not both")
        }
        var qos = defaultQoS ?? .atMostOnce
        if let value = object["qos"] {
            guard let number = value as? NSNumber, !GatewayRouter.isBoolean(number),
                String(cString: number.objCType) != "d", let level = QoS(rawValue: UInt8(clamping: number.intValue)),
                number.intValue == Int(level.rawValue)
            else {
                throw RouteError(.badRequest, label + "\"qos\" must be 0, 1 or 2")
            }
            qos = level
        }
        var retain = defaultRetain ?? false
        if let value = object["retain"] {
            guard let number = value as? NSNumber, GatewayRouter.isBoolean(number) else {
                throw RouteError(.badRequest, label + "\"retain\" must be true or false")
            }
            retain = number.boolValue
        }
        return GatewayMessage(topic: topic, payload: payload, qos: qos, retain: retain)
    }

    /// JSONSerialization gives `true`/`false` as NSNumber too; only their type tells them from 1 and 0.
    private static func isBoolean(_ number: NSNumber) -> Bool {
        type(of: number) == type(of: NSNumber(value: true))
    }

    // MARK: - GET /subscribe

    private func subscribeCommand(_ request: HTTPRequest, query: Query) throws(RouteError) -> SubscribeCommand {
        let filterValues = query.all("topic")
        guard !filterValues.isEmpty else { throw RouteError(.badRequest, "topic is required") }
        guard filterValues.count <= configuration.maxFiltersPerSubscription else {
            throw RouteError(.badRequest, "more than \(configuration.maxFiltersPerSubscription) topic filters")
        }
        var filters: [TopicFilter] = []
        for value in filterValues {
            if value.last == UInt8(ascii: "/") {
                // Valid MQTT, but almost always `a/#` with the `#` taken for the URL's fragment and cut off.
                let shown = JSONText.string(String(decoding: value, as: UTF8.self))
                throw RouteError(
                    .badRequest,
                    "topic filter \(shown) ends in /: a # in a URL must be written %23 "
                        + "(an unescaped # starts the fragment, which clients do not send)")
            }
            guard let filter = TopicFilter(bytes: value) else {
                throw RouteError(
                    .badRequest, "invalid topic filter \(JSONText.string(String(decoding: value, as: UTF8.self)))")
            }
            filters.append(filter)
        }
        let qos = try query.first("qos").map { value throws(RouteError) in try GatewayRouter.qos(value) }
        var clientID: String?
        if let value = query.first("client_id") {
            guard !value.isEmpty, value.count <= 65535, UTF8Validation.isValidMQTTString(value),
                let text = String(validating: value, as: UTF8.self)
            else {
                throw RouteError(.badRequest, "client_id must be a non-empty UTF-8 string")
            }
            clientID = text
        }
        // EventSource sends Last-Event-ID itself when it reconnects; a first request may name one in the query.
        var lastEventID = request.headers["Last-Event-ID"]
        if lastEventID == nil, let value = query.first("last_event_id") {
            // Percent-decoding can produce any byte, while the header cannot hold LF, CR or NUL, and no event id
            // can either (HTML §9.2.6): refusing them here lets the server treat an id from either place alike,
            // and echo it in an `id:` field, which `ServerSentEvents` refuses for those bytes.
            guard !value.contains(where: { $0 == 0x0A || $0 == 0x0D || $0 == 0x00 }),
                let text = String(validating: value, as: UTF8.self)
            else {
                throw RouteError(.badRequest, "last_event_id must be UTF-8 without line breaks or NUL")
            }
            lastEventID = text
        }
        let mode: SubscribeMode
        let upgrade = request.headers.tokens(for: "Upgrade").contains("websocket")
        switch query.first("mode").map({ String(decoding: $0, as: UTF8.self) }) {
        case nil where upgrade, "websocket" where upgrade:
            mode = .webSocket
        case "websocket":
            throw RouteError(.badRequest, "mode=websocket needs a WebSocket upgrade request")
        case _ where upgrade:
            throw RouteError(.badRequest, "a WebSocket upgrade subscribes as a WebSocket: drop mode=")
        case nil, "sse":
            mode = .sse
        case "longpoll":
            var timeout = configuration.defaultLongPollSeconds
            if let value = query.first("timeout") {
                guard let seconds = Int(String(decoding: value, as: UTF8.self)),
                    (0...configuration.maxLongPollSeconds).contains(seconds)
                else {
                    throw RouteError(.badRequest, "timeout must be 0 to \(configuration.maxLongPollSeconds) seconds")
                }
                timeout = seconds
            }
            mode = .longPoll(timeoutSeconds: timeout)
        case "poll":
            mode = .poll
        default:
            throw RouteError(.badRequest, "mode must be sse, longpoll, poll or websocket")
        }
        var since: SubscribeStart?
        if let value = query.first("since").map({ String(decoding: $0, as: UTF8.self) }) {
            switch value {
            case "oldest": since = .oldest
            case "newest": since = .newest
            default:
                guard let id = UInt64(value) else {
                    throw RouteError(.badRequest, "since must be oldest, newest or an id")
                }
                since = .after(id)
            }
        }
        let format: MessageFormat
        switch query.first("format").map({ String(decoding: $0, as: UTF8.self) }) {
        case nil, "json": format = .json
        case "raw": format = .raw
        default: throw RouteError(.badRequest, "format must be json or raw")
        }
        return SubscribeCommand(
            filters: filters, qos: qos ?? .atMostOnce, clientID: clientID, lastEventID: lastEventID, since: since,
            mode: mode, format: format)
    }

    // MARK: - Values

    private static func qos(_ value: [UInt8]) throws(RouteError) -> QoS {
        guard value.count == 1, let level = QoS(rawValue: value[0] &- UInt8(ascii: "0")) else {
            throw RouteError(.badRequest, "qos must be 0, 1 or 2")
        }
        return level
    }

    /// `true`/`1`/empty (`?retain`) or `false`/`0`.
    private static func flag(_ value: [UInt8], _ name: String) throws(RouteError) -> Bool {
        switch String(decoding: value, as: UTF8.self) {
        case "", "1", "true": return true
        case "0", "false": return false
        default: throw RouteError(.badRequest, "\(name) must be true or false")
        }
    }

    private static func topicName(_ bytes: [UInt8], label: String = "") throws(RouteError) -> TopicName {
        guard let topic = TopicName(bytes: bytes) else {
            // [MQTT-3.3.2-2] no wildcards in a topic name; [MQTT-4.7.3-1] not empty.
            let shown = JSONText.string(String(decoding: bytes, as: UTF8.self))
            throw RouteError(.badRequest, label + "invalid topic name \(shown)")
        }
        return topic
    }
}

/// A refusal on its way to becoming a JSON error response.
struct RouteError: Error {
    let status: HTTPStatus
    let message: String
    let headers: HTTPHeaders

    init(_ status: HTTPStatus, _ message: String, headers: HTTPHeaders = []) {
        self.status = status
        self.message = message
        self.headers = headers
    }

    var response: HTTPResponse { .error(status, message, headers: headers) }
}

/// `a=1&b=%2F&c`: names and values percent-decoded (RFC 3986 §2.1), `+` left as is.
struct Query {
    private(set) var items: [(name: String, value: [UInt8])] = []

    init(_ text: Substring) throws(RouteError) {
        for item in text.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let parts = item.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = Query.percentDecoded(parts[0]),
                let value = Query.percentDecoded(parts.count > 1 ? Array(parts[1]) : [])
            else {
                throw RouteError(.badRequest, "malformed percent-encoding in the query")
            }
            items.append((name: String(decoding: name, as: UTF8.self), value: value))
        }
    }

    func first(_ name: String) -> [UInt8]? { items.first { $0.name == name }?.value }

    func all(_ name: String) -> [[UInt8]] { items.filter { $0.name == name }.map(\.value) }

    static func percentDecoded<C: Collection>(_ bytes: C) -> [UInt8]? where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var iterator = bytes.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                out.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(ASCII.hexValue), let low = iterator.next().flatMap(ASCII.hexValue)
            else {
                return nil
            }
            out.append(high << 4 | low)
        }
        return out
    }
}
