// A listener's TLS keys as the parser collects them, the token key setting, and the parser's text helper.
import MidgeTLS

/// A listener's TLS keys as read; `certfile` and `keyfile` turn TLS on, the others only refine it.
struct ListenerTLSSettings {
    /// The first TLS key's line, for errors about the set as a whole.
    let line: Int
    var certificateFile: String?
    var privateKeyFile: String?
    var caFile: String?
    var caPath: String?
    var minimumVersion = TLSVersion.tlsv12
    var ciphers: String?
    var ciphersuites: String?
    var requireCertificate = false
    var useIdentityAsUsername = false
    var crlFile: String?
    var useSubjectAsUsername = false
    var pskHint: String?
    var pskFile: String?

    init(line: Int) {
        self.line = line
    }

    func configuration(fileName: String, defaultPSKFile: String?) throws(ConfigError) -> TLSConfiguration {
        func fail(_ key: String, _ message: String) -> ConfigError {
            ConfigError(fileName: fileName, line: line, key: key, message: message)
        }
        if let pskHint { return try pskConfiguration(hint: pskHint, file: pskFile ?? defaultPSKFile, fail: fail) }
        if pskFile != nil {
            throw fail(
                "psk_file",
                "only a listener with psk_hint uses it (before the first listener line it is "
                    + "shared by every psk_hint listener)")
        }
        guard let certificateFile else { throw fail("certfile", "a TLS listener needs certfile (and keyfile)") }
        guard let privateKeyFile else { throw fail("keyfile", "a TLS listener needs keyfile (and certfile)") }
        if requireCertificate && caFile == nil && caPath == nil {
            throw fail("require_certificate", "needs cafile or capath to verify client certificates")
        }
        if crlFile != nil && !requireCertificate {
            throw fail(
                "crlfile",
                "needs require_certificate true (and cafile or capath): no client certificate is "
                    + "asked for otherwise, so nothing would be checked against the revocation list")
        }
        if useSubjectAsUsername && !requireCertificate {
            throw fail(
                "use_subject_as_username",
                "needs require_certificate true: without a certificate there is no "
                    + "subject, and every CONNECT would be refused")
        }
        return TLSConfiguration(
            certificateFile: certificateFile, privateKeyFile: privateKeyFile, caFile: caFile, caPath: caPath,
            minimumVersion: minimumVersion, ciphers: ciphers, ciphersuites: ciphersuites,
            requireCertificate: requireCertificate, useIdentityAsUsername: useIdentityAsUsername, crlFile: crlFile,
            useSubjectAsUsername: useSubjectAsUsername)
    }
}

extension String {
    func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        return String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}

/// Where the key that verifies client tokens comes from.
public enum TokenKeySetting: Sendable, Equatable {
    /// A file holding the HS256 shared secret (at least 32 bytes; a trailing newline is not part of it).
    case hs256SecretFile(String)
    /// A PEM file with the RSA public key for RS256.
    case rs256PublicKey(String)
}
