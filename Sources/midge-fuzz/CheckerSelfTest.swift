// Proof that CoreChecker sees violations (§2.3.1, §3.1.2.10, §3.2, §3.3.1.3, §4.3): fabricated faulty batches.
import MQTTCodec
import MidgeCore

/// A corpus that passes says little if the checker could not fail; `replay` runs these first. Each case is a short
/// script of events with the actions a faulty core might return: every step but the last must pass, the last must
/// be reported.
enum CheckerSelfTest {
    typealias Step = (event: CoreEvent, actions: [Action], at: Int64)

    static let a = ConnectionID(loop: 0, serial: 1)
    static let b = ConnectionID(loop: 0, serial: 2)

    static func packetID(_ raw: UInt16) -> PacketID {
        guard let id = PacketID(raw) else { preconditionFailure("self-test packet id 0") }
        return id
    }

    static func topic(_ text: String) -> TopicName {
        guard let name = TopicName(text) else { preconditionFailure("self-test topic \(text) is invalid") }
        return name
    }

    static func connect(_ connection: ConnectionID, _ clientID: String, keepAlive: UInt16 = 0) -> Step {
        (
            .packet(connection, .connect(Connect(keepAlive: keepAlive, clientID: clientID))),
            [.send(connection, .control(.connack(ConnAck(sessionPresent: false, returnCode: .accepted))))], 0
        )
    }

    static func delivery(_ text: String, qos: QoS, id: UInt16?, retain: Bool = false) -> OutboundPacket {
        let message = Message(topic: topic(text), payload: Array(text.utf8), qos: qos)
        return .publish(Delivery(message: message, qos: qos, retain: retain, dup: false, packetID: id.map(packetID)))
    }

    static func publish(_ text: String, qos: QoS, id: UInt16?, retain: Bool = false) -> Packet {
        .publish(
            Publish(
                topic: topic(text), payload: Array(text.utf8), qos: qos, retain: retain,
                packetID: id.map(packetID)))
    }

    static var subscribeA: Step {
        guard let filter = TopicFilter("#") else { preconditionFailure("self-test filter # is invalid") }
        let request = SubscriptionRequest(filter: filter, qos: .exactlyOnce)
        return (
            .packet(a, .subscribe(Subscribe(packetID: packetID(1), requests: [request]))),
            [.send(a, .control(.suback(SubAck(packetID: packetID(1), returnCodes: [.granted(.exactlyOnce)]))))], 0
        )
    }

    static let cases: [(name: String, steps: [Step])] = [
        (
            "send after close",
            [
                connect(a, "a"),
                (.packet(a, .disconnect), [.close(a, .clientDisconnected), .send(a, .control(.pingresp))], 0),
            ]
        ),
        (
            "CONNACK not first",
            [
                (.packet(a, .connect(Connect(clientID: "a"))), [.send(a, .control(.pingresp))], 0)
            ]
        ),
        ("missing PINGRESP", [connect(a, "a"), (.packet(a, .pingreq), [], 0)]),
        (
            "packet id reused while in flight",
            [
                connect(a, "a"), subscribeA, connect(b, "b"),
                (
                    .packet(b, publish("t", qos: .atLeastOnce, id: 1)),
                    [.send(a, delivery("t", qos: .atLeastOnce, id: 5)), .send(b, .control(.puback(packetID(1))))], 0
                ),
                (
                    .packet(b, publish("t", qos: .atLeastOnce, id: 2)),
                    [.send(a, delivery("t", qos: .atLeastOnce, id: 5)), .send(b, .control(.puback(packetID(2))))], 0
                ),
            ]
        ),
        (
            "RETAIN=1 on a live forward",
            [
                connect(a, "a"), subscribeA, connect(b, "b"),
                (
                    .packet(b, publish("t", qos: .atMostOnce, id: nil, retain: true)),
                    [.send(a, delivery("t", qos: .atMostOnce, id: nil, retain: true))], 0
                ),
            ]
        ),
        (
            "message nobody published",
            [
                connect(a, "a"), subscribeA, connect(b, "b"),
                (
                    .packet(b, publish("t", qos: .atMostOnce, id: nil)),
                    [.send(a, delivery("u", qos: .atMostOnce, id: nil))],
                    0
                ),
            ]
        ),
        (
            "keepalive close too early",
            [
                connect(a, "a", keepAlive: 10),
                (.tick, [.close(a, .keepaliveTimeout)], 14_000_000_000),
            ]
        ),
        (
            "keepalive expiry missed",
            [
                connect(a, "a", keepAlive: 10),
                (.tick, [], 15_000_000_000),
            ]
        ),
        (
            "takeover left the old connection open",
            [
                connect(a, "same"), connect(b, "same"),
            ]
        ),
    ]

    /// Names of the cases that did not behave: a finding too early, or none at the end.
    static func failures() -> [String] {
        var failed: [String] = []
        for (name, steps) in cases {
            let checker = CoreChecker(configuration: BrokerConfiguration(), durable: false)
            for (index, step) in steps.enumerated() {
                let now = MonotonicTime(nanoseconds: 1_000_000_000_000 + step.at)
                let before = checker.findings.count
                checker.willHandle(step.event, now: now)
                checker.check(step.actions, held: [], [], after: step.event, now: now)
                let reported = checker.findings.count > before
                if index < steps.count - 1 && reported {
                    failed.append("\(name): step \(index) reported \(checker.findings[before])")
                    break
                }
                if index == steps.count - 1 && !reported { failed.append("\(name): not reported") }
            }
        }
        return failed
    }
}
