// mosquitto 2.0's dynamic-security plugin built in: clients, groups and roles managed at run time over
// `$CONTROL/dynamic-security/v1`, kept in `dynamic-security.json`, checked at CONNECT and on every publish,
// subscription and delivery.
import Dispatch
import MQTTCodec
import MidgeCore
import Synchronization

/// The authenticator, access control and control-topic handler of one `dynamic-security.json`.
///
/// Thread safety: CONNECT checks run on the auth gate's queue and ACL checks on the thread that runs the core, while
/// commands change the state on the core's thread; all of them go through one `Mutex`, held only to look up or change
/// the state (password hashing happens outside it). A change is seen by the very next check, so a role's new rules
/// apply at once to clients already connected. The file is written on a queue of its own, in order, from a copy taken
/// under the lock, so the core never waits for the disk.
public final class DynamicSecurity: Authenticator, AccessControl, ControlTopicHandler {
    public static let controlTopic = "$CONTROL/dynamic-security/v1"

    public let topic: TopicName
    /// Where changes are saved; nil keeps them in memory (tests).
    public let path: String?
    private let state: Mutex<DynamicSecurityState>
    private let saves = DispatchQueue(label: "midge.dynamic-security.save")
    private let log: @Sendable (LogLevel, String) -> Void
    /// Hashed for an unknown user name, so its answer takes as long as a wrong password's.
    private let decoy = PasswordHash.make(password: Crypto.randomBytes(16))

    /// Reads the file; a missing, unreadable or malformed one is an error (mosquitto starts with an empty state, in
    /// which nobody can log in, and says so only in its log).
    public convenience init(path: String, log: @escaping @Sendable (LogLevel, String) -> Void) throws(AuthFileError) {
        let bytes = try TextLines.read(path: path)
        self.init(state: try DynamicSecurityState.load(bytes: bytes, source: path), path: path, log: log)
    }

    init(state: DynamicSecurityState, path: String?, log: @escaping @Sendable (LogLevel, String) -> Void = { _, _ in })
    {
        guard let topic = TopicName(Self.controlTopic) else { fatalError("BUG: the control topic is not a topic") }
        self.topic = topic
        self.path = path
        self.state = Mutex(state)
        self.log = log
    }

    /// Waits until every change made so far is written.
    public func flush() {
        saves.sync {}
    }

    /// The file's text as it would be written now.
    var fileText: String { state.withLock { $0.fileJSON.pretty } }

    // MARK: ControlTopicHandler

    public func handle(payload: [UInt8], clientID: String, username: String?) -> ControlReply {
        let (response, changes, disconnect) = state.withLock { state in
            let outcome = state.handle(payload: payload)
            if !outcome.changes.isEmpty { save(state.fileJSON.pretty) }
            return outcome
        }
        for change in changes { log(.info, "dynsec: \(clientID)/\(username ?? "") | \(change)") }
        return ControlReply(response: Array(response.compact.utf8), disconnect: disconnect)
    }

    /// Called with the lock held, so the writes are queued in the order of the changes.
    private func save(_ text: String) {
        guard let path else { return }
        let log = self.log
        saves.async {
            do {
                try AtomicFile.replace(path: path, with: Array(text.utf8))
            } catch {
                log(.error, "Error saving the dynamic security configuration: \(error)")
            }
        }
    }

    // MARK: Authenticator

    /// As mosquitto's plugin: a user name must be a client that is not disabled, has a password that matches and, if
    /// it has a client id, connects with that id. Every refusal is CONNACK 5, as mosquitto answers 3.1.1 clients.
    /// Without a user name the core's `allow_anonymous` decides, and the anonymous group's roles apply.
    public func authenticate(clientID: String, username: String?, password: [UInt8]?) -> ConnectReturnCode {
        guard let username else { return .accepted }
        let client = state.withLock { $0.client(username) }
        guard let client, let hash = client.password, let password, !client.disabled else {
            _ = (client?.password ?? decoy).verify(password ?? [])
            return .notAuthorized
        }
        if let required = client.clientID, !required.utf8.elementsEqual(clientID.utf8) {
            _ = hash.verify(password)
            return .notAuthorized
        }
        return hash.verify(password) ? .accepted : .notAuthorized
    }

    // MARK: AccessControl

    public var checksDeliveries: Bool { true }

    /// mosquitto checks `$share/group/filter` against the subscribe rules as it was sent, so rules written for it
    /// (`$share/#`) must keep working here.
    public var checksSharedFiltersAsSent: Bool { true }

    public func mayPublish(clientID: String, username: String?, topic: TopicName) -> Bool {
        guard ReservedTopics.permit(topic, writing: true) else { return false }
        return state.withLock { $0.allows(.publish(topic), username: username) }
    }

    public func maySubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool {
        state.withLock { $0.allows(.subscribe(filter), username: username) }
    }

    public func mayReceive(clientID: String, username: String?, topic: TopicName) -> Bool {
        guard ReservedTopics.permit(topic, writing: false) else { return false }
        return state.withLock { $0.allows(.receive(topic), username: username) }
    }

    public func mayUnsubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool {
        state.withLock { $0.allows(.unsubscribe(filter), username: username) }
    }
}
