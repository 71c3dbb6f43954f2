// Server-Sent Events (HTML Living Standard §9.2, "text/event-stream"): the stream head, events, comments, retry.
import MidgeText

/// Writes an event stream. Lines end with LF; each event ends with an empty line.
///
/// How broker messages become events:
///
/// | format | payload                          | event                                                          |
/// |--------|----------------------------------|----------------------------------------------------------------|
/// | json   | any                              | no `event:` (so `onmessage` fires), `data:` one JSON object:   |
/// |        |                                  | `{"topic","payload" or "payload_base64","qos","retain"}`       |
/// | raw    | UTF-8 without CR and NUL         | `event: message`, the payload as `data:` lines (LF splits it)  |
/// | raw    | anything else (binary, CR, NUL)  | `event: binary`, `data:` the payload in base64                 |
///
/// `id:` carries the caller's message id, which `EventSource` sends back as `Last-Event-ID` when it reconnects.
/// Raw text with a CR goes as binary because the event-stream parser turns CR and CRLF into LF, and NUL because
/// browsers may cut a string there: both would not arrive byte for byte.
public enum ServerSentEvents {
    public static let contentType = "text/event-stream"

    /// The header fields of a stream's 200, before `headers`; the same over HTTP/1.1 and HTTP/2.
    public static func responseHeaders(_ headers: HTTPHeaders = []) -> HTTPHeaders {
        var fields: HTTPHeaders = [
            ("Content-Type", contentType), ("Cache-Control", "no-store"),
            // Keeps a buffering reverse proxy (nginx) from holding events back.
            ("X-Accel-Buffering", "no"),
        ]
        for field in headers { fields.append(field.name, field.value) }
        return fields
    }

    /// The response head that opens a stream. No Content-Length: the stream ends when the connection closes.
    /// `retryMilliseconds` tells `EventSource` how long to wait before it reconnects.
    /// `headers` are added after the stream's own (CORS, `Date`).
    public static func responseHead(retryMilliseconds: Int? = nil, headers: HTTPHeaders = []) -> [UInt8] {
        let response = HTTPResponse(status: .ok, headers: responseHeaders(headers))
        var out: [UInt8] = []
        response.encodeHead(contentLength: nil, into: &out)
        if let retryMilliseconds { encodeRetry(milliseconds: retryMilliseconds, into: &out) }
        return out
    }

    /// One event. `data` is split into `data:` lines at LF, CRLF and CR (the stream's line ends), and a receiver
    /// joins them with LF.
    public static func encodeEvent(id: String? = nil, event: String? = nil, data: [UInt8], into out: inout [UInt8]) {
        if let id {
            // An id with LF, CR or NUL would end the line early or be ignored by the receiver.
            precondition(isSingleLine(id) && !id.utf8.contains(0), "an event id is one line without NUL")
            appendField("id", Array(id.utf8), to: &out)
        }
        if let event {
            precondition(isSingleLine(event), "an event type is one line")
            appendField("event", Array(event.utf8), to: &out)
        }
        var lineStart = 0
        var index = 0
        while index < data.count {
            let byte = data[index]
            if byte == 0x0A || byte == 0x0D {
                appendField("data", data[lineStart..<index], to: &out)
                if byte == 0x0D && index + 1 < data.count && data[index + 1] == 0x0A { index += 1 }
                lineStart = index + 1
            }
            index += 1
        }
        appendField("data", data[lineStart..<data.count], to: &out)
        out.append(0x0A)
    }

    /// A broker message as an event (see the table above).
    public static func encode(_ message: GatewayMessage, id: String?, format: MessageFormat, into out: inout [UInt8]) {
        switch format {
        case .json:
            var json: [UInt8] = []
            message.appendJSON(id: nil, to: &json)
            encodeEvent(id: id, data: json, into: &out)
        case .raw:
            if String(validating: message.payload, as: UTF8.self) != nil,
                !message.payload.contains(where: { $0 == 0x0D || $0 == 0x00 })
            {
                encodeEvent(id: id, event: "message", data: message.payload, into: &out)
            } else {
                encodeEvent(id: id, event: "binary", data: Array(Base64.encode(message.payload).utf8), into: &out)
            }
        }
    }

    /// A comment line, which receivers ignore: the heartbeat that keeps proxies from closing an idle stream.
    public static func encodeComment(_ text: String = "", into out: inout [UInt8]) {
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            out.append(UInt8(ascii: ":"))
            if !line.isEmpty {
                out.append(UInt8(ascii: " "))
                out.append(contentsOf: Array(line.utf8).filter { $0 != 0x0D })
            }
            out.append(0x0A)
        }
        out.append(0x0A)
    }

    /// `:\n\n`, the shortest heartbeat.
    public static let heartbeat: [UInt8] = [UInt8(ascii: ":"), 0x0A, 0x0A]

    /// `retry: N`, the reconnection delay in milliseconds.
    public static func encodeRetry(milliseconds: Int, into out: inout [UInt8]) {
        precondition(milliseconds >= 0, "a delay is not negative")
        appendField("retry", Array(String(milliseconds).utf8), to: &out)
        out.append(0x0A)
    }

    /// `name: value` — the space keeps a value that starts with a space intact, since the parser drops exactly one.
    private static func appendField<C: Collection>(_ name: String, _ value: C, to out: inout [UInt8])
    where C.Element == UInt8 {
        out.append(contentsOf: Array(name.utf8))
        out.append(contentsOf: [UInt8(ascii: ":"), UInt8(ascii: " ")])
        out.append(contentsOf: value)
        out.append(0x0A)
    }

    private static func isSingleLine(_ text: String) -> Bool {
        !text.utf8.contains { $0 == 0x0A || $0 == 0x0D }
    }
}
