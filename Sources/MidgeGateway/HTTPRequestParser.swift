// Incremental HTTP/1.1 request parsing with hard limits (RFC 9112 §2-§7): bytes in, whole requests out.

/// Every size the parser accepts is bounded before it is buffered.
public struct HTTPLimits: Sendable, Equatable {
    /// Longer request lines are refused with 414.
    public var maxRequestLineBytes: Int
    /// The header section (every field line with its line end), refused beyond with 431.
    public var maxHeaderBytes: Int
    /// More field lines are refused with 431.
    public var maxHeaderCount: Int
    /// Larger bodies, declared or chunked, are refused with 413.
    public var maxBodyBytes: Int

    public init(
        maxRequestLineBytes: Int = 8 * 1024, maxHeaderBytes: Int = 32 * 1024, maxHeaderCount: Int = 100,
        maxBodyBytes: Int = 1024 * 1024
    ) {
        self.maxRequestLineBytes = maxRequestLineBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount
        self.maxBodyBytes = maxBodyBytes
    }
}

/// A request the parser refuses. After one, the position in the byte stream is unknown, so the connection must
/// be closed once `response` is written (RFC 9112 §2.2).
public struct HTTPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public let status: HTTPStatus
    public let message: String

    public init(_ status: HTTPStatus, _ message: String) {
        self.status = status
        self.message = message
    }

    public var response: HTTPResponse { .error(status, message, closeConnection: true) }

    public var description: String { "\(status): \(message)" }
}

/// Feed it bytes with `append`, then call `next` until it returns nil.
///
/// Requests may be pipelined: several can arrive in one read, and `next` returns them one at a time. Bodies are
/// framed by `Content-Length` or `Transfer-Encoding: chunked` (RFC 9112 §6-§7); chunk extensions and trailer
/// fields are read and dropped. A request with neither has no body, so 411 is never needed.
public struct HTTPRequestParser: Sendable {
    public enum Event: Sendable, Equatable {
        /// The head asked `Expect: 100-continue` and no body byte has arrived yet: write
        /// `HTTPResponse.continueBytes`, then keep reading.
        case expectsContinue
        case request(HTTPRequest)
    }

    private enum State: Sendable {
        case requestLine
        case headers
        case fixedBody(length: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case failed(HTTPParseError)
    }

    public let limits: HTTPLimits
    private var buffer: [UInt8] = []
    /// The first byte not yet consumed.
    private var position = 0
    /// Where the search for the next line feed resumes, so a line arriving byte by byte is scanned once.
    private var scanPosition = 0
    private var state = State.requestLine
    private var method = ""
    private var target = ""
    private var version = HTTPVersion.http11
    private var headers = HTTPHeaders()
    private var headerBytes = 0
    private var body: [UInt8] = []
    private var continuePending = false

    /// A chunk-size line is a hex number and optional extensions; anything this long is an attack.
    private static let maxChunkLineBytes = 1024

    public init(limits: HTTPLimits = HTTPLimits()) {
        self.limits = limits
    }

    public mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        compact()
        buffer.append(contentsOf: bytes)
    }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        compact()
        buffer.append(contentsOf: bytes)
    }

    /// Bytes received but not yet parsed.
    public var bufferedByteCount: Int { buffer.count - position }

    /// Hands over what follows the last request, e.g. WebSocket frames sent right behind an upgrade request.
    public mutating func takeBufferedBytes() -> [UInt8] {
        let rest = Array(buffer[position...])
        buffer.removeAll(keepingCapacity: false)
        position = 0
        scanPosition = 0
        return rest
    }

    /// The next event, nil when more bytes are needed. After a throw every later call throws the same error.
    public mutating func next() throws(HTTPParseError) -> Event? {
        // Each pass consumes input or changes state, and every state but `.requestLine` moves on; the bound only
        // guards against a bug turning this into a spin.
        for _ in 0...(buffer.count - position + 16) {
            switch state {
            case .failed(let error):
                throw error
            case .requestLine:
                let tooLong = HTTPParseError(
                    .uriTooLong, "request line longer than \(limits.maxRequestLineBytes) bytes")
                guard let line = try readLine(limit: limits.maxRequestLineBytes, else: tooLong) else { return nil }
                // RFC 9112 §2.2: empty lines before a request line are ignored.
                if line.isEmpty { continue }
                try parseRequestLine(line)
                state = .headers
            case .headers, .trailers:
                let remaining = limits.maxHeaderBytes - headerBytes
                let tooLarge = HTTPParseError(
                    .requestHeaderFieldsTooLarge, "header section larger than \(limits.maxHeaderBytes) bytes")
                guard let line = try readLine(limit: remaining, else: tooLarge) else { return nil }
                headerBytes += line.count + 2
                guard headerBytes <= limits.maxHeaderBytes else { throw fail(tooLarge) }
                if case .trailers = state {
                    // Trailer fields are read within the same budget and dropped: nothing here needs them.
                    if line.isEmpty { return .request(finishRequest()) }
                    continue
                }
                if line.isEmpty {
                    if let request = try finishHead() { return .request(request) }
                } else {
                    try parseField(line)
                }
            case .fixedBody(let length):
                if continuePending {
                    continuePending = false
                    if position == buffer.count { return .expectsContinue }
                }
                guard buffer.count - position >= length else { return nil }
                body = Array(buffer[position..<(position + length)])
                position += length
                return .request(finishRequest())
            case .chunkSize:
                if continuePending {
                    continuePending = false
                    if position == buffer.count { return .expectsContinue }
                }
                let tooLong = HTTPParseError(.badRequest, "chunk size line too long")
                guard let line = try readLine(limit: HTTPRequestParser.maxChunkLineBytes, else: tooLong) else {
                    return nil
                }
                let size = try parseChunkSize(line)
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let count = min(remaining, buffer.count - position)
                body.append(contentsOf: buffer[position..<(position + count)])
                position += count
                guard count == remaining else {
                    state = .chunkData(remaining: remaining - count)
                    return nil
                }
                state = .chunkDataEnd
            case .chunkDataEnd:
                let bad = HTTPParseError(.badRequest, "chunk data longer than its size")
                guard let line = try readLine(limit: 0, else: bad) else { return nil }
                guard line.isEmpty else { throw fail(bad) }
                state = .chunkSize
            }
        }
        return nil
    }

    // MARK: - Lines

    /// The next line without its line end, or nil when none is complete yet. A bare LF is accepted as a line end
    /// (RFC 9112 §2.2 allows it); a CR anywhere else is refused.
    private mutating func readLine(
        limit: Int, else error: HTTPParseError
    ) throws(HTTPParseError) -> ArraySlice<UInt8>? {
        var index = max(scanPosition, position)
        while index < buffer.count && buffer[index] != 0x0A { index += 1 }
        guard index < buffer.count else {
            scanPosition = index
            // A CR waiting for its LF does not count against the limit.
            let pending = buffer.count - position - (buffer.last == 0x0D ? 1 : 0)
            if pending > limit { throw fail(error) }
            return nil
        }
        var end = index
        if end > position && buffer[end - 1] == 0x0D { end -= 1 }
        let line = buffer[position..<end]
        position = index + 1
        scanPosition = position
        if line.count > limit { throw fail(error) }
        if line.contains(0x0D) { throw fail(HTTPParseError(.badRequest, "bare CR in a line")) }
        return line
    }

    // MARK: - Head

    private mutating func parseRequestLine(_ line: ArraySlice<UInt8>) throws(HTTPParseError) {
        let parts = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw fail(HTTPParseError(.badRequest, "malformed request line")) }
        guard ASCII.isToken(parts[0]) else { throw fail(HTTPParseError(.badRequest, "malformed method")) }
        switch Array(parts[2]) {
        case Array("HTTP/1.1".utf8): version = .http11
        case Array("HTTP/1.0".utf8): version = .http10
        case let other where other.count == 8 && other.starts(with: Array("HTTP/".utf8)):
            throw fail(HTTPParseError(.httpVersionNotSupported, "only HTTP/1.0 and HTTP/1.1 are supported"))
        default:
            throw fail(HTTPParseError(.badRequest, "malformed HTTP version"))
        }
        let rawTarget = parts[1]
        guard !rawTarget.isEmpty, rawTarget.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw fail(HTTPParseError(.badRequest, "malformed request target"))
        }
        method = String(decoding: parts[0], as: UTF8.self)
        let text = String(decoding: rawTarget, as: UTF8.self)
        if text.hasPrefix("/") || (text == "*" && method == "OPTIONS") {
            target = text
        } else if let originForm = HTTPRequestParser.originForm(ofAbsolute: text) {
            // RFC 9112 §3.2.2: a server must accept the absolute form too; only the path and query matter here.
            target = originForm
        } else {
            throw fail(HTTPParseError(.badRequest, "malformed request target"))
        }
    }

    private static func originForm(ofAbsolute target: String) -> String? {
        let lower = target.lowercased()
        let schemeLength: Int
        if lower.hasPrefix("http://") {
            schemeLength = 7
        } else if lower.hasPrefix("https://") {
            schemeLength = 8
        } else {
            return nil
        }
        let afterScheme = target.dropFirst(schemeLength)
        guard let pathStart = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return "/" }
        let rest = afterScheme[pathStart...]
        return rest.hasPrefix("?") ? "/" + rest : String(rest)
    }

    private mutating func parseField(_ line: ArraySlice<UInt8>) throws(HTTPParseError) {
        if line.first == UInt8(ascii: " ") || line.first == 0x09 {
            throw fail(HTTPParseError(.badRequest, "obsolete line folding in a header field"))
        }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), ASCII.isToken(line[line.startIndex..<colon]) else {
            throw fail(HTTPParseError(.badRequest, "malformed header field"))
        }
        var value = line[(colon + 1)...]
        while let first = value.first, first == 0x20 || first == 0x09 { value = value.dropFirst() }
        while let last = value.last, last == 0x20 || last == 0x09 { value = value.dropLast() }
        guard !value.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) else {
            throw fail(HTTPParseError(.badRequest, "control character in a header field"))
        }
        guard headers.fields.count < limits.maxHeaderCount else {
            throw fail(HTTPParseError(.requestHeaderFieldsTooLarge, "more than \(limits.maxHeaderCount) header fields"))
        }
        headers.append(
            String(decoding: line[line.startIndex..<colon], as: UTF8.self), String(decoding: value, as: UTF8.self))
    }

    /// Decides how the body is framed once the head is complete; returns the request when it has no body.
    private mutating func finishHead() throws(HTTPParseError) -> HTTPRequest? {
        if version == .http11 {
            // RFC 9112 §3.2: a 1.1 request without exactly one Host gets 400.
            guard headers.values(for: "Host").count == 1 else {
                throw fail(HTTPParseError(.badRequest, "an HTTP/1.1 request needs exactly one Host header"))
            }
        }
        let transferCodings = headers.tokens(for: "Transfer-Encoding")
        let lengths = headers.values(for: "Content-Length")
        if !transferCodings.isEmpty && !lengths.isEmpty {
            // RFC 9112 §6.3: both together is how requests are smuggled past proxies; refuse.
            throw fail(HTTPParseError(.badRequest, "both Transfer-Encoding and Content-Length"))
        }
        let expectations = headers.tokens(for: "Expect")
        if !expectations.isEmpty && expectations != ["100-continue"] {
            throw fail(HTTPParseError(.expectationFailed, "only Expect: 100-continue is supported"))
        }
        let wantsContinue = version == .http11 && !expectations.isEmpty
        if !transferCodings.isEmpty {
            guard transferCodings == ["chunked"] else {
                if transferCodings.last != "chunked" {
                    throw fail(HTTPParseError(.badRequest, "the last transfer coding must be chunked"))
                }
                throw fail(HTTPParseError(.notImplemented, "only the chunked transfer coding is supported"))
            }
            continuePending = wantsContinue
            state = .chunkSize
            return nil
        }
        guard !lengths.isEmpty else { return finishRequest() }
        let length = try parseContentLength(lengths)
        guard length > 0 else { return finishRequest() }
        continuePending = wantsContinue
        state = .fixedBody(length: length)
        return nil
    }

    /// RFC 9110 §8.6: a list of identical values (`5, 5`) is one length; anything else is refused.
    private mutating func parseContentLength(_ values: [String]) throws(HTTPParseError) -> Int {
        let elements = values.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }
            .map { HTTPHeaders.trim($0) }
        guard let first = elements.first, elements.allSatisfy({ $0 == first }), !first.isEmpty,
            first.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
        else {
            throw fail(HTTPParseError(.badRequest, "malformed Content-Length"))
        }
        let digits = first.drop { $0 == "0" }
        guard digits.count <= 18, let length = Int(digits.isEmpty ? "0" : String(digits)),
            length <= limits.maxBodyBytes
        else {
            throw fail(HTTPParseError(.contentTooLarge, "body larger than \(limits.maxBodyBytes) bytes"))
        }
        return length
    }

    private mutating func parseChunkSize(_ line: ArraySlice<UInt8>) throws(HTTPParseError) -> Int {
        // RFC 9112 §7.1.1: extensions follow a `;` and are ignored.
        var digits = line.prefix { $0 != UInt8(ascii: ";") }
        while let last = digits.last, last == 0x20 || last == 0x09 { digits = digits.dropLast() }
        guard !digits.isEmpty else { throw fail(HTTPParseError(.badRequest, "malformed chunk size")) }
        // What this chunk may add; checked per digit against the value so far, which can only grow, so a long run
        // of hex digits is refused before it overflows even when the limit is `Int.max`.
        let room = limits.maxBodyBytes - body.count
        var size = 0
        for digit in digits {
            guard let value = ASCII.hexValue(digit) else {
                throw fail(HTTPParseError(.badRequest, "malformed chunk size"))
            }
            guard Int(value) <= room, size <= (room - Int(value)) / 16 else {
                throw fail(HTTPParseError(.contentTooLarge, "body larger than \(limits.maxBodyBytes) bytes"))
            }
            size = size * 16 + Int(value)
        }
        return size
    }

    // MARK: - State

    private mutating func finishRequest() -> HTTPRequest {
        let request = HTTPRequest(method: method, target: target, version: version, headers: headers, body: body)
        state = .requestLine
        method = ""
        target = ""
        headers = HTTPHeaders()
        headerBytes = 0
        body = []
        continuePending = false
        return request
    }

    private mutating func fail(_ error: HTTPParseError) -> HTTPParseError {
        state = .failed(error)
        return error
    }

    /// Drops consumed bytes once they are many or all, so a long keep-alive connection does not grow the buffer.
    private mutating func compact() {
        guard position > 0, position == buffer.count || position >= 4096 else { return }
        buffer.removeFirst(position)
        scanPosition -= position
        position = 0
    }
}
