// The server's side of the WebSocket opening handshake (RFC 6455 §4.2, RFC 7692 §5; MQTT §6 [MQTT-6.0.0-4]).

import COpenSSL
import MidgeText

public struct WebSocketHandshakeConfiguration: Sendable, Equatable {
    /// Subprotocols accepted, most preferred first. `mqttv3.1` is what old clients (and mosquitto) use.
    public var subprotocols: [String]
    /// Refuse a handshake that offers no subprotocol. Off by default: mosquitto accepts one, and answers with no
    /// `Sec-WebSocket-Protocol` (RFC 6455 §4.2.2 allows naming none that was not offered).
    public var requireSubprotocol: Bool
    /// Nil: permessage-deflate is never agreed.
    public var deflate: PerMessageDeflateConfiguration?

    public init(
        subprotocols: [String] = ["mqtt", "mqttv3.1"], requireSubprotocol: Bool = false,
        deflate: PerMessageDeflateConfiguration? = PerMessageDeflateConfiguration()
    ) {
        self.subprotocols = subprotocols
        self.requireSubprotocol = requireSubprotocol
        self.deflate = deflate
    }
}

public enum WebSocketHandshake {
    public struct Accepted: Sendable, Equatable {
        /// The 101 response to write.
        public var response: HTTPResponse
        /// The subprotocol named in the response, with the client's spelling; nil when the client offered none.
        public var subprotocol: String?
        /// The agreed compression, for `WebSocketConnection(limits:deflate:)`.
        public var deflate: PerMessageDeflateParameters?
    }

    public enum Outcome: Sendable, Equatable {
        case accepted(Accepted)
        /// Write the response and close: a 4xx explaining what was wrong with the upgrade request.
        case rejected(HTTPResponse)
    }

    /// The GUID every accept value is derived with (§1.3).
    static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    public static func respond(
        to request: HTTPRequest, configuration: WebSocketHandshakeConfiguration = WebSocketHandshakeConfiguration()
    ) -> Outcome {
        guard request.method == "GET" else {
            return .rejected(
                .error(
                    .methodNotAllowed, "a WebSocket handshake uses GET", headers: [("Allow", "GET")],
                    closeConnection: true))
        }
        guard request.version == .http11 else {
            return .rejected(.error(.badRequest, "a WebSocket handshake needs HTTP/1.1", closeConnection: true))
        }
        let upgrade = request.headers.tokens(for: "Upgrade")
        guard upgrade.contains("websocket"), request.headers.tokens(for: "Connection").contains("upgrade") else {
            // A plain HTTP request to a WebSocket listener (§4.2.1 items 3-4): say what this port speaks.
            return .rejected(
                .error(
                    .upgradeRequired, "this listener speaks MQTT over WebSocket only",
                    headers: [("Upgrade", "websocket"), ("Connection", "Upgrade")], closeConnection: true))
        }
        let versions = request.headers.values(for: "Sec-WebSocket-Version")
        guard !versions.isEmpty else {
            return .rejected(.error(.badRequest, "missing Sec-WebSocket-Version", closeConnection: true))
        }
        guard versions == ["13"] else {
            // §4.4: name the version the server speaks.
            return .rejected(
                .error(
                    .upgradeRequired, "unsupported WebSocket version",
                    headers: [("Sec-WebSocket-Version", "13")], closeConnection: true))
        }
        let keys = request.headers.values(for: "Sec-WebSocket-Key")
        guard keys.count == 1, let key = keys.first.map({ HTTPHeaders.trim($0[...]) }),
            Base64.decode(Array(key.utf8))?.count == 16
        else {
            // §4.2.1 item 5: the key is a base64-encoded 16-byte nonce.
            return .rejected(.error(.badRequest, "Sec-WebSocket-Key must be 16 bytes in base64", closeConnection: true))
        }
        let offered = request.headers.values(for: "Sec-WebSocket-Protocol")
            .flatMap { $0.split(separator: ",") }.map { HTTPHeaders.trim($0) }.filter { !$0.isEmpty }
        var subprotocol: String?
        if offered.isEmpty {
            if configuration.requireSubprotocol {
                return .rejected(
                    .error(
                        .badRequest,
                        "no subprotocol offered; this listener speaks "
                            + configuration.subprotocols.joined(separator: ", "), closeConnection: true))
            }
        } else {
            // [MQTT-6.0.0-4] the server selects `mqtt`, echoed in the spelling the client offered.
            for supported in configuration.subprotocols {
                if let match = offered.first(where: { HTTPHeaders.sameName($0, supported) }) {
                    subprotocol = match
                    break
                }
            }
            guard subprotocol != nil else {
                return .rejected(
                    .error(
                        .badRequest,
                        "none of the offered subprotocols is supported; this listener "
                            + "speaks " + configuration.subprotocols.joined(separator: ", "), closeConnection: true))
            }
        }
        var headers: HTTPHeaders = [
            ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", acceptValue(forKey: key)),
        ]
        if let subprotocol { headers.append("Sec-WebSocket-Protocol", subprotocol) }
        var deflate: PerMessageDeflateParameters?
        if let deflateConfiguration = configuration.deflate {
            deflate = PerMessageDeflate.negotiate(
                offers: request.headers.values(for: "Sec-WebSocket-Extensions"), configuration: deflateConfiguration)
            if let deflate { headers.append("Sec-WebSocket-Extensions", deflate.responseHeaderValue) }
        }
        return .accepted(
            Accepted(
                response: HTTPResponse(status: .switchingProtocols, headers: headers), subprotocol: subprotocol,
                deflate: deflate))
    }

    /// base64(SHA-1(key + GUID)) (§4.2.2 item 5.4).
    public static func acceptValue(forKey key: String) -> String {
        let input = Array((key + guid).utf8)
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let status = EVP_Digest(input, input.count, &digest, &length, EVP_sha1(), nil)
        precondition(status == 1 && length == 20, "BUG: SHA-1 from OpenSSL failed")
        return Base64.encode(digest.prefix(20))
    }
}
