// mosquitto's `password_file`: `user:hash` lines checked against CONNECT's user name and password
// (MQTT 3.1.1 §3.1.3.4, §3.1.3.5; the CONNACK code follows mosquitto 2.0, see `authenticate`).
import MQTTCodec
import MidgeCore

/// The users of a mosquitto-format password file, loaded once and read by every event loop.
///
/// Format (what `mosquitto_passwd` writes and mosquitto 2.0 reads):
///
///     # comment
///     alice:$7$101$Ev0h74/AJkb2QRfO$odib4uum…jJoSmfg==
///     bob:$6$5lqfbe0pgwzA6rJZ$hC2FZz9x…/rmJRrA==
///
/// Blank lines and lines starting with `#` are skipped; blanks around the user name and hash are
/// trimmed. Any other line that is not `user:$6$…` or `user:$7$…` is an `AuthFileError` naming it.
public final class PasswordFile: Authenticator {
    struct Entry: Sendable {
        let username: [UInt8]
        let hash: PasswordHash
        let line: Int
    }

    /// Keyed by `String` for a lookup without allocation, but `String` equality is Unicode canonical
    /// equivalence while mosquitto compares bytes; each bucket therefore keeps every byte-distinct
    /// spelling and `entry(for:)` picks the byte-equal one.
    private let entries: [String: [Entry]]
    /// Verified against when the user does not exist, so an unknown user costs as much as a wrong
    /// password and answer times do not reveal which user names exist. It is of the costliest kind the file
    /// holds: `mosquitto_passwd -I` makes every entry cost more than the default 101 iterations, and a decoy
    /// at the default would answer unknown users measurably faster.
    let decoy: PasswordHash

    public convenience init(path: String) throws(AuthFileError) {
        try self.init(bytes: TextLines.read(path: path), source: path)
    }

    public convenience init(text: String, source: String) throws(AuthFileError) {
        try self.init(bytes: Array(text.utf8), source: source)
    }

    init(bytes: [UInt8], source: String) throws(AuthFileError) {
        var entries: [String: [Entry]] = [:]
        for line in TextLines.split(bytes) {
            guard let entry = try PasswordFile.parse(line, source: source) else { continue }
            let name = String(decoding: entry.username, as: UTF8.self)
            if let earlier = entries[name, default: []].first(where: { $0.username == entry.username }) {
                throw AuthFileError(
                    file: source, line: line.number,
                    message: "user \"\(name)\" is already defined on line \(earlier.line)")
            }
            entries[name, default: []].append(entry)
        }
        self.entries = entries
        let kinds = entries.values.joined().map(\.hash.kind)
        let costliest = kinds.max { $0.cost < $1.cost } ?? .pbkdf2SHA512(iterations: PasswordHash.defaultIterations)
        self.decoy = PasswordHash.make(password: Crypto.randomBytes(16), kind: costliest)
    }

    /// One line: nil for blank lines and comments, an entry, or an error naming the line.
    static func parse(_ line: TextLine, source: String) throws(AuthFileError) -> Entry? {
        func failure(_ message: String) -> AuthFileError {
            AuthFileError(file: source, line: line.number, message: message)
        }
        let content = TextLines.trimmed(line.bytes)
        if content.isEmpty || content.first == UInt8(ascii: "#") { return nil }
        guard let colon = content.firstIndex(of: UInt8(ascii: ":")) else {
            throw failure("expected USER:HASH")
        }
        let usernameBytes = TextLines.trimmed(content[..<colon])
        let field = TextLines.trimmed(content[(colon + 1)...])
        guard !usernameBytes.isEmpty else { throw failure("empty user name") }
        guard let username = TextLines.string(usernameBytes) else { throw failure("user name is not valid UTF-8") }
        guard !field.isEmpty else { throw failure("user \"\(username)\" has no password hash") }
        guard !field.contains(UInt8(ascii: ":")) else {
            throw failure("user \"\(username)\": unexpected ':' after the hash")
        }
        switch PasswordHash.parse(field) {
        case .success(let hash): return Entry(username: Array(usernameBytes), hash: hash, line: line.number)
        case .failure(let error): throw failure("user \"\(username)\": \(error)")
        }
    }

    func entry(for username: String) -> Entry? {
        entries[username]?.first { $0.username.elementsEqual(username.utf8) }
    }

    var count: Int { entries.values.reduce(0) { $0 + $1.count } }

    /// mosquitto 2.0 answers every failed password check with 0x05 "not authorised", not 0x04: its
    /// `handle__connect` maps `MOSQ_ERR_AUTH` to `CONNACK_REFUSED_NOT_AUTHORIZED` for 3.1.1 clients
    /// (checked against mosquitto 2.0.11: wrong password, unknown user and missing password all get 5).
    ///
    /// A CONNECT without a user name is not this file's to judge: mosquitto's password check ignores
    /// such clients and `allow_anonymous` (the core's `allowAnonymous`) decides.
    public func authenticate(clientID: String, username: String?, password: [UInt8]?) -> ConnectReturnCode {
        guard let username else { return .accepted }
        guard let entry = entry(for: username) else {
            _ = decoy.verify(password ?? [])
            return .notAuthorized
        }
        // The whole password is hashed, also past a 0x00 byte: mosquitto stops at the first 0x00 (C
        // string), which would let "secret\0anything" pass as "secret". No file can hold such a
        // password, since mosquitto_passwd reads C strings, so no valid login is lost.
        guard let password else {
            // Hashed anyway, so a missing password costs a known user what it costs an unknown one.
            _ = entry.hash.verify([])
            return .notAuthorized
        }
        return entry.hash.verify(password) ? .accepted : .notAuthorized
    }
}
