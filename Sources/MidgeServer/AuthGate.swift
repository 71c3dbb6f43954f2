// CONNECT authentication off the core's thread: password checks on their own queue, a growing delay for addresses
// that keep failing, and the sealed verdict the core's authenticator reads back.
import Dispatch
import Glibc
import MQTTCodec
import MidgeCore
import Synchronization

/// What the gate decided about one CONNECT, on its way back to the connection's loop.
struct AuthVerdict: Sendable {
    let connection: ConnectionID
    let connect: Connect
    let code: ConnectReturnCode
}

/// Why: a password check costs a PBKDF2 (and a token check a signature verification). Done by the core, every
/// guess would stall every client's traffic; done here, a guess costs the broker one hash on a queue of its own,
/// while the loops and the core go on. An address and user name whose attempts keep failing wait longer and longer
/// before the next check (up to `maxDelay`, see `LoginBackoff`) and may have only `maxWaitingPerAddress` checks
/// waiting, so a guesser gets about one try per `maxDelay` seconds per account, and other users behind the same
/// address are not held up by it.
///
/// The core still asks its `Authenticator` at CONNECT, as it always does: the gate hands it a `VerdictAuthenticator`,
/// and the loop puts the gate's answer, sealed with a per-process secret, in place of the CONNECT's password.
/// Clients never reach the core with their own password bytes, so they cannot forge a verdict.
final class AuthGate: Sendable {
    /// Failures from one address that cost nothing; each further one doubles the wait, from `baseDelay`.
    static let freeFailures = 3
    static let baseDelay = 0.5
    static let maxDelay = 8.0
    /// A failure is forgotten this long after an address's last one.
    static let failureMemory = 60.0
    /// Checks that may wait at once for an address and user name that are being delayed; more are refused
    /// (CONNACK 3).
    static let maxWaitingPerAddress = 8
    /// Checks that may wait at once in all; more are refused (CONNACK 3) rather than queued without bound.
    static let maxWaiting = 4096

    let authenticator: any Authenticator
    /// False when the authenticator answers without work (`AllowAll`): the loop asks it directly.
    let checksOffLoop: Bool
    let coreAuthenticator: VerdictAuthenticator
    private let secret: [UInt8]
    private let queue = DispatchQueue(label: "midge.auth")
    private let state = LoopLocked(GateState())
    private let inboxes: [VerdictInbox]
    private let handles: [LoopHandle]
    private let logger: Logger

    private struct GateState {
        var backoff = LoginBackoff()
        /// Checks waiting, by address and user name.
        var waitingByKey: [String: Int] = [:]
        var waiting = 0
    }

    /// `secret` seals verdicts; gates of several listeners (`per_listener_settings`) share one, so the core's one
    /// `VerdictAuthenticator` reads them all.
    init(authenticator: any Authenticator, handles: [LoopHandle], logger: Logger, secret: [UInt8] = AuthGate.newSecret()) {
        self.authenticator = authenticator
        checksOffLoop = !(authenticator is AllowAll)
        self.secret = secret
        coreAuthenticator = VerdictAuthenticator(secret: secret)
        inboxes = handles.map { _ in VerdictInbox() }
        self.handles = handles
        self.logger = logger
    }

    static func newSecret() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    /// The password the core's authenticator turns back into `code`.
    func seal(_ code: ConnectReturnCode) -> [UInt8] { secret + [code.rawValue] }

    /// Queues the check of `connect` from the connection on loop `loop`; the verdict comes back through
    /// `takeVerdicts(loop:)` after a wake-up of that loop. Returns a verdict at once when the check is refused.
    func submit(_ connect: Connect, from id: ConnectionID, address: String, loop: Int) -> ConnectReturnCode? {
        let host = Self.host(of: address)
        let key = host + "\u{0}" + (connect.username ?? "")
        let now = Self.seconds()
        let delay: Double? = state.withLock { state in
            guard state.waiting < Self.maxWaiting else { return nil }
            let delay = state.backoff.delay(host: host, username: connect.username, now: now)
            let waiting = state.waitingByKey[key, default: 0]
            if delay > 0 && waiting >= Self.maxWaitingPerAddress { return nil }
            state.waitingByKey[key] = waiting + 1
            state.waiting += 1
            return delay
        }
        guard let delay else {
            logger.log(
                .notice,
                "Too many authentication attempts waiting for \(host) as \(connect.username ?? "<anonymous>"); "
                    + "refusing the CONNECT from \(address).")
            return .serverUnavailable
        }
        if delay > 0 {
            logger.log(
                .info, "Delaying the authentication of the CONNECT from \(address) by \(delay) s after failures.")
        }
        let work: @Sendable () -> Void = { [self] in
            let code = authenticator.authenticate(
                clientID: connect.clientID, username: connect.username, password: connect.password)
            let failed = code == .badUsernameOrPassword || code == .notAuthorized
            let finished = Self.seconds()
            state.withLock { state in
                state.waiting -= 1
                let left = state.waitingByKey[key, default: 1] - 1
                state.waitingByKey[key] = left > 0 ? left : nil
                if failed {
                    state.backoff.recordFailure(host: host, username: connect.username, now: finished)
                } else if code == .accepted {
                    state.backoff.recordSuccess(host: host, username: connect.username)
                }
            }
            deliver(AuthVerdict(connection: id, connect: connect, code: code), loop: loop)
        }
        if delay > 0 {
            queue.asyncAfter(deadline: .now() + delay, execute: work)
        } else {
            queue.async(execute: work)
        }
        return nil
    }

    /// The verdicts for loop `loop` that arrived since the last call.
    func takeVerdicts(loop: Int) -> [AuthVerdict] {
        inboxes[loop].verdicts.withLock { verdicts in
            defer { verdicts = [] }
            return verdicts
        }
    }

    private func deliver(_ verdict: AuthVerdict, loop: Int) {
        inboxes[loop].verdicts.withLock { $0.append(verdict) }
        Syscall.signalEventFD(handles[loop].wakeFD)
    }

    static func delay(afterFailures count: Int) -> Double {
        guard count >= freeFailures else { return 0 }
        return min(maxDelay, baseDelay * Double(1 << min(16, count - freeFailures)))
    }

    /// `127.0.0.1:5555` → `127.0.0.1`, `::1:5555` → `::1`: failures count per address, not per connection.
    static func host(of address: String) -> String {
        guard let colon = address.lastIndex(of: ":") else { return address }
        return String(address[..<colon])
    }

    private static func seconds() -> Double { Double(Syscall.monotonicNanoseconds()) / 1e9 }
}

/// One loop's verdicts waiting to be taken.
private final class VerdictInbox: Sendable {
    let verdicts = LoopLocked<[AuthVerdict]>([])
}

/// The authenticator the core calls: it reads the verdict the gate sealed into the password.
final class VerdictAuthenticator: Authenticator {
    private let secret: [UInt8]

    init(secret: [UInt8]) {
        self.secret = secret
    }

    func authenticate(clientID: String, username: String?, password: [UInt8]?) -> ConnectReturnCode {
        guard let password, password.count == secret.count + 1, password.starts(with: secret),
            let code = password.last.flatMap(ConnectReturnCode.init(rawValue:))
        else { return .notAuthorized }
        return code
    }
}
