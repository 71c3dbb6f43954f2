// What a TLS listener is configured with: mosquitto 2.0's `certfile`, `keyfile`, `cafile`, `capath`, `tls_version`,
// `ciphers`, `ciphers_tls1.3`, `require_certificate`, `crlfile`, `use_identity_as_username`,
// `use_subject_as_username`, `psk_hint` and `psk_file`, as plain values.

/// The oldest protocol version a listener accepts (mosquitto's `tls_version`: a minimum, not an exact version).
public enum TLSVersion: String, Sendable, CaseIterable {
    case tlsv11 = "tlsv1.1"
    case tlsv12 = "tlsv1.2"
    case tlsv13 = "tlsv1.3"

    /// Parses the config value as mosquitto spells it; nil for anything else.
    public init?(configValue: String) { self.init(rawValue: configValue) }
}

/// What identifies a client to the broker when the listener takes its username from TLS.
public enum PeerIdentity: Sendable, Equatable {
    /// The certificate subject's first CN (`use_identity_as_username`).
    case certificateCommonName
    /// The certificate's whole subject DN, RFC 2253 (`use_subject_as_username`).
    case certificateSubject
    /// The identity the client's pre-shared key was found under (`use_identity_as_username` on a PSK listener).
    case pskIdentity
}

/// A TLS-PSK listener (mosquitto's `psk_hint` and `psk_file`): clients prove they hold a key shared in advance
/// instead of the server presenting a certificate.
public struct PreSharedKeySettings: Sendable, Equatable {
    /// Sent to TLS 1.2 clients during the handshake (TLS 1.3 has no hint); turns PSK on for the listener.
    public var hint: String
    /// The `identity:hexkey` file, read when a context is built (start-up, SIGHUP).
    public var file: String

    public init(hint: String, file: String) {
        self.hint = hint
        self.file = file
    }
}

/// Everything needed to build a `TLSContext`. File paths are read only when a context is built, never by a
/// connection, so a reload is the only time the files are touched again.
public struct TLSConfiguration: Sendable, Equatable {
    /// PEM server certificate, optionally followed by its intermediate certificates (`certfile`).
    public var certificateFile: String
    /// PEM private key of that certificate, unencrypted (`keyfile`): there is nobody to type a passphrase.
    public var privateKeyFile: String
    /// PEM file of CA certificates that client certificates must chain to (`cafile`).
    public var caFile: String?
    /// Directory of hashed CA certificates, as made by `openssl rehash` (`capath`).
    public var caPath: String?
    /// Oldest accepted version (`tls_version`); mosquitto's default is TLS 1.2.
    public var minimumVersion: TLSVersion
    /// OpenSSL cipher list for TLS 1.2 and older (`ciphers`); nil keeps mosquitto's default list.
    public var ciphers: String?
    /// OpenSSL TLS 1.3 ciphersuites (`ciphers_tls1.3`); nil keeps OpenSSL's default.
    public var ciphersuites: String?
    /// Ask for a client certificate and refuse the handshake without a valid one (`require_certificate`).
    public var requireCertificate: Bool
    /// The client certificate's subject CN, or on a PSK listener the PSK identity, becomes the MQTT username
    /// (`use_identity_as_username`). The TLS layer only exposes it (`TLSConnection.peerIdentity`); the server
    /// applies it at CONNECT. As in mosquitto, it is accepted without `requireCertificate`, but then no certificate
    /// is asked for, the CN is nil and the server refuses every CONNECT with return code 4.
    public var useIdentityAsUsername: Bool
    /// PEM certificate revocation list(s) of the CA (`crlfile`): a client certificate listed there fails the
    /// handshake. As in mosquitto, only the client's own certificate is checked, so the file must hold a current
    /// list from the CA that issued it, or every client certificate is refused ("unable to get certificate CRL").
    public var crlFile: String?
    /// The client certificate's whole subject, in the RFC 2253 form OpenSSL prints (what mosquitto uses), becomes
    /// the MQTT username (`use_subject_as_username`). `useIdentityAsUsername` wins when both are set, as in
    /// mosquitto. Needs `requireCertificate`: without a certificate there is no subject.
    public var useSubjectAsUsername: Bool
    /// TLS-PSK instead of certificates; `certificateFile` and `privateKeyFile` are then empty.
    public var preSharedKeys: PreSharedKeySettings?
    /// Application protocols offered by ALPN, the server's preference first (`h2`, `http/1.1` on an HTTP listener);
    /// empty: no ALPN, as mosquitto.
    public var applicationProtocols: [String] = []

    public init(
        certificateFile: String, privateKeyFile: String, caFile: String? = nil, caPath: String? = nil,
        minimumVersion: TLSVersion = .tlsv12, ciphers: String? = nil, ciphersuites: String? = nil,
        requireCertificate: Bool = false, useIdentityAsUsername: Bool = false, crlFile: String? = nil,
        useSubjectAsUsername: Bool = false, preSharedKeys: PreSharedKeySettings? = nil
    ) {
        self.certificateFile = certificateFile
        self.privateKeyFile = privateKeyFile
        self.caFile = caFile
        self.caPath = caPath
        self.minimumVersion = minimumVersion
        self.ciphers = ciphers
        self.ciphersuites = ciphersuites
        self.requireCertificate = requireCertificate
        self.useIdentityAsUsername = useIdentityAsUsername
        self.crlFile = crlFile
        self.useSubjectAsUsername = useSubjectAsUsername
        self.preSharedKeys = preSharedKeys
    }

    /// Where the transport takes the MQTT username from on this listener; nil leaves CONNECT's own.
    public var usernameSource: PeerIdentity? {
        if useIdentityAsUsername { return preSharedKeys == nil ? .certificateCommonName : .pskIdentity }
        return useSubjectAsUsername ? .certificateSubject : nil
    }

    /// The cipher list mosquitto 2.0 sets when `ciphers` is not configured.
    public static let mosquittoDefaultCiphers = "DEFAULT:!aNULL:!eNULL:!LOW:!EXPORT:!SSLv2:@STRENGTH"

    /// Checks the combinations that cannot work, before any file is read.
    func validate() throws(TLSError) {
        let alpnLength = applicationProtocols.reduce(0) { $0 + 1 + $1.utf8.count }
        if alpnLength > 255 || applicationProtocols.contains(where: { $0.isEmpty || $0.utf8.count > 255 }) {
            throw .invalidConfiguration("the ALPN protocol list must be 1 to 255 bytes per name, 255 in all")
        }
        if let preSharedKeys {
            // Newer mosquitto refuses the mix too; 2.0 accepts it and then, with use_identity_as_username, refuses
            // every certificate client at CONNECT.
            guard certificateFile.isEmpty && privateKeyFile.isEmpty else {
                throw .invalidConfiguration("a listener uses certificates (certfile, keyfile) or psk_hint, not both")
            }
            if requireCertificate || caFile != nil || caPath != nil || crlFile != nil || useSubjectAsUsername {
                throw .invalidConfiguration(
                    "cafile, capath, require_certificate, crlfile and use_subject_as_username have no meaning with "
                        + "psk_hint: PSK clients present no certificate")
            }
            if preSharedKeys.file.isEmpty { throw .invalidConfiguration("psk_hint needs psk_file") }
            return
        }
        if certificateFile.isEmpty { throw .invalidConfiguration("certfile must be set on a TLS listener") }
        if privateKeyFile.isEmpty { throw .invalidConfiguration("keyfile must be set on a TLS listener") }
        if requireCertificate && (caFile ?? "").isEmpty && (caPath ?? "").isEmpty {
            throw .invalidConfiguration("require_certificate needs cafile or capath to verify client certificates")
        }
        // mosquitto loads the list and then never asks for a certificate to check against it; say so instead.
        if crlFile != nil && !requireCertificate {
            throw .invalidConfiguration(
                "crlfile needs require_certificate true: otherwise no client certificate is asked for or checked")
        }
        // mosquitto accepts it and then refuses every CONNECT, since no certificate (so no subject) is asked for.
        if useSubjectAsUsername && !requireCertificate {
            throw .invalidConfiguration("use_subject_as_username needs require_certificate true")
        }
    }
}
