// Recently verified password-file credentials, so a client that logs in again and again (every HTTP request of the
// gateway is a CONNECT) pays the PBKDF2 check once a minute instead of every time.
import Glibc
import Synchronization

/// Successful verdicts only, by a salted SHA-512 of user name and password: a wrong password is always checked
/// (and delayed by the auth gate), and the cache never holds a password itself. Emptied when the file is replaced
/// (SIGHUP), so a removed user or a changed password takes effect at once; entries also expire after `lifetime`
/// seconds, which bounds how long a credential lives in memory after its last use. At most `capacity` entries:
/// beyond them the expired go, then all.
final class CredentialCache: Sendable {
    let lifetime: Int64
    let capacity: Int
    private let now: @Sendable () -> Int64
    private let salt: [UInt8]
    private let entries = Mutex<[[UInt8]: Int64]>([:])

    init(lifetime: Int64, capacity: Int = 10_000, now: @escaping @Sendable () -> Int64 = CredentialCache.monotonic) {
        self.lifetime = lifetime
        self.capacity = capacity
        self.now = now
        var generator = SystemRandomNumberGenerator()
        salt = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    private func key(username: String?, password: [UInt8]?) -> [UInt8]? {
        guard let username, let password else { return nil }
        // NUL cannot occur in an MQTT user name [MQTT-1.5.3-2]: user "a" + password "b…" never meets "ab" + "…".
        return Crypto.sha512(salt, Array(username.utf8), [0], password)
    }

    func contains(username: String?, password: [UInt8]?) -> Bool {
        guard lifetime > 0, let key = key(username: username, password: password) else { return false }
        let time = now()
        return entries.withLock { entries in
            guard let expiry = entries[key] else { return false }
            if time >= expiry {
                entries[key] = nil
                return false
            }
            return true
        }
    }

    func insert(username: String?, password: [UInt8]?) {
        guard lifetime > 0, let key = key(username: username, password: password) else { return }
        let time = now()
        entries.withLock { entries in
            if entries[key] == nil && entries.count >= capacity {
                entries = entries.filter { $0.value > time }
                if entries.count >= capacity { entries = [:] }
            }
            entries[key] = time + lifetime
        }
    }

    func removeAll() {
        entries.withLock { $0 = [:] }
    }

    @Sendable static func monotonic() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec)
    }
}
