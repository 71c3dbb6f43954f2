// What the HTTP API asks the broker to do, once a request is parsed, checked and authenticated-ready.

import MQTTCodec
import MidgeText

/// How a subscriber's messages are delivered over HTTP.
public enum SubscribeMode: Sendable, Equatable {
    /// A `text/event-stream` response that stays open.
    case sse
    /// One JSON response, sent when a message arrives or after the timeout with whatever arrived (maybe none).
    case longPoll(timeoutSeconds: Int)
    /// One JSON response at once, with what the history holds after the given id (maybe none).
    case poll
    /// The request asked to upgrade to a WebSocket (RFC 6455): each message is a text frame with one JSON object.
    case webSocket
}

/// Where a subscriber without `Last-Event-ID` starts in the topic history (`since=`).
public enum SubscribeStart: Sendable, Equatable {
    /// Every message the history still holds for the filters.
    case oldest
    /// The newest one it holds, then what comes.
    case newest
    /// What came after this id (as `Last-Event-ID` would).
    case after(UInt64)
}

/// How an SSE or long-poll message shows its payload.
public enum MessageFormat: Sendable, Equatable {
    /// One JSON object per message, with the topic: `{"topic":…,"payload":…,"qos":…,"retain":…}`.
    case json
    /// The payload itself as the event data, no topic: for a single-topic stream.
    case raw
}

public struct SubscribeCommand: Sendable, Equatable {
    public var filters: [TopicFilter]
    /// The maximum QoS of the subscriptions: each message is shown at the lower of its own QoS and this.
    public var qos: QoS
    /// The MQTT client id of the request's session (always a clean session: resuming is the topic history's job).
    /// Nil: a server-chosen id.
    public var clientID: String?
    /// The last id the client saw (`Last-Event-ID` header, or `last_event_id` for the first request of a
    /// long-poll loop): deliver what came after it.
    public var lastEventID: String?
    /// `since=`: where to start when there is no `lastEventID` (which a reconnecting EventSource sends, and which
    /// therefore wins); nil: from now on, with the retained messages first.
    public var since: SubscribeStart?
    public var mode: SubscribeMode
    public var format: MessageFormat

    public init(
        filters: [TopicFilter], qos: QoS = .atMostOnce, clientID: String? = nil, lastEventID: String? = nil,
        since: SubscribeStart? = nil, mode: SubscribeMode = .sse, format: MessageFormat = .json
    ) {
        self.filters = filters
        self.qos = qos
        self.clientID = clientID
        self.lastEventID = lastEventID
        self.since = since
        self.mode = mode
        self.format = format
    }
}

public enum GatewayRequest: Sendable, Equatable {
    /// Answer once every message is accepted by the broker (for QoS 1/2: stored as a PUBACK/PUBREC would be).
    case publish([GatewayMessage])
    case subscribe(SubscribeCommand)
    case metrics
    /// HTTP subscribers, messages kept and the last id of one topic.
    case topicInfo(TopicName)
    /// The web console page.
    case console
}

/// Credentials checked by the same authenticator as MQTT CONNECT: Basic gives a username and password, Bearer a
/// token in the password with no username, as an MQTT client sending a token would.
public struct GatewayCredentials: Sendable, Equatable {
    public var username: String?
    public var password: [UInt8]?

    public init(username: String?, password: [UInt8]?) {
        self.username = username
        self.password = password
    }
}

/// A message crossing the gateway: one to publish (its topic validated, so the broker can take it as is), or one
/// on its way to an HTTP subscriber.
public struct GatewayMessage: Sendable, Equatable {
    public var topic: TopicName
    public var payload: [UInt8]
    public var qos: QoS
    public var retain: Bool

    public init(topic: TopicName, payload: [UInt8], qos: QoS = .atMostOnce, retain: Bool = false) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
    }

    /// Appends the message as a JSON object: the payload as a string when it is UTF-8, else base64 under
    /// `payload_base64`, the same fields `POST /publish` accepts. `id` first when given.
    public func appendJSON(id: String?, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        if let id {
            out.append(contentsOf: Array(#""id":"#.utf8))
            JSONText.appendString(id, to: &out)
            out.append(UInt8(ascii: ","))
        }
        out.append(contentsOf: Array(#""topic":"#.utf8))
        JSONText.appendString(topic.description, to: &out)
        if let text = String(validating: payload, as: UTF8.self) {
            out.append(contentsOf: Array(#","payload":"#.utf8))
            JSONText.appendString(text, to: &out)
        } else {
            out.append(contentsOf: Array(#","payload_base64":"#.utf8))
            JSONText.appendString(Base64.encode(payload), to: &out)
        }
        out.append(contentsOf: Array(#","qos":\#(qos.rawValue),"retain":\#(retain)}"#.utf8))
    }
}
