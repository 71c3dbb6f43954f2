// The TLS transport for tests: the fixture certificates and a TLS byte channel (OpenSSL on a `RawClient`'s socket),
// which MQTTTestSupport's `ChannelClient` and `WebSocketChannel` run over. Every wait is bounded by the socket's
// receive timeout.
import COpenSSL
import Foundation
import Glibc
import MQTTCodec
import MQTTTestSupport

/// The TLS test certificates (made by the TLS module's fixture script), next to the TLS tests.
enum TLSFixture {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("MidgeTLSTests/Fixtures").path

    static func path(_ name: String) -> String { directory + "/" + name }

    /// `listener` lines' TLS settings for the fixture server certificate.
    static func serverSettings(requireCertificate: Bool = false, identity: Bool = false) -> String {
        var text = "cafile \(path("ca.crt"))\ncertfile \(path("server.crt"))\nkeyfile \(path("server.key"))\n"
        if requireCertificate { text += "require_certificate true\n" }
        if identity { text += "use_identity_as_username true\n" }
        return text
    }
}

/// What `mosquitto_pub --psk-identity ID --psk HEX` sends; the client callback finds it through the SSL's app data.
final class PSKClientCredential {
    let identity: String
    let key: [UInt8]

    init(identity: String, key: [UInt8]) {
        self.identity = identity
        self.key = key
    }

    static let callback: SSL_psk_client_cb_func = { ssl, _, identity, maxIdentity, key, maxKey in
        guard let ssl, let identity, let key, let raw = SSL_get_ex_data(ssl, 0) else { return 0 }
        let credential = Unmanaged<PSKClientCredential>.fromOpaque(raw).takeUnretainedValue()
        let name = Array(credential.identity.utf8)
        guard name.count < Int(maxIdentity), credential.key.count <= Int(maxKey) else { return 0 }
        for (index, byte) in name.enumerated() { identity[index] = CChar(bitPattern: byte) }
        identity[name.count] = 0
        for (index, byte) in credential.key.enumerated() { key[index] = byte }
        return UInt32(credential.key.count)
    }
}

/// A TLS client on a blocking socket, verifying the broker against the fixture CA and the name "localhost", as
/// mosquitto_pub --cafile does.
final class TLSChannel: ByteChannel {
    let socket: RawClient
    private let context: OpaquePointer
    private let ssl: OpaquePointer

    /// Kept alive here: the PSK callback finds it through the SSL's app data, unretained.
    private let psk: PSKClientCredential?

    init(
        port: UInt16, certificate: String? = nil, key: String? = nil, psk: PSKClientCredential? = nil,
        applicationProtocols: [String] = []
    ) throws {
        socket = try RawClient(port: port, name: "tls")
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw TestError("SSL_CTX_new") }
        self.context = context
        self.psk = psk
        guard SSL_CTX_load_verify_file(context, TLSFixture.path("ca.crt")) == 1 else { throw TestError("CA file") }
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        if psk != nil { SSL_CTX_set_psk_client_callback(context, PSKClientCredential.callback) }
        if let certificate, let key {
            guard SSL_CTX_use_certificate_chain_file(context, certificate) == 1,
                SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) == 1
            else { throw TestError("client certificate \(certificate)") }
        }
        guard let ssl = SSL_new(context) else { throw TestError("SSL_new") }
        self.ssl = ssl
        if let psk { _ = SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(psk).toOpaque()) }
        _ = midge_SSL_set_tlsext_host_name(ssl, "localhost")
        _ = SSL_set1_host(ssl, "localhost")
        if !applicationProtocols.isEmpty {
            let wire = applicationProtocols.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
            _ = SSL_set_alpn_protos(ssl, wire, UInt32(wire.count))
        }
        SSL_set_fd(ssl, socket.fd)
        guard SSL_connect(ssl) == 1 else {
            throw TestError("TLS handshake failed: \(Self.errors())")
        }
    }

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(context)
    }

    static func errors() -> String {
        var parts: [String] = []
        for _ in 0..<16 {
            let code = ERR_get_error()
            if code == 0 { break }
            var text = [UInt8](repeating: 0, count: 256)
            text.withUnsafeMutableBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { ERR_error_string_n(code, $0.baseAddress, $0.count) }
            }
            parts.append(String(decoding: text.prefix { $0 != 0 }, as: UTF8.self))
        }
        return parts.joined(separator: "; ")
    }

    var protocolVersion: String { String(cString: SSL_get_version(ssl)) }

    var selectedApplicationProtocol: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    func write(_ bytes: [UInt8]) throws {
        guard !bytes.isEmpty else { return }
        let written = bytes.withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
        guard written == bytes.count else { throw TestError("SSL_write failed: \(Self.errors())") }
    }

    func read() throws -> [UInt8]? {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let count = chunk.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
        if count > 0 { return Array(chunk[0..<Int(count)]) }
        let error = SSL_get_error(ssl, count)
        if error == SSL_ERROR_ZERO_RETURN { return nil }
        if error == SSL_ERROR_SYSCALL && errno == EAGAIN { throw TestError("timed out waiting for the broker") }
        // An alert or a reset: the broker ended the connection.
        ERR_clear_error()
        return nil
    }

    func close() {
        _ = SSL_shutdown(ssl)
        socket.close()
    }
}
