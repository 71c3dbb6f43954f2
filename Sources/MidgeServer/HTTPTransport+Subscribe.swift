// GET /subscribe over the HTTP transport: the SUBSCRIBE it writes, the stream or poll it opens at the SUBACK, and
// the events it writes with the ids `Last-Event-ID` resumes from (§3.8, §3.9, HTML §9.2).
import MQTTCodec
import MidgeCore
import MidgeGateway

extension HTTPTransport {
    func startSubscription(
        _ command: SubscribeCommand, credentials: GatewayCredentials?, request: HTTPRequest, mqtt: inout [UInt8],
        wire: inout [UInt8], now: MonotonicTime
    ) {
        let lastSeen = command.lastEventID.flatMap { UInt64($0) } ?? 0
        if command.lastEventID != nil && UInt64(command.lastEventID ?? "") == nil {
            write(.error(.badRequest, "Last-Event-ID must be an id this server gave"), to: request, wire: &wire)
            return
        }
        // Without a client id the ids are this connection's own, while a Last-Event-ID (which browsers send on every
        // reconnect) comes from an earlier connection: numbering on above it keeps the first new events from looking
        // already seen.
        if command.clientID == nil { localHistory.continueAbove(lastSeen) }
        if case .pollIdle(var poll) = exchange {
            // The next poll of a kept-alive connection: same subscription, so it continues where the last one ended.
            guard case .longPoll(let timeout) = command.mode, poll.command.filters == command.filters,
                poll.command.clientID == command.clientID, poll.command.qos == command.qos
            else {
                write(
                    .error(.badRequest, "this connection polls another subscription; open a new connection",
                           closeConnection: true), to: request, wire: &wire)
                return
            }
            poll.request = request
            poll.command = command
            poll.lastSeen = max(lastSeen, poll.lastSeen)
            poll.deadline = now + Double(timeout)
            gateway.metrics.gateway.waitingPolls.wrappingAdd(1, ordering: .relaxed)
            exchange = .poll(poll)
            let missed = history(after: poll.lastSeen, clientID: command.clientID, now: now)
            if !missed.isEmpty { _ = answerPoll(poll, with: missed, wire: &wire, now: now) }
            return
        }
        let wanted = identity(for: credentials, request: request, clientID: command.clientID)
        guard usable(wanted, request: request, wire: &wire) else { return }
        if link != .none {
            // A connection that published may not turn into a subscriber: its session is a clean publisher's.
            write(
                .error(.badRequest, "subscribe on a new connection", closeConnection: true), to: request, wire: &wire)
            return
        }
        if command.qos > gateway.maxQoS {
            write(.error(.badRequest, "qos \(command.qos.rawValue) is above this broker's max_qos"), to: request,
                  wire: &wire)
            return
        }
        connectIfNeeded(wanted, cleanSession: !wanted.persistent, mqtt: &mqtt)
        let id = takePacketID()
        let requests = command.filters.map { SubscriptionRequest(filter: $0, qos: command.qos) }
        Packet.subscribe(Subscribe(packetID: id, requests: requests)).encode(into: &mqtt)
        var subscription = SubscriptionExchange(
            request: request, command: command, subscribeID: id.rawValue, deadline: nil, lastSeen: lastSeen)
        switch command.mode {
        case .sse:
            exchange = .stream(subscription)
        case .longPoll(let timeout):
            subscription.deadline = now + Double(timeout)
            gateway.metrics.gateway.waitingPolls.wrappingAdd(1, ordering: .relaxed)
            exchange = .poll(subscription)
        }
    }

    /// `$SYS` and below: the broker's own tree, which clients may not publish to (the core drops such messages).

    func subscribed(_ suback: SubAck, wire: inout [UInt8], now: MonotonicTime) -> TransportStatus {
        let subscription: SubscriptionExchange
        let isStream: Bool
        switch exchange {
        case .stream(let value): (subscription, isStream) = (value, true)
        case .poll(let value): (subscription, isStream) = (value, false)
        default: return .open
        }
        guard suback.packetID.rawValue == subscription.subscribeID else { return .open }
        if suback.returnCodes.contains(.failure) {
            // [MQTT-3.9.3-1] one code per filter, in order: name the first refused one.
            let index = suback.returnCodes.firstIndex(of: .failure) ?? 0
            let filter = subscription.command.filters[min(index, subscription.command.filters.count - 1)]
            if !isStream { gateway.metrics.gateway.waitingPolls.subtract(1, ordering: .relaxed) }
            exchange = .idle
            write(.forbidden("not authorized to subscribe to \(filter)"), to: subscription.request, wire: &wire)
            finished = true
            return .open
        }
        var ready = subscription
        ready.subscribed = true
        // Only a client that says what it saw gets history: a fresh page with the same client id starts afresh.
        let missed =
            subscription.command.lastEventID == nil
            ? [] : history(after: subscription.lastSeen, clientID: subscription.command.clientID, now: now)
        let waiting = early
        early = []
        if isStream {
            exchange = .stream(ready)
            gateway.metrics.gateway.openStreams.wrappingAdd(1, ordering: .relaxed)
            gateway.metrics.gateway.countResponse(status: 200)
            // The client has everything up to its Last-Event-ID: redeliveries of those are acknowledged, not written.
            highestWritten = max(highestWritten, ready.lastSeen)
            // Not through `write`: a stream has no Content-Length and no end.
            let retry = gateway.settings.retryMilliseconds
            wire.append(
                contentsOf: ServerSentEvents.responseHead(
                    retryMilliseconds: retry, headers: corsHeaders(for: ready.request)))
            for event in missed { writeEvent(event, format: ready.command.format, wire: &wire) }
            for incoming in waiting {
                let event = record(incoming, clientID: ready.command.clientID, now: now)
                writeEvent(event, format: ready.command.format, wire: &wire)
            }
            lastWrite = now
            return .open
        }
        exchange = .poll(ready)
        var buffered = missed
        for incoming in waiting {
            let event = record(incoming, clientID: ready.command.clientID, now: now)
            if event.sequence > (buffered.last?.sequence ?? ready.lastSeen) { buffered.append(event) }
        }
        if !buffered.isEmpty || ready.deadline.map({ now >= $0 }) == true {
            return answerPoll(ready, with: buffered, wire: &wire, now: now)
        }
        return .open
    }

    /// Acknowledges a delivery as soon as it is taken ([MQTT-4.3.2-1], [MQTT-4.3.3-1] on the client side): from
    /// here on the event history, not the session's in-flight window, is what keeps it for a reconnecting client.
    func acknowledge(_ publish: Publish) {
        guard let id = publish.packetID else { return }
        switch publish.qos {
        case .atMostOnce: break
        case .atLeastOnce: Packet.puback(id).encode(into: &replies)
        case .exactlyOnce: Packet.pubrec(id).encode(into: &replies)
        }
    }

    func deliver(_ incoming: Incoming, wire: inout [UInt8], now: MonotonicTime) -> TransportStatus {
        switch exchange {
        case .stream(let stream) where stream.subscribed:
            let event = record(incoming, clientID: stream.command.clientID, now: now)
            writeEvent(event, format: stream.command.format, wire: &wire)
            lastWrite = now
        case .poll(let poll) where poll.subscribed:
            let event = record(incoming, clientID: poll.command.clientID, now: now)
            // A redelivery of an event this poll's client saw already is acknowledged and not answered again.
            guard event.sequence > poll.lastSeen else { return .open }
            return answerPoll(poll, with: [event], wire: &wire, now: now)
        case .pollIdle(let poll):
            // Between polls: recorded, so the next poll (here or on a new connection) returns it.
            _ = record(incoming, clientID: poll.command.clientID, now: now)
        default:
            // A resumed session's queue arrives before the SUBACK: kept for when the stream opens.
            early.append(incoming)
        }
        return .open
    }

    /// Writes an event unless this connection wrote it (or a later one) already: a redelivery after a dropped
    /// connection keeps its first id, and the history replay has sent it.
    func writeEvent(_ event: RecordedEvent, format: MessageFormat, wire: inout [UInt8]) {
        guard event.sequence > highestWritten else { return }
        highestWritten = event.sequence
        ServerSentEvents.encode(event.message, id: String(event.sequence), format: format, into: &wire)
        gateway.metrics.gateway.eventsDelivered.wrappingAdd(1, ordering: .relaxed)
    }

    func answerPoll(
        _ poll: SubscriptionExchange, with events: [RecordedEvent], wire: inout [UInt8], now: MonotonicTime
    ) -> TransportStatus {
        gateway.metrics.gateway.waitingPolls.subtract(1, ordering: .relaxed)
        gateway.metrics.gateway.eventsDelivered.wrappingAdd(UInt64(events.count), ordering: .relaxed)
        var answered = poll
        answered.lastSeen = events.last?.sequence ?? poll.lastSeen
        answered.deadline = nil
        exchange = .pollIdle(answered)
        let response = HTTPResponse.longPoll(events.map { (id: String($0.sequence), message: $0.message) })
        write(response, to: poll.request, wire: &wire)
        lastRequest = now
        return .open
    }

    func record(_ incoming: Incoming, clientID: String?, now: MonotonicTime) -> RecordedEvent {
        let sequence: UInt64
        if let clientID {
            sequence = gateway.record(
                incoming.message, packetID: incoming.packetID, dup: incoming.dup, clientID: clientID,
                now: now.nanoseconds)
        } else {
            sequence = localHistory.record(
                incoming.message, packetID: incoming.packetID, dup: incoming.dup,
                maxEvents: gateway.settings.historyEvents, maxBytes: gateway.settings.historyBytes)
        }
        return RecordedEvent(sequence: sequence, message: incoming.message)
    }

    func history(after lastSeen: UInt64, clientID: String?, now: MonotonicTime) -> [RecordedEvent] {
        if let clientID { return gateway.resume(clientID: clientID, after: lastSeen, now: now.nanoseconds) }
        return localHistory.events(after: lastSeen)
    }
}
