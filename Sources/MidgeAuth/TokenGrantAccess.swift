// One verified token's claims as the permissions of the client that presented it, handed to the core with its
// admission (`AdmissionAnswer.accessControl`).
import MQTTCodec
import MidgeCore

/// What the core asks about a token client, answered from that client's own grants: no table lookup by client id
/// per publish and delivery, and nothing another client's CONNECT under the same id can change. The grants end when
/// the token expires, also on a connection that stays open.
struct TokenGrantAccess: AccessControl {
    let grants: TokenAuthenticator.Grants
    let leeway: Int64
    let now: @Sendable () -> Int64

    var checksDeliveries: Bool { true }

    private var isLive: Bool {
        guard let expiry = grants.expiry else { return true }
        return now() < expiry &+ leeway
    }

    func mayPublish(clientID: String, username: String?, topic: TopicName) -> Bool {
        ReservedTopics.permit(topic, writing: true) && isLive && grants.publish.contains { $0.matches(topic) }
    }

    /// The requested filter must lie within one granted filter (see `TokenAuthenticator.maySubscribe`).
    func maySubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool {
        isLive && grants.subscribe.contains { FilterCover.covers($0, filter) }
    }

    func mayReceive(clientID: String, username: String?, topic: TopicName) -> Bool {
        ReservedTopics.permit(topic, writing: false) && isLive && grants.subscribe.contains { $0.matches(topic) }
    }
}
