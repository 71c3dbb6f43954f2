// One password entry's hash in mosquitto_passwd's format: `$6$SALT$HASH` (salted SHA-512) or
// `$7$ITERATIONS$SALT$HASH` (PBKDF2-HMAC-SHA512), salt and hash in padded base64.
import MidgeText

/// A stored password hash, decoded once at load time and compared on every CONNECT.
struct PasswordHash: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        /// `$6$`: SHA-512 over the password bytes followed by the salt bytes (mosquitto 1.x).
        case sha512
        /// `$7$`: PBKDF2-HMAC-SHA512 with this many iterations (mosquitto 2.0's default).
        case pbkdf2SHA512(iterations: Int)

        /// Relative cost of one verification: one SHA-512 against one PBKDF2 iteration (two HMAC-SHA512).
        var cost: Int {
            switch self {
            case .sha512: 1
            case .pbkdf2SHA512(let iterations): iterations
            }
        }
    }

    /// mosquitto 2.0's `PW_DEFAULT_ITERATIONS`.
    static let defaultIterations = 101
    /// mosquitto_passwd 2.0 writes 12-byte salts; its broker also reads 64-byte ones (2.1 writes those).
    static let saltLength = 12
    static let acceptedSaltLengths: Set<Int> = [12, 64]
    /// SHA-512 output; the only hash length mosquitto accepts.
    static let hashLength = 64

    let kind: Kind
    let salt: [UInt8]
    let hash: [UInt8]

    /// A fresh `$7$` hash with a random salt, as `mosquitto_passwd` makes one.
    static func make(password: [UInt8], iterations: Int = defaultIterations) -> PasswordHash {
        make(password: password, kind: .pbkdf2SHA512(iterations: iterations))
    }

    /// A fresh hash of any kind with a random salt.
    static func make(password: [UInt8], kind: Kind) -> PasswordHash {
        let salt = Crypto.randomBytes(saltLength)
        return PasswordHash(kind: kind, salt: salt, hash: digest(kind, password: password, salt: salt))
    }

    static func digest(_ kind: Kind, password: [UInt8], salt: [UInt8]) -> [UInt8] {
        switch kind {
        case .sha512: return Crypto.sha512(password, salt)
        case .pbkdf2SHA512(let iterations):
            return Crypto.pbkdf2SHA512(password: password, salt: salt, iterations: iterations, length: hashLength)
        }
    }

    /// Hashes `password` the same way and compares in constant time. The full cost is paid every time:
    /// that cost is what makes guessing expensive, so nothing here may be cached or short-cut.
    func verify(_ password: [UInt8]) -> Bool {
        Crypto.constantTimeEqual(PasswordHash.digest(kind, password: password, salt: salt), hash)
    }

    /// The text after `user:` in the file.
    var encoded: String {
        switch kind {
        case .sha512: return "$6$\(Base64.encode(salt))$\(Base64.encode(hash))"
        case .pbkdf2SHA512(let iterations):
            return "$7$\(iterations)$\(Base64.encode(salt))$\(Base64.encode(hash))"
        }
    }

    /// Parses the hash field. Unlike mosquitto's strtok-based reader, empty fields (`$7$$…`) are errors,
    /// and so is a plain-text password (mosquitto 2.0 drops such an entry with a log line; refusing the
    /// file makes the mistake visible before anyone wonders why a user cannot log in).
    static func parse(_ field: ArraySlice<UInt8>) -> Result<PasswordHash, ParseError> {
        let dollar = UInt8(ascii: "$")
        guard field.first == dollar else { return .failure(.notHashed) }
        let parts = field.dropFirst().split(separator: dollar, omittingEmptySubsequences: false)
        let kind: Kind
        let saltText: ArraySlice<UInt8>
        let hashText: ArraySlice<UInt8>
        switch parts.first.map(Array.init) {
        case Array("6".utf8)?:
            guard parts.count == 3 else { return .failure(.fieldCount("$6$SALT$HASH")) }
            kind = .sha512
            saltText = parts[1]
            hashText = parts[2]
        case Array("7".utf8)?:
            guard parts.count == 4 else { return .failure(.fieldCount("$7$ITERATIONS$SALT$HASH")) }
            guard let iterations = parseIterations(parts[1]) else { return .failure(.iterations) }
            kind = .pbkdf2SHA512(iterations: iterations)
            saltText = parts[2]
            hashText = parts[3]
        default:
            return .failure(.unknownType)
        }
        guard let salt = Base64.decode(saltText), acceptedSaltLengths.contains(salt.count) else {
            return .failure(.salt)
        }
        guard let hash = Base64.decode(hashText), hash.count == hashLength else { return .failure(.hash) }
        return .success(PasswordHash(kind: kind, salt: salt, hash: hash))
    }

    /// 1...Int32.max in plain decimal: PBKDF2 takes an `int`.
    private static func parseIterations(_ text: ArraySlice<UInt8>) -> Int? {
        guard !text.isEmpty, text.count <= 10 else { return nil }
        var value = 0
        for byte in text {
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value >= 1 && value <= Int(Int32.max) ? value : nil
    }

    enum ParseError: Error, Equatable, CustomStringConvertible {
        case notHashed, unknownType
        case fieldCount(String)
        case iterations, salt, hash

        var description: String {
            switch self {
            case .notHashed: return "password is not hashed (expected $6$… or $7$…; use `midge passwd`)"
            case .unknownType: return "unknown hash type (expected $6$ or $7$)"
            case .fieldCount(let form): return "malformed hash (expected \(form))"
            case .iterations: return "iteration count must be a number from 1 to 2147483647"
            case .salt: return "salt is not base64 of 12 or 64 bytes"
            case .hash: return "hash is not base64 of 64 bytes"
            }
        }
    }
}
