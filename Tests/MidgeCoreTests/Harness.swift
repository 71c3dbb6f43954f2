// Test harness: drives whole scripted sessions through the broker core with a fake clock.
import MQTTCodec
import MidgeCore
import MidgeRecords
import XCTest

/// Collects log lines; the sink closure holds this box.
final class LogRecorder {
    var lines: [(LogLevel, String)] = []
    func contains(_ text: String) -> Bool { lines.contains { $0.1.contains(text) } }
    func count(_ text: String) -> Int { lines.filter { $0.1.contains(text) }.count }
}

/// A broker, a clock, and the actions it produced, sorted per connection.
final class Harness {
    let broker: Broker
    let logs = LogRecorder()
    var now = MonotonicTime.seconds(1000)
    /// Every action in order, over all connections.
    private(set) var actions: [Action] = []
    private var outbox: [ConnectionID: [Packet]] = [:]
    private var rawDeliveries: [ConnectionID: [Delivery]] = [:]
    private(set) var closes: [ConnectionID: CloseReason] = [:]
    /// Pauses and resumes the broker asked for, in order, since the last `takeReadingChanges`.
    private var readingChanges: [ReadingChange] = []
    private var nextSerial: UInt64 = 0
    let file: StaticString
    let line: UInt

    /// Answers every `Action.admit` as soon as it is recorded, as a driver with a quick authenticator would.
    private let authenticator: (any Authenticator)?
    /// Admission requests not answered yet, by connection (see `answer`); only without an `authenticator`.
    private(set) var admissionRequests: [ConnectionID: AdmissionRequest] = [:]

    /// With an `authenticator`, the broker asks for admission and the harness answers at once with it; with
    /// `answersAdmissionsLater`, the requests wait in `admissionRequests` for the test to `answer` them.
    init(
        _ configuration: BrokerConfiguration = BrokerConfiguration(), authenticator: (any Authenticator)? = nil,
        answersAdmissionsLater: Bool = false, accessControl: any AccessControl = AllowAll(),
        controlHandler: (any ControlTopicHandler)? = nil, file: StaticString = #filePath, line: UInt = #line
    ) {
        let logs = self.logs
        self.authenticator = authenticator
        broker = Broker(
            configuration: configuration, asksAdmission: authenticator != nil || answersAdmissionsLater,
            accessControl: accessControl, controlHandler: controlHandler,
            log: { level, text in logs.lines.append((level, text)) })
        self.file = file
        self.line = line
    }

    func newConnectionID() -> ConnectionID {
        nextSerial += 1
        return ConnectionID(loop: 0, serial: nextSerial)
    }

    func info(_ connection: ConnectionID) -> ConnectionInfo {
        ConnectionInfo(remoteAddress: "127.0.0.1:\(40000 + connection.rawValue)", listenerPort: 1883)
    }

    /// One event through the core, as the event loops run it (`Broker.run`), ending the run: its records go to the
    /// log, which confirms them at once when `commitsAtOnce`.
    func run(_ event: CoreEvent) {
        var produced: [Action] = []
        broker.run(event, now: now, into: &produced)
        record(produced)
    }

    func send(_ packet: Packet, from connection: ConnectionID) {
        if case .connect = packet {
            run(.connect(connection, packet, info(connection)))
        } else {
            run(.packet(connection, packet))
        }
    }

    /// The driver noticed the connection end (EOF, socket error, ...).
    func drop(_ connection: ConnectionID, reason: CloseReason = .endOfStream) {
        run(.closed(connection, reason))
    }

    /// The driver found the connection's output over its high-water mark.
    func congest(_ connection: ConnectionID) {
        run(.outputCongested(connection))
    }

    /// ... and back at its low-water mark.
    func drain(_ connection: ConnectionID) {
        run(.outputDrained(connection))
    }

    /// ... or answered `ReadingChange.confirmOutput`.
    func confirm(_ connection: ConnectionID) {
        run(.outputConfirmed(connection))
    }

    /// The driver's answer to the connection's admission request.
    func answer(_ connection: ConnectionID, _ answer: AdmissionAnswer) {
        XCTAssertNotNil(
            admissionRequests.removeValue(forKey: connection), "no admission asked for \(connection)", file: file,
            line: line)
        var produced: [Action] = []
        broker.admissionAnswered(answer, for: connection, now: now, into: &produced)
        record(produced)
    }

    func takeReadingChanges() -> [ReadingChange] {
        defer { readingChanges = [] }
        return readingChanges
    }

    func advance(_ seconds: Double) {
        now = now + seconds
        run(.tick)
    }

    /// With persistence on (`enableDurability`): the log the core appends to. Its `durableState` is what a restart
    /// would recover.
    private(set) var log: InMemoryRecordLog?
    /// The store's state as the confirmed records describe it.
    var store: StoreState? { log?.durableState }
    /// Whether each run's records are confirmed at once, releasing the acknowledgements held behind them.
    var commitsAtOnce = true

    /// Turns persistence on, restoring `state`, with an `InMemoryRecordLog` that holds it.
    @discardableResult
    func enableDurability(restoring state: StoreState = StoreState(), unixSeconds: Int64 = 1_700_000_000)
        -> RestoreSummary
    {
        let log = InMemoryRecordLog(holding: state)
        self.log = log
        let summary = broker.enableDurability(restoring: state, log: log, unixSeconds: unixSeconds, now: now)
        // Expired sessions are ended by records written at restore, appended with the first run.
        broker.appendRecords()
        return summary
    }

    /// Confirms every pending append, as the store does when its writes complete, and hands the confirmation to the
    /// core. Returns the records confirmed.
    @discardableResult
    func commit() -> [StoreRecord] {
        confirm(through: log?.pending.last?.sequence ?? 0)
    }

    /// Confirms the log's appends up to `sequence` only; the acknowledgements held behind later ones stay held.
    @discardableResult
    func confirm(through sequence: UInt64) -> [StoreRecord] {
        guard let log else { return [] }
        let before = log.durableRecords.count
        guard let confirmed = log.confirm(through: sequence) else { return [] }
        var released: [Action] = []
        broker.run(.recordsDurable(through: confirmed), now: now, into: &released)
        record(released)
        return Array(log.durableRecords[before...])
    }

    func record(_ produced: [Action]) {
        defer {
            broker.appendRecords()
            if log != nil && commitsAtOnce { commit() }
        }
        broker.takeReadingChanges(into: &readingChanges)
        for action in produced {
            actions.append(action)
            switch action {
            case .send(let connection, let packet):
                XCTAssertNil(closes[connection], "send to \(connection) after its close", file: file, line: line)
                switch packet {
                case .control(let control):
                    outbox[connection, default: []].append(control)
                case .publish(let delivery):
                    rawDeliveries[connection, default: []].append(delivery)
                    XCTAssertEqual(
                        delivery.qos == .atMostOnce, delivery.packetID == nil, "packet id iff QoS > 0", file: file,
                        line: line)
                    guard (delivery.qos == .atMostOnce) == (delivery.packetID == nil) else { continue }
                    outbox[connection, default: []].append(
                        .publish(
                            Publish(
                                topic: delivery.message.topic, payload: delivery.message.payload, qos: delivery.qos,
                                retain: delivery.retain, dup: delivery.dup, packetID: delivery.packetID)))
                }
            case .close(let connection, let reason):
                XCTAssertNil(closes[connection], "\(connection) closed twice", file: file, line: line)
                closes[connection] = reason
            case .admit(let request):
                if let authenticator {
                    var produced: [Action] = []
                    broker.admissionAnswered(
                        authenticator.admit(request), for: request.connection, now: now, into: &produced)
                    record(produced)
                } else {
                    admissionRequests[request.connection] = request
                }
            }
        }
    }

    /// Packets sent to the connection since the last call.
    func take(_ connection: ConnectionID) -> [Packet] {
        outbox.removeValue(forKey: connection) ?? []
    }

    /// PUBLISH deliveries to the connection since the last call, with their shared `Message`.
    func takeDeliveries(_ connection: ConnectionID) -> [Delivery] {
        outbox[connection]?.removeAll { if case .publish = $0 { true } else { false } }
        return rawDeliveries.removeValue(forKey: connection) ?? []
    }

    func closeReason(_ connection: ConnectionID) -> CloseReason? { closes[connection] }

    /// Returns packets to the front of the connection's outbox, for helpers that look at the first one.
    func putBack(_ packets: [Packet], for connection: ConnectionID) {
        guard !packets.isEmpty else { return }
        outbox[connection] = packets + (outbox[connection] ?? [])
    }

    /// Connects and expects CONNACK 0 as the only packet so far.
    @discardableResult
    func connect(
        _ clientID: String, clean: Bool = true, keepAlive: UInt16 = 0, will: Will? = nil, username: String? = nil,
        password: [UInt8]? = nil, sessionPresent: Bool = false, isBridge: Bool = false,
        file: StaticString = #filePath, line: UInt = #line
    ) -> Client {
        let client = connectExpectingAnything(
            clientID, clean: clean, keepAlive: keepAlive, will: will, username: username, password: password,
            isBridge: isBridge)
        let received = client.take()
        XCTAssertEqual(
            received.first, .connack(ConnAck(sessionPresent: sessionPresent, returnCode: .accepted)), file: file,
            line: line)
        XCTAssertEqual(received.count, 1, "only CONNACK expected, got \(received)", file: file, line: line)
        return client
    }

    /// The usual cast: client "s" subscribed to `filter` with `qos`, then client "p" to publish.
    func subscriberAndPublisher(
        _ qos: QoS, filter: String = "t", clean: Bool = true, file: StaticString = #filePath, line: UInt = #line
    ) -> (subscriber: Client, publisher: Client) {
        let subscriber = connect("s", clean: clean, file: file, line: line)
        subscriber.subscribeOnly([(filter, qos)], file: file, line: line)
        return (subscriber, connect("p", file: file, line: line))
    }

    /// Sends a CONNECT on a fresh connection and leaves its answer in the outbox.
    @discardableResult
    func connectExpectingAnything(
        _ clientID: String, clean: Bool = true, keepAlive: UInt16 = 0, will: Will? = nil, username: String? = nil,
        password: [UInt8]? = nil, version: ProtocolVersion = .v3_1_1, isBridge: Bool = false
    ) -> Client {
        let client = Client(harness: self, id: newConnectionID())
        client.send(
            .connect(
                Connect(
                    protocolVersion: version, cleanSession: clean, keepAlive: keepAlive, clientID: clientID,
                    will: will, username: username, password: password, isBridge: isBridge)))
        return client
    }
}

/// One scripted client connection.
struct Client {
    let harness: Harness
    let id: ConnectionID

    func send(_ packet: Packet) { harness.send(packet, from: id) }
    func take() -> [Packet] { harness.take(id) }
    var closeReason: CloseReason? { harness.closeReason(id) }
    var isClosed: Bool { closeReason != nil }

    func publish(
        _ topic: String, _ payload: String, qos: QoS = .atMostOnce, id packetID: UInt16? = nil, retain: Bool = false,
        dup: Bool = false
    ) {
        send(.publish(makePublish(topic, payload, qos: qos, id: packetID, retain: retain, dup: dup)))
    }

    /// Subscribes and returns the SUBACK codes, leaving retained messages that follow in the outbox.
    @discardableResult
    func subscribe(
        _ requests: [(String, QoS)], id packetID: UInt16 = 1, file: StaticString = #filePath, line: UInt = #line
    ) -> [SubAckReturnCode] {
        send(
            .subscribe(
                Subscribe(
                    packetID: pid(packetID),
                    requests: requests.map { SubscriptionRequest(filter: filter($0.0), qos: $0.1) })))
        var packets = take()
        guard case .suback(let suback)? = packets.first else {
            XCTFail("expected SUBACK first, got \(packets)", file: file, line: line)
            return []
        }
        XCTAssertEqual(suback.packetID, pid(packetID), file: file, line: line)
        packets.removeFirst()
        harness.putBack(packets, for: id)
        return suback.returnCodes
    }

    /// Subscribes and also expects no retained message to follow.
    func subscribeOnly(_ requests: [(String, QoS)], file: StaticString = #filePath, line: UInt = #line) {
        send(
            .subscribe(
                Subscribe(
                    packetID: pid(1), requests: requests.map { SubscriptionRequest(filter: filter($0.0), qos: $0.1) })))
        XCTAssertEqual(
            take(), [.suback(SubAck(packetID: pid(1), returnCodes: requests.map { .granted($0.1) }))], file: file,
            line: line)
    }

    func unsubscribe(_ filters: [String], id packetID: UInt16 = 2) {
        send(.unsubscribe(Unsubscribe(packetID: pid(packetID), filters: filters.map { filter($0) })))
    }

    func disconnect() { send(.disconnect) }
    func drop(_ reason: CloseReason = .endOfStream) { harness.drop(id, reason: reason) }
}

// MARK: - Packet builders

func pid(_ raw: UInt16) -> PacketID {
    guard let id = PacketID(raw) else { preconditionFailure("test used packet id 0") }
    return id
}

func topic(_ text: String) -> TopicName {
    guard let name = TopicName(text) else { preconditionFailure("invalid test topic \(text)") }
    return name
}

func filter(_ text: String) -> TopicFilter {
    guard let value = TopicFilter(text) else { preconditionFailure("invalid test filter \(text)") }
    return value
}

func makePublish(
    _ topicText: String, _ payload: String, qos: QoS = .atMostOnce, id: UInt16? = nil, retain: Bool = false,
    dup: Bool = false
) -> Publish {
    Publish(
        topic: topic(topicText), payload: Array(payload.utf8), qos: qos, retain: retain, dup: dup,
        packetID: id.map(pid))
}

/// The PUBLISH the broker is expected to send.
func pub(
    _ topicText: String, _ payload: String, qos: QoS = .atMostOnce, id: UInt16? = nil, retain: Bool = false,
    dup: Bool = false
) -> Packet {
    .publish(makePublish(topicText, payload, qos: qos, id: id, retain: retain, dup: dup))
}

func connack(_ code: ConnectReturnCode, sessionPresent: Bool = false) -> Packet {
    .connack(ConnAck(sessionPresent: sessionPresent, returnCode: code))
}

func will(_ topicText: String, _ payload: String, qos: QoS = .atMostOnce, retain: Bool = false) -> Will {
    Will(topic: topic(topicText), payload: Array(payload.utf8), qos: qos, retain: retain)
}

/// Payloads of PUBLISH packets, as strings, for order checks.
func payloads(_ packets: [Packet]) -> [String] {
    packets.compactMap {
        if case .publish(let publish) = $0 { String(decoding: publish.payload, as: UTF8.self) } else { nil }
    }
}

/// Denies exactly the listed topics / filters; everything else is allowed.
struct DenyTopics: AccessControl {
    var publish: Set<String> = []
    var subscribe: Set<String> = []
    var receive: Set<String> = []

    var checksDeliveries: Bool { !receive.isEmpty }
    func mayPublish(clientID: String, username: String?, topic: TopicName) -> Bool {
        !publish.contains(topic.description)
    }
    func maySubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool {
        !subscribe.contains(filter.description)
    }
    func mayReceive(clientID: String, username: String?, topic: TopicName) -> Bool {
        !receive.contains(topic.description)
    }
}

/// Takes what the client was sent, acknowledging every QoS 1/2 PUBLISH and PUBREL as a well-behaved client
/// would, until nothing more arrives; returns the payloads in arrival order.
func receiveAcking(_ client: Client, maxRounds: Int = 10_000) -> [String] {
    var received: [String] = []
    for _ in 0..<maxRounds {
        let packets = client.take()
        if packets.isEmpty { break }
        received += payloads(packets)
        for packet in packets {
            switch packet {
            case .publish(let publish):
                guard let id = publish.packetID else { continue }
                client.send(publish.qos == .atLeastOnce ? .puback(id) : .pubrec(id))
            case .pubrel(let id):
                client.send(.pubcomp(id))
            default:
                break
            }
        }
    }
    return received
}
