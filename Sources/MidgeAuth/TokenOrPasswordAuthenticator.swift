// Token and password authentication side by side: a JWT in the password field goes to the token verifier, anything
// else to the password file; each client's permissions come from where it was authenticated.
import MQTTCodec
import MidgeCore
import Synchronization

/// Mobile and web clients present a token; devices keep their `password_file` entries; both on one listener.
/// A token client is held to its token's claims (and loses them when it expires), never to the ACL file, so a
/// token cannot borrow a password user's rules by naming the same user.
public final class TokenOrPasswordAuthenticator: Authenticator, AccessControl {
    private let tokens: TokenAuthenticator
    /// nil: only tokens are accepted.
    private let passwords: (any Authenticator)?
    private let rules: any AccessControl
    /// Client ids whose last accepted CONNECT carried a token. Keyed by the id's bytes: String equality is
    /// canonical equivalence, client ids are compared byte for byte.
    private let tokenClients = Mutex<Set<[UInt8]>>([])

    public init(tokens: TokenAuthenticator, passwords: (any Authenticator)?, rules: any AccessControl) {
        self.tokens = tokens
        self.passwords = passwords
        self.rules = rules
    }

    public func authenticate(clientID: String, username: String?, password: [UInt8]?) -> ConnectReturnCode {
        let id = Array(clientID.utf8)
        if let password, Self.looksLikeToken(password) {
            // Permissions are looked up by client id, and an empty one is only replaced by the core after this
            // check: a token client with no id of its own would be checked under a name it was never granted.
            guard !clientID.isEmpty else { return .identifierRejected }
            let answer = tokens.authenticate(clientID: clientID, username: username, password: password)
            if answer == .accepted { tokenClients.withLock { _ = $0.insert(id) } }
            return answer
        }
        tokenClients.withLock { _ = $0.remove(id) }
        guard let passwords else { return username == nil ? .accepted : .notAuthorized }
        return passwords.authenticate(clientID: clientID, username: username, password: password)
    }

    /// As `authenticate`; a token client's acceptance carries its token's grants, a password client's none (its
    /// listener's ACL, this object, sends it to `rules`).
    public func admit(_ request: AdmissionRequest) -> AdmissionAnswer {
        let id = Array(request.clientID.utf8)
        if let password = request.password, Self.looksLikeToken(password) {
            // A token is granted to the client id it was presented with, not to one the broker made up.
            guard !request.clientIDWasAssigned else { return .refused(.identifierRejected) }
            let answer = tokens.admit(request)
            if answer.verdict == .accepted { tokenClients.withLock { _ = $0.insert(id) } }
            return answer
        }
        tokenClients.withLock { _ = $0.remove(id) }
        guard let passwords else { return request.username == nil ? .accepted(request) : .refused(.notAuthorized) }
        return passwords.admit(request)
    }

    public var checksDeliveries: Bool { true }

    public func mayPublish(clientID: String, username: String?, topic: TopicName) -> Bool {
        isTokenClient(clientID)
            ? tokens.mayPublish(clientID: clientID, username: username, topic: topic)
            : rules.mayPublish(clientID: clientID, username: username, topic: topic)
    }

    public func maySubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool {
        isTokenClient(clientID)
            ? tokens.maySubscribe(clientID: clientID, username: username, filter: filter)
            : rules.maySubscribe(clientID: clientID, username: username, filter: filter)
    }

    public func mayReceive(clientID: String, username: String?, topic: TopicName) -> Bool {
        if isTokenClient(clientID) { return tokens.mayReceive(clientID: clientID, username: username, topic: topic) }
        return !rules.checksDeliveries || rules.mayReceive(clientID: clientID, username: username, topic: topic)
    }

    private func isTokenClient(_ clientID: String) -> Bool {
        tokenClients.withLock { $0.contains(Array(clientID.utf8)) }
    }

    /// A compact JWS: three base64url parts, the header a JSON object (`{"` encodes as `eyJ`). mosquitto_passwd
    /// hashes never reach here (they are in the file, not in CONNECT), and a device password of this shape would
    /// have to be a signed token to pass.
    static func looksLikeToken(_ password: [UInt8]) -> Bool {
        guard password.count > 10, password.starts(with: Array("eyJ".utf8)) else { return false }
        var dots = 0
        for byte in password {
            switch byte {
            case UInt8(ascii: "."): dots += 1
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                break
            default: return false
            }
        }
        return dots == 2
    }
}
