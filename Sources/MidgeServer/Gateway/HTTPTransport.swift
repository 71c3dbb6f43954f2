// One HTTP connection of the push gateway, speaking MQTT 3.1.1 to the core on its client's behalf: POST /publish
// (§3.3, §4.3 flows), GET /subscribe as Server-Sent Events or a poll (§3.8), GET /metrics and /topic.
import Glibc
import MQTTCodec
import MidgeCore
import MidgeGateway

/// An HTTP client is an MQTT client to the core: the transport writes CONNECT, PUBLISH, SUBSCRIBE and
/// acknowledgements into the MQTT stream and reads the broker's packets back from `send`.
///
/// | request                 | MQTT written                                 | answered when                          |
/// |-------------------------|----------------------------------------------|----------------------------------------|
/// | `POST /publish`         | CONNECT (first time), each PUBLISH, PINGREQ  | every PUBACK/PUBREC and the PINGRESP   |
/// | `GET /subscribe` (SSE)  | CONNECT, SUBSCRIBE, UNSUBSCRIBE              | the hub records the filters: head      |
/// | `GET /subscribe` polls  | the same (first poll of a connection)        | messages, the timeout, or at once      |
/// | `GET /metrics`, `/topic`| CONNECT when credentials must be checked     | the CONNACK, or at once                |
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
/// A subscriber's messages come from the listener's `GatewayHub`, not from its own session: its SUBSCRIBE only has
/// the core check the ACL and send the retained messages, and is undone at once. The hub wakes the connection
/// (`poke`) when something matching its filters is recorded; events carry the history's ids, the same on every
/// connection, which `Last-Event-ID` resumes from. (The broker's packets are handled in `HTTPTransport+Broker`,
/// subscriptions in `HTTPTransport+Subscribe`, /metrics and /topic in `HTTPTransport+Info`.)
final class HTTPTransport: ConnectionTransport {
    enum Link: Equatable {
        /// No CONNECT written yet.
        case none
        /// CONNECT written; CONNACK not yet seen. Later packets may already be on their way.
        case connecting
        case connected
        /// The core refused or ended the MQTT session: this connection cannot publish or subscribe any more.
        case ended
    }

    /// The MQTT identity of this connection; a kept-alive connection's later requests must present the same.
    struct Identity: Equatable {
        var clientID: String
        var username: String?
        var password: [UInt8]?
    }

    struct PublishExchange {
        var request: HTTPRequest
        var count: Int
        /// Packet ids whose PUBACK or PUBREC has not arrived.
        var waiting: Set<UInt16>
        var pingAnswered = false
        /// The request's messages while its CONNECT is unanswered: what a client may publish is only known once the
        /// core has authenticated it (a token's claims are its permissions), so the ACL is asked at the CONNACK.
        var pending: [GatewayMessage] = []
    }

    /// A `GET /subscribe` from request to answer. Its own MQTT session SUBSCRIBEs (the core checks the ACL and sends
    /// the retained messages) and UNSUBSCRIBEs at once; the messages themselves come from the hub's topic history.
    struct SubscriptionExchange {
        var request: HTTPRequest
        var command: SubscribeCommand
        var subscribeID: UInt16
        var unsubscribeID: UInt16
        /// SUBACK seen and every filter granted; registered with the hub.
        var subscribed = false
        /// UNSUBACK seen: every retained message the SUBSCRIBE brought is in `retained`.
        var retainedDone = false
        /// The client has every event up to this id.
        var cursor: UInt64 = 0
        /// Where the client asked to start: `Last-Event-ID`, `last_event_id` or `since` (then no retained messages).
        var start: SubscribeStart?
        /// The 101 answer of a WebSocket subscription, written when it opens.
        var upgrade: HTTPResponse?
        var retained: [GatewayMessage] = []
        /// The stream's head is written (SSE), or the poll may be answered: the hub records every filter.
        var open = false
        /// The long poll's deadline (nil for SSE and short polls).
        var deadline: MonotonicTime?
    }

    enum Exchange {
        case idle
        case publish(PublishExchange)
        case stream(SubscriptionExchange)
        case poll(SubscriptionExchange)
        /// A poll answered; the next poll on this connection continues from its cursor.
        case pollIdle(SubscriptionExchange)
        /// `GET /metrics` waiting for the CONNACK that says its credentials are good.
        case metrics(HTTPRequest)
        /// `GET /topic` waiting for the CONNACK, after which the ACL is asked.
        case topicInfo(HTTPRequest, TopicName)
    }

    let gateway: HTTPGateway
    var parser: HTTPRequestParser
    let decoder = FrameDecoder()
    var link = Link.none
    var identity: Identity?
    var exchange = Exchange.idle
    /// MQTT for the core that `send` could not hand over: acknowledgements and PUBRELs.
    var replies: [UInt8] = []
    /// Bytes from `send` that did not end on a packet boundary (whole packets are promised; this is a safeguard).
    var partial: [UInt8] = []
    var nextPacketID: UInt16 = 0
    var lastWrite: MonotonicTime
    var lastRequest: MonotonicTime
    /// Set once an answer with `Connection: close` is written: nothing more is read.
    var finished = false
    /// The gzip coding of an SSE stream whose client accepts it (`http_compression`).
    var streamGzip: GzipStream?
    /// Set once a WebSocket subscription's 101 is written: what the client sends is WebSocket frames from then on.
    var webSocket: WebSocketConnection?
    /// What a WebSocket client sends besides control frames: read and dropped (the socket only delivers).
    var webSocketDiscard: [UInt8] = []
    /// Where answers go instead of `wire` (an HTTP/2 stream); nil for HTTP/1.1.
    var responseSink: (any HTTPResponseSink)?

    /// The client's address, for log lines.
    let remoteAddress: String
    /// This connection, as the hub wakes it.
    let connection: ConnectionID

    init(gateway: HTTPGateway, now: MonotonicTime, remoteAddress: String = "unknown", connection: ConnectionID) {
        self.gateway = gateway
        self.remoteAddress = remoteAddress
        self.connection = connection
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
        if let webSocket {
            webSocketDiscard.removeAll(keepingCapacity: true)
            let receipt = webSocket.receive(bytes, appendingDataTo: &webSocketDiscard)
            wire.append(contentsOf: receipt.reply)
            if receipt.closure != nil { return endSession(mqtt: &mqtt) }
            return .open
        }
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
        // A request pipelined behind the one just answered waits in the parser: take it now, not when the client
        // sends more bytes, which a client waiting for its answers never does.
        if case .open = status, !isBusy { status = processRequests(mqtt: &mqtt, wire: &wire, now: now) }
        return status
    }

    func tick(now: MonotonicTime, mqtt: inout [UInt8], wire: inout [UInt8]) -> TransportStatus {
        takeReplies(into: &mqtt)
        if finished { return endSession(mqtt: &mqtt) }
        switch exchange {
        case .stream(let stream) where stream.open:
            if now.nanoseconds - lastWrite.nanoseconds >= gateway.settings.heartbeatSeconds * 1_000_000_000 {
                if let webSocket {
                    webSocket.ping(into: &wire)
                } else {
                    writeStream(ServerSentEvents.heartbeat, wire: &wire)
                }
                lastWrite = now
            }
        case .poll(let poll):
            if let deadline = poll.deadline, now >= deadline, poll.subscribed {
                return answerPoll(poll, with: [], wire: &wire, now: now)
            }
        case .stream:
            break
        case .idle, .pollIdle:
            if now.nanoseconds - lastRequest.nanoseconds >= gateway.settings.idleSeconds * 1_000_000_000 {
                return endSession(mqtt: &mqtt)
            }
        case .publish, .metrics, .topicInfo:
            break
        }
        return .open
    }

    func closing(_ reason: CloseReason, wire: inout [UInt8]) {
        webSocket?.close(reason == .serverShutdown ? .goingAway : .normalClosure, into: &wire)
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
            gateway.metrics.gateway.openStreams.subtract(stream.open ? 1 : 0, ordering: .relaxed)
            if !stream.open && !finished {
                write(
                    HTTPResponse.error(.serviceUnavailable, "the subscription ended (\(reason))"),
                    to: stream.request, wire: &wire)
            }
        default:
            break
        }
        if case .poll = exchange { gateway.metrics.gateway.waitingPolls.subtract(1, ordering: .relaxed) }
        // The last moment this connection did anything: when the linger of its filters starts.
        gateway.hub.unregister(connection, now: max(lastWrite.nanoseconds, lastRequest.nanoseconds))
        exchange = .idle
        finished = true
    }

    /// Something was recorded for this connection's subscription, or its filters became active.
    func poke(now: MonotonicTime, mqtt: inout [UInt8], wire: inout [UInt8]) -> TransportStatus {
        takeReplies(into: &mqtt)
        guard !finished else { return .open }
        return advance(wire: &wire, now: now)
    }

    // MARK: - Requests

    /// A request is in progress: later pipelined ones wait in the parser.
    var isBusy: Bool {
        switch exchange {
        case .idle, .pollIdle: false
        case .publish, .stream, .poll, .metrics, .topicInfo: true
        }
    }

    /// What may wait in the parser behind a request in progress: one more whole request.
    var pipelineLimit: Int {
        let limits = gateway.settings.limits
        return limits.maxRequestLineBytes + limits.maxHeaderBytes + limits.maxBodyBytes
    }

    func processRequests(mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime) -> TransportStatus {
        // Pipelined requests wait until the one in progress is answered; each pass consumes a request.
        for _ in 0..<64 {
            if isBusy { return .open }
            let event: HTTPRequestParser.Event?
            do {
                event = try parser.next()
            } catch {
                gateway.metrics.gateway.requests.wrappingAdd(1, ordering: .relaxed)
                gateway.metrics.gateway.countResponse(status: error.status.code)
                gateway.logger?.log(
                    .notice,
                    "HTTP client \(remoteAddress): \(error.status) (\(error.message)), closing the connection.")
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

    func handle(_ request: HTTPRequest, mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime)
        -> TransportStatus
    {
        switch gateway.router.route(request) {
        case .response(let response):
            write(response, to: request, wire: &wire)
        case .request(.metrics, let credentials):
            startMetrics(credentials: credentials, request: request, mqtt: &mqtt, wire: &wire)
        case .request(.console, _):
            // The page itself holds nothing secret; what it does is checked request by request.
            let response =
                gateway.settings.console
                ? GatewayConsole.response : .error(.notFound, "the web console is off (http_console)")
            write(response, to: request, wire: &wire)
        case .request(.topicInfo(let topic), let credentials):
            startTopicInfo(topic, credentials: credentials, request: request, mqtt: &mqtt, wire: &wire)
        case .request(.publish(let commands), let credentials):
            startPublish(commands, credentials: credentials, request: request, mqtt: &mqtt, wire: &wire)
        case .request(.subscribe(let command), let credentials):
            startSubscription(command, credentials: credentials, request: request, mqtt: &mqtt, wire: &wire, now: now)
        }
        return .open
    }

    /// The MQTT identity for a request: a kept-alive connection keeps the identity of its first MQTT request.
    func identity(for credentials: GatewayCredentials?, request: HTTPRequest, clientID: String?)
        -> Identity
    {
        // Basic always names a user; without one the password is a token (Bearer, or `access_token`).
        let username = HTTPGateway.username(for: credentials, bearer: credentials?.username == nil)
        return Identity(
            clientID: clientID ?? identity?.clientID ?? gateway.generatedClientID(), username: username,
            password: credentials?.password)
    }

    /// Checks a request may use this connection's MQTT session; false after answering it.
    func usable(_ wanted: Identity, request: HTTPRequest, wire: inout [UInt8]) -> Bool {
        if link == .ended {
            write(
                .error(
                    .serviceUnavailable, "this connection's MQTT session has ended; open a new connection",
                    closeConnection: true), to: request, wire: &wire)
            return false
        }
        if let identity, link != .none, identity != wanted {
            write(
                .error(
                    .badRequest,
                    "a connection keeps the credentials and client id of its first request; "
                        + "open a new connection", closeConnection: true), to: request, wire: &wire)
            return false
        }
        return true
    }

    func startPublish(
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
        // The password is checked when the core asks to admit the CONNECT (on the server's authentication queue, with
        // its delays for failing addresses), never here on the loop. Until its CONNACK, the messages wait: a caller without good
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
    func publishOrRefuse(
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

    static func isSysTopic(_ topic: TopicName) -> Bool {
        let bytes = topic.bytes
        guard bytes.starts(with: Array("$SYS".utf8)) else { return false }
        return bytes.count == 4 || bytes[4] == UInt8(ascii: "/")
    }

    func connectIfNeeded(_ wanted: Identity, cleanSession: Bool, mqtt: inout [UInt8]) {
        guard link == .none else { return }
        identity = wanted
        link = .connecting
        // Keepalive 0: an HTTP client has no PINGREQ of its own; the idle timeout ends a silent connection.
        let connect = Connect(
            cleanSession: cleanSession, keepAlive: 0, clientID: wanted.clientID, username: wanted.username,
            password: wanted.password)
        Packet.connect(connect).encode(into: &mqtt)
    }

    func takePacketID() -> PacketID {
        nextPacketID = nextPacketID == UInt16.max ? 1 : nextPacketID + 1
        guard let id = PacketID(nextPacketID) else { fatalError("BUG: packet id 0 is skipped above") }
        return id
    }

    /// DISCONNECT (so the core ends a clean session at once and skips any Will), then close.
    func endSession(mqtt: inout [UInt8]) -> TransportStatus {
        finished = true
        if link == .connecting || link == .connected {
            Packet.disconnect.encode(into: &mqtt)
            link = .ended
        }
        return .close(.clientDisconnected)
    }

    func takeReplies(into mqtt: inout [UInt8]) {
        guard !replies.isEmpty else { return }
        mqtt.append(contentsOf: replies)
        replies.removeAll(keepingCapacity: true)
    }

    // MARK: - Writing

    /// Every answer goes through here: keep-alive per the request, a `Date`, and the counters.
    func write(_ response: HTTPResponse, to request: HTTPRequest, wire: inout [UInt8]) {
        var answer = response.answering(request).withDate()
        if !answer.headers.contains("Access-Control-Allow-Origin") {
            for field in corsHeaders(for: request) { answer.headers.append(field.name, field.value) }
        }
        // Small bodies are not worth the gzip header and trailer (18 bytes) and the work.
        if gateway.settings.compression, answer.body.count >= 256, !answer.headers.contains("Content-Encoding"),
            GzipStream.isAccepted(by: request.headers["Accept-Encoding"]),
            let compressed = GzipStream.compress(answer.body)
        {
            answer.body = compressed
            answer.headers.append("Content-Encoding", "gzip")
            answer.headers.append("Vary", "Accept-Encoding")
        }
        gateway.metrics.gateway.countResponse(status: answer.status.code)
        if answer.status.code >= 400, let logger = gateway.logger {
            // A missing login is how a browser learns to send one: routine, so below notice.
            let level: LogLevel = answer.status.code == 401 ? .info : .notice
            let reason = String(decoding: answer.body.prefix(300), as: UTF8.self)
            logger.log(
                level,
                "HTTP client \(remoteAddress): \(request.method) \(request.path) answered \(answer.status) \(reason)")
        }
        if let responseSink {
            responseSink.respond(answer)
            finished = true
        } else {
            answer.encode(into: &wire)
            if answer.closeConnection { finished = true }
        }
    }
}

extension HTTPTransport {
    /// What a cross-origin page needs to read the answer, when `http_cors_origins` allows its origin.
    func corsHeaders(for request: HTTPRequest) -> HTTPHeaders {
        gateway.router.configuration.cors.headers(origin: request.headers["Origin"])
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
