// Inbound PUBLISH (§3.3.4, §4.3): acknowledgement, authorisation, the retained store, then routing.
import MQTTCodec

extension Broker {
    func handlePublish(_ publish: Publish, from client: ClientConnection, into actions: inout [Action]) {
        counters.messagesReceived += 1
        guard client.info.mountPoint.isEmpty else {
            // A mounted client's copy goes the same way with the full topic; the common case copies nothing.
            guard let topic = Mount.topic(publish.topic, under: client.info.mountPoint) else {
                close(client, for: .mountedTopicTooLong, into: &actions)
                return
            }
            var mounted = publish
            mounted.topic = topic
            handle(mounted, from: client, into: &actions)
            return
        }
        handle(publish, from: client, into: &actions)
    }

    /// A PUBLISH with its full topic.
    private func handle(_ publish: Publish, from client: ClientConnection, into actions: inout [Action]) {
        guard publish.qos <= configuration.maxQoS else {
            close(client, for: .qosAboveMaximum(publish.qos), into: &actions)
            return
        }
        guard !isTooDeep(publish.topic.bytes, in: .publish, from: client, into: &actions) else { return }
        let session = client.session
        if publish.qos != .atMostOnce, let journal, !journal.writable {
            refuseWhileStoreFails(publish, from: client, journal)
            return
        }
        if publish.retain && !configuration.retainAvailable {
            close(client, for: .retainUnavailable, into: &actions)
            return
        }
        // [MQTT-4.6.0-2][MQTT-4.6.0-3] acknowledgements go in arrival order, each PUBLISH answered as it is handled.
        // Without a store the acknowledgement goes before the message's own deliveries (a client subscribed to its
        // own topic sees its PUBACK first, as from mosquitto); with one it follows the records it waits for.
        let acknowledgesFirst = journal == nil
        switch publish.qos {
        case .atMostOnce:
            accept(publish, from: client, into: &actions)
        case .atLeastOnce:
            // Same id [MQTT-4.3.2-2]; with persistence on, once what it changed is on disk.
            guard let id = publish.packetID else { return }
            if acknowledgesFirst { sendAcknowledgement(.puback(id), to: client.id, into: &actions) }
            accept(publish, from: client, into: &actions)
            if !acknowledgesFirst { sendAcknowledgement(.puback(id), to: client.id, into: &actions) }
        case .exactlyOnce:
            guard let id = publish.packetID else { return }
            // Method B: route now, remember the id until PUBREL; a repeat is answered but not routed again
            // [MQTT-4.3.3-2].
            let isNew = session.activeFlows.inboundQoS2.insert(id.rawValue).inserted
            if acknowledgesFirst { sendAcknowledgement(.pubrec(id), to: client.id, into: &actions) }  // [MQTT-4.6.0-3]
            if isNew {
                accept(publish, from: client, into: &actions)
                // After the routing records: a torn write that keeps this id but not the message would make the
                // client's resend look like a repeat.
                if let journal, !session.cleanSession {
                    journal.records.append(.inboundReceived(clientID: session.clientID, packetID: id))
                }
            }
            if !acknowledgesFirst { sendAcknowledgement(.pubrec(id), to: client.id, into: &actions) }
        }
    }

    /// The store cannot write: the PUBLISH is neither routed nor acknowledged, so the client still owns it and
    /// sends it again when it reconnects [MQTT-4.4.0-1]. Logged once per episode (see `setStoreWritable`).
    private func refuseWhileStoreFails(_ publish: Publish, from client: ClientConnection, _ journal: Journal) {
        if journal.refusedInEpisode == 0 {
            log(
                .warning,
                "Client \(client.clientID): QoS \(publish.qos.rawValue) PUBLISH not acknowledged: the store cannot "
                    + "write.")
        }
        journal.refusedInEpisode += 1
        counters.publishesRefused += 1
    }

    /// Takes ownership of the message, unless the client may not publish it: then it is acknowledged as
    /// usual and dropped [MQTT-3.3.5-2]. `$SYS` is the broker's own but for bridge states (as in mosquitto).
    private func accept(_ publish: Publish, from client: ClientConnection, into actions: inout [Action]) {
        guard !publish.topic.isReservedForBroker,
            client.accessControl.mayPublish(clientID: client.clientID, username: client.username, topic: publish.topic)
        else { return }
        let limit = configuration.messageSizeLimit
        if limit > 0 && publish.payload.count > limit {
            // mosquitto's message_size_limit for 3.1.1 clients: acknowledged as usual, dropped, connection kept.
            counters.messagesOversized += 1
            log(
                .notice,
                "Client \(client.clientID): dropped a PUBLISH to \(publish.topic) with a \(publish.payload.count)-byte "
                    + "payload, above message_size_limit (\(limit)).")
            return
        }
        // After the size limit, which bounds what a control handler is given to parse.
        if consumeControlRequest(publish, from: client, into: &actions) { return }
        // The publisher's DUP is never copied [MQTT-3.3.1-3]; the message keeps its own QoS for downgrading.
        let message = Message(
            topic: publish.topic, payload: publish.payload, qos: publish.qos,
            storeID: journal?.allocateMessageID() ?? 0)
        if publish.retain { updateRetained(with: message, source: retainSource(of: client)) }
        route(message, retain: publish.retain, from: client, origin: client.session, into: &actions)
    }

    /// RETAIN=1: store or replace [MQTT-3.3.1-5], or delete on an empty payload, which is never stored
    /// itself [MQTT-3.3.1-10][MQTT-3.3.1-11]. RETAIN=0 never gets here [MQTT-3.3.1-12].
    func updateRetained(with message: Message, source: RetainSource? = nil) {
        guard configuration.retainAvailable else { return }
        // `$SYS` topics are the broker's own and published again after a restart: not worth a record each interval.
        let journal = message.topic.isSysTopic ? nil : journal
        if message.payload.isEmpty {
            retained.remove(message.topic)
            journal?.records.append(.retainedCleared(topic: message.topic))
            return
        }
        let outcome = retained.store(
            message, source: source, maxCount: configuration.retainedMessagesMax,
            maxBytes: configuration.retainedBytesMax, growthAllowed: !memoryCeilingReached)
        switch outcome {
        case .stored:
            journal?.records.append(.retainedSet(topic: message.topic, payload: message.payload, qos: message.qos))
        case .refused:
            // The message is still routed; only its retained copy is refused (and any older one of the topic gone).
            journal?.records.append(.retainedCleared(topic: message.topic))
            if counters.retainedRefused == 0 || counters.retainedRefused.isMultiple(of: 1000) {
                log(
                    .warning,
                    "Retained message on \(message.topic) not stored: \(retainedLimitReason) "
                        + "(\(counters.retainedRefused + 1) refused so far).")
            }
            counters.retainedRefused += 1
        }
    }

    private var retainedLimitReason: String {
        if memoryCeilingReached { return "memory_limit reached" }
        if configuration.retainedMessagesMax > 0 && retained.count >= configuration.retainedMessagesMax {
            return "retained_messages_max (\(configuration.retainedMessagesMax)) reached"
        }
        return "retained_bytes_max (\(configuration.retainedBytesMax)) reached"
    }

    /// Closes the connection when a topic name or filter it sent is deeper than `max_topic_levels` (checked before
    /// anything is stored, so the trie never sees it). True when it did. Inlined: for a topic shorter than the limit
    /// in bytes it is one comparison.
    @inline(__always)
    func isTooDeep(
        _ topic: [UInt8], in type: PacketType, from client: ClientConnection, into actions: inout [Action]
    ) -> Bool {
        guard TopicDepth.exceeds(topic, limit: configuration.maxTopicLevels) else { return false }
        return closeTooDeep(topic, in: type, from: client, into: &actions)
    }

    private func closeTooDeep(
        _ topic: [UInt8], in type: PacketType, from client: ClientConnection, into actions: inout [Action]
    ) -> Bool {
        counters.topicsTooDeep += 1
        close(client, for: .topicTooDeep(type, levels: TopicDepth.levelCount(topic)), into: &actions)
        return true
    }
}
