// The HTTP gateway's transport driven against a real core without sockets: publish, SSE, long poll, resume with
// Last-Event-ID, authentication and ACL refusals, bad requests, heartbeats and timeouts on a fake clock.
import MQTTCodec
import MidgeCore
import XCTest

@testable import MidgeServer

/// A core and HTTP transports wired together as the event loop wires them: the transport's MQTT goes to the core,
/// the core's packets come back through `send`, its closes through `closing`. MQTT subscribers are plain ids whose
/// packets are collected.
final class GatewayHarness {
    final class HTTPConnection {
        let id: ConnectionID
        let transport: any ConnectionTransport
        var wire: [UInt8] = []
        var closed: CloseReason?
        var reachedCore = false
        init(id: ConnectionID, transport: any ConnectionTransport) {
            self.id = id
            self.transport = transport
        }
        var text: String { String(decoding: wire, as: UTF8.self) }
    }

    let broker: Broker
    /// Answers the core's admission requests, as the loops and their auth gate would.
    let admitter: RecorderVouched
    let gateway: HTTPGateway
    var now = MonotonicTime(nanoseconds: 1_000_000_000)
    private var serial: UInt64 = 0
    private var http: [ConnectionID: HTTPConnection] = [:]
    /// Packets the core sent to plain MQTT clients.
    var mqttReceived: [ConnectionID: [Packet]] = [:]
    private let decoder = FrameDecoder()
    private let host = HarnessHost()
    private var settling = false
    /// The gateway's recorder, once a subscriber made the hub ask for it.
    private(set) var recorder: HTTPConnection?

    /// The hub's requests, carried out by `settle` as a loop would at its next turn.
    final class HarnessHost: GatewayHubHost, @unchecked Sendable {
        var wakes: [ConnectionID] = []
        var recorders: [GatewayHub] = []
        func startRecorder(for hub: GatewayHub) { recorders.append(hub) }
        func wake(_ connection: ConnectionID) { wakes.append(connection) }
    }

    init(
        authenticator: any Authenticator = AllowAll(), accessControl: any AccessControl = AllowAll(),
        allowAnonymous: Bool = true, settings: HTTPGatewaySettings = HTTPGatewaySettings()
    ) {
        var configuration = BrokerConfiguration()
        configuration.allowAnonymous = allowAnonymous
        // As the loops do: the recorder's identity is vouched for by its transport, and its subscriptions are the
        // gateway's, not a user's.
        broker = Broker(
            configuration: configuration, asksAdmission: true,
            accessControl: GatewayRecorderAccess(inner: accessControl))
        admitter = RecorderVouched(inner: authenticator)
        gateway = HTTPGateway(
            settings: settings, accessControl: accessControl, broker: configuration,
            metrics: ServerMetrics(loopCount: 1, sysInterval: 0, startedAt: 0))
        gateway.hub.attach(host)
    }

    /// Runs what the hub asked for (recorder starts, wake-ups) until nothing is left, as the loops would.
    func settle() {
        guard !settling else { return }
        settling = true
        defer { settling = false }
        for _ in 0..<10_000 {
            if let hub = host.recorders.first {
                host.recorders.removeFirst()
                let connection = HTTPConnection(
                    id: nextID(), transport: GatewayRecorder(hub: hub, clientID: "gateway-recorder"))
                http[connection.id] = connection
                recorder = connection
                hub.recorderStarted(connection.id)
                poke(connection)
            } else if let id = host.wakes.first {
                host.wakes.removeFirst()
                if let connection = http[id] { poke(connection) }
            } else {
                return
            }
        }
        XCTFail("the hub kept asking for work")
    }

    private func poke(_ connection: HTTPConnection) {
        guard connection.closed == nil else { return }
        var mqtt: [UInt8] = []
        let status = connection.transport.poke(now: now, mqtt: &mqtt, wire: &connection.wire)
        feed(mqtt, from: connection)
        if case .close(let reason) = status { transportClosed(connection, reason) }
    }

    private func nextID() -> ConnectionID {
        serial += 1
        return ConnectionID(loop: 0, serial: serial)
    }

    func openHTTP() -> HTTPConnection {
        let id = nextID()
        let connection = HTTPConnection(id: id, transport: HTTPTransport(gateway: gateway, now: now, connection: id))
        http[connection.id] = connection
        return connection
    }

    /// An MQTT client connected and subscribed to `filter` at `qos`.
    func mqttSubscriber(_ filter: String, qos: QoS = .atLeastOnce) -> ConnectionID {
        let id = nextID()
        coreHandle(.connect(Connect(clientID: "sub-\(id.rawValue)")), from: id)
        let request = SubscriptionRequest(filter: TopicFilter(filter)!, qos: qos)
        coreHandle(.subscribe(Subscribe(packetID: PacketID(1)!, requests: [request])), from: id)
        mqttReceived[id] = []
        settle()
        return id
    }

    func mqttPublish(_ topic: String, _ payload: String, qos: QoS = .atMostOnce, id: UInt16 = 7) {
        let publisher = nextID()
        coreHandle(.connect(Connect(clientID: "pub-\(publisher.rawValue)")), from: publisher)
        coreHandle(
            .publish(
                Publish(
                    topic: TopicName(topic)!, payload: Array(payload.utf8), qos: qos,
                    packetID: qos == .atMostOnce ? nil : PacketID(id)!)), from: publisher)
        settle()
    }

    func coreHandle(_ packet: Packet, from id: ConnectionID) {
        var actions: [Action] = []
        broker.handle(
            packet, from: id, info: ConnectionInfo(remoteAddress: "127.0.0.1:1", listenerPort: 8081), now: now,
            into: &actions)
        apply(actions)
    }

    /// Bytes from the HTTP client, as one read. An HTTP/1.1 request line without a Host header gets one.
    func send(_ text: String, on connection: HTTPConnection) {
        var request = text
        if !request.contains("Host:"), let line = request.range(of: " HTTP/1.1\r\n") {
            request.insert(contentsOf: "Host: localhost\r\n", at: line.upperBound)
        }
        send(Array(request.utf8), on: connection)
    }

    func send(_ bytes: [UInt8], on connection: HTTPConnection) {
        guard connection.closed == nil else { return }
        var mqtt: [UInt8] = []
        let status = bytes.withUnsafeBytes {
            connection.transport.received($0, mqtt: &mqtt, wire: &connection.wire, now: now)
        }
        feed(mqtt, from: connection)
        if case .close(let reason) = status { transportClosed(connection, reason) }
        settle()
    }

    func tick(seconds: Int64 = 1) {
        now = MonotonicTime(nanoseconds: now.nanoseconds + seconds * 1_000_000_000)
        var actions: [Action] = []
        broker.tick(now: now, into: &actions)
        apply(actions)
        for connection in http.values.sorted(by: { $0.id.rawValue < $1.id.rawValue }) where connection.closed == nil {
            var mqtt: [UInt8] = []
            let status = connection.transport.tick(now: now, mqtt: &mqtt, wire: &connection.wire)
            feed(mqtt, from: connection)
            if case .close(let reason) = status { transportClosed(connection, reason) }
        }
        settle()
    }

    /// The client's socket closed.
    func drop(_ connection: HTTPConnection) {
        guard connection.closed == nil else { return }
        connection.closed = .endOfStream
        connection.transport.closing(.endOfStream, wire: &connection.wire)
        var actions: [Action] = []
        if connection.reachedCore {
            broker.connectionClosed(connection.id, reason: .endOfStream, now: now, into: &actions)
        }
        apply(actions)
        settle()
    }

    private func transportClosed(_ connection: HTTPConnection, _ reason: CloseReason) {
        guard connection.closed == nil else { return }
        connection.closed = reason
        connection.transport.closing(reason, wire: &connection.wire)
        var actions: [Action] = []
        if connection.reachedCore { broker.connectionClosed(connection.id, reason: reason, now: now, into: &actions) }
        apply(actions)
    }

    private func feed(_ mqtt: [UInt8], from connection: HTTPConnection) {
        var offset = 0
        while offset < mqtt.count, connection.closed == nil {
            let decoded = mqtt.withUnsafeBytes { bytes in
                try? decoder.decode(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
            }
            guard case (var packet, let consumed)? = decoded else {
                XCTFail("the transport wrote an undecodable MQTT stream")
                return
            }
            offset += consumed
            if case .connect(var connect) = packet {
                connection.reachedCore = true
                if case .authenticated(let username) = connection.transport.connectIdentity {
                    connect.username = username
                    packet = .connect(connect)
                }
            }
            coreHandle(packet, from: connection.id)
        }
    }

    private func apply(_ actions: [Action]) {
        // As the event loop does: what `send` hands back is handled after the batch, not in the middle of it.
        var followUps: [(HTTPConnection, [UInt8], TransportStatus)] = []
        defer {
            for (connection, mqtt, status) in followUps {
                feed(mqtt, from: connection)
                if case .close(let reason) = status, connection.closed == nil { transportClosed(connection, reason) }
            }
        }
        // As the loops do once the core has run: admission requests are answered after the batch.
        var admissions: [AdmissionRequest] = []
        defer {
            for request in admissions {
                var more: [Action] = []
                broker.admissionAnswered(admitter.admit(request), for: request.connection, now: now, into: &more)
                apply(more)
            }
        }
        for action in actions {
            switch action {
            case .admit(let request):
                admissions.append(request)
            case .send(let id, let outbound):
                var bytes: [UInt8] = []
                let packet: Packet
                switch outbound {
                case .publish(let delivery):
                    packet = .publish(
                        Publish(
                            topic: delivery.message.topic, payload: delivery.message.payload, qos: delivery.qos,
                            retain: delivery.retain, dup: delivery.dup, packetID: delivery.packetID))
                case .control(let control):
                    packet = control
                }
                if let connection = http[id] {
                    guard connection.closed == nil else { continue }
                    packet.encode(into: &bytes)
                    var mqtt: [UInt8] = []
                    let status = bytes.withUnsafeBytes {
                        connection.transport.send($0, mqtt: &mqtt, wire: &connection.wire, now: now)
                    }
                    followUps.append((connection, mqtt, status))
                } else {
                    mqttReceived[id, default: []].append(packet)
                }
            case .close(let id, let reason):
                if let connection = http[id], connection.closed == nil {
                    connection.closed = reason
                    connection.transport.closing(reason, wire: &connection.wire)
                }
            }
        }
    }
}

/// The loops accept a CONNECT whose transport vouches for its user (`TransportIdentity.authenticated`) without a
/// password check; the harness answers the core's admission requests itself, so this stands in for that step.
struct RecorderVouched: Authenticator {
    let inner: any Authenticator
    func authenticate(clientID: String, username: String?, password: [UInt8]?) -> ConnectReturnCode {
        if username == GatewayHub.recorderUsername { return .accepted }
        return inner.authenticate(clientID: clientID, username: username, password: password)
    }
    func admit(_ request: AdmissionRequest) -> AdmissionAnswer {
        request.username == GatewayHub.recorderUsername ? .accepted(request) : inner.admit(request)
    }
}

/// Splits what a connection received into HTTP responses (Content-Length framed) and an open stream's tail.
struct ParsedResponse {
    var status: Int
    var headers: [(String, String)]
    var body: String

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// Every complete response in `text`; a response without Content-Length takes the rest (a stream).
    static func all(_ text: String) -> [ParsedResponse] {
        var responses: [ParsedResponse] = []
        var rest = Substring(text)
        while let end = rest.range(of: "\r\n\r\n") {
            let head = rest[..<end.lowerBound].split(separator: "\r\n", omittingEmptySubsequences: false)
            guard let statusLine = head.first, let status = Int(statusLine.split(separator: " ")[1]) else { break }
            let headers = head.dropFirst().map { line -> (String, String) in
                let parts = line.split(separator: ":", maxSplits: 1)
                return (String(parts[0]), String(parts.count > 1 ? parts[1].drop { $0 == " " } : ""))
            }
            var response = ParsedResponse(status: status, headers: headers, body: "")
            let bodyStart = end.upperBound
            if let length = response.header("Content-Length").flatMap({ Int($0) }) {
                let bodyBytes = Array(rest[bodyStart...].utf8.prefix(length))
                response.body = String(decoding: bodyBytes, as: UTF8.self)
                rest = Substring(String(decoding: Array(rest[bodyStart...].utf8.dropFirst(length)), as: UTF8.self))
            } else {
                response.body = String(rest[bodyStart...])
                rest = ""
            }
            responses.append(response)
        }
        return responses
    }
}

/// Allows `alice` with password `secret`, and publishing or subscribing only under `alice/`.
struct AliceOnly: Authenticator, AccessControl {
    func authenticate(clientID: String, username: String?, password: [UInt8]?) -> ConnectReturnCode {
        guard let username else { return .notAuthorized }
        return username == "alice" && password == Array("secret".utf8) ? .accepted : .badUsernameOrPassword
    }
    var checksDeliveries: Bool { false }
    func mayPublish(clientID: String, username: String?, topic: TopicName) -> Bool {
        topic.description.hasPrefix("alice/")
    }
    func maySubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool {
        filter.description.hasPrefix("alice/")
    }
    func mayReceive(clientID: String, username: String?, topic: TopicName) -> Bool { true }
}

final class HTTPTransportTests: XCTestCase {
    private let alice = "Authorization: Basic \(Array("alice:secret".utf8).base64)\r\n"

    func testPublishQoS0AnswersAfterTheCoreHandledItAndSubscribersGetIt() {
        let harness = GatewayHarness()
        let subscriber = harness.mqttSubscriber("a/b", qos: .atMostOnce)
        let client = harness.openHTTP()
        harness.send("POST /publish?topic=a/b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", on: client)
        let responses = ParsedResponse.all(client.text)
        XCTAssertEqual(responses.count, 1)
        XCTAssertEqual(responses.first?.status, 200)
        XCTAssertEqual(responses.first?.body, #"{"published":1}"#)
        XCTAssertNotNil(responses.first?.header("Date"))
        XCTAssertNil(client.closed, "HTTP/1.1 keeps the connection")
        guard case .publish(let publish)? = harness.mqttReceived[subscriber]?.last else {
            return XCTFail("the subscriber got nothing")
        }
        XCTAssertEqual(publish.payload, Array("hello".utf8))
    }

    func testBulkJSONPublishWithMixedQoSAnswersOnceEveryMessageIsAccepted() {
        let harness = GatewayHarness()
        let subscriber = harness.mqttSubscriber("bulk/#", qos: .exactlyOnce)
        let client = harness.openHTTP()
        let body =
            #"[{"topic":"bulk/0","payload":"zero"},{"topic":"bulk/1","payload":"one","qos":1},"#
            + #"{"topic":"bulk/2","payload_base64":"AAEC","qos":2,"retain":true}]"#
        harness.send(
            "POST /publish HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
                + body, on: client)
        XCTAssertEqual(ParsedResponse.all(client.text).map(\.body), [#"{"published":3}"#])
        let topics = (harness.mqttReceived[subscriber] ?? []).compactMap { packet -> String? in
            if case .publish(let publish) = packet { return publish.topic.description }
            return nil
        }
        XCTAssertEqual(topics, ["bulk/0", "bulk/1", "bulk/2"])
        // The PUBREL for the QoS 2 message goes out with the next read or tick; the session stays usable.
        harness.tick()
        harness.send("POST /publish?topic=bulk/3&qos=2 HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", on: client)
        XCTAssertEqual(ParsedResponse.all(client.text).map(\.status), [200, 200])
    }

    func testCredentialsAndACLAreChecked() {
        let auth = AliceOnly()
        let harness = GatewayHarness(authenticator: auth, accessControl: auth, allowAnonymous: false)
        let anonymous = harness.openHTTP()
        harness.send("POST /publish?topic=alice/x HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", on: anonymous)
        XCTAssertEqual(ParsedResponse.all(anonymous.text).first?.status, 401)
        XCTAssertNotNil(ParsedResponse.all(anonymous.text).first?.header("WWW-Authenticate"))

        let wrong = harness.openHTTP()
        let badPassword = Array("alice:nope".utf8).base64
        harness.send(
            "POST /publish?topic=alice/x HTTP/1.1\r\nAuthorization: Basic \(badPassword)\r\nContent-Length: 1\r\n\r\nx",
            on: wrong)
        XCTAssertEqual(ParsedResponse.all(wrong.text).first?.status, 401)

        let denied = harness.openHTTP()
        harness.send("POST /publish?topic=bob/x HTTP/1.1\r\n\(alice)Content-Length: 1\r\n\r\nx", on: denied)
        XCTAssertEqual(ParsedResponse.all(denied.text).first?.status, 403)

        let allowed = harness.openHTTP()
        harness.send("POST /publish?topic=alice/x HTTP/1.1\r\n\(alice)Content-Length: 1\r\n\r\nx", on: allowed)
        XCTAssertEqual(ParsedResponse.all(allowed.text).first?.status, 200)

        let sse = harness.openHTTP()
        harness.send("GET /subscribe?topic=bob/%23 HTTP/1.1\r\n\(alice)\r\n", on: sse)
        XCTAssertEqual(ParsedResponse.all(sse.text).first?.status, 403)
        harness.tick()
        XCTAssertNotNil(sse.closed, "closed a tick after the answer")
    }

    func testSysTopicsCannotBePublished() {
        let harness = GatewayHarness()
        let client = harness.openHTTP()
        harness.send("POST /publish?topic=$SYS/broker/uptime HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", on: client)
        XCTAssertEqual(ParsedResponse.all(client.text).first?.status, 403)
    }

    func testBadRequestsGetTheirStatusAndMessage() {
        let harness = GatewayHarness()
        let cases: [(String, Int)] = [
            ("GET /nowhere HTTP/1.1\r\n\r\n", 404),
            ("GET /publish HTTP/1.1\r\n\r\n", 405),
            ("POST /publish HTTP/1.1\r\nContent-Length: 3\r\n\r\n{x}", 400),
            ("GET /subscribe HTTP/1.1\r\n\r\n", 400),
            ("GET /metrics HTTP/1.1\r\nX: \(String(repeating: "a", count: 40_000))\r\n\r\n", 431),
            ("BROKEN\r\n\r\n", 400),
        ]
        for (request, status) in cases {
            let client = harness.openHTTP()
            harness.send(request, on: client)
            let response = ParsedResponse.all(client.text).first
            XCTAssertEqual(response?.status, status, request.prefix(40).description)
            XCTAssertTrue(response?.body.hasPrefix(#"{"error":"#) ?? false, request.prefix(40).description)
        }
    }

    func testMetricsAnswerInPrometheusText() {
        let harness = GatewayHarness()
        let client = harness.openHTTP()
        harness.send("GET /metrics HTTP/1.1\r\n\r\n", on: client)
        let response = ParsedResponse.all(client.text).first
        XCTAssertEqual(response?.status, 200)
        XCTAssertEqual(response?.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
        XCTAssertTrue(response?.body.contains("# TYPE midge_messages_received_total counter") ?? false)
    }

    func testServerSentEventsStreamDeliveriesWithIdsAndHeartbeats() {
        var settings = HTTPGatewaySettings()
        settings.heartbeatSeconds = 2
        let harness = GatewayHarness(settings: settings)
        let client = harness.openHTTP()
        harness.send("GET /subscribe?topic=s/%2B HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n", on: client)
        guard let head = ParsedResponse.all(client.text).first else { return XCTFail("no stream head") }
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.header("Content-Type"), "text/event-stream")
        harness.mqttPublish("s/1", "first")
        harness.mqttPublish("s/2", "second")
        harness.mqttPublish("other", "not matched")
        let body = ParsedResponse.all(client.text).first?.body ?? ""
        let first = #"id: 1"# + "\n" + #"data: {"topic":"s/1","payload":"first","qos":0,"retain":false}"# + "\n\n"
        XCTAssertTrue(body.contains(first), body)
        XCTAssertTrue(body.contains("id: 2\n"))
        XCTAssertFalse(body.contains("not matched"))
        harness.tick(seconds: 1)
        XCTAssertFalse(client.text.hasSuffix(":\n\n"))
        harness.tick(seconds: 1)
        XCTAssertTrue(client.text.hasSuffix(":\n\n"), "a heartbeat after 2 quiet seconds")
    }

    func testQoS1StreamAcknowledgesSoTheInflightWindowNeverFills() {
        let harness = GatewayHarness()
        let client = harness.openHTTP()
        harness.send("GET /subscribe?topic=q&qos=1 HTTP/1.1\r\n\r\n", on: client)
        // More than max_inflight_messages (20), acknowledged tick by tick.
        for round in 0..<3 {
            for index in 0..<15 { harness.mqttPublish("q", "m\(round)-\(index)", qos: .atLeastOnce) }
            harness.tick()
        }
        harness.tick()
        XCTAssertEqual(client.text.components(separatedBy: "\"payload\":").count - 1, 45, "every message arrived")
        XCTAssertTrue(client.text.contains("id: 45\n"))
    }

    func testQoS1StreamIsAcknowledgedAsItIsWrittenNotPacedByTheTick() {
        let harness = GatewayHarness()
        let client = harness.openHTTP()
        harness.send("GET /subscribe?topic=fast&qos=1 HTTP/1.1\r\n\r\n", on: client)
        // Three times max_inflight_messages (20) without a single tick: only acknowledgements handed back by `send`
        // can open the window again.
        for index in 0..<60 { harness.mqttPublish("fast", "m\(index)", qos: .atLeastOnce) }
        XCTAssertEqual(client.text.components(separatedBy: "\"payload\":").count - 1, 60, "every message arrived")
        XCTAssertTrue(client.text.contains("id: 60\n"))
    }

    func testAReconnectingEventSourceResumesFromLastEventIDWithoutLosingMessages() {
        let harness = GatewayHarness()
        let first = harness.openHTTP()
        harness.send("GET /subscribe?topic=r/%23&qos=1&client_id=browser-1 HTTP/1.1\r\n\r\n", on: first)
        harness.mqttPublish("r/1", "one", qos: .atLeastOnce)
        harness.mqttPublish("r/2", "two", qos: .atLeastOnce)
        harness.tick()
        // The client saw only id 1 (id 2 was lost in flight), then the connection dropped.
        harness.drop(first)
        harness.mqttPublish("r/3", "three while away", qos: .atLeastOnce)
        let second = harness.openHTTP()
        harness.send(
            "GET /subscribe?topic=r/%23&qos=1&client_id=browser-1 HTTP/1.1\r\nLast-Event-ID: 1\r\n\r\n", on: second)
        let body = ParsedResponse.all(second.text).first?.body ?? ""
        XCTAssertFalse(body.contains("\"one\""), "id 1 was seen")
        XCTAssertTrue(body.contains("id: 2\ndata: {\"topic\":\"r/2\""), body)
        XCTAssertTrue(body.contains("id: 3\ndata: {\"topic\":\"r/3\""), body)
        let secondIndex = body.range(of: "\"two\"")?.lowerBound
        let thirdIndex = body.range(of: "three while away")?.lowerBound
        XCTAssertNotNil(secondIndex)
        XCTAssertNotNil(thirdIndex)
        if let secondIndex, let thirdIndex { XCTAssertLessThan(secondIndex, thirdIndex, "in order") }
    }

    func testLongPollAnswersOnTheFirstMessageOrTheTimeoutAndContinues() {
        let harness = GatewayHarness()
        let client = harness.openHTTP()
        harness.send("GET /subscribe?topic=p&mode=longpoll&timeout=5&client_id=poller HTTP/1.1\r\n\r\n", on: client)
        XCTAssertEqual(ParsedResponse.all(client.text).count, 0, "waits")
        harness.mqttPublish("p", "hello")
        var responses = ParsedResponse.all(client.text)
        XCTAssertEqual(responses.count, 1)
        XCTAssertEqual(
            responses.first?.body,
            #"{"messages":[{"id":"1","topic":"p","payload":"hello","qos":0,"retain":false}]}"#)
        // Between polls a message arrives; the next poll on the same connection returns it at once.
        harness.mqttPublish("p", "between")
        harness.send(
            "GET /subscribe?topic=p&mode=longpoll&timeout=5&client_id=poller&last_event_id=1 HTTP/1.1\r\n\r\n",
            on: client)
        responses = ParsedResponse.all(client.text)
        XCTAssertEqual(responses.count, 2)
        XCTAssertTrue(responses.last?.body.contains(#""id":"2""#) ?? false)
        // Nothing more: the timeout answers an empty list.
        harness.send(
            "GET /subscribe?topic=p&mode=longpoll&timeout=2&client_id=poller&last_event_id=2 HTTP/1.1\r\n\r\n",
            on: client)
        harness.tick()
        XCTAssertEqual(ParsedResponse.all(client.text).count, 2)
        harness.tick()
        XCTAssertEqual(ParsedResponse.all(client.text).last?.body, #"{"messages":[]}"#)
    }

    func testIdleKeptAliveConnectionIsClosedWithADisconnect() {
        var settings = HTTPGatewaySettings()
        settings.idleSeconds = 3
        let harness = GatewayHarness(settings: settings)
        let client = harness.openHTTP()
        harness.send("POST /publish?topic=i HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", on: client)
        harness.tick(seconds: 2)
        XCTAssertNil(client.closed)
        harness.tick(seconds: 2)
        XCTAssertNotNil(client.closed)
        XCTAssertEqual(harness.broker.statistics.connectedClients, 0)
    }

    func testBearerTokenUsesItsSubjectAsUserName() {
        // header {"alg":"HS256"}, payload {"sub":"alice"}; the signature is the authenticator's business.
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"
        XCTAssertEqual(HTTPGateway.subject(ofToken: Array(token.utf8)), "alice")
        XCTAssertNil(HTTPGateway.subject(ofToken: Array("opaque".utf8)))
        XCTAssertEqual(
            HTTPGateway.username(for: .init(username: nil, password: Array("opaque".utf8)), bearer: true), "token")
    }
}

extension Array where Element == UInt8 {
    /// Standard base64 with padding, for Basic credentials in tests.
    var base64: String {
        let alphabet = Swift.Array<Character>("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        var out = ""
        var index = 0
        while index < count {
            let chunk = Array(self[index..<Swift.min(index + 3, count)])
            let value = chunk.enumerated().reduce(0) { $0 | Int($1.element) << (16 - 8 * $1.offset) }
            for position in 0..<4 {
                out.append(position <= chunk.count ? alphabet[(value >> (18 - 6 * position)) & 63] : "=")
            }
            index += 3
        }
        return out
    }
}
