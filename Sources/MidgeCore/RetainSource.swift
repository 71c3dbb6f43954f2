// `check_retain_source`: a retained message remembers who set it, and is replayed to a new subscriber only while
// that client may still publish it, as mosquitto checks its retained messages.
import MQTTCodec

/// The client id, user name and listener security profile a retained message was published under (mosquitto keeps
/// the source listener too, for `per_listener_settings`). Shared by the retained messages one client sets in a row
/// (`Broker.lastRetainSource`), so a publisher of many retained topics costs one of these.
final class RetainSource {
    let clientID: String
    let username: String?
    let securityProfile: Int

    init(clientID: String, username: String?, securityProfile: Int) {
        self.clientID = clientID
        self.username = username
        self.securityProfile = securityProfile
    }
}

extension Broker {
    /// Who sets a retained message now, nil when nobody will ask (`check_retain_source false`).
    func retainSource(of client: ClientConnection) -> RetainSource? {
        guard configuration.checkRetainSource else { return nil }
        if let last = lastRetainSource, ClientIDKey(last.clientID) == ClientIDKey(client.clientID),
            last.username == client.username, last.securityProfile == client.info.securityProfile
        {
            return last
        }
        let source = RetainSource(
            clientID: client.clientID, username: client.username, securityProfile: client.info.securityProfile)
        lastRetainSource = source
        return source
    }

    /// Whether a retained message may still be replayed: its setter's permission to publish it is asked again, of the
    /// ACL of the listener it published through, as that may have changed (a SIGHUP reload) since. Messages without a
    /// source (the broker's own, and those restored from the store, which keeps no source) are not checked, as
    /// mosquitto skips those without one.
    func setterMayStillPublish(_ message: Message, _ source: RetainSource?) -> Bool {
        guard let source, configuration.checkRetainSource else { return true }
        return security(source.securityProfile).accessControl.mayPublish(
            clientID: source.clientID, username: source.username, topic: message.topic)
    }
}
