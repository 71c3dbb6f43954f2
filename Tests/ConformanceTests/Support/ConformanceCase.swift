// The base of every conformance test class: one shared broker per class, unique names, session helpers.
//
// The suite is black-box: each test speaks raw MQTT 3.1.1 over loopback TCP to a broker process and is named by
// the spec statement it checks. Against midge (the `midge` built next to the test bundle, or `MIDGE_BINARY`):
//     swift build --scratch-path .build-conf && swift test --scratch-path .build-conf --filter ConformanceTests
// Against the reference broker, to validate the tests themselves:
//     CONFORMANCE_BROKER=mosquitto swift test --scratch-path .build-conf --filter ConformanceTests
// WebSocket tests run on midge only with MIDGE_WEBSOCKETS=1. A failing test prints the broker's log tail.

import Foundation
import MQTTCodec
import MQTTTestSupport
import Synchronization
import XCTest

/// The broker each test class shares, keyed by class name, started in `class setUp` and stopped in `class tearDown`.
private let sharedBrokers = Mutex<[String: BrokerProcess]>([:])
private let nameCounter = Atomic<Int>(0)

class ConformanceCase: XCTestCase {
    /// Config lines for this class's shared broker; override for a class-wide setting.
    class var sharedConfig: [String] { [] }

    private var ownBrokers: [BrokerProcess] = []
    /// Directories of files written for this test's brokers (ACL and password files), removed when it ends.
    var scratchDirectories: [URL] = []

    override class func setUp() {
        super.setUp()
        let key = String(describing: self)
        do {
            let broker = try BrokerProcess(config: sharedConfig)
            sharedBrokers.withLock { $0[key] = broker }
        } catch {
            // Each test then fails on its own with this reason through `broker`.
            print("could not start the shared broker for \(key): \(error)")
        }
    }

    override class func tearDown() {
        let key = String(describing: self)
        let broker = sharedBrokers.withLock { $0.removeValue(forKey: key) }
        broker?.stop()
        super.tearDown()
    }

    /// The shared broker of this class.
    var broker: BrokerProcess {
        get throws {
            let key = String(describing: type(of: self))
            guard let broker = sharedBrokers.withLock({ $0[key] }) else {
                throw TestError("the shared broker for \(key) did not start")
            }
            return broker
        }
    }

    var kind: BrokerKind { BrokerKind.current }

    override func tearDown() {
        let failed = (testRun?.failureCount ?? 0) + (testRun?.unexpectedExceptionCount ?? 0) > 0
        if failed {
            let key = String(describing: type(of: self))
            let brokers = ownBrokers + (sharedBrokers.withLock { $0[key] }.map { [$0] } ?? [])
            for broker in brokers {
                print("---- \(broker.kind) log (\(broker.logURL.path)), last lines ----\n\(broker.logTail())\n----")
            }
        }
        for broker in ownBrokers { broker.stop() }
        ownBrokers.removeAll()
        for directory in scratchDirectories { try? FileManager.default.removeItem(at: directory) }
        scratchDirectories.removeAll()
        super.tearDown()
    }

    /// Starts a broker with special config for this test alone; it is stopped when the test ends.
    func startBroker(config: [String]) throws -> BrokerProcess {
        let broker = try BrokerProcess(config: config)
        ownBrokers.append(broker)
        return broker
    }

    // MARK: Names

    /// A client id unique to this run: up to 23 characters from 0-9a-zA-Z, so every broker must accept it
    /// [MQTT-3.1.3-5].
    func uniqueID(_ hint: String = "c") -> String {
        let number = nameCounter.wrappingAdd(1, ordering: .relaxed).newValue
        let letters = hint.filter { $0.isASCII && ($0.isLetter || $0.isNumber) }
        return String((letters.prefix(10) + "x\(getpid() % 10000)n\(number)").prefix(23))
    }

    /// A topic unique to this test: a fresh first level so no other test's messages can reach it.
    func uniqueTopic(_ suffix: String = "t") -> String {
        let number = nameCounter.wrappingAdd(1, ordering: .relaxed).newValue
        return "conf\(getpid())/\(number)/\(suffix)"
    }

    // MARK: Sessions

    /// Opens a connection and completes CONNECT/CONNACK with return code 0.
    func connect(
        _ clientID: String? = nil, clean: Bool = true, keepAlive: UInt16 = 60, will: WillSpec? = nil,
        username: String? = nil, password: String? = nil, to broker: BrokerProcess? = nil,
        expectSessionPresent: Bool? = nil
    ) throws -> RawClient {
        let target = try broker ?? self.broker
        let id = clientID ?? uniqueID()
        let client = try RawClient(port: target.port, name: id.isEmpty ? "(empty id)" : id)
        try client.send(
            Wire.connect(id, clean: clean, keepAlive: keepAlive, will: will, username: username, password: password))
        let connack = try client.readConnAck()
        guard connack.returnCode == .accepted else {
            throw TestError("\(client.name): CONNACK return code \(connack.returnCode)")
        }
        if let expectSessionPresent, connack.sessionPresent != expectSessionPresent {
            throw TestError(
                "\(client.name): session present \(connack.sessionPresent), expected \(expectSessionPresent)")
        }
        return client
    }

    /// Opens a TCP connection with no MQTT exchange yet.
    func open(name: String = "raw", to broker: BrokerProcess? = nil) throws -> RawClient {
        try RawClient(port: (broker ?? self.broker).port, name: name)
    }

    /// Subscribes to one filter and checks that the SUBACK grants `expect` (by default the requested QoS).
    @discardableResult
    func subscribe(_ client: RawClient, _ filter: String, qos: UInt8 = 0, id: UInt16 = 1, expect: UInt8? = nil)
        throws -> SubAck
    {
        try client.send(Wire.subscribe(id: id, filter, qos: qos))
        let suback = try client.readSubAck()
        guard suback.packetID.rawValue == id, suback.returnCodes.count == 1 else {
            throw TestError("\(client.name): unexpected SUBACK \(suback) for id \(id)")
        }
        let wanted = expect ?? qos
        guard suback.returnCodes[0].rawValue == wanted else {
            throw TestError("\(client.name): SUBACK code \(suback.returnCodes[0].rawValue), expected \(wanted)")
        }
        return suback
    }

    /// Publishes at QoS 0, 1 or 2 and completes the flow, so the broker owns the message when this returns.
    func publish(
        _ client: RawClient, _ topic: String, _ payload: String, qos: UInt8 = 0, retain: Bool = false,
        id: UInt16 = 1
    ) throws {
        try publish(client, topic: Array(topic.utf8), payload: Array(payload.utf8), qos: qos, retain: retain, id: id)
    }

    func publish(
        _ client: RawClient, topic: [UInt8], payload: [UInt8], qos: UInt8 = 0, retain: Bool = false, id: UInt16 = 1
    ) throws {
        try client.send(Wire.publish(topic: topic, payload: payload, qos: qos, retain: retain, id: id))
        switch qos {
        case 0:
            try client.sync()
        case 1:
            try expect(try client.readPacket(), .puback(try packetID(id)), client)
        default:
            try expect(try client.readPacket(), .pubrec(try packetID(id)), client)
            try client.send(Wire.pubrel(id))
            try expect(try client.readPacket(), .pubcomp(try packetID(id)), client)
        }
    }

    /// Sends DISCONNECT and closes the socket.
    func disconnect(_ client: RawClient) {
        client.sendIgnoringClose(Wire.disconnect)
        client.close()
    }

    func packetID(_ raw: UInt16) throws -> PacketID {
        guard let id = PacketID(raw) else { throw TestError("packet id 0 is not an id") }
        return id
    }

    func expect(_ packet: Packet, _ wanted: Packet, _ client: RawClient) throws {
        guard packet == wanted else { throw TestError("\(client.name): expected \(wanted), got \(packet)") }
    }

    /// Reads one PUBLISH and checks its topic, payload and QoS, then acknowledges it as its QoS requires.
    @discardableResult
    func receive(
        _ client: RawClient, topic: String, payload: String, qos: UInt8 = 0, ack: Bool = true, timeout: Double = 5,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> Publish {
        let publish = try client.readPublish(timeout: timeout)
        XCTAssertEqual(publish.topicString, topic, "topic", file: file, line: line)
        XCTAssertEqual(publish.payloadString, payload, "payload", file: file, line: line)
        XCTAssertEqual(publish.qos.rawValue, qos, "QoS", file: file, line: line)
        if ack { try acknowledge(client, publish) }
        return publish
    }

    /// Completes the receiving side of a delivery: PUBACK, or PUBREC then PUBREL/PUBCOMP.
    func acknowledge(_ client: RawClient, _ publish: Publish) throws {
        switch publish.qos {
        case .atMostOnce:
            return
        case .atLeastOnce:
            try client.send(Wire.puback(publish.id))
        case .exactlyOnce:
            try client.send(Wire.pubrec(publish.id))
            try expect(try client.readPacket(), .pubrel(try packetID(publish.id)), client)
            try client.send(Wire.pubcomp(publish.id))
        }
    }

    /// Skips a test that needs config only mosquitto has, or behaviour the brief says midge lacks.
    func skipOnMosquitto(_ reason: String) throws {
        try XCTSkipIf(kind == .mosquitto, reason)
    }
}

extension ConformanceCase {
    /// Sends DISCONNECT and waits until the broker has closed the connection, so the session is stored
    /// (or dropped) before the test goes on.
    func disconnectAndWait(_ client: RawClient) throws {
        try client.send(Wire.disconnect)
        // The broker SHOULD close after DISCONNECT (§3.14.4); one that does not is tested elsewhere, not here.
        _ = try? client.expectClosed(timeout: 2)
        client.close()
    }
}
