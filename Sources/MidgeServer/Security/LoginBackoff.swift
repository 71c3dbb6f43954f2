// The failed-login back-off the auth gate applies to every CONNECT (MQTT, WebSocket and the HTTP gateway alike).

/// Who waits, and how long, before the next password check. Pure: the caller passes the clock.
///
/// | failures (within `failureMemory` of the last)   | next check from that address with that user name      |
/// |--------------------------------------------------|--------------------------------------------------------|
/// | fewer than `AuthGate.freeFailures` (3)           | at once                                                |
/// | 3, 4, 5 …                                        | after 0.5 s, 1 s, 2 s … at most `AuthGate.maxDelay` (8 s) |
/// | a success                                        | resets that address and user name                      |
/// | `addressFreeFailures` from the address, any user | every unverified check from the address waits likewise |
///
/// Keyed by address *and* user name: a client guessing one account's password slows only its own guesses, so other
/// users behind the same address (a NAT, a proxy, the HTTP gateway's callers) keep logging in at once. Rotating user
/// names is bounded by the address-wide count, which is high enough that ordinary typos never reach it.
struct LoginBackoff {
    /// Failures from one address, over every user name, before the address as a whole is slowed.
    static let addressFreeFailures = 100
    /// Addresses and user names remembered at most; beyond it the stale ones go, then (under a scan) all.
    static let maxEntries = 65_536

    private struct Record {
        var count: Int
        var last: Double
    }

    private var byUser: [String: Record] = [:]
    private var byAddress: [String: Record] = [:]

    private static func key(_ host: String, _ username: String?) -> String {
        // NUL cannot occur in an MQTT string [MQTT-1.5.3-2], so the pair cannot collide.
        host + "\u{0}" + (username ?? "")
    }

    /// Seconds the next check for `username` from `host` waits.
    mutating func delay(host: String, username: String?, now: Double) -> Double {
        let user = Self.current(&byUser, Self.key(host, username), now: now)
        let address = Self.current(&byAddress, host, now: now)
        var delay = AuthGate.delay(afterFailures: user)
        if address > Self.addressFreeFailures {
            let extra = address - Self.addressFreeFailures - 1 + AuthGate.freeFailures
            delay = max(delay, AuthGate.delay(afterFailures: extra))
        }
        return delay
    }

    mutating func recordFailure(host: String, username: String?, now: Double) {
        Self.add(&byUser, Self.key(host, username), now: now)
        Self.add(&byAddress, host, now: now)
    }

    /// The address-wide count stays: one good account must not wipe a scan's record.
    mutating func recordSuccess(host: String, username: String?) {
        byUser[Self.key(host, username)] = nil
    }

    private static func current(_ table: inout [String: Record], _ key: String, now: Double) -> Int {
        guard let record = table[key] else { return 0 }
        if now - record.last > AuthGate.failureMemory {
            table[key] = nil
            return 0
        }
        return record.count
    }

    private static func add(_ table: inout [String: Record], _ key: String, now: Double) {
        let count = (table[key]?.count ?? 0) + 1
        table[key] = Record(count: count, last: now)
        if table.count > maxEntries {
            table = table.filter { now - $0.value.last <= AuthGate.failureMemory }
            if table.count > maxEntries { table = [key: Record(count: count, last: now)] }
        }
    }
}
