// Writing HTTP/1.1 responses (RFC 9112 §4, §6): status line, header fields, framing by Content-Length.

public struct HTTPResponse: Sendable, Equatable {
    public var status: HTTPStatus
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// Adds `Connection: close`; the server closes the connection once the response is written.
    public var closeConnection: Bool

    public init(status: HTTPStatus, headers: HTTPHeaders = [], body: [UInt8] = [], closeConnection: Bool = false) {
        self.status = status
        self.headers = headers
        self.body = body
        self.closeConnection = closeConnection
    }

    /// A JSON body already written as text.
    public static func json(_ status: HTTPStatus, _ json: String, headers: HTTPHeaders = []) -> HTTPResponse {
        var response = HTTPResponse(status: status, headers: headers, body: Array(json.utf8))
        response.headers.append("Content-Type", "application/json")
        return response
    }

    /// `{"error":"<message>"}` with the status: the form of every refusal the gateway gives.
    public static func error(
        _ status: HTTPStatus, _ message: String, headers: HTTPHeaders = [], closeConnection: Bool = false
    ) -> HTTPResponse {
        var response = HTTPResponse(
            status: status, headers: headers, body: JSONText.errorBody(message), closeConnection: closeConnection)
        response.headers.append("Content-Type", "application/json")
        return response
    }

    /// This response as the answer to `request` (RFC 9112 §9.3): it closes the connection when the request did not
    /// ask to keep it, and tells an HTTP/1.0 client that asked that the connection stays open.
    public func answering(_ request: HTTPRequest) -> HTTPResponse {
        var response = self
        if !request.keepAlive {
            response.closeConnection = true
        } else if request.version == .http10 && !closeConnection && !headers.contains("Connection") {
            response.headers.append("Connection", "keep-alive")
        }
        return response
    }

    /// What `Expect: 100-continue` waits for before it sends the body (RFC 9110 §10.1.1).
    public static let continueBytes: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    /// The whole response. `Content-Length` is added unless the status forbids a body (1xx, 204, RFC 9110 §8.6)
    /// or a header already frames it.
    public func encode(into out: inout [UInt8]) {
        let bodyless = status.code < 200 || status.code == HTTPStatus.noContent.code
        let framed = headers.contains("Content-Length") || headers.contains("Transfer-Encoding")
        encodeHead(contentLength: bodyless || framed ? nil : body.count, into: &out)
        if !bodyless { out.append(contentsOf: body) }
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + body.count)
        encode(into: &out)
        return out
    }

    /// The status line and headers only. With `contentLength` nil and no framing header, the body runs until the
    /// connection closes (RFC 9112 §6.3 rule 8): what a Server-Sent Events stream uses.
    public func encodeHead(contentLength: Int?, into out: inout [UInt8]) {
        out.append(contentsOf: Array("HTTP/1.1 \(status.code) \(status.reason)\r\n".utf8))
        for field in headers {
            assert(HTTPResponse.isSafeFieldValue(field.value), "header values must not contain CR, LF or NUL")
            out.append(contentsOf: Array("\(field.name): \(field.value)\r\n".utf8))
        }
        if let contentLength { out.append(contentsOf: Array("Content-Length: \(contentLength)\r\n".utf8)) }
        if closeConnection && !headers.contains("Connection") {
            out.append(contentsOf: Array("Connection: close\r\n".utf8))
        }
        out.append(contentsOf: [0x0D, 0x0A])
    }

    /// The `Date` value (IMF-fixdate, RFC 9110 §5.6.7) for a time, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`. An origin
    /// server with a clock sends one in every response (§6.6.1); the caller owns the clock, so it passes the time.
    public static func dateValue(secondsSince1970 seconds: Int64) -> String {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = Int(seconds - days * 86_400)
        // Days to civil date (Howard Hinnant's algorithm): eras of 400 years starting on March 1st.
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        // 1970-01-01 was a Thursday.
        let weekday = Int(((days % 7) + 11) % 7)
        let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func twoDigits(_ value: Int) -> String { value < 10 ? "0\(value)" : String(value) }
        let time = "\(twoDigits(secondOfDay / 3600)):\(twoDigits(secondOfDay / 60 % 60)):\(twoDigits(secondOfDay % 60))"
        return "\(weekdays[weekday]), \(twoDigits(Int(day))) \(months[Int(month) - 1]) \(year) \(time) GMT"
    }

    static func isSafeFieldValue(_ value: String) -> Bool {
        !value.utf8.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }
    }
}
