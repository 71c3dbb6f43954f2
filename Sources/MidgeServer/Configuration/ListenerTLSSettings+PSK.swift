// The TLS-PSK side of a listener's TLS keys (mosquitto's `psk_hint`, `psk_file`): which other keys it excludes.
import MidgeTLS

extension ListenerTLSSettings {
    /// A TLS-PSK listener: the keys that need a certificate are refused rather than ignored, as they would be.
    func pskConfiguration(hint: String, file: String?, fail: (String, String) -> ConfigError)
        throws(ConfigError) -> TLSConfiguration
    {
        if certificateFile != nil || privateKeyFile != nil {
            throw fail(
                certificateFile != nil ? "certfile" : "keyfile",
                "a listener uses certificates or pre-shared keys (psk_hint), not both")
        }
        let certificateOnly: [(String, Bool)] = [
            ("cafile", caFile != nil), ("capath", caPath != nil), ("require_certificate", requireCertificate),
            ("crlfile", crlFile != nil), ("use_subject_as_username", useSubjectAsUsername),
        ]
        if let (key, _) = certificateOnly.first(where: { $0.1 }) {
            throw fail(key, "has no meaning with psk_hint: PSK clients present no certificate")
        }
        guard let file else {
            throw fail("psk_hint", "needs psk_file (after this listener line, or before the first listener line)")
        }
        return TLSConfiguration(
            certificateFile: "", privateKeyFile: "", minimumVersion: minimumVersion, ciphers: ciphers,
            ciphersuites: ciphersuites, useIdentityAsUsername: useIdentityAsUsername,
            preSharedKeys: PreSharedKeySettings(hint: hint, file: file))
    }
}
