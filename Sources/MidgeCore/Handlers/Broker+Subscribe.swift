// SUBSCRIBE (§3.8.4): grant or refuse each filter, one SUBACK, then the retained messages that match.
import MQTTCodec

extension Broker {
    func handleSubscribe(_ received: Subscribe, from client: ClientConnection, into actions: inout [Action]) {
        let session = client.session
        var subscribe = received
        if !client.info.mountPoint.isEmpty {
            for index in subscribe.requests.indices {
                guard let mounted = Mount.filter(subscribe.requests[index].filter, under: client.info.mountPoint) else {
                    close(client, for: .mountedTopicTooLong, into: &actions)
                    return
                }
                subscribe.requests[index].filter = mounted
            }
        }
        for request in subscribe.requests
        where isTooDeep(request.filter.bytes, in: .subscribe, from: client, into: &actions) {
            return
        }
        var codes: [SubAckReturnCode] = []
        var loggedRefusal = false
        codes.reserveCapacity(subscribe.requests.count)
        // Granted filters in order; a filter repeated in the packet keeps only its last grant, at its last place.
        // Each filter's slot is found through `grantedSlot`, so a packet of n filters costs O(n), not O(n²).
        var granted: [SubscriptionRequest?] = []
        var grantedSlot: [TopicFilter: Int] = [:]
        // Several filters act like a series of SUBSCRIBEs answered by one SUBACK [MQTT-3.8.4-4].
        for request in subscribe.requests {
            // A shared subscription is authorised on the filter its messages match, as if it were not shared, unless
            // the rules are written for the `$share/…` text.
            let checkedFilter: TopicFilter
            let shared = SharedSubscription(request.filter)
            switch shared {
            case .plain:
                checkedFilter = request.filter
            case .shared(_, let inner):
                checkedFilter =
                    client.accessControl.checksSharedFiltersAsSent
                    ? request.filter : TopicFilter(bytes: inner) ?? request.filter
            case .invalid:
                log(
                    .notice,
                    "Client \(session.clientID) refused subscription to \(request.filter): invalid shared subscription."
                )
                codes.append(.failure)
                continue
            }
            guard
                client.accessControl.maySubscribe(
                    clientID: session.clientID, username: client.username, filter: checkedFilter)
            else {
                log(.debug, "Client \(session.clientID) denied subscription to \(request.filter).")
                codes.append(.failure)
                continue
            }
            let limit = configuration.maxSubscriptions
            if limit > 0 && session.subscriptions.count >= limit && session.subscriptions[request.filter] == nil {
                if !loggedRefusal {
                    loggedRefusal = true
                    log(
                        .notice,
                        "Client \(session.clientID) refused subscription to \(request.filter): max_subscriptions (\(limit)) reached."
                    )
                }
                counters.subscriptionsRefused += 1
                codes.append(.failure)
                continue
            }
            let qos = min(request.qos, configuration.maxQoS)
            // An identical filter is replaced, never duplicated [MQTT-3.8.4-3].
            if subscriptionTrie.subscribe(request.filter, session: session, qos: qos) { counters.subscriptions += 1 }
            session.subscriptions[request.filter] = qos
            if let journal, !session.cleanSession {
                journal.records.append(
                    .subscriptionAdded(clientID: session.clientID, filter: request.filter, qos: qos))
            }
            codes.append(.granted(qos))
            subscriptionEvents?(.subscribed(clientID: session.clientID, qos: qos, filter: request.filter))
            if let earlier = grantedSlot.updateValue(granted.count, forKey: request.filter) { granted[earlier] = nil }
            // No retained messages for a shared subscription, as mosquitto does (the MQTT 5 rule).
            if case .plain = shared {
                granted.append(SubscriptionRequest(filter: request.filter, qos: qos))
            } else {
                granted.append(nil)
            }
        }
        // One code per filter, in order, same packet id [MQTT-3.8.4-1][MQTT-3.8.4-5][MQTT-3.9.3-1].
        // With persistence on, the SUBACK waits for the subscriptions to be durable; the retained messages need not
        // wait for it (§3.8.4 lets PUBLISHes matching a subscription go out before its SUBACK).
        sendAcknowledgement(
            .suback(SubAck(packetID: subscribe.packetID, returnCodes: codes)), to: client.id, into: &actions)
        journal?.lastStoredMessage = 0
        for case let subscription? in granted { sendRetained(matching: subscription, to: session, into: &actions) }
    }

    /// Retained messages for a new (or renewed) subscription, RETAIN=1, QoS the lower of the stored message's
    /// and the grant [MQTT-3.3.1-6][MQTT-3.3.1-8][MQTT-3.8.4-6], or the grant under `upgrade_outgoing_qos`, as
    /// mosquitto replays them.
    private func sendRetained(
        matching subscription: SubscriptionRequest, to session: Session, into actions: inout [Action]
    ) {
        let control = accessControl(of: session)
        let checksDeliveries = control.checksDeliveries
        let ceiling = configuration.upgradeOutgoingQoS ? QoS.exactlyOnce : nil
        retained.forEachMatch(subscription.filter) { message, source in
            if checksDeliveries
                && !control.mayReceive(
                    clientID: session.clientID, username: session.username, topic: message.topic)
            {
                return
            }
            // Kept, not deleted, as mosquitto does: if the setter's permission comes back, so does the message.
            guard setterMayStillPublish(message, source) else { return }
            deliver(
                message, qos: min(ceiling ?? message.qos, subscription.qos), retain: true, to: session, from: nil,
                into: &actions)
        }
    }
}
