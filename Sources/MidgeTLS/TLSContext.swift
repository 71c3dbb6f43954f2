// A listener's OpenSSL server context built from a TLSConfiguration, and the atomic swap a SIGHUP reload uses.
import COpenSSL
import Synchronization

/// An immutable, configured `SSL_CTX`, shared by every connection of a listener across all event loops.
///
/// `@unchecked Sendable` because OpenSSL documents an `SSL_CTX` as safe to use from many threads for `SSL_new`
/// once it is no longer being configured, and this class configures it only inside `init`. Each `SSL` takes its
/// own reference on the context (`SSL_new` up-refs it), so connections outlive a replaced context safely.
public final class TLSContext: @unchecked Sendable {
    /// The `SSL_CTX *`; never modified after `init`.
    let pointer: OpaquePointer
    public let configuration: TLSConfiguration
    /// The identities and keys of `psk_file` on a PSK listener. The context's PSK lookup reads them through the
    /// `SSL_CTX`'s app data, unretained: this object keeps them alive, and every connection keeps this object.
    public let preSharedKeys: PreSharedKeyFile?
    /// The ALPN list in the form the select callback reads (a length byte, then wire format); OpenSSL keeps only
    /// the pointer, so it lives as long as the context.
    private let alpnList: UnsafeMutablePointer<UInt8>?

    /// Builds the context, reading `certfile`, `keyfile`, `cafile`, `crlfile` or `psk_file` now. Blocking file I/O:
    /// build contexts at start-up or on reload, never on an event loop.
    public init(configuration: TLSConfiguration) throws(TLSError) {
        try configuration.validate()
        var keys: PreSharedKeyFile?
        if let settings = configuration.preSharedKeys { keys = try PreSharedKeyFile(path: settings.file) }
        OpenSSLErrorQueue.clear()
        guard let context = SSL_CTX_new(TLS_server_method()) else {
            throw .outOfMemory(OpenSSLErrorQueue.reason(orElse: "SSL_CTX_new"))
        }
        var list: UnsafeMutablePointer<UInt8>?
        if !configuration.applicationProtocols.isEmpty {
            let wire = configuration.applicationProtocols.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
            let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: wire.count + 1)
            buffer.initialize(to: UInt8(wire.count))
            (buffer + 1).initialize(from: wire, count: wire.count)
            midge_SSL_CTX_set_alpn_list(context, buffer)
            list = buffer
        }
        do {
            try Self.configure(context, configuration)
            if let keys, let settings = configuration.preSharedKeys {
                try Self.usePreSharedKeys(keys, hint: settings.hint, in: context)
            } else {
                try Self.loadCertificates(context, configuration)
            }
        } catch {
            SSL_CTX_free(context)
            list?.deallocate()
            throw error
        }
        alpnList = list
        pointer = context
        self.configuration = configuration
        preSharedKeys = keys
    }

    deinit {
        SSL_CTX_free(pointer)
        // Every TLSConnection keeps its TLSContext, so no handshake of this SSL_CTX can still read the list.
        alpnList?.deallocate()
    }

    /// A new context from the same configuration with every file read again (what SIGHUP does). Connections
    /// made from `self` keep using it; see `ReloadableTLSContext` for the swap.
    public func reloaded() throws(TLSError) -> TLSContext { try TLSContext(configuration: configuration) }

    private static func configure(_ context: OpaquePointer, _ configuration: TLSConfiguration) throws(TLSError) {
        try setMinimumVersion(configuration.minimumVersion, of: context, key: "tls_version")
        // As mosquitto: no compression (CRIME), the server's cipher order wins. Renegotiation is refused too: a
        // client could otherwise make the loop pay for repeated full handshakes on an established connection.
        _ = SSL_CTX_set_options(
            context,
            MIDGE_SSL_OP_NO_COMPRESSION | MIDGE_SSL_OP_CIPHER_SERVER_PREFERENCE | MIDGE_SSL_OP_NO_RENEGOTIATION)
        // Idle connections give their 2 × ~17 KiB record buffers back; a broker holds many idle connections.
        _ = midge_SSL_CTX_set_mode(context, Int(SSL_MODE_RELEASE_BUFFERS))
        // Without a session id context, OpenSSL fails every resumed handshake once peer verification is on.
        let sessionContext: [UInt8] = Array("midge".utf8)
        _ = SSL_CTX_set_session_id_context(context, sessionContext, UInt32(sessionContext.count))
        // An encrypted keyfile must fail with a reason, not make OpenSSL prompt on the terminal.
        SSL_CTX_set_default_passwd_cb(context) { _, _, _, _ in 0 }

        let cipherList = configuration.ciphers ?? TLSConfiguration.mosquittoDefaultCiphers
        OpenSSLErrorQueue.clear()
        guard SSL_CTX_set_cipher_list(context, cipherList) == 1 else {
            throw .rejectedSetting(
                key: "ciphers", value: cipherList, reason: OpenSSLErrorQueue.reason(orElse: "no usable cipher"))
        }
        if let suites = configuration.ciphersuites {
            OpenSSLErrorQueue.clear()
            guard SSL_CTX_set_ciphersuites(context, suites) == 1 else {
                throw .rejectedSetting(
                    key: "ciphers_tls1.3", value: suites,
                    reason: OpenSSLErrorQueue.reason(orElse: "no usable ciphersuite"))
            }
        }
    }

    /// The certificate side: `certfile`, `keyfile`, the CAs and revocation list client certificates are checked
    /// against, and whether one is asked for.
    private static func loadCertificates(_ context: OpaquePointer, _ configuration: TLSConfiguration)
        throws(TLSError)
    {
        try loadCertificate(
            configuration.certificateFile, key: configuration.privateKeyFile, into: context,
            keys: ("certfile", "keyfile"))
        try loadVerifyLocations(
            file: configuration.caFile, path: configuration.caPath, into: context, keys: ("cafile", "capath"))
        if let crlFile = configuration.crlFile {
            try loadRevocationList(crlFile, into: context)
        }
        // With require_certificate false mosquitto does not even ask for a certificate (since 1.3.4).
        let verifyMode = configuration.requireCertificate ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0
        SSL_CTX_set_verify(context, verifyMode, nil)
    }
}

extension TLSContext {
    /// TLS-PSK (mosquitto's `psk_hint`/`psk_file`): no certificate, the handshake succeeds only for a client that
    /// holds the key of the identity it names. OpenSSL calls the same lookup for TLS 1.2 PSK cipher suites and, with
    /// SHA-256 suites, for TLS 1.3, which is what `mosquitto_pub --psk` negotiates by default.
    fileprivate static func usePreSharedKeys(_ keys: PreSharedKeyFile, hint: String, in context: OpaquePointer)
        throws(TLSError)
    {
        OpenSSLErrorQueue.clear()
        guard SSL_CTX_use_psk_identity_hint(context, hint) == 1 else {
            throw .rejectedSetting(
                key: "psk_hint", value: hint,
                reason: OpenSSLErrorQueue.reason(orElse: "longer than \(PSK_MAX_IDENTITY_LEN) bytes"))
        }
        // OpenSSL's built-in DH groups, as mosquitto 2.0 enables them: its TLS 1.2 PSK clients then get the same
        // first choice, DHE-PSK-AES256-GCM-SHA384, rather than falling back to ECDHE-PSK with ChaCha20.
        _ = SSL_CTX_ctrl(context, SSL_CTRL_SET_DH_AUTO, 1, nil)
        _ = SSL_CTX_set_ex_data(context, 0, Unmanaged.passUnretained(keys).toOpaque())
        SSL_CTX_set_psk_server_callback(context, pskServerLookup)
        // No resumption: a resumed handshake skips the lookup, so it would neither name the identity (for
        // use_identity_as_username) nor notice that a reloaded psk_file no longer has it. PSK handshakes carry no
        // certificate, so doing them in full costs little.
        _ = SSL_CTX_set_num_tickets(context, 0)
        _ = SSL_CTX_set_options(context, MIDGE_SSL_OP_NO_TICKET)
        _ = SSL_CTX_ctrl(context, SSL_CTRL_SET_SESS_CACHE_MODE, Int(SSL_SESS_CACHE_OFF), nil)
    }
}

/// OpenSSL's PSK callback: copies the key of the identity the client sent into `key` and returns its length, or 0
/// (handshake refused) for an unknown identity. Runs inside the handshake, on the thread driving the connection.
private let pskServerLookup: SSL_psk_server_cb_func = { ssl, identity, key, maxLength in
    guard let ssl, let identity, let key, let context = SSL_get_SSL_CTX(ssl),
        let table = SSL_CTX_get_ex_data(context, 0)
    else { return 0 }
    let keys = Unmanaged<PreSharedKeyFile>.fromOpaque(table).takeUnretainedValue()
    var name: [UInt8] = []
    // OpenSSL terminates the identity and caps it at PSK_MAX_IDENTITY_LEN; the bound only keeps the loop finite.
    while name.count <= Int(PSK_MAX_IDENTITY_LEN), identity[name.count] != 0 {
        name.append(UInt8(bitPattern: identity[name.count]))
    }
    guard let found = keys.key(for: name), found.count <= Int(maxLength) else { return 0 }
    found.withUnsafeBufferPointer { source in
        if let base = source.baseAddress { key.update(from: base, count: source.count) }
    }
    if let owner = SSL_get_ex_data(ssl, 0) {
        Unmanaged<TLSConnection>.fromOpaque(owner).takeUnretainedValue().acceptedPSKIdentity = name
    }
    return UInt32(found.count)
}

/// Adds the CRLs of `path` to the context's certificate store and turns on the check of the client's certificate
/// (mosquitto's `crlfile`). The store belongs to this context only, so a reload starts from an empty one.
private func loadRevocationList(_ path: String, into context: OpaquePointer) throws(TLSError) {
    func rejected(_ fallback: String) -> TLSError {
        .rejectedSetting(key: "crlfile", value: path, reason: OpenSSLErrorQueue.reason(orElse: fallback))
    }
    OpenSSLErrorQueue.clear()
    guard let store = SSL_CTX_get_cert_store(context) else { throw rejected("the context has no certificate store") }
    guard let file = BIO_new_file(path, "r") else { throw rejected("cannot open the file") }
    defer { BIO_free(file) }
    // Read here rather than with X509_load_crl_file, which keeps the lists before a damaged one and says nothing.
    var count = 0
    while count < 100_000, let list = PEM_read_bio_X509_CRL(file, nil, nil, nil) {
        defer { X509_CRL_free(list) }
        guard X509_STORE_add_crl(store, list) == 1 else { throw rejected("cannot add the revocation list") }
        count += 1
    }
    // The loop ends on "no start line" at a clean end of file; anything else is a damaged list.
    let end = ERR_peek_last_error()
    if count == 0 { throw rejected("no revocation list in the file") }
    if end != 0 && ERR_GET_REASON(end) != PEM_R_NO_START_LINE {
        let text = OpenSSLErrorQueue.drain().text
        throw .rejectedSetting(
            key: "crlfile", value: path, reason: "the revocation list after the first \(count) is damaged (\(text))")
    }
    OpenSSLErrorQueue.clear()
    // Only the leaf, as mosquitto: X509_V_FLAG_CRL_CHECK_ALL would also want a list for every intermediate CA.
    _ = X509_STORE_set_flags(store, UInt(X509_V_FLAG_CRL_CHECK))
}

// MARK: - Shared by the server and client contexts
// `keys` are mosquitto's names for the settings in the file at hand (`certfile` on a listener, `bridge_certfile` on
// a bridge), so every error names the line of the configuration to fix.

/// mosquitto's `tls_version` (and `bridge_tls_version`) is a floor: "tlsv1.2" still negotiates 1.3 with a peer that
/// offers it.
func setMinimumVersion(_ version: TLSVersion, of context: OpaquePointer, key: String) throws(TLSError) {
    let minimum: Int32
    switch version {
    case .tlsv11: minimum = TLS1_1_VERSION
    case .tlsv12: minimum = TLS1_2_VERSION
    case .tlsv13: minimum = TLS1_3_VERSION
    }
    OpenSSLErrorQueue.clear()
    guard midge_SSL_CTX_set_min_proto_version(context, minimum) == 1 else {
        throw .rejectedSetting(
            key: key, value: version.rawValue,
            reason: OpenSSLErrorQueue.reason(orElse: "not supported by this OpenSSL"))
    }
}

/// Loads a PEM certificate chain and the unencrypted key that belongs to it (a context must refuse an encrypted key
/// rather than prompt: see the password callback both contexts install).
func loadCertificate(
    _ certificateFile: String, key keyFile: String, into context: OpaquePointer,
    keys: (certificate: String, key: String)
) throws(TLSError) {
    OpenSSLErrorQueue.clear()
    guard SSL_CTX_use_certificate_chain_file(context, certificateFile) == 1 else {
        throw .rejectedSetting(
            key: keys.certificate, value: certificateFile,
            reason: OpenSSLErrorQueue.reason(orElse: "cannot load the certificate chain"))
    }
    OpenSSLErrorQueue.clear()
    if SSL_CTX_use_PrivateKey_file(context, keyFile, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(context) != 1 {
        throw .rejectedSetting(
            key: keys.key, value: keyFile,
            reason: keyFileReason(certificateFile: certificateFile, certificateKey: keys.certificate))
    }
}

/// The CAs a peer's certificate must chain to; empty values count as unset, as in mosquitto.
func loadVerifyLocations(file: String?, path: String?, into context: OpaquePointer, keys: (file: String, path: String))
    throws(TLSError)
{
    if let file, !file.isEmpty {
        OpenSSLErrorQueue.clear()
        guard SSL_CTX_load_verify_file(context, file) == 1 else {
            throw .rejectedSetting(
                key: keys.file, value: file, reason: OpenSSLErrorQueue.reason(orElse: "cannot load CA certificates"))
        }
    }
    if let path, !path.isEmpty {
        // OpenSSL reads a capath lazily, at the first verification that needs a certificate from it.
        OpenSSLErrorQueue.clear()
        guard SSL_CTX_load_verify_dir(context, path) == 1 else {
            throw .rejectedSetting(
                key: keys.path, value: path, reason: OpenSSLErrorQueue.reason(orElse: "cannot use the CA directory"))
        }
    }
}

/// Why the key did not load, with the two causes operators meet most spelled out.
private func keyFileReason(certificateFile: String, certificateKey: String) -> String {
    let (text, firstReason) = OpenSSLErrorQueue.drain()
    if firstReason == X509_R_KEY_VALUES_MISMATCH {
        return "it does not belong to the certificate in \(certificateKey) \"\(certificateFile)\" (\(text))"
    }
    if text.contains("bad decrypt") || text.contains("bad password read") {
        return "it is encrypted and there is no passphrase to give; use an unencrypted PEM key (\(text))"
    }
    return text.isEmpty ? "cannot load the private key" : text
}

/// The context a listener hands to new connections, replaceable while connections are live.
///
/// The event loops call `current` once per accepted socket (an uncontended lock, ~17 ns) and give it to
/// `TLSConnection.init`; that connection keeps its context for life. A SIGHUP handler — on its own thread, never
/// an event loop, because it reads files — calls `reload()`: the new context is built outside the lock and
/// swapped in under it, so a broken file throws (log the error) and leaves the previous context in place.
public final class ReloadableTLSContext: Sendable {
    private let state: Mutex<TLSContext>

    public init(_ context: TLSContext) { state = Mutex(context) }

    public convenience init(configuration: TLSConfiguration) throws(TLSError) {
        self.init(try TLSContext(configuration: configuration))
    }

    /// The context to create new connections with.
    public var current: TLSContext { state.withLock { $0 } }

    /// Re-reads the files of `configuration` (or of the current configuration) and swaps the new context in.
    /// On failure nothing changes and the error names the file and OpenSSL's reason.
    @discardableResult
    public func reload(with configuration: TLSConfiguration? = nil) throws(TLSError) -> TLSContext {
        let fresh = try TLSContext(configuration: configuration ?? current.configuration)
        state.withLock { $0 = fresh }
        return fresh
    }
}
