// GET /subscribe over the HTTP transport: the SUBSCRIBE (ACL, retained messages) it writes, the stream or poll it
// opens once the hub records its filters, and the events it reads from the topic history (§3.8-3.11, HTML §9.2).
import MQTTCodec
import MidgeCore
import MidgeGateway

extension HTTPTransport {
    func startSubscription(
        _ command: SubscribeCommand, credentials: GatewayCredentials?, request: HTTPRequest, mqtt: inout [UInt8],
        wire: inout [UInt8], now: MonotonicTime
    ) {
        // A reconnecting EventSource sends Last-Event-ID whatever its URL says, so it wins over `since`.
        var start = command.since
        if let text = command.lastEventID {
            guard let id = UInt64(text) else {
                write(.error(.badRequest, "Last-Event-ID must be an id this server gave"), to: request, wire: &wire)
                return
            }
            start = .after(id)
        }
        if case .pollIdle(var poll) = exchange {
            // The next poll of a kept-alive connection: same subscription, so it continues where the last one ended.
            guard command.mode != .sse, command.mode != .webSocket, poll.command.filters == command.filters,
                poll.command.qos == command.qos,
                poll.command.clientID == command.clientID
            else {
                write(
                    .error(
                        .badRequest, "this connection polls another subscription; open a new connection",
                        closeConnection: true), to: request, wire: &wire)
                return
            }
            poll.request = request
            poll.command = command
            if case .after(let id) = start { poll.cursor = max(poll.cursor, min(id, gateway.hub.lastID)) }
            poll.retained = []
            poll.deadline = Self.deadline(command.mode, now: now)
            _ = gateway.hub.register(connection, filters: command.filters)
            gateway.metrics.gateway.waitingPolls.wrappingAdd(1, ordering: .relaxed)
            exchange = .poll(poll)
            _ = advance(wire: &wire, now: now)
            return
        }
        let wanted = identity(for: credentials, request: request, clientID: command.clientID)
        guard usable(wanted, request: request, wire: &wire) else { return }
        if link != .none {
            // A connection that published may not turn into a subscriber: its session is a publisher's.
            write(
                .error(.badRequest, "subscribe on a new connection", closeConnection: true), to: request, wire: &wire)
            return
        }
        if command.qos > gateway.maxQoS {
            write(
                .error(.badRequest, "qos \(command.qos.rawValue) is above this broker's max_qos"), to: request,
                wire: &wire)
            return
        }
        var upgrade: HTTPResponse?
        if command.mode == .webSocket {
            guard let accepted = acceptWebSocket(request, wire: &wire) else { return }
            upgrade = accepted
        }
        connectIfNeeded(wanted, cleanSession: true, mqtt: &mqtt)
        // SUBSCRIBE has the core check the ACL and send the retained messages; UNSUBSCRIBE right after, since the
        // messages themselves come from the hub (the UNSUBACK marks the end of the retained ones).
        let subscribeID = takePacketID()
        let requests = command.filters.map { SubscriptionRequest(filter: $0, qos: command.qos) }
        Packet.subscribe(Subscribe(packetID: subscribeID, requests: requests)).encode(into: &mqtt)
        let unsubscribeID = takePacketID()
        Packet.unsubscribe(Unsubscribe(packetID: unsubscribeID, filters: command.filters)).encode(into: &mqtt)
        var subscription = SubscriptionExchange(
            request: request, command: command, subscribeID: subscribeID.rawValue,
            unsubscribeID: unsubscribeID.rawValue, start: start, deadline: Self.deadline(command.mode, now: now))
        subscription.upgrade = upgrade
        if command.mode == .sse || command.mode == .webSocket {
            exchange = .stream(subscription)
        } else {
            gateway.metrics.gateway.waitingPolls.wrappingAdd(1, ordering: .relaxed)
            exchange = .poll(subscription)
        }
    }

    static func deadline(_ mode: SubscribeMode, now: MonotonicTime) -> MonotonicTime? {
        if case .longPoll(let timeout) = mode { return now + Double(timeout) }
        return nil
    }

    /// The SUBACK: refused filters end the request with 403; granted ones register with the hub, which puts the
    /// subscriber's cursor where it asked to start.
    func subscribed(_ suback: SubAck, wire: inout [UInt8], now: MonotonicTime) -> TransportStatus {
        guard var subscription = currentSubscription, suback.packetID.rawValue == subscription.subscribeID else {
            return .open
        }
        if suback.returnCodes.contains(.failure) {
            // [MQTT-3.9.3-1] one code per filter, in order: name the first refused one.
            let index = suback.returnCodes.firstIndex(of: .failure) ?? 0
            let filter = subscription.command.filters[min(index, subscription.command.filters.count - 1)]
            if case .poll = exchange { gateway.metrics.gateway.waitingPolls.subtract(1, ordering: .relaxed) }
            exchange = .idle
            write(.forbidden("not authorized to subscribe to \(filter)"), to: subscription.request, wire: &wire)
            finished = true
            return .open
        }
        subscription.subscribed = true
        let filters = subscription.command.filters
        let live = gateway.hub.register(connection, filters: filters)
        switch subscription.start {
        case nil:
            subscription.cursor = live
        case .oldest:
            subscription.cursor = 0
        case .newest:
            subscription.cursor = (gateway.hub.newestID(matching: filters) ?? live + 1) - 1
        case .after(let id):
            // An id above every one given (a client of another broker, or a clock set back) would hide what comes.
            subscription.cursor = min(id, live)
        }
        currentSubscription = subscription
        return advance(wire: &wire, now: now)
    }

    /// The UNSUBACK: the retained messages are all in.
    func unsubscribed(_ id: PacketID, wire: inout [UInt8], now: MonotonicTime) -> TransportStatus {
        guard var subscription = currentSubscription, id.rawValue == subscription.unsubscribeID else { return .open }
        subscription.retainedDone = true
        currentSubscription = subscription
        return advance(wire: &wire, now: now)
    }

    /// A delivery to this connection's own session: only the retained messages its SUBSCRIBE brought are used.
    /// Acknowledged at once ([MQTT-4.3.2-1], [MQTT-4.3.3-1] on the client side).
    func delivered(_ publish: Publish) {
        if let id = publish.packetID {
            switch publish.qos {
            case .atMostOnce: break
            case .atLeastOnce: Packet.puback(id).encode(into: &replies)
            case .exactlyOnce: Packet.pubrec(id).encode(into: &replies)
            }
        }
        guard publish.retain, var subscription = currentSubscription, !subscription.retainedDone,
            subscription.start == nil
        else { return }
        subscription.retained.append(
            GatewayMessage(topic: publish.topic, payload: publish.payload, qos: publish.qos, retain: true))
        currentSubscription = subscription
    }

    /// The subscription in progress (stream or waiting poll).
    var currentSubscription: SubscriptionExchange? {
        get {
            switch exchange {
            case .stream(let subscription), .poll(let subscription): subscription
            default: nil
            }
        }
        set {
            guard let newValue else { return }
            switch exchange {
            case .stream: exchange = .stream(newValue)
            case .poll: exchange = .poll(newValue)
            default: break
            }
        }
    }

    /// Opens the stream (or lets the poll answer) once the SUBACK, the retained messages and the hub are ready, then
    /// writes what the history holds after the cursor.
    func advance(wire: inout [UInt8], now: MonotonicTime) -> TransportStatus {
        guard var subscription = currentSubscription, subscription.subscribed, subscription.retainedDone else {
            return .open
        }
        let isStream: Bool
        if case .stream = exchange { isStream = true } else { isStream = false }
        if !subscription.open {
            switch gateway.hub.readiness(of: subscription.command.filters) {
            case .waiting:
                return .open
            case .failed:
                if !isStream { gateway.metrics.gateway.waitingPolls.subtract(1, ordering: .relaxed) }
                exchange = .idle
                let response = HTTPResponse.error(
                    .serviceUnavailable, "the gateway cannot record these filters now (see the broker's log)",
                    closeConnection: true)
                write(response, to: subscription.request, wire: &wire)
                return .open
            case .active:
                subscription.open = true
            }
            if isStream {
                gateway.metrics.gateway.openStreams.wrappingAdd(1, ordering: .relaxed)
                if let upgrade = subscription.upgrade {
                    openWebSocket(upgrade, retained: subscription.retained, cursor: subscription.cursor, wire: &wire)
                    subscription.retained = []
                    lastWrite = now
                    currentSubscription = subscription
                    return advance(wire: &wire, now: now)
                }
                gateway.metrics.gateway.countResponse(status: 200)
                // Not through `write`: a stream has no Content-Length and no end.
                var headers = corsHeaders(for: subscription.request)
                if gateway.settings.compression,
                    GzipStream.isAccepted(by: subscription.request.headers["Accept-Encoding"]),
                    let gzip = GzipStream(windowBits: Self.streamWindowBits, memoryLevel: Self.streamMemoryLevel)
                {
                    streamGzip = gzip
                    headers.append("Content-Encoding", "gzip")
                    headers.append("Vary", "Accept-Encoding")
                }
                if let responseSink {
                    responseSink.startStream(status: .ok, headers: ServerSentEvents.responseHeaders(headers))
                } else {
                    wire.append(contentsOf: ServerSentEvents.responseHead(headers: headers))
                }
                var body: [UInt8] = []
                ServerSentEvents.encodeRetry(milliseconds: gateway.settings.retryMilliseconds, into: &body)
                // Retained messages are the state at the start: they carry the cursor's id, so a reconnect resumes
                // after them.
                let id = subscription.cursor > 0 ? String(subscription.cursor) : nil
                for message in subscription.retained {
                    encodeEvent(message, id: id, format: subscription.command.format, into: &body)
                }
                writeStream(body, wire: &wire)
                subscription.retained = []
                lastWrite = now
            }
        }
        let batch = gateway.settings.readBatch
        let events = gateway.hub.events(
            after: subscription.cursor, matching: subscription.command.filters, limit: batch)
        if let last = events.last { subscription.cursor = last.id }
        let readable = events.filter(mayReceive)
        if events.count == batch { gateway.hub.wakeAgain(connection) }
        if isStream, webSocket != nil {
            for event in readable { sendFrame(event.message, id: String(event.id), wire: &wire) }
            if !readable.isEmpty { lastWrite = now }
            currentSubscription = subscription
            return .open
        }
        if isStream {
            var body: [UInt8] = []
            for event in readable {
                encodeEvent(event.message, id: String(event.id), format: subscription.command.format, into: &body)
            }
            if !readable.isEmpty {
                writeStream(body, wire: &wire)
                lastWrite = now
            }
            currentSubscription = subscription
            return .open
        }
        currentSubscription = subscription
        let answer =
            subscription.retained.map { (id: String(subscription.cursor), message: $0) }
            + readable.map { (id: String($0.id), message: $0.message) }
        if !answer.isEmpty || subscription.command.mode == .poll {
            return answerPoll(subscription, with: answer, wire: &wire, now: now)
        }
        return .open
    }

    /// The ACL's word on each delivery, as the core would ask it for a subscription of this client's.
    private func mayReceive(_ event: HistoryEvent) -> Bool {
        guard gateway.accessControl.checksDeliveries, let identity else { return true }
        return gateway.accessControl.mayReceive(
            clientID: identity.clientID, username: identity.username, topic: event.message.topic)
    }

    private func encodeEvent(_ message: GatewayMessage, id: String?, format: MessageFormat, into body: inout [UInt8]) {
        guard case .stream(let stream) = exchange else { return }
        var shown = message
        shown.qos = min(message.qos, stream.command.qos)
        ServerSentEvents.encode(shown, id: id, format: format, into: &body)
        gateway.metrics.gateway.eventsDelivered.wrappingAdd(1, ordering: .relaxed)
    }

    /// A 4 KiB window and a small hash: about 24 KiB of zlib state per compressed stream, against ~300 KiB at
    /// zlib's defaults; SSE events repeat their field names and topics within a few events, which is what a small
    /// window catches.
    static let streamWindowBits: Int32 = 12
    static let streamMemoryLevel: Int32 = 4

    /// Stream bytes after the head: gzip-coded (and flushed, so the client sees every event now) when negotiated.
    func writeStream(_ body: [UInt8], wire: inout [UInt8]) {
        if let responseSink {
            var coded: [UInt8] = []
            if let streamGzip { streamGzip.write(body, into: &coded) } else { coded = body }
            responseSink.streamData(coded)
        } else if let streamGzip {
            streamGzip.write(body, into: &wire)
        } else {
            wire.append(contentsOf: body)
        }
    }

    func answerPoll(
        _ poll: SubscriptionExchange, with events: [(id: String, message: GatewayMessage)], wire: inout [UInt8],
        now: MonotonicTime
    ) -> TransportStatus {
        gateway.metrics.gateway.waitingPolls.subtract(1, ordering: .relaxed)
        gateway.metrics.gateway.eventsDelivered.wrappingAdd(UInt64(events.count), ordering: .relaxed)
        var answered = poll
        answered.deadline = nil
        answered.retained = []
        // Unregistered until the next poll; the filters linger in the hub, so what comes meanwhile is kept.
        gateway.hub.unregister(connection, now: now.nanoseconds)
        exchange = .pollIdle(answered)
        let shown = events.map { event -> (id: String, message: GatewayMessage) in
            var message = event.message
            message.qos = min(message.qos, poll.command.qos)
            return (event.id, message)
        }
        var response = HTTPResponse.longPoll(shown)
        // The id to send back as last_event_id, also when there was nothing: the poll's place in the history.
        response.headers.append("Last-Event-ID", String(answered.cursor))
        write(response, to: poll.request, wire: &wire)
        lastRequest = now
        return .open
    }
}
