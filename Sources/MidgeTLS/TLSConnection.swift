// One TLS session over memory BIOs, server side (a listener's client) or client side (a bridge's outbound
// connection): the caller feeds ciphertext read from the socket and writes out the ciphertext this produces; no
// socket calls, no blocking, no locks. Confined to the thread that drives the socket.
import COpenSSL

/// What `readPlaintext` found.
public enum TLSReadStatus: Sendable, Equatable {
    /// This many plaintext bytes (at least one) were stored at the start of the buffer. Call again: more may follow.
    case plaintext(Int)
    /// Everything fed so far is consumed (or the handshake is still waiting for the client). Wait until the socket
    /// is readable, `feed` what arrives, and read again.
    case needsMoreCiphertext
    /// The peer sent close_notify: no more plaintext will arrive. Call `close()`, flush, close the socket.
    case closedByPeer
}

/// Which side of the handshake a connection plays, and the context it was made from.
public enum TLSEndpoint: Sendable {
    /// Accepted by a listener: answers the peer's ClientHello.
    case server(TLSContext)
    /// Connected out (a bridge): speaks first, and checks the server's certificate against `serverName`.
    case client(TLSClientContext, serverName: String)
}

/// One TLS connection, either side.
///
/// Driving it (every call is non-blocking; after *any* call, `pendingCiphertextCount > 0` means there are bytes to
/// write to the socket — handshake records, TLS 1.3 session tickets, alerts, encrypted data, close_notify):
/// - **start**: a client connection speaks first. Once `connect(2)` has completed, call `startHandshake()` and write
///   out `takeCiphertext` (the ClientHello); then drive it like a server connection. `readPlaintext` and, on a
///   client, `writePlaintext` also start the handshake if it has not started, so a caller that writes its first
///   bytes (MQTT CONNECT) straight away and then flushes `takeCiphertext` needs no separate call. A server
///   connection sends nothing until the client's first bytes are fed; `startHandshake()` is harmless there.
/// - **read path**: `read(2)` into your buffer → `feed(_:)` → `readPlaintext(into:)` until `.needsMoreCiphertext`
///   (the handshake advances inside it: no plaintext comes out before `isHandshakeComplete`) → write out
///   `takeCiphertext`.
/// - **write path**: `writePlaintext(_:)` encrypts immediately (before the handshake completes it is held back and
///   encrypted on completion) → `takeCiphertext(into:)` → `write(2)`; keep what the socket did not take in your
///   own pending buffer, exactly as for plain TCP. `pendingCiphertextCount` plus that buffer is the backlog.
/// - **errors**: a thrown `TLSError` is fatal. OpenSSL may have queued an alert telling the peer why: write
///   `takeCiphertext()` best-effort, then close the socket.
/// - **close**: `close()` queues close_notify; write it best-effort, then close the socket. On `.closedByPeer`, do
///   the same.
/// - **paused reads**: if the loop stops reading for backpressure, fed ciphertext may still hold plaintext; when it
///   resumes, drain `readPlaintext` first if `hasBufferedInput`, since epoll will not report those bytes again.
/// - **stalls**: a peer that stops mid-handshake only leaves `isHandshakeComplete` false; the loop's connect
///   timeout closes the socket (nothing to send: `close()` does nothing before the handshake).
/// - **client certificate refused**: with TLS 1.3 a client finishes its handshake before the server has checked the
///   client's certificate, so a server's refusal reaches a client connection as a `TLSError.protocolError` from a
///   later `readPlaintext` ("tlsv13 alert certificate required"), not from the handshake.
public final class TLSConnection {
    /// The `SSL *`; owns both BIOs.
    private let ssl: OpaquePointer
    /// Ciphertext from the socket, read by OpenSSL.
    private let inbound: OpaquePointer
    /// Ciphertext OpenSSL produced, for the socket.
    private let outbound: OpaquePointer
    /// The side this connection plays and the context it was made from; a reload does not affect it.
    public let endpoint: TLSEndpoint

    /// The listener context a server connection was made from; nil on a client connection.
    public var context: TLSContext? {
        if case .server(let context) = endpoint { return context }
        return nil
    }

    /// True for a connection made with `init(client:serverName:)`.
    public var isClient: Bool {
        if case .client = endpoint { return true }
        return false
    }

    /// True once the handshake finished; plaintext flows only after that.
    public private(set) var isHandshakeComplete = false
    /// The peer's close_notify arrived.
    public private(set) var receivedCloseNotify = false
    /// `close()` queued our close_notify.
    public private(set) var sentCloseNotify = false
    /// The fatal error, once one happened; every later read or write throws it again.
    public private(set) var failure: TLSError?
    /// Plaintext written before the handshake completed, encrypted when it does.
    private var heldPlaintext: [UInt8] = []
    /// The identity whose pre-shared key the handshake used; set by the context's PSK lookup, which finds this
    /// object through the SSL's app data.
    var acceptedPSKIdentity: [UInt8]?

    /// A server connection of a listener.
    public convenience init(context: TLSContext) throws(TLSError) {
        try self.init(endpoint: .server(context))
    }

    /// A client connection to `serverName`, the host the socket connects to as configured (a DNS name, or an IPv4
    /// or IPv6 address literal without brackets or port). The server's certificate must chain to the context's
    /// CAs and, unless the context is `insecure`, be issued for that name (its DNS names, or its IP addresses for a
    /// literal). A DNS name is also sent as SNI. Call `startHandshake()` once the socket is connected.
    public convenience init(client context: TLSClientContext, serverName: String) throws(TLSError) {
        try self.init(endpoint: .client(context, serverName: serverName))
    }

    private init(endpoint: TLSEndpoint) throws(TLSError) {
        let contextPointer: OpaquePointer
        switch endpoint {
        case .server(let context): contextPointer = context.pointer
        case .client(let context, _): contextPointer = context.pointer
        }
        OpenSSLErrorQueue.clear()
        guard let ssl = SSL_new(contextPointer) else {
            throw .outOfMemory(OpenSSLErrorQueue.reason(orElse: "SSL_new"))
        }
        let newInbound = BIO_new(BIO_s_mem())
        let newOutbound = BIO_new(BIO_s_mem())
        guard let inbound = newInbound, let outbound = newOutbound else {
            BIO_free(newInbound)  // BIO_free(NULL) is a no-op
            BIO_free(newOutbound)
            SSL_free(ssl)
            throw .outOfMemory(OpenSSLErrorQueue.reason(orElse: "BIO_new"))
        }
        // Ownership of both BIOs moves to the SSL: SSL_free releases them.
        SSL_set_bio(ssl, inbound, outbound)
        switch endpoint {
        case .server:
            SSL_set_accept_state(ssl)
        case .client(let context, let serverName):
            do {
                try Self.prepareClient(ssl, serverName: serverName, insecure: context.configuration.insecure)
            } catch {
                SSL_free(ssl)
                throw error
            }
        }
        self.ssl = ssl
        self.inbound = inbound
        self.outbound = outbound
        self.endpoint = endpoint
        // Unretained: the SSL is freed in deinit, so it never outlives the object it points to.
        _ = SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit { SSL_free(ssl) }

    /// Connect state, SNI and the check of the server's name (mosquitto's bridge does the same, with
    /// `bridge_insecure` turning the name check off).
    private static func prepareClient(_ ssl: OpaquePointer, serverName: String, insecure: Bool) throws(TLSError) {
        guard !serverName.isEmpty, !serverName.utf8.contains(0) else {
            throw .invalidConfiguration("the bridge address \"\(serverName)\" is not a host name or IP address")
        }
        SSL_set_connect_state(ssl)
        OpenSSLErrorQueue.clear()
        let isAddress = midge_is_ip_address(serverName) == 1
        if !isAddress {
            guard midge_SSL_set_tlsext_host_name(ssl, serverName) == 1 else {
                throw .rejectedSetting(
                    key: "address", value: serverName,
                    reason: OpenSSLErrorQueue.reason(orElse: "cannot be sent as the TLS server name"))
            }
        }
        guard !insecure else { return }
        let checked: Bool
        if isAddress {
            checked = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName) == 1
        } else {
            // A wildcard only as a whole leftmost label ("*.example.com"), never part of one ("b*.example.com").
            SSL_set_hostflags(ssl, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
            checked = SSL_set1_host(ssl, serverName) == 1
        }
        guard checked else {
            throw .rejectedSetting(
                key: "address", value: serverName,
                reason: OpenSSLErrorQueue.reason(orElse: "cannot be checked against the server's certificate"))
        }
    }

    /// Advances the handshake without reading plaintext: on a client connection that has not started, this
    /// produces the ClientHello (write out `takeCiphertext` next). Does nothing once the handshake is complete.
    public func startHandshake() throws(TLSError) {
        if let failure { throw failure }
        if !isHandshakeComplete { _ = try advanceHandshake() }
    }

    // MARK: - Read path

    /// Hands ciphertext read from the socket to OpenSSL. One copy, into the memory BIO; nothing is decrypted yet.
    public func feed(_ ciphertext: UnsafeRawBufferPointer) throws(TLSError) {
        guard failure == nil, var next = ciphertext.baseAddress else { return }
        var remaining = ciphertext.count
        while remaining > 0 {
            let chunk = min(remaining, Int(Int32.max))
            var written = 0
            OpenSSLErrorQueue.clear()
            guard BIO_write_ex(inbound, next, chunk, &written) == 1, written == chunk else {
                throw fail(.outOfMemory(OpenSSLErrorQueue.reason(orElse: "BIO_write_ex")))
            }
            next += chunk
            remaining -= chunk
        }
    }

    /// `feed(_:)` for an array.
    public func feed(_ ciphertext: [UInt8]) throws(TLSError) {
        // withUnsafeBytes rethrows untyped errors; the Result carries the typed one across.
        try ciphertext.withUnsafeBytes { raw in Result { () throws(TLSError) in try feed(raw) } }.get()
    }

    /// Advances the handshake, then decrypts at most one record straight into `buffer` (which must not be empty).
    /// Call until it returns `.needsMoreCiphertext` or `.closedByPeer`; each call does a bounded amount of work.
    public func readPlaintext(into buffer: UnsafeMutableRawBufferPointer) throws(TLSError) -> TLSReadStatus {
        precondition(buffer.count > 0, "readPlaintext needs room for at least one byte")
        if let failure { throw failure }
        if receivedCloseNotify { return .closedByPeer }
        if !isHandshakeComplete {
            guard try advanceHandshake() else { return .needsMoreCiphertext }
        }
        guard let base = buffer.baseAddress else { return .needsMoreCiphertext }
        var count = 0
        OpenSSLErrorQueue.clear()
        if SSL_read_ex(ssl, base, buffer.count, &count) == 1 { return .plaintext(count) }
        switch SSL_get_error(ssl, 0) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .needsMoreCiphertext
        case SSL_ERROR_ZERO_RETURN:
            OpenSSLErrorQueue.clear()
            receivedCloseNotify = true
            return .closedByPeer
        default:
            throw fail(.protocolError(reason: OpenSSLErrorQueue.reason(orElse: "the record layer failed")))
        }
    }

    /// Appends all plaintext that the fed ciphertext yields to `bytes`, decrypting directly into its storage.
    /// Returns `.needsMoreCiphertext` or `.closedByPeer` (after appending what came before the close_notify).
    public func readPlaintext(appendingTo bytes: inout [UInt8]) throws(TLSError) -> TLSReadStatus {
        // The loop ends when the fed ciphertext is used up, which bounds it by what the caller fed.
        while true {
            // Plaintext never exceeds the ciphertext it comes from, so room for what is buffered is enough; the
            // floor covers a record whose first part OpenSSL already took from the BIO. Anything that does not
            // fit stays in OpenSSL for the next turn. (A MQTT PINGREQ should not cost a 16 KiB memset.)
            let buffered = Int(SSL_pending(ssl)) + Int(BIO_ctrl_pending(inbound))
            let room = min(16 * 1024, max(512, buffered))
            let start = bytes.count
            bytes.append(contentsOf: repeatElement(0, count: room))
            let result = bytes.withUnsafeMutableBytes { raw in
                Result { () throws(TLSError) in
                    try readPlaintext(into: UnsafeMutableRawBufferPointer(rebasing: raw[start...]))
                }
            }
            guard case .success(let status) = result else {
                bytes.removeSubrange(start...)
                return try result.get()
            }
            switch status {
            case .plaintext(let count):
                bytes.removeSubrange((start + count)...)
            case .needsMoreCiphertext, .closedByPeer:
                bytes.removeSubrange(start...)
                return status
            }
        }
    }

    /// Ciphertext or decrypted bytes are still buffered inside OpenSSL, so `readPlaintext` would make progress
    /// without any new socket data. Check it when resuming reads that were paused for backpressure: epoll will not
    /// report the socket readable for bytes that already left the kernel.
    public var hasBufferedInput: Bool { BIO_ctrl_pending(inbound) > 0 || SSL_has_pending(ssl) == 1 }

    private func advanceHandshake() throws(TLSError) -> Bool {
        OpenSSLErrorQueue.clear()
        let result = SSL_do_handshake(ssl)
        if result == 1 {
            isHandshakeComplete = true
            if !heldPlaintext.isEmpty {
                let held = heldPlaintext
                heldPlaintext = []
                try held.withUnsafeBytes { raw in Result { () throws(TLSError) in try encrypt(raw) } }.get()
            }
            return true
        }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return false
        case SSL_ERROR_ZERO_RETURN:
            OpenSSLErrorQueue.clear()
            throw fail(.handshakeFailed(reason: "the peer sent close_notify during the handshake"))
        default:
            throw fail(handshakeError())
        }
    }

    /// Names the two client-certificate failures a broker operator most needs to tell apart from the rest, and on
    /// a client connection why the server's certificate was refused.
    private func handshakeError() -> TLSError {
        let verifyResult = SSL_get_verify_result(ssl)
        let (text, firstReason) = OpenSSLErrorQueue.drain()
        switch firstReason {
        case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
            return .clientCertificateRequired
        case SSL_R_CERTIFICATE_VERIFY_FAILED where verifyResult != Int(X509_V_OK):
            let reason = X509_verify_cert_error_string(verifyResult).map { String(cString: $0) } ?? text
            // OpenSSL's own wording, as mosquitto logs it: "certificate verify failed: hostname mismatch".
            if isClient { return .handshakeFailed(reason: "certificate verify failed: \(reason)") }
            return .clientCertificateRejected(reason: reason)
        default:
            let detail = text.isEmpty ? "no reason given by OpenSSL" : text
            // OpenSSL's words for these ("binder does not verify", "no suitable signature algorithm") do not say it.
            if context?.preSharedKeys != nil {
                if let identity = acceptedPSKIdentity {
                    let name = String(decoding: identity, as: UTF8.self)
                    return .handshakeFailed(
                        reason: "PSK identity \"\(name)\" is known but its key does not match (\(detail))")
                }
                return .handshakeFailed(reason: "the client named no PSK identity of psk_file (\(detail))")
            }
            return .handshakeFailed(reason: detail)
        }
    }

    // MARK: - Write path

    /// Encrypts `bytes` into the outgoing ciphertext (read once, straight from the caller's memory). Never blocks
    /// and never takes only part: the memory BIO grows, so bound the backlog with `pendingCiphertextCount`. Before
    /// the handshake completes the bytes are held and encrypted when it does; a client connection then also starts
    /// (or advances) its handshake, so the ClientHello is ready to be written.
    public func writePlaintext(_ bytes: UnsafeRawBufferPointer) throws(TLSError) {
        if let failure { throw failure }
        if sentCloseNotify { throw .closed }
        guard !bytes.isEmpty else { return }
        if !isHandshakeComplete {
            heldPlaintext.append(contentsOf: bytes)
            if isClient { _ = try advanceHandshake() }
            return
        }
        try encrypt(bytes)
    }

    /// `writePlaintext(_:)` for any contiguous byte collection (arrays, slices).
    public func writePlaintext<Bytes: Collection>(_ bytes: Bytes) throws(TLSError) where Bytes.Element == UInt8 {
        let contiguous = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(TLSError) in try writePlaintext(UnsafeRawBufferPointer(buffer)) }
        }
        if let contiguous { return try contiguous.get() }
        try Array(bytes).withUnsafeBytes { raw in Result { () throws(TLSError) in try writePlaintext(raw) } }.get()
    }

    private func encrypt(_ bytes: UnsafeRawBufferPointer) throws(TLSError) {
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            var written = 0
            OpenSSLErrorQueue.clear()
            if SSL_write_ex(ssl, base + offset, bytes.count - offset, &written) == 1 {
                offset += written
                continue
            }
            // A memory BIO never refuses a write and renegotiation is disabled, so any failure here is fatal.
            throw fail(.protocolError(reason: OpenSSLErrorQueue.reason(orElse: "SSL_write failed")))
        }
    }

    /// Bytes waiting to be written to the socket.
    public var pendingCiphertextCount: Int { Int(BIO_ctrl_pending(outbound)) }

    /// Moves up to `buffer.count` pending ciphertext bytes into `buffer` (e.g. the connection's socket write
    /// buffer) and returns how many.
    public func takeCiphertext(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return 0 }
        var count = 0
        OpenSSLErrorQueue.clear()
        guard BIO_read_ex(outbound, base, buffer.count, &count) == 1 else {
            OpenSSLErrorQueue.clear()  // an empty memory BIO reports "retry", which is not an error
            return 0
        }
        return count
    }

    /// Moves all pending ciphertext into a new array.
    public func takeCiphertext() -> [UInt8] {
        let pending = pendingCiphertextCount
        guard pending > 0 else { return [] }
        return [UInt8](unsafeUninitializedCapacity: pending) { buffer, initialized in
            initialized = takeCiphertext(into: UnsafeMutableRawBufferPointer(buffer))
        }
    }

    // MARK: - Close

    /// Queues our close_notify (once) after a completed handshake; write `takeCiphertext()` and close the socket
    /// without waiting for the peer's, as mosquitto does. Before the handshake completes or after a failure there is
    /// nothing to say politely, and this does nothing.
    public func close() {
        guard isHandshakeComplete, failure == nil, !sentCloseNotify else { return }
        sentCloseNotify = true
        OpenSSLErrorQueue.clear()
        _ = SSL_shutdown(ssl)  // 0: sent, peer's not yet seen; 1: both seen. Neither needs another call.
        OpenSSLErrorQueue.clear()
    }

    // MARK: - Peer identity

    /// The protocol ALPN agreed on (`h2` on a listener, a bridge's `bridge_alpn`), or nil when the client offered
    /// none the server has, or the server selected none.
    public var selectedApplicationProtocol: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// The first commonName of the peer certificate's subject (`use_identity_as_username`; on a client connection,
    /// the server's). Nil without a certificate, before the handshake completes, without a CN, or when the CN holds
    /// a NUL byte (mosquitto refuses those too, so "admin\0.evil" cannot pass for "admin"). Only verified
    /// certificates are ever requested.
    public var peerCertificateSubjectCommonName: String? {
        withPeerSubject { name in
            let index = X509_NAME_get_index_by_NID(name, NID_commonName, -1)
            guard index >= 0, let entry = X509_NAME_get_entry(name, index),
                let data = X509_NAME_ENTRY_get_data(entry)
            else { return nil }
            var utf8: UnsafeMutablePointer<UInt8>?
            let length = ASN1_STRING_to_UTF8(&utf8, data)
            guard length >= 0, let utf8 else {
                OpenSSLErrorQueue.clear()
                return nil
            }
            defer { CRYPTO_free(utf8, nil, 0) }
            let bytes = UnsafeBufferPointer(start: utf8, count: Int(length))
            if bytes.contains(0) { return nil }
            // ASN1_STRING_to_UTF8 produced valid UTF-8, so decoding never takes the repair path.
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    /// The client certificate's whole subject in RFC 2253 form, as mosquitto's `use_subject_as_username` uses it
    /// (e.g. "CN=device-42,OU=Devices,O=Midge Test").
    public var peerCertificateSubject: String? {
        withPeerSubject { name in
            guard let bio = BIO_new(BIO_s_mem()) else { return nil }
            defer { BIO_free(bio) }
            OpenSSLErrorQueue.clear()
            guard X509_NAME_print_ex(bio, name, 0, MIDGE_XN_FLAG_RFC2253) >= 0 else {
                OpenSSLErrorQueue.clear()
                return nil
            }
            let length = Int(BIO_ctrl_pending(bio))
            let bytes = [UInt8](unsafeUninitializedCapacity: length) { buffer, initialized in
                var count = 0
                initialized = BIO_read_ex(bio, buffer.baseAddress, length, &count) == 1 ? count : 0
            }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    /// The username `source` yields for this client, or nil when it has none.
    public func peerIdentity(_ source: PeerIdentity) -> String? {
        switch source {
        case .certificateCommonName: return peerCertificateSubjectCommonName
        case .certificateSubject: return peerCertificateSubject
        case .pskIdentity: return pskIdentity
        }
    }

    /// The PSK identity the client authenticated with, once the handshake is complete on a PSK listener. The file
    /// it matched holds only valid UTF-8 identities.
    public var pskIdentity: String? {
        guard isHandshakeComplete, let acceptedPSKIdentity else { return nil }
        return String(decoding: acceptedPSKIdentity, as: UTF8.self)
    }

    private func withPeerSubject(_ body: (OpaquePointer) -> String?) -> String? {
        guard isHandshakeComplete, let certificate = SSL_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(certificate) }
        guard let name = X509_get_subject_name(certificate) else { return nil }
        return body(name)
    }

    /// The host name of SNI: on a server connection the one the client sent, on a client the one it sends; nil for
    /// none (a client connecting to an IP address sends none).
    var serverNameIndication: String? {
        SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name).map { String(cString: $0) }
    }

    /// The negotiated protocol ("TLSv1.2", "TLSv1.3"), once the handshake is complete.
    public var protocolVersion: String? {
        guard isHandshakeComplete, let version = SSL_get_version(ssl) else { return nil }
        return String(cString: version)
    }

    /// The negotiated cipher's OpenSSL name, once the handshake is complete.
    public var cipherName: String? {
        guard isHandshakeComplete, let cipher = SSL_get_current_cipher(ssl), let name = SSL_CIPHER_get_name(cipher)
        else { return nil }
        return String(cString: name)
    }

    private func fail(_ error: TLSError) -> TLSError {
        failure = error
        return error
    }
}
