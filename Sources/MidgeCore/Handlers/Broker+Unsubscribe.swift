// UNSUBSCRIBE (§3.10.4): remove exactly the named filters, always answer UNSUBACK.
import MQTTCodec

extension Broker {
    func handleUnsubscribe(_ received: Unsubscribe, from client: ClientConnection, into actions: inout [Action]) {
        let session = client.session
        var unsubscribe = received
        if !client.info.mountPoint.isEmpty {
            for index in unsubscribe.filters.indices {
                guard let mounted = Mount.filter(unsubscribe.filters[index], under: client.info.mountPoint) else {
                    close(client, for: .mountedTopicTooLong, into: &actions)
                    return
                }
                unsubscribe.filters[index] = mounted
            }
        }
        for filter in unsubscribe.filters where isTooDeep(filter.bytes, in: .unsubscribe, from: client, into: &actions)
        {
            return
        }
        for filter in unsubscribe.filters {
            subscriptionEvents?(.unsubscribed(clientID: session.clientID, filter: filter))
            // Byte-exact comparison, no wildcard matching [MQTT-3.10.4-1]. Deliveries already in flight or queued
            // are not touched and complete [MQTT-3.10.4-3]; nothing new arrives through the filter [MQTT-3.10.4-2].
            // A refused UNSUBSCRIBE (mosquitto's unsubscribe ACL) leaves the subscription, and is still acknowledged.
            guard
                client.accessControl.mayUnsubscribe(
                    clientID: session.clientID, username: client.username, filter: filter),
                session.subscriptions.removeValue(forKey: filter) != nil
            else { continue }
            if subscriptionTrie.unsubscribe(filter, session: session) { counters.subscriptions -= 1 }
            if let journal, !session.cleanSession {
                journal.records.append(.subscriptionRemoved(clientID: session.clientID, filter: filter))
            }
        }
        // Always, even when nothing was removed, once for all filters [MQTT-3.10.4-4][MQTT-3.10.4-5][MQTT-3.10.4-6].
        sendAcknowledgement(.unsuback(unsubscribe.packetID), to: client.id, into: &actions)
    }
}
