// The HTTP API's own responses: published counts, long-poll batches, and the 401/403 refusals with their challenge.

import MQTTCodec

extension HTTPResponse {
    /// `{"published":N}`: every message of the request was accepted.
    public static func published(count: Int) -> HTTPResponse {
        .json(.ok, #"{"published":\#(count)}"#)
    }

    /// The `WWW-Authenticate` challenge naming both schemes the API takes (RFC 9110 §11.6.1).
    public static let authenticationChallenge = #"Basic realm="midge", Bearer realm="midge""#

    /// Missing or refused credentials.
    public static func unauthorized(_ message: String = "authentication required") -> HTTPResponse {
        .error(.unauthorized, message, headers: [("WWW-Authenticate", authenticationChallenge)])
    }

    /// The access control list refuses the topic.
    public static func forbidden(_ message: String = "not authorized for this topic") -> HTTPResponse {
        .error(.forbidden, message)
    }

    /// `GET /topic`: `{"topic":…,"subscribers":N,"messages":N,"last_id":"…" or null}`.
    public static func topicInfo(_ topic: TopicName, subscribers: Int, messages: Int, lastID: String?) -> HTTPResponse {
        var body = Array(#"{"topic":"#.utf8)
        JSONText.appendString(topic.description, to: &body)
        body.append(contentsOf: Array(#","subscribers":\#(subscribers),"messages":\#(messages),"last_id":"#.utf8))
        if let lastID {
            JSONText.appendString(lastID, to: &body)
        } else {
            body.append(contentsOf: Array("null".utf8))
        }
        body.append(UInt8(ascii: "}"))
        return HTTPResponse(
            status: .ok, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")], body: body)
    }

    /// A long-poll answer: `{"messages":[{"id":…,"topic":…,…}, …]}`, possibly empty after the timeout. The client
    /// sends the last id back as `last_event_id` to continue.
    public static func longPoll(_ messages: [(id: String, message: GatewayMessage)]) -> HTTPResponse {
        var body = Array(#"{"messages":["#.utf8)
        for (index, entry) in messages.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            entry.message.appendJSON(id: entry.id, to: &body)
        }
        body.append(contentsOf: Array("]}".utf8))
        return HTTPResponse(
            status: .ok, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")], body: body)
    }
}
