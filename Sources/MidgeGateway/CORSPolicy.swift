// Cross-origin access to the HTTP API (Fetch standard §3.2, "CORS protocol"): which pages may call it, and the
// answer to a browser's OPTIONS preflight.

/// Which origins' pages may read the API's answers. Empty (the default) sends no CORS headers at all, so a browser
/// lets only same-origin pages read them.
///
/// | request                                        | answer                                                     |
/// |------------------------------------------------|------------------------------------------------------------|
/// | any, `Origin` allowed                          | `Access-Control-Allow-Origin` (the origin, or `*` when any  |
/// |                                                | is allowed without credentials), `Vary: Origin`, and with   |
/// |                                                | credentials `Access-Control-Allow-Credentials: true`        |
/// | any, no `Origin` or one not allowed            | no CORS headers (the browser withholds the answer)          |
/// | `OPTIONS` preflight, origin and method allowed | 204 with the above, `-Allow-Methods`, `-Allow-Headers`,     |
/// |                                                | `-Max-Age`                                                  |
/// | `OPTIONS` preflight, origin not allowed        | 403 with a JSON error                                       |
/// | `OPTIONS` without `Origin`                     | 204 with `Allow` (RFC 9110 §9.3.7)                          |
public struct CORSPolicy: Sendable, Equatable {
    public var origins: [String]
    public var credentials: Bool

    /// What a page may send besides the CORS-safelisted headers: credentials, a JSON body, EventSource's resume.
    public static let allowedHeaders = "Authorization, Content-Type, Last-Event-ID, Cache-Control"
    /// How long a browser may reuse a preflight answer, in seconds.
    public static let maxAge = 600

    public init(origins: [String] = [], credentials: Bool = false) {
        self.origins = origins
        self.credentials = credentials
    }

    public func allows(origin: String) -> Bool {
        // Origins compare as serialised by the browser: lower-case scheme and host (RFC 6454 §6.2).
        origins.contains("*") || origins.contains { $0.lowercased() == origin.lowercased() }
    }

    /// The headers an answer to a request with this `Origin` carries; none when the origin is not allowed.
    public func headers(origin: String?) -> HTTPHeaders {
        guard let origin, !origins.isEmpty, allows(origin: origin) else { return [] }
        var headers: HTTPHeaders = []
        if origins.contains("*") && !credentials {
            headers.append("Access-Control-Allow-Origin", "*")
        } else {
            // With credentials a browser refuses `*`: the origin itself is named, and caches must key on it.
            headers.append("Access-Control-Allow-Origin", origin)
            headers.append("Vary", "Origin")
        }
        if credentials { headers.append("Access-Control-Allow-Credentials", "true") }
        // A poll's answer says where to continue in this header; a page can only read it when it is exposed.
        headers.append("Access-Control-Expose-Headers", "Last-Event-ID")
        return headers
    }

    /// The answer to `OPTIONS` on a path that takes `method`.
    public func preflight(_ request: HTTPRequest, method: String) -> HTTPResponse {
        let allow = "\(method), OPTIONS"
        guard let origin = request.headers["Origin"] else {
            return HTTPResponse(status: .noContent, headers: [("Allow", allow)])
        }
        guard !origins.isEmpty, allows(origin: origin) else {
            return .error(.forbidden, "origin \(origin) may not call this API (see http_cors_origins)")
        }
        if let requested = request.headers["Access-Control-Request-Method"], requested != method {
            return .error(.methodNotAllowed, "\(request.path) takes \(method)", headers: [("Allow", allow)])
        }
        var response = HTTPResponse(status: .noContent, headers: headers(origin: origin))
        response.headers.append("Access-Control-Allow-Methods", allow)
        response.headers.append("Access-Control-Allow-Headers", Self.allowedHeaders)
        response.headers.append("Access-Control-Max-Age", String(Self.maxAge))
        response.headers.append("Allow", allow)
        return response
    }
}
