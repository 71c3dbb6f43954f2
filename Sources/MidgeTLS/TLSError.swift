// What went wrong in TLS, in words a log reader can act on, and the per-thread OpenSSL error queue discipline.
import COpenSSL

/// A TLS failure. Every case carries OpenSSL's own reason where it has one.
public enum TLSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The configuration cannot work (missing certfile, require_certificate without a CA, unknown tls_version).
    case invalidConfiguration(String)
    /// A configured file or setting was refused: `key` is mosquitto's config key (`certfile`, `keyfile`, `cafile`,
    /// `capath`, `crlfile`, `ciphers`, `ciphers_tls1.3`, `psk_hint`, `psk_file`), `value` the path or list, `reason`
    /// OpenSSL's explanation or, for `psk_file`, the line and what is wrong with it.
    case rejectedSetting(key: String, value: String, reason: String)
    /// The handshake failed: unsupported version, no shared cipher, not TLS at all, an alert from the peer.
    case handshakeFailed(reason: String)
    /// `require_certificate` is set and the client sent no certificate.
    case clientCertificateRequired
    /// The client's certificate did not verify against `cafile`/`capath` (`reason` says why: unknown CA,
    /// expired, ...).
    case clientCertificateRejected(reason: String)
    /// The peer broke the protocol after the handshake (bad record MAC, unexpected message, ...).
    case protocolError(reason: String)
    /// `writePlaintext` after `close()` or after the peer's close_notify.
    case closed
    /// OpenSSL could not allocate memory.
    case outOfMemory(String)

    public var description: String {
        switch self {
        case .invalidConfiguration(let text):
            return "invalid TLS configuration: \(text)"
        case .rejectedSetting(let key, let value, let reason):
            return "\(key) \"\(value)\" rejected: \(reason)"
        case .handshakeFailed(let reason):
            return "TLS handshake failed: \(reason)"
        case .clientCertificateRequired:
            return "TLS handshake failed: the client sent no certificate and require_certificate is true"
        case .clientCertificateRejected(let reason):
            return "TLS handshake failed: client certificate rejected: \(reason)"
        case .protocolError(let reason):
            return "TLS protocol error: \(reason)"
        case .closed:
            return "TLS connection already closed"
        case .outOfMemory(let what):
            return "out of memory in OpenSSL: \(what)"
        }
    }
}

/// OpenSSL keeps its error queue per thread. Every call whose failure we inspect is preceded by `clear()`
/// (SSL_get_error is only meaningful when the queue was empty before the call), and every failure is followed
/// by `drain()`, so no stale entry is left for the next connection served by the same thread.
enum OpenSSLErrorQueue {
    @inline(__always)
    static func clear() { ERR_clear_error() }

    /// Empties this thread's queue and returns its entries oldest first, with the first entry's reason code.
    static func drain() -> (text: String, firstReason: Int32?) {
        var parts: [String] = []
        var firstReason: Int32?
        var data: UnsafePointer<CChar>?
        var flags: Int32 = 0
        // The queue holds at most ERR_NUM_ERRORS (16) entries; the bound only guards against a misbehaving library.
        for _ in 0..<64 {
            let code = ERR_get_error_all(nil, nil, nil, &data, &flags)
            if code == 0 { break }
            if firstReason == nil { firstReason = ERR_GET_REASON(code) }
            var text = describe(code)
            if flags & ERR_TXT_STRING != 0, let data, data.pointee != 0 {
                text += " (\(String(cString: data)))"
            }
            if !parts.contains(text) { parts.append(text) }
        }
        // "BIO routines: system lib", "SSL routines: PEM lib": each library re-raising the one below adds nothing
        // a reader can act on once the root cause is in the list.
        let meaningful = parts.filter { !$0.hasSuffix(" lib") }
        return ((meaningful.isEmpty ? parts : meaningful).joined(separator: "; "), firstReason)
    }

    /// "library: reason", falling back to OpenSSL's numeric form for codes it has no string for.
    private static func describe(_ code: UInt) -> String {
        let reason = ERR_reason_error_string(code).map { String(cString: $0) }
        let library = ERR_lib_error_string(code).map { String(cString: $0) }
        switch (library, reason) {
        case (let library?, let reason?): return "\(library): \(reason)"
        case (nil, let reason?): return reason
        default:
            // System errors (errno) have no reason string of their own; OpenSSL's full form
            // "error:80000002:system library::No such file or directory" has it, after the code.
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            let full = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let fields = full.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3, fields[0] == "error" else { return full }
            return fields[2].split(separator: ":").joined(separator: ": ")
        }
    }

    /// The drained text, or `fallback` when OpenSSL queued nothing.
    static func reason(orElse fallback: String) -> String {
        let drained = drain().text
        return drained.isEmpty ? fallback : drained
    }
}
