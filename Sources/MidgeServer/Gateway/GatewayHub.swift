// What every HTTP subscriber of one `protocol http` listener shares: the topic history, the filters the gateway's
// own MQTT session (the recorder) subscribes to on their behalf, and who to wake when a message is recorded.
import Glibc
import MQTTCodec
import MidgeCore
import MidgeGateway
import Synchronization

/// Runs the connections the hub talks to: the event loops in a server, the test harness in tests.
protocol GatewayHubHost: AnyObject, Sendable {
    /// Make the recorder's connection and call `hub.recorderStarted`. Called outside the hub's lock.
    func startRecorder(for hub: GatewayHub)
    /// Call `poke` on `connection`'s transport soon, on its own loop. Called outside the hub's lock.
    func wake(_ connection: ConnectionID)
}

/// Why one session records for everyone (Nchan's model, with MQTT as the publisher side): event ids are the
/// history's, the same for every subscriber and connection, so `Last-Event-ID` resumes on any connection without a
/// client id; and a message is kept once however many streams read it, so memory follows the configuration, not
/// the number of streams.
///
/// | subscriber does                      | hub does                                                          |
/// |--------------------------------------|-------------------------------------------------------------------|
/// | `register` (request accepted)        | counts its filters; new ones go to the recorder, which SUBSCRIBEs   |
/// | waits for `isActive`                 | the recorder's SUBACK makes a filter active, its users are woken    |
/// | `events(after:)` on every `poke`     | each recorded message wakes the subscribers it matches             |
/// | `unregister` (answered or gone)      | a filter no one uses is kept `linger` more, then UNSUBSCRIBEd       |
///
/// Lingering is what lets a long poll on a new connection (or a browser that reconnects) find what was published
/// meanwhile: the filter stays recorded as long as its messages would be kept.
final class GatewayHub: Sendable {
    /// The recorder's MQTT user name: it is not in any password file, and `GatewayRecorderAccess` lets it
    /// subscribe to whatever a subscriber was allowed to. Random per process, so no client can present it.
    static let recorderUsername: String = {
        var generator = SystemRandomNumberGenerator()
        let bits = (0..<2).map { _ in String(generator.next() as UInt64, radix: 16) }.joined()
        return "midge-gateway-" + bits
    }()

    private struct FilterState {
        var users = 0
        /// SUBSCRIBE written by the recorder, SUBACK not yet seen.
        var requested = false
        var active = false
        var failed = false
        /// When the last user left (nanoseconds); `linger` later an unused filter is unsubscribed.
        var idleSince: Int64 = 0
    }

    private struct State {
        var history: TopicHistory
        var filters: [TopicFilter: FilterState] = [:]
        var subscribers: [ConnectionID: [TopicFilter]] = [:]
        /// Who to wake for a recorded message: subscribers by the topic a wildcard-free filter names, and those with a
        /// wildcard, who are tested. Testing every subscriber's filters per message was a third of the broker's CPU
        /// with 5,000 subscribers on 5,000 topics.
        var byTopic: [[UInt8]: Set<ConnectionID>] = [:]
        var withWildcards: Set<ConnectionID> = []
        var recorder: ConnectionID?
        var recorderStarting = false
        var host: (any GatewayHubHost)?
        /// Messages were recorded since the last `takeChangedHistory`.
        var changed = false
    }

    let linger: Int64
    let maxQoS: QoS
    private let state: LoopLocked<State>

    init(limits: TopicHistoryLimits, maxQoS: QoS, firstID: UInt64 = 0) {
        var history = TopicHistory(limits: limits)
        history.continueAbove(firstID)
        state = LoopLocked(State(history: history))
        linger = Int64(limits.maxAgeSeconds) * 1_000_000_000
        self.maxQoS = maxQoS
    }

    func attach(_ host: any GatewayHubHost) {
        state.withLock { $0.host = host }
    }

    // MARK: - Subscribers

    /// Counts `connection` as a user of `filters`; returns the history's last id, where a live subscriber starts.
    func register(_ connection: ConnectionID, filters: [TopicFilter]) -> UInt64 {
        var startRecorder = false
        var wakeRecorder: ConnectionID?
        let (lastID, host) = state.withLock { state -> (UInt64, (any GatewayHubHost)?) in
            if let previous = state.subscribers[connection] {
                Self.release(previous, in: &state, now: 0)
                Self.unindex(connection, previous, in: &state)
            }
            state.subscribers[connection] = filters
            for filter in filters {
                if filter.hasWildcards {
                    state.withWildcards.insert(connection)
                } else {
                    state.byTopic[filter.bytes, default: []].insert(connection)
                }
            }
            var fresh = false
            for filter in Set(filters) {
                var filterState = state.filters[filter] ?? FilterState()
                // A filter that failed with a recorder now gone gets another chance with the next one.
                if filterState.failed && state.recorder == nil { filterState.failed = false }
                filterState.users += 1
                fresh = fresh || (!filterState.active && !filterState.requested)
                state.filters[filter] = filterState
            }
            if fresh {
                if let recorder = state.recorder {
                    wakeRecorder = recorder
                } else if !state.recorderStarting {
                    state.recorderStarting = true
                    startRecorder = true
                }
            }
            return (state.history.lastID, state.host)
        }
        if startRecorder { host?.startRecorder(for: self) }
        if let wakeRecorder { host?.wake(wakeRecorder) }
        return lastID
    }

    func unregister(_ connection: ConnectionID, now: Int64) {
        state.withLock { state in
            guard let filters = state.subscribers.removeValue(forKey: connection) else { return }
            Self.release(filters, in: &state, now: now)
            Self.unindex(connection, filters, in: &state)
        }
    }

    private static func unindex(_ connection: ConnectionID, _ filters: [TopicFilter], in state: inout State) {
        state.withWildcards.remove(connection)
        for filter in filters where !filter.hasWildcards {
            state.byTopic[filter.bytes]?.remove(connection)
            if state.byTopic[filter.bytes]?.isEmpty == true { state.byTopic[filter.bytes] = nil }
        }
    }

    private static func release(_ filters: [TopicFilter], in state: inout State, now: Int64) {
        for filter in Set(filters) {
            guard var filterState = state.filters[filter] else { continue }
            filterState.users -= 1
            if filterState.users == 0 { filterState.idleSince = now }
            state.filters[filter] = filterState
        }
    }

    enum Readiness: Equatable {
        case waiting
        case active
        /// The recorder could not subscribe (its SUBACK refused a filter, e.g. over `max_subscriptions`).
        case failed
    }

    func readiness(of filters: [TopicFilter]) -> Readiness {
        state.withLock { state in
            var result = Readiness.active
            for filter in filters {
                guard let filterState = state.filters[filter] else { return .waiting }
                if filterState.failed { return .failed }
                if !filterState.active { result = .waiting }
            }
            return result
        }
    }

    func events(after id: UInt64, matching filters: [TopicFilter], limit: Int) -> [HistoryEvent] {
        state.withLock { $0.history.events(after: id, matching: filters, limit: limit) }
    }

    func newestID(matching filters: [TopicFilter]) -> UInt64? {
        state.withLock { $0.history.newestID(matching: filters) }
    }

    var lastID: UInt64 { state.withLock { $0.history.lastID } }

    /// A subscriber that read a full batch asks to be called again for the rest.
    func wakeAgain(_ connection: ConnectionID) {
        let host = state.withLock { $0.host }
        host?.wake(connection)
    }

    /// What `GET /topic` tells: HTTP subscribers whose filters match, messages kept, the last one's id.
    func info(_ topic: TopicName) -> (subscribers: Int, messages: Int, lastID: UInt64?) {
        state.withLock { state in
            let subscribers = state.subscribers.values.filter { TopicHistory.matches($0, topic) }.count
            let kept = state.history.info(topic)
            return (subscribers, kept.count, kept.lastID)
        }
    }

    // MARK: - Durability

    /// A copy of the history if messages were recorded since the last call (cheap: the arrays are shared until the
    /// next message is recorded).
    func takeChangedHistory(now: Int64) -> TopicHistory? {
        state.withLock { state in
            guard state.changed else { return nil }
            state.changed = false
            state.history.expire(now: now)
            return state.history
        }
    }

    /// The history read back at start-up, before any subscriber.
    func restore(_ history: TopicHistory) {
        state.withLock { state in
            let lastID = max(state.history.lastID, history.lastID)
            state.history = history
            state.history.continueAbove(lastID)
        }
    }

    // MARK: - The recorder

    func recorderStarted(_ connection: ConnectionID) {
        state.withLock { state in
            state.recorder = connection
            state.recorderStarting = false
        }
    }

    /// The loop could not make the recorder's connection; the next subscriber tries again.
    func recorderStartFailed() {
        state.withLock { $0.recorderStarting = false }
    }

    /// The recorder's session ended (shutdown, or the core closed it): filters are no longer recorded. If it had
    /// been accepted, subscribers still registered get a new recorder; if its CONNECT was refused, their filters
    /// fail (503) rather than the hub retrying in a loop, and the next new subscriber tries again.
    func recorderEnded(afterConnecting: Bool) {
        let (restart, woken, host) = state.withLock { state -> (Bool, [ConnectionID], (any GatewayHubHost)?) in
            state.recorder = nil
            state.recorderStarting = false
            for filter in Array(state.filters.keys) {
                state.filters[filter]?.active = false
                state.filters[filter]?.requested = false
                state.filters[filter]?.failed = !afterConnecting
                if state.filters[filter]?.users == 0 { state.filters[filter] = nil }
            }
            let restart = afterConnecting && !state.filters.isEmpty
            if restart { state.recorderStarting = true }
            return (restart, afterConnecting ? [] : Array(state.subscribers.keys), state.host)
        }
        if restart { host?.startRecorder(for: self) }
        for connection in woken { host?.wake(connection) }
    }

    /// What the recorder should SUBSCRIBE and UNSUBSCRIBE now.
    func recorderWork(now: Int64) -> (subscribe: [TopicFilter], unsubscribe: [TopicFilter]) {
        state.withLock { state in
            var subscribe: [TopicFilter] = []
            var unsubscribe: [TopicFilter] = []
            for (filter, filterState) in state.filters {
                // Not while its SUBSCRIBE is unanswered: the SUBACK would find no entry and the subscription stay.
                if filterState.users == 0 && !filterState.requested
                    && (filterState.idleSince + linger <= now || filterState.failed)
                {
                    if filterState.active { unsubscribe.append(filter) }
                    state.filters[filter] = nil
                } else if !filterState.active && !filterState.requested && !filterState.failed {
                    subscribe.append(filter)
                    state.filters[filter]?.requested = true
                }
            }
            state.history.expire(now: now)
            return (subscribe.sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }, unsubscribe)
        }
    }

    /// The recorder's SUBACK: `granted[i]` for `filters[i]`. Wakes the subscribers waiting for them.
    func recorderSubscribed(_ filters: [TopicFilter], granted: [Bool]) {
        let (waiting, host) = state.withLock { state -> ([ConnectionID], (any GatewayHubHost)?) in
            for (filter, ok) in zip(filters, granted) {
                state.filters[filter]?.requested = false
                state.filters[filter]?.active = ok
                state.filters[filter]?.failed = !ok
            }
            let changed = Set(filters)
            let waiting = state.subscribers.filter { !changed.isDisjoint(with: $0.value) }.map(\.key)
            return (waiting, state.host)
        }
        for connection in waiting { host?.wake(connection) }
    }

    /// Keeps a message the recorder received and wakes the subscribers it matches.
    func record(_ message: GatewayMessage, now: Int64) {
        let (matching, host) = state.withLock { state -> ([ConnectionID], (any GatewayHubHost)?) in
            _ = state.history.record(message, now: now)
            state.changed = true
            var matching = Array(state.byTopic[message.topic.bytes] ?? [])
            for connection in state.withWildcards
            where !(state.byTopic[message.topic.bytes]?.contains(connection) ?? false)
                && TopicHistory.matches(state.subscribers[connection] ?? [], message.topic)
            {
                matching.append(connection)
            }
            return (matching, state.host)
        }
        for connection in matching { host?.wake(connection) }
    }
}

/// The core's access control with one exception: the gateway's recorder, which subscribes only to filters some
/// HTTP subscriber was allowed (its own SUBSCRIBE is checked by the core) and hands each delivery on only to the
/// subscribers the access control lets receive it.
struct GatewayRecorderAccess: AccessControl {
    let inner: any AccessControl

    var checksDeliveries: Bool { inner.checksDeliveries }

    // The user name is compared only after the inner check refused: an allowed delivery costs what it did.

    func mayPublish(clientID: String, username: String?, topic: TopicName) -> Bool {
        inner.mayPublish(clientID: clientID, username: username, topic: topic)
    }

    func maySubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool {
        inner.maySubscribe(clientID: clientID, username: username, filter: filter)
            || username == GatewayHub.recorderUsername
    }

    func mayReceive(clientID: String, username: String?, topic: TopicName) -> Bool {
        inner.mayReceive(clientID: clientID, username: username, topic: topic)
            || username == GatewayHub.recorderUsername
    }

    // A wrapper must pass on what the rules inside it decide, or their defaults would apply instead.
    func mayUnsubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool {
        inner.mayUnsubscribe(clientID: clientID, username: username, filter: filter)
    }

    var checksSharedFiltersAsSent: Bool { inner.checksSharedFiltersAsSent }
}
