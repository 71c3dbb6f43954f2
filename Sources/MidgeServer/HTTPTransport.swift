// One HTTP connection of the push gateway, speaking MQTT 3.1.1 to the core on its client's behalf: POST /publish
// (§3.3, §4.3 flows), GET /subscribe as Server-Sent Events or a long poll (§3.8), GET /metrics.
import Glibc
import MQTTCodec
import MidgeCore
import MidgeGateway

/// An HTTP client is an MQTT client to the core: the transport writes CONNECT, PUBLISH, SUBSCRIBE and
/// acknowledgements into the MQTT stream and reads the broker's packets back from `send`.
///
/// | request                | MQTT written                                  | answered when                        |
/// |------------------------|-----------------------------------------------|--------------------------------------|
/// | `POST /publish`        | CONNECT (first time), each PUBLISH, PINGREQ   | every PUBACK/PUBREC and the PINGRESP |
/// | `GET /subscribe` (SSE) | CONNECT, SUBSCRIBE                            | the SUBACK opens the stream          |
/// | `GET /subscribe` poll  | CONNECT, SUBSCRIBE (first time)               | the first message, or the timeout    |
/// | `GET /metrics`         | nothing                                       | at once                              |
///
/// The core handles a connection's packets in order, so a PINGRESP after the PUBLISHes says that every QoS 0
/// message of the request was handled; a PUBACK or PUBREC says the same of a QoS 1 or 2 message (and, with a durable
/// store, that it is on disk). QoS 2 is answered at PUBREC, since the core routes on PUBLISH (method B); the PUBREL
/// follows. CONNECT and the request's packets go out together: a refused CONNECT makes the core ignore the rest.
///
/// Credentials (Basic, Bearer or `access_token`) become the CONNECT's user name and password, so the server's
/// password file, tokens and authentication delays apply unchanged. A refused CONNECT (return code 4 or 5, which
/// mosquitto's authenticators also give for a wrong password) is 401; 403 is what the ACL refuses, told only to
/// callers whose credentials the CONNACK accepted.
///
/// Deliveries are acknowledged once they are written to the socket (or kept for a poll) and recorded in the client's
/// `EventHistory`, which is what `Last-Event-ID` resumes from. The contract gives `send` no MQTT output, so
/// acknowledgements and PUBRELs leave with the next `received` or `tick` (about a second later); with QoS 1 or 2
/// that bounds a stream to `max_inflight_messages` deliveries per tick.
final class HTTPTransport: ConnectionTransport {
    private enum Link: Equatable {
        /// No CONNECT written yet.
        case none
        /// CONNECT written; CONNACK not yet seen. Later packets may already be on their way.
        case connecting
        case connected
        /// The core refused or ended the MQTT session: this connection cannot publish or subscribe any more.
        case ended
    }

    /// The MQTT identity of this connection; a kept-alive connection's later requests must present the same.
    private struct Identity: Equatable {
        var clientID: String
        var username: String?
        var password: [UInt8]?
        var persistent: Bool
    }

    private struct PublishExchange {
        var request: HTTPRequest
        var count: Int
        /// Packet ids whose PUBACK or PUBREC has not arrived.
        var waiting: Set<UInt16>
        var pingAnswered = false
        /// The request's messages while its CONNECT is unanswered: what a client may publish is only known once the
        /// core has authenticated it (a token's claims are its permissions), so the ACL is asked at the CONNACK.
        var pending: [GatewayMessage] = []
    }

    private struct SubscriptionExchange {
        var request: HTTPRequest
        var command: SubscribeCommand
        var subscribeID: UInt16
        /// SUBACK seen and every filter granted.
        var subscribed = false
        /// The long poll's deadline (nil for SSE).
        var deadline: MonotonicTime?
        /// The last id this client saw, from `Last-Event-ID` or `last_event_id`.
        var lastSeen: UInt64
    }

    /// A PUBLISH from the broker, as the history needs it.
    private struct Incoming {
        var message: GatewayMessage
        var packetID: UInt16?
        var dup: Bool
    }

    private enum Exchange {
        case idle
        case publish(PublishExchange)
        case stream(SubscriptionExchange)
        case poll(SubscriptionExchange)
        /// A long poll answered; its session stays subscribed for the next poll on this connection.
        case pollIdle(SubscriptionExchange)
    }

    private let gateway: HTTPGateway
    private var parser: HTTPRequestParser
    private let decoder = FrameDecoder()
    private var link = Link.none
    private var identity: Identity?
    private var exchange = Exchange.idle
    /// MQTT for the core that `send` could not hand over: acknowledgements and PUBRELs.
    private var replies: [UInt8] = []
    /// Bytes from `send` that did not end on a packet boundary (whole packets are promised; this is a safeguard).
    private var partial: [UInt8] = []
    /// Events of a clean (non-resumable) subscription, kept here instead of in the gateway's histories.
    private var localHistory = EventHistory()
    /// Deliveries that arrived before the stream's head was written (queued messages of a resumed session).
    private var early: [Incoming] = []
    /// The highest event id written to this connection's stream.
    private var highestWritten: UInt64 = 0
    private var nextPacketID: UInt16 = 0
    private var lastWrite: MonotonicTime
    private var lastRequest: MonotonicTime
    /// Set once an answer with `Connection: close` is written: nothing more is read.
    private var finished = false

    init(gateway: HTTPGateway, now: MonotonicTime) {
        self.gateway = gateway
        self.parser = HTTPRequestParser(limits: gateway.settings.limits)
        self.lastWrite = now
        self.lastRequest = now
    }

    // MARK: - ConnectionTransport

    func received(_ bytes: UnsafeRawBufferPointer, mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime)
        -> TransportStatus
    {
        takeReplies(into: &mqtt)
        guard !finished else { return endSession(mqtt: &mqtt) }
        parser.append(bytes)
        if isBusy && parser.bufferedByteCount > pipelineLimit {
            // A stream or a pending answer does not read further requests; a client that keeps sending is cut off
            // before its bytes pile up.
            return endSession(mqtt: &mqtt)
        }
        return processRequests(mqtt: &mqtt, wire: &wire, now: now)
    }

    /// Acknowledgements of the deliveries written here go back through `mqtt` at once, so a QoS 1/2 stream is not
    /// paced by `tick`; an answer that ends the connection closes it once the answer is written.
    func send(_ mqttPackets: UnsafeRawBufferPointer, mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime)
        -> TransportStatus
    {
        var status = TransportStatus.open
        if partial.isEmpty {
            let consumed = handleBrokerPackets(mqttPackets, wire: &wire, now: now, status: &status)
            if consumed < mqttPackets.count { partial = Array(mqttPackets[consumed...]) }
        } else {
            partial.append(contentsOf: mqttPackets)
            var pending: [UInt8] = []
            swap(&pending, &partial)
            let consumed = pending.withUnsafeBytes { handleBrokerPackets($0, wire: &wire, now: now, status: &status) }
            if consumed < pending.count { partial = Array(pending[consumed...]) }
        }
        takeReplies(into: &mqtt)
        if case .open = status, finished { return endSession(mqtt: &mqtt) }
        return status
    }

    func tick(now: MonotonicTime, mqtt: inout [UInt8], wire: inout [UInt8]) -> TransportStatus {
        takeReplies(into: &mqtt)
        if finished { return endSession(mqtt: &mqtt) }
        switch exchange {
        case .stream(let stream) where stream.subscribed:
            if now.nanoseconds - lastWrite.nanoseconds >= gateway.settings.heartbeatSeconds * 1_000_000_000 {
                wire.append(contentsOf: ServerSentEvents.heartbeat)
                lastWrite = now
            }
        case .poll(let poll):
            if let deadline = poll.deadline, now >= deadline, poll.subscribed {
                return answerPoll(poll, with: [], wire: &wire, now: now)
            }
        case .idle, .pollIdle:
            if now.nanoseconds - lastRequest.nanoseconds >= gateway.settings.idleSeconds * 1_000_000_000 {
                return endSession(mqtt: &mqtt)
            }
        case .publish, .stream:
            break
        }
        return .open
    }

    func closing(_ reason: CloseReason, wire: inout [UInt8]) {
        switch exchange {
        case .publish(let publish) where !finished:
            // The core ended the session before every message was accepted: say so rather than leave it unanswered.
            let response = HTTPResponse.error(
                .serviceUnavailable, "the connection ended before every message was accepted (\(reason))",
                closeConnection: true)
            write(response, to: publish.request, wire: &wire)
        case .poll(let poll) where !finished && !poll.subscribed:
            let response = HTTPResponse.error(.serviceUnavailable, "the subscription ended (\(reason))")
            write(response, to: poll.request, wire: &wire)
        case .stream(let stream):
            gateway.metrics.gateway.openStreams.subtract(stream.subscribed ? 1 : 0, ordering: .relaxed)
            if !stream.subscribed && !finished {
                write(HTTPResponse.error(.serviceUnavailable, "the subscription ended (\(reason))"),
                      to: stream.request, wire: &wire)
            }
        default:
            break
        }
        if case .poll = exchange { gateway.metrics.gateway.waitingPolls.subtract(1, ordering: .relaxed) }
        exchange = .idle
        finished = true
    }

    // MARK: - Requests

    /// A request is in progress: later pipelined ones wait in the parser.
    private var isBusy: Bool {
        switch exchange {
        case .idle, .pollIdle: false
        case .publish, .stream, .poll: true
        }
    }

    /// What may wait in the parser behind a request in progress: one more whole request.
    private var pipelineLimit: Int {
        let limits = gateway.settings.limits
        return limits.maxRequestLineBytes + limits.maxHeaderBytes + limits.maxBodyBytes
    }

    private func processRequests(mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime) -> TransportStatus {
        // Pipelined requests wait until the one in progress is answered; each pass consumes a request.
        for _ in 0..<64 {
            if isBusy { return .open }
            let event: HTTPRequestParser.Event?
            do {
                event = try parser.next()
            } catch {
                gateway.metrics.gateway.requests.wrappingAdd(1, ordering: .relaxed)
                gateway.metrics.gateway.countResponse(status: error.status.code)
                error.response.withDate().encode(into: &wire)
                finished = true
                return endSession(mqtt: &mqtt)
            }
            guard let event else { return .open }
            switch event {
            case .expectsContinue:
                wire.append(contentsOf: HTTPResponse.continueBytes)
            case .request(let request):
                lastRequest = now
                gateway.metrics.gateway.requests.wrappingAdd(1, ordering: .relaxed)
                let status = handle(request, mqtt: &mqtt, wire: &wire, now: now)
                if case .close = status { return status }
                if finished { return endSession(mqtt: &mqtt) }
            }
        }
        return .open
    }

    private func handle(_ request: HTTPRequest, mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime)
        -> TransportStatus
    {
        switch gateway.router.route(request) {
        case .response(let response):
            write(response, to: request, wire: &wire)
        case .request(.metrics, _):
            let body = MetricsExposition.render(gateway.metrics)
            let response = HTTPResponse(
                status: .ok, headers: [("Content-Type", PrometheusText.contentType)], body: body)
            write(response, to: request, wire: &wire)
        case .request(.publish(let commands), let credentials):
            startPublish(commands, credentials: credentials, request: request, mqtt: &mqtt, wire: &wire)
        case .request(.subscribe(let command), let credentials):
            startSubscription(command, credentials: credentials, request: request, mqtt: &mqtt, wire: &wire, now: now)
        }
        return .open
    }

    /// The MQTT identity for a request: a kept-alive connection keeps the identity of its first MQTT request.
    private func identity(for credentials: GatewayCredentials?, request: HTTPRequest, clientID: String?)
        -> Identity
    {
        // Basic always names a user; without one the password is a token (Bearer, or `access_token`).
        let username = HTTPGateway.username(for: credentials, bearer: credentials?.username == nil)
        return Identity(
            clientID: clientID ?? identity?.clientID ?? gateway.generatedClientID(), username: username,
            password: credentials?.password, persistent: clientID != nil)
    }

    /// Checks a request may use this connection's MQTT session; false after answering it.
    private func usable(_ wanted: Identity, request: HTTPRequest, wire: inout [UInt8]) -> Bool {
        if link == .ended {
            write(
                .error(.serviceUnavailable, "this connection's MQTT session has ended; open a new connection",
                       closeConnection: true), to: request, wire: &wire)
            return false
        }
        if let identity, link != .none, identity != wanted {
            write(
                .error(.badRequest, "a connection keeps the credentials and client id of its first request; "
                    + "open a new connection", closeConnection: true), to: request, wire: &wire)
            return false
        }
        return true
    }

    private func startPublish(
        _ commands: [GatewayMessage], credentials: GatewayCredentials?, request: HTTPRequest, mqtt: inout [UInt8],
        wire: inout [UInt8]
    ) {
        let wanted = identity(for: credentials, request: request, clientID: nil)
        guard usable(wanted, request: request, wire: &wire) else { return }
        // The core acknowledges and silently drops what the ACL refuses [MQTT-3.3.5-2]; an HTTP caller is told.
        if let refused = commands.first(where: { HTTPTransport.isSysTopic($0.topic) }) {
            write(.forbidden("\(refused.topic) is the broker's own topic"), to: request, wire: &wire)
            return
        }
        if let qos = commands.first(where: { $0.qos > gateway.maxQoS })?.qos {
            write(.error(.badRequest, "qos \(qos.rawValue) is above this broker's max_qos"), to: request, wire: &wire)
            return
        }
        if link == .none && wanted.username == nil && !gateway.allowAnonymous {
            write(.unauthorized(), to: request, wire: &wire)
            return
        }
        // The password is checked by the core at CONNECT (through the server's authentication queue and its delays
        // for failing addresses), never here on the loop. Until its CONNACK, the messages wait: a caller without good
        // credentials learns nothing about the ACL (401), and a token's permissions exist only once it is verified.
        if link != .connected {
            connectIfNeeded(wanted, cleanSession: true, mqtt: &mqtt)
            exchange = .publish(
                PublishExchange(request: request, count: 0, waiting: [], pingAnswered: true, pending: commands))
            return
        }
        publishOrRefuse(commands, request: request, mqtt: &mqtt, wire: &wire)
    }

    /// Asks the ACL before anything is published: the core would acknowledge and drop a refused message
    /// [MQTT-3.3.5-2], and an HTTP caller must hear about it.
    private func publishOrRefuse(
        _ commands: [GatewayMessage], request: HTTPRequest, mqtt: inout [UInt8], wire: inout [UInt8]
    ) {
        let refused = commands.first {
            !gateway.accessControl.mayPublish(
                clientID: identity?.clientID ?? "", username: identity?.username, topic: $0.topic)
        }
        if let refused {
            exchange = .idle
            write(.forbidden("not authorized to publish to \(refused.topic)"), to: request, wire: &wire)
            return
        }
        var waiting: Set<UInt16> = []
        for command in commands {
            var packetID: PacketID?
            if command.qos != .atMostOnce {
                let id = takePacketID()
                waiting.insert(id.rawValue)
                packetID = id
            }
            Packet.publish(
                Publish(
                    topic: command.topic, payload: command.payload, qos: command.qos, retain: command.retain,
                    packetID: packetID)
            ).encode(into: &mqtt)
        }
        Packet.pingreq.encode(into: &mqtt)
        exchange = .publish(PublishExchange(request: request, count: commands.count, waiting: waiting))
    }

    private func startSubscription(
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
    static func isSysTopic(_ topic: TopicName) -> Bool {
        let bytes = topic.bytes
        guard bytes.starts(with: Array("$SYS".utf8)) else { return false }
        return bytes.count == 4 || bytes[4] == UInt8(ascii: "/")
    }

    private func connectIfNeeded(_ wanted: Identity, cleanSession: Bool, mqtt: inout [UInt8]) {
        guard link == .none else { return }
        identity = wanted
        link = .connecting
        // Keepalive 0: an HTTP client has no PINGREQ of its own; the idle timeout ends a silent connection.
        let connect = Connect(
            cleanSession: cleanSession, keepAlive: 0, clientID: wanted.clientID, username: wanted.username,
            password: wanted.password)
        Packet.connect(connect).encode(into: &mqtt)
    }

    private func takePacketID() -> PacketID {
        nextPacketID = nextPacketID == UInt16.max ? 1 : nextPacketID + 1
        guard let id = PacketID(nextPacketID) else { fatalError("BUG: packet id 0 is skipped above") }
        return id
    }

    /// DISCONNECT (so the core ends a clean session at once and skips any Will), then close.
    private func endSession(mqtt: inout [UInt8]) -> TransportStatus {
        finished = true
        if link == .connecting || link == .connected {
            Packet.disconnect.encode(into: &mqtt)
            link = .ended
        }
        return .close(.clientDisconnected)
    }

    private func takeReplies(into mqtt: inout [UInt8]) {
        guard !replies.isEmpty else { return }
        mqtt.append(contentsOf: replies)
        replies.removeAll(keepingCapacity: true)
    }

    // MARK: - The broker's packets

    private func handleBrokerPackets(
        _ bytes: UnsafeRawBufferPointer, wire: inout [UInt8], now: MonotonicTime, status: inout TransportStatus
    ) -> Int {
        var offset = 0
        while offset < bytes.count {
            let decoded: (packet: Packet, consumed: Int)?
            do {
                decoded = try decoder.decode(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
            } catch {
                fatalError("BUG: the broker sent an undecodable packet to an HTTP client: \(error)")
            }
            guard let (packet, consumed) = decoded else { break }
            offset += consumed
            if case .close = status { continue }
            status = handleBrokerPacket(packet, wire: &wire, now: now)
        }
        return offset
    }

    private func handleBrokerPacket(_ packet: Packet, wire: inout [UInt8], now: MonotonicTime) -> TransportStatus {
        switch packet {
        case .connack(let connack):
            guard connack.returnCode == .accepted else {
                link = .ended
                return refused(connack.returnCode, wire: &wire)
            }
            link = .connected
            if case .publish(let publish) = exchange, !publish.pending.isEmpty {
                // Published through `replies`, which the loop hands to the core right after this turn's writes.
                publishOrRefuse(publish.pending, request: publish.request, mqtt: &replies, wire: &wire)
            }
        case .puback(let id), .pubrec(let id):
            if case .pubrec = packet { Packet.pubrel(id).encode(into: &replies) }
            guard case .publish(var publish) = exchange else { break }
            publish.waiting.remove(id.rawValue)
            exchange = .publish(publish)
            return finishPublishIfDone(publish, wire: &wire)
        case .pingresp:
            guard case .publish(var publish) = exchange else { break }
            publish.pingAnswered = true
            exchange = .publish(publish)
            return finishPublishIfDone(publish, wire: &wire)
        case .suback(let suback):
            return subscribed(suback, wire: &wire, now: now)
        case .publish(let publish):
            acknowledge(publish)
            let message = GatewayMessage(
                topic: publish.topic, payload: publish.payload, qos: publish.qos, retain: publish.retain)
            return deliver(
                Incoming(message: message, packetID: publish.packetID?.rawValue, dup: publish.dup), wire: &wire,
                now: now)
        case .pubrel(let id):
            Packet.pubcomp(id).encode(into: &replies)
        case .pubcomp, .unsuback, .connect, .subscribe, .unsubscribe, .pingreq, .disconnect:
            break
        }
        return .open
    }

    private func refused(_ code: ConnectReturnCode, wire: inout [UInt8]) -> TransportStatus {
        let request: HTTPRequest
        switch exchange {
        case .publish(let publish): request = publish.request
        case .stream(let subscription), .poll(let subscription), .pollIdle(let subscription):
            request = subscription.request
        case .idle: return .open
        }
        let hadCredentials = identity?.username != nil || identity?.password != nil
        var response: HTTPResponse
        switch code {
        case .badUsernameOrPassword, .notAuthorized:
            response = hadCredentials ? .unauthorized("credentials refused") : .unauthorized()
        case .identifierRejected: response = .error(.badRequest, "client id refused")
        default: response = .error(.serviceUnavailable, "the broker refused the connection (\(code))")
        }
        response.closeConnection = true
        if case .poll = exchange { gateway.metrics.gateway.waitingPolls.subtract(1, ordering: .relaxed) }
        exchange = .idle
        write(response, to: request, wire: &wire)
        return .open
    }

    private func finishPublishIfDone(_ publish: PublishExchange, wire: inout [UInt8]) -> TransportStatus {
        guard publish.waiting.isEmpty, publish.pingAnswered else { return .open }
        exchange = .idle
        gateway.metrics.gateway.published.wrappingAdd(UInt64(publish.count), ordering: .relaxed)
        write(.published(count: publish.count), to: publish.request, wire: &wire)
        return .open
    }

    private func subscribed(_ suback: SubAck, wire: inout [UInt8], now: MonotonicTime) -> TransportStatus {
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
            wire.append(contentsOf: ServerSentEvents.responseHead(retryMilliseconds: retry))
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
    private func acknowledge(_ publish: Publish) {
        guard let id = publish.packetID else { return }
        switch publish.qos {
        case .atMostOnce: break
        case .atLeastOnce: Packet.puback(id).encode(into: &replies)
        case .exactlyOnce: Packet.pubrec(id).encode(into: &replies)
        }
    }

    private func deliver(_ incoming: Incoming, wire: inout [UInt8], now: MonotonicTime) -> TransportStatus {
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
    private func writeEvent(_ event: RecordedEvent, format: MessageFormat, wire: inout [UInt8]) {
        guard event.sequence > highestWritten else { return }
        highestWritten = event.sequence
        ServerSentEvents.encode(event.message, id: String(event.sequence), format: format, into: &wire)
        gateway.metrics.gateway.eventsDelivered.wrappingAdd(1, ordering: .relaxed)
    }

    private func answerPoll(
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

    private func record(_ incoming: Incoming, clientID: String?, now: MonotonicTime) -> RecordedEvent {
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

    private func history(after lastSeen: UInt64, clientID: String?, now: MonotonicTime) -> [RecordedEvent] {
        if let clientID { return gateway.resume(clientID: clientID, after: lastSeen, now: now.nanoseconds) }
        return localHistory.events(after: lastSeen)
    }

    // MARK: - Writing

    /// Every answer goes through here: keep-alive per the request, a `Date`, and the counters.
    private func write(_ response: HTTPResponse, to request: HTTPRequest, wire: inout [UInt8]) {
        let answer = response.answering(request).withDate()
        gateway.metrics.gateway.countResponse(status: answer.status.code)
        answer.encode(into: &wire)
        if answer.closeConnection { finished = true }
    }
}

extension HTTPResponse {
    /// With the `Date` header an origin server with a clock sends (RFC 9110 §6.6.1).
    func withDate() -> HTTPResponse {
        var response = self
        if !response.headers.contains("Date") {
            response.headers.append("Date", HTTPResponse.dateValue(secondsSince1970: Int64(time(nil))))
        }
        return response
    }
}
