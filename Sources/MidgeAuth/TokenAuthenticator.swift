// JSON Web Tokens (RFC 7519; JWS compact form, RFC 7515) sent as CONNECT's password (MQTT 3.1.1
// §3.1.3.5), for mobile and web clients, with the topics a token grants as access control.
import Glibc
import MQTTCodec
import MidgeCore
import MidgeText
import Synchronization

/// A token verifier that cannot be built: a short HS256 secret or an unusable public key.
public struct TokenError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public var description: String { message }
}

/// Accepts a CONNECT whose password is a signed JWT and then allows that client exactly the topics the
/// token names:
///
///     {"sub": "alice", "exp": 1767225600,
///      "publish": ["devices/alice/#"], "subscribe": ["commands/alice/+", "broadcast/#"]}
///
/// - The signature must be HS256 (HMAC-SHA256 with a shared secret of at least 32 bytes, RFC 7518 §3.2)
///   or RS256 (RSA PKCS#1 v1.5 with SHA-256, key of at least 2048 bits), whichever this instance was
///   made for; the header's `alg` must name exactly that, so `none` and HS256-signed-with-the-public-key
///   tokens are refused. A header with `crit` is refused (no extensions are understood).
/// - `exp` (required unless `requireExpiry` is false) and `nbf` are checked against the injected clock,
///   with `leeway` seconds of tolerance; `exp` is checked again on every publish and delivery, so access
///   ends when the token does even on a connection that stays open.
/// - `iss` and `aud` are checked when the options name them. When `sub` is present, the CONNECT's user
///   name must equal it (MQTT requires a user name with a password [MQTT-3.1.2-22]).
/// - `publish` lists filters the client may publish to; `subscribe` lists filters that bound what it
///   may subscribe to and receive. A missing list grants nothing. Every entry must be a valid filter.
///
/// As an `AccessControl` it only knows clients it authenticated: a client without a token (anonymous,
/// if `allowAnonymous` lets it in) may do nothing. Failures answer 0x05, like `PasswordFile`.
public final class TokenAuthenticator: Authenticator, AccessControl {
    public enum Algorithm: Sendable {
        case hs256(secret: [UInt8])
        case rs256(publicKeyPEM: String)
    }

    public struct Options: Sendable {
        /// When set, `iss` must be present and equal.
        public var issuer: String? = nil
        /// When set, `aud` (a string or an array of strings) must contain it.
        public var audience: String? = nil
        public var requireExpiry = true
        /// Clock skew tolerated on `exp` and `nbf`, in seconds.
        public var leeway: Int64 = 0
        public var publishClaim = "publish"
        public var subscribeClaim = "subscribe"
        public init() {}
    }

    /// What one verified token allows one client.
    struct Grants: Sendable {
        let clientID: [UInt8]
        let username: [UInt8]
        let expiry: Int64?
        let publish: [TopicFilter]
        let subscribe: [TopicFilter]
    }

    enum Rejection: Error, Equatable, CustomStringConvertible {
        case malformed(String)
        case algorithm(String)
        case signature, expired, notYetValid, missingExpiry
        case issuer, audience, subject
        case claim(String)

        var description: String {
            switch self {
            case .malformed(let why): return "malformed token: \(why)"
            case .algorithm(let alg): return "algorithm \"\(alg)\" is not the one configured"
            case .signature: return "bad signature"
            case .expired: return "token expired"
            case .notYetValid: return "token not yet valid"
            case .missingExpiry: return "token has no exp"
            case .issuer: return "wrong issuer"
            case .audience: return "wrong audience"
            case .subject: return "user name does not match sub"
            case .claim(let name): return "claim \"\(name)\" is not a list of topic filters"
            }
        }
    }

    private enum Verifier {
        case hs256([UInt8])
        case rs256(PublicKey)
    }

    private let verifier: Verifier
    private let options: Options
    private let now: @Sendable () -> Int64
    /// Grants by client id, written on CONNECT and read on every publish and delivery. Keyed by
    /// `String` for lookup without allocation; buckets keep byte-distinct ids apart (String equality is
    /// canonical equivalence, client ids are bytes).
    private let grants = Mutex<GrantTable>(GrantTable())

    private struct GrantTable {
        var byClientID: [String: [Grants]] = [:]
        var count = 0
        /// Expired entries are swept when the table doubles past this, so sweeping costs O(1) per CONNECT.
        var sweepAt = 1024
    }

    public init(
        _ algorithm: Algorithm, options: Options = Options(),
        now: @escaping @Sendable () -> Int64 = { Int64(time(nil)) }
    ) throws(TokenError) {
        switch algorithm {
        case .hs256(let secret):
            guard secret.count >= 32 else {
                throw TokenError(message: "an HS256 secret must be at least 32 bytes (RFC 7518 §3.2)")
            }
            verifier = .hs256(secret)
        case .rs256(let pem):
            verifier = .rs256(try PublicKey(pem: pem))
        }
        self.options = options
        self.now = now
    }

    // MARK: - Authenticator

    public func authenticate(clientID: String, username: String?, password: [UInt8]?) -> ConnectReturnCode {
        guard let username else {
            forget(clientID)
            return .accepted  // anonymous: `allowAnonymous` decides, and no token means no grants
        }
        guard let password, case .success(let granted) = verify(password, clientID: clientID, username: username)
        else {
            forget(clientID)
            return .notAuthorized
        }
        remember(granted)
        return .accepted
    }

    /// As `authenticate`, and an acceptance carries the token's grants as the client's own permissions. The grants
    /// are also remembered by client id, for the questions asked of this authenticator as its listener's ACL.
    public func admit(_ request: AdmissionRequest) -> AdmissionAnswer {
        let clientID = request.clientID
        guard let username = request.username else {
            forget(clientID)
            return .accepted(request)  // anonymous: `allowAnonymous` decided, and no token means no grants
        }
        guard let password = request.password,
            case .success(let granted) = verify(password, clientID: clientID, username: username)
        else {
            forget(clientID)
            return .refused(.notAuthorized)
        }
        remember(granted)
        return AdmissionAnswer(
            verdict: .accepted, username: username,
            accessControl: TokenGrantAccess(grants: granted, leeway: options.leeway, now: now))
    }

    /// The checks of RFC 7519 §7.2 in order: structure, header, signature, then claims. Nothing from the
    /// payload is believed before the signature over it has been checked.
    func verify(_ token: [UInt8], clientID: String, username: String) -> Result<Grants, Rejection> {
        let dot = UInt8(ascii: ".")
        let parts = token.split(separator: dot, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .failure(.malformed("expected header.payload.signature")) }
        guard let headerBytes = Base64.decodeURL(parts[0]), let header = JSONValue.parse(headerBytes),
            case .object = header
        else { return .failure(.malformed("header is not a base64url JSON object")) }
        guard case .string(let alg)? = header["alg"] else { return .failure(.malformed("header has no alg")) }
        guard header["crit"] == nil else { return .failure(.malformed("critical header extensions are not supported")) }
        guard let signature = Base64.decodeURL(parts[2]) else {
            return .failure(.malformed("signature is not base64url"))
        }
        let signed = Array(token[token.startIndex..<parts[1].endIndex])

        switch verifier {
        case .hs256(let secret):
            guard alg == "HS256" else { return .failure(.algorithm(alg)) }
            guard Crypto.constantTimeEqual(Crypto.hmacSHA256(key: secret, data: signed), signature) else {
                return .failure(.signature)
            }
        case .rs256(let key):
            guard alg == "RS256" else { return .failure(.algorithm(alg)) }
            guard key.verifySHA256(signature: signature, data: signed) else { return .failure(.signature) }
        }

        guard let payloadBytes = Base64.decodeURL(parts[1]), let claims = JSONValue.parse(payloadBytes),
            case .object = claims
        else { return .failure(.malformed("payload is not a base64url JSON object")) }
        return checkClaims(claims, clientID: clientID, username: username)
    }

    private func checkClaims(_ claims: JSONValue, clientID: String, username: String) -> Result<Grants, Rejection> {
        let time = now()
        var expiry: Int64? = nil
        switch claims["exp"] {
        case .number(let exp)?:
            // RFC 7519 §4.1.4: the current time must be before `exp`.
            guard let seconds = Int64(exactly: exp.rounded(.down)) else { return .failure(.malformed("exp")) }
            guard time < seconds &+ options.leeway else { return .failure(.expired) }
            expiry = seconds
        case nil:
            if options.requireExpiry { return .failure(.missingExpiry) }
        default:
            return .failure(.malformed("exp is not a number"))
        }
        switch claims["nbf"] {
        case .number(let nbf)?:
            guard let seconds = Int64(exactly: nbf.rounded(.down)) else { return .failure(.malformed("nbf")) }
            guard time >= seconds &- options.leeway else { return .failure(.notYetValid) }
        case nil: break
        default: return .failure(.malformed("nbf is not a number"))
        }
        if let issuer = options.issuer {
            guard case .string(let iss)? = claims["iss"], iss.utf8.elementsEqual(issuer.utf8) else {
                return .failure(.issuer)
            }
        }
        if let audience = options.audience {
            let matches: Bool
            switch claims["aud"] {
            case .string(let aud)?: matches = aud.utf8.elementsEqual(audience.utf8)
            case .array(let list)?:
                matches = list.contains {
                    if case .string(let aud) = $0 { aud.utf8.elementsEqual(audience.utf8) } else { false }
                }
            default: matches = false
            }
            guard matches else { return .failure(.audience) }
        }
        switch claims["sub"] {
        case .string(let subject)?:
            guard subject.utf8.elementsEqual(username.utf8) else { return .failure(.subject) }
        case nil: break
        default: return .failure(.malformed("sub is not a string"))
        }
        guard let publish = filters(claims, options.publishClaim) else { return .failure(.claim(options.publishClaim)) }
        guard let subscribe = filters(claims, options.subscribeClaim) else {
            return .failure(.claim(options.subscribeClaim))
        }
        return .success(
            Grants(
                clientID: Array(clientID.utf8), username: Array(username.utf8), expiry: expiry,
                publish: publish, subscribe: subscribe))
    }

    /// The claim as filters: [] when absent, nil when it is not an array of valid filters.
    private func filters(_ claims: JSONValue, _ name: String) -> [TopicFilter]? {
        guard let value = claims[name] else { return [] }
        guard case .array(let entries) = value else { return nil }
        var result: [TopicFilter] = []
        for entry in entries {
            guard case .string(let text) = entry, let filter = TopicFilter(text) else { return nil }
            result.append(filter)
        }
        return result
    }

    // MARK: - Grants per client

    private func remember(_ granted: Grants) {
        let key = String(decoding: granted.clientID, as: UTF8.self)
        let time = now()
        let leeway = options.leeway
        grants.withLock { table in
            var bucket = table.byClientID[key, default: []]
            if let index = bucket.firstIndex(where: { $0.clientID == granted.clientID }) {
                bucket[index] = granted
            } else {
                bucket.append(granted)
                table.count += 1
            }
            table.byClientID[key] = bucket
            if table.count >= table.sweepAt {
                for (id, entries) in table.byClientID {
                    let live = entries.filter { entry in entry.expiry.map { time < $0 &+ leeway } ?? true }
                    table.count -= entries.count - live.count
                    table.byClientID[id] = live.isEmpty ? nil : live
                }
                table.sweepAt = max(1024, table.count * 2)
            }
        }
    }

    private func forget(_ clientID: String) {
        grants.withLock { table in
            guard var bucket = table.byClientID[clientID],
                let index = bucket.firstIndex(where: { $0.clientID.elementsEqual(clientID.utf8) })
            else { return }
            bucket.remove(at: index)
            table.count -= 1
            table.byClientID[clientID] = bucket.isEmpty ? nil : bucket
        }
    }

    /// This client's grants if its user name is the one the token was checked against and the token
    /// has not expired since.
    private func current(_ clientID: String, _ username: String?) -> Grants? {
        guard let username else { return nil }
        let found = grants.withLock { table in
            table.byClientID[clientID]?.first { $0.clientID.elementsEqual(clientID.utf8) }
        }
        guard let found, found.username.elementsEqual(username.utf8) else { return nil }
        if let expiry = found.expiry, now() >= expiry &+ options.leeway { return nil }
        return found
    }

    // MARK: - AccessControl

    public var checksDeliveries: Bool { true }

    public func mayPublish(clientID: String, username: String?, topic: TopicName) -> Bool {
        guard ReservedTopics.permit(topic, writing: true), let granted = current(clientID, username) else {
            return false
        }
        return granted.publish.contains { $0.matches(topic) }
    }

    /// The requested filter must lie within one granted filter: every topic it can match, that one
    /// matches too. So `commands/alice/+` allows `commands/alice/x` and `commands/alice/+`, not `commands/#`.
    public func maySubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool {
        guard let granted = current(clientID, username) else { return false }
        return granted.subscribe.contains { FilterCover.covers($0, filter) }
    }

    public func mayReceive(clientID: String, username: String?, topic: TopicName) -> Bool {
        guard ReservedTopics.permit(topic, writing: false), let granted = current(clientID, username) else {
            return false
        }
        return granted.subscribe.contains { $0.matches(topic) }
    }
}
