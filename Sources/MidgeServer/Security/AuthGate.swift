// CONNECT authentication off the core's thread: the core's admission requests checked on their own queue, with a
// growing delay for addresses that keep failing, and the answers handed back to the connections' loops.
import Dispatch
import Glibc
import MQTTCodec
import MidgeCore
import Synchronization

/// What the gate decided about one CONNECT, on its way back to the connection's loop.
struct AdmissionVerdict: Sendable {
    let connection: ConnectionID
    let answer: AdmissionAnswer
}

/// Why: a password check costs a PBKDF2 (and a token check a signature verification). Done by the core, every
/// guess would stall every client's traffic; done here, a guess costs the broker one hash on a queue of its own,
/// while the loops and the core go on. An address and user name whose attempts keep failing wait longer and longer
/// before the next check (up to `maxDelay`, see `LoginBackoff`) and may have only `maxWaitingPerAddress` checks
/// waiting, so a guesser gets about one try per `maxDelay` seconds per account, and other users behind the same
/// address are not held up by it.
///
/// The core never calls an `Authenticator`: it asks (`Action.admit`) once its own checks pass, and the loop that owns
/// the connection submits the request here; the answer (`Authenticator.admit`: verdict, identity, permissions) goes
/// back to that loop, which hands it to the core (`Broker.admissionAnswered`) ahead of the connection's held input.
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

    init(authenticator: any Authenticator, handles: [LoopHandle], logger: Logger) {
        self.authenticator = authenticator
        checksOffLoop = !(authenticator is AllowAll)
        inboxes = handles.map { _ in VerdictInbox() }
        self.handles = handles
        self.logger = logger
    }

    /// Queues the check of `request` from the connection on loop `loop`; the answer comes back through
    /// `takeVerdicts(loop:)` after a wake-up of that loop. Returns an answer at once when the check is refused.
    func submit(_ request: AdmissionRequest, address: String, loop: Int) -> AdmissionAnswer? {
        let host = Self.host(of: address)
        let username = request.username
        let key = host + "\u{0}" + (username ?? "")
        let now = Self.seconds()
        let delay: Double? = state.withLock { state in
            guard state.waiting < Self.maxWaiting else { return nil }
            let delay = state.backoff.delay(host: host, username: username, now: now)
            let waiting = state.waitingByKey[key, default: 0]
            if delay > 0 && waiting >= Self.maxWaitingPerAddress { return nil }
            state.waitingByKey[key] = waiting + 1
            state.waiting += 1
            return delay
        }
        guard let delay else {
            logger.log(
                .notice,
                "Too many authentication attempts waiting for \(host) as \(username ?? "<anonymous>"); "
                    + "refusing the CONNECT from \(address).")
            return .refused(.serverUnavailable)
        }
        if delay > 0 {
            logger.log(
                .info, "Delaying the authentication of the CONNECT from \(address) by \(delay) s after failures.")
        }
        let work: @Sendable () -> Void = { [self] in
            let answer = authenticator.admit(request)
            let code = answer.verdict
            let failed = code == .badUsernameOrPassword || code == .notAuthorized
            let finished = Self.seconds()
            state.withLock { state in
                state.waiting -= 1
                let left = state.waitingByKey[key, default: 1] - 1
                state.waitingByKey[key] = left > 0 ? left : nil
                if failed {
                    state.backoff.recordFailure(host: host, username: username, now: finished)
                } else if code == .accepted {
                    state.backoff.recordSuccess(host: host, username: username)
                }
            }
            deliver(AdmissionVerdict(connection: request.connection, answer: answer), loop: loop)
        }
        if delay > 0 {
            queue.asyncAfter(deadline: .now() + delay, execute: work)
        } else {
            queue.async(execute: work)
        }
        return nil
    }

    /// The verdicts for loop `loop` that arrived since the last call.
    func takeVerdicts(loop: Int) -> [AdmissionVerdict] {
        inboxes[loop].verdicts.withLock { verdicts in
            defer { verdicts = [] }
            return verdicts
        }
    }

    private func deliver(_ verdict: AdmissionVerdict, loop: Int) {
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
    let verdicts = LoopLocked<[AdmissionVerdict]>([])
}
