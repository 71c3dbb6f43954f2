// The client side of TLS, for bridges (an outbound connection from the broker to another broker): mosquitto's
// `bridge_cafile`, `bridge_capath`, `bridge_certfile`, `bridge_keyfile`, `bridge_insecure`, `bridge_tls_version` and
// `bridge_alpn`, and the OpenSSL client context built from them.
import COpenSSL

/// Everything needed to build a `TLSClientContext`. As in mosquitto, a bridge uses TLS when `bridge_cafile` or
/// `bridge_capath` is set, so a configuration without either is an error, as are the other TLS keys without them.
/// File paths are read only when a context is built.
public struct TLSClientConfiguration: Sendable, Equatable {
    /// PEM file of CA certificates the server's certificate must chain to (`bridge_cafile`).
    public var caFile: String?
    /// Directory of hashed CA certificates, as made by `openssl rehash` (`bridge_capath`).
    public var caPath: String?
    /// PEM client certificate, optionally followed by its intermediates (`bridge_certfile`); needs `privateKeyFile`.
    public var certificateFile: String?
    /// PEM private key of that certificate, unencrypted (`bridge_keyfile`); needs `certificateFile`.
    public var privateKeyFile: String?
    /// Skip the check that the server's certificate is for the address connected to (`bridge_insecure`). The chain
    /// is still verified against the CAs; only the name is not looked at.
    public var insecure: Bool
    /// Oldest version offered (`bridge_tls_version`), a minimum as on a listener; mosquitto's default is TLS 1.2.
    public var minimumVersion: TLSVersion
    /// The one protocol offered by ALPN (`bridge_alpn`, e.g. `x-amzn-mqtt-ca` or `mqtt`); nil: no ALPN. A server
    /// that does not select it is not an error, as in mosquitto: see `TLSConnection.selectedApplicationProtocol`.
    public var applicationProtocol: String?

    public init(
        caFile: String? = nil, caPath: String? = nil, certificateFile: String? = nil, privateKeyFile: String? = nil,
        insecure: Bool = false, minimumVersion: TLSVersion = .tlsv12, applicationProtocol: String? = nil
    ) {
        self.caFile = caFile
        self.caPath = caPath
        self.certificateFile = certificateFile
        self.privateKeyFile = privateKeyFile
        self.insecure = insecure
        self.minimumVersion = minimumVersion
        self.applicationProtocol = applicationProtocol
    }

    /// Checks the combinations that cannot work, before any file is read. Empty strings count as unset.
    public func validate() throws(TLSError) {
        func isSet(_ value: String?) -> Bool { !(value ?? "").isEmpty }
        if !isSet(caFile) && !isSet(caPath) {
            throw .invalidConfiguration(
                "a TLS bridge needs bridge_cafile or bridge_capath to verify the server's certificate (without "
                    + "either, bridge_certfile, bridge_keyfile, bridge_insecure, bridge_tls_version and bridge_alpn "
                    + "have no effect: the bridge does not use TLS)")
        }
        if isSet(certificateFile) && !isSet(privateKeyFile) {
            throw .invalidConfiguration("bridge_certfile needs bridge_keyfile")
        }
        if isSet(privateKeyFile) && !isSet(certificateFile) {
            throw .invalidConfiguration("bridge_keyfile needs bridge_certfile")
        }
        if let applicationProtocol, applicationProtocol.isEmpty || applicationProtocol.utf8.count > 255 {
            throw .invalidConfiguration("bridge_alpn must be 1 to 255 bytes")
        }
    }
}

/// An immutable, configured client `SSL_CTX` for outbound connections (`TLSConnection(client:serverName:)`).
///
/// `@unchecked Sendable` for the same reason as `TLSContext`: it is configured only inside `init`, after which
/// OpenSSL allows `SSL_new` from any thread, and each connection up-refs it.
public final class TLSClientContext: @unchecked Sendable {
    /// The `SSL_CTX *`; never modified after `init`.
    let pointer: OpaquePointer
    public let configuration: TLSClientConfiguration

    /// Builds the context, reading the CA file and the client certificate and key now (blocking file I/O: build it
    /// at start-up or on reload, never on an event loop). A CA directory is read later, at verification.
    public init(configuration: TLSClientConfiguration) throws(TLSError) {
        try configuration.validate()
        OpenSSLErrorQueue.clear()
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            throw .outOfMemory(OpenSSLErrorQueue.reason(orElse: "SSL_CTX_new"))
        }
        do {
            try Self.configure(context, configuration)
        } catch {
            SSL_CTX_free(context)
            throw error
        }
        pointer = context
        self.configuration = configuration
    }

    deinit { SSL_CTX_free(pointer) }

    /// A new context from the same configuration with every file read again.
    public func reloaded() throws(TLSError) -> TLSClientContext {
        try TLSClientContext(configuration: configuration)
    }

    private static func configure(_ context: OpaquePointer, _ configuration: TLSClientConfiguration)
        throws(TLSError)
    {
        try setMinimumVersion(configuration.minimumVersion, of: context, key: "bridge_tls_version")
        // As on a listener: no compression (CRIME) and no renegotiation.
        _ = SSL_CTX_set_options(context, MIDGE_SSL_OP_NO_COMPRESSION | MIDGE_SSL_OP_NO_RENEGOTIATION)
        // An encrypted keyfile must fail with a reason, not make OpenSSL prompt on the terminal.
        SSL_CTX_set_default_passwd_cb(context) { _, _, _, _ in 0 }
        try loadVerifyLocations(
            file: configuration.caFile, path: configuration.caPath, into: context,
            keys: ("bridge_cafile", "bridge_capath"))
        // The chain must verify; the name check is set per connection, where the address is known.
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        if let certificateFile = configuration.certificateFile, !certificateFile.isEmpty,
            let keyFile = configuration.privateKeyFile
        {
            try loadCertificate(
                certificateFile, key: keyFile, into: context, keys: ("bridge_certfile", "bridge_keyfile"))
        }
        if let name = configuration.applicationProtocol {
            let wire = [UInt8(name.utf8.count)] + Array(name.utf8)
            OpenSSLErrorQueue.clear()
            // Unlike nearly every other OpenSSL call, 0 is success here. OpenSSL copies the list.
            guard SSL_CTX_set_alpn_protos(context, wire, UInt32(wire.count)) == 0 else {
                throw .rejectedSetting(
                    key: "bridge_alpn", value: name,
                    reason: OpenSSLErrorQueue.reason(orElse: "SSL_CTX_set_alpn_protos failed"))
            }
        }
    }
}
