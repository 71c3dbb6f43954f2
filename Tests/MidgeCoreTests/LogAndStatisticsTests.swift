// Log lines worded like mosquitto's, session lifetime, and the statistics snapshot.
import MQTTCodec
import MidgeCore
import XCTest

final class LogAndStatisticsTests: XCTestCase {
    func test_connectionLifecycleLogLines() {
        let harness = Harness()
        harness.connect("plain", keepAlive: 60)
        XCTAssertTrue(harness.logs.contains("New client connected from 127.0.0.1:40001 as plain (p2, c1, k60)."))
        harness.connect("named", clean: false, keepAlive: 5, username: "user")
        XCTAssertTrue(
            harness.logs.contains("New client connected from 127.0.0.1:40002 as named (p2, c0, k5, u'user')."))
        let old = harness.connectExpectingAnything("v31", version: .v3_1)
        XCTAssertTrue(harness.logs.contains("as v31 (p1, c1, k0)."))

        harness.connect("bye").disconnect()
        XCTAssertTrue(harness.logs.contains("Client bye disconnected."))
        harness.connect("eof").drop(.endOfStream)
        XCTAssertTrue(harness.logs.contains("Client eof closed its connection."))
        harness.connect("reset").drop(.connectionLost("connection reset by peer"))
        XCTAssertTrue(harness.logs.contains("Socket error on client reset, disconnecting."))
        harness.connect("bad").drop(.protocolError("malformed remaining length"))
        XCTAssertTrue(
            harness.logs.contains(
                "Client bad (127.0.0.1:40007) disconnected due to protocol error: malformed remaining length."))
        harness.connectExpectingAnything("v31")
        XCTAssertTrue(harness.logs.contains("Client v31 already connected, closing old connection."))
        XCTAssertEqual(old.closeReason, .takenOver)
    }

    func test_everyRefusalIsLoggedWithItsReason() {
        var configuration = BrokerConfiguration()
        configuration.allowAnonymous = false
        configuration.maxKeepalive = 100
        let harness = Harness(configuration, authenticator: FixedAuthenticator())
        _ = harness.connectExpectingAnything("", clean: false, username: "user")
        XCTAssertTrue(
            harness.logs.contains(
                "Client <unknown> from 127.0.0.1:40001 disconnected, identifier rejected"
                    + " (empty client id with clean session 0)."
            ))
        _ = harness.connectExpectingAnything("anon")
        XCTAssertTrue(harness.logs.contains("Client anon from 127.0.0.1:40002 disconnected, not authorised (anonymous"))
        _ = harness.connectExpectingAnything("pw", username: "user", password: [0])
        XCTAssertTrue(harness.logs.contains("Client pw from 127.0.0.1:40003 disconnected, bad user name or password."))
        _ = harness.connectExpectingAnything("ka", keepAlive: 101, username: "user")
        XCTAssertTrue(harness.logs.contains("identifier rejected (keepalive 101 above the maximum)"))
    }

    func test_MQTT_4_1_0_2_cleanSessionLivesUntilItsConnectionEnds() {
        let harness = Harness()
        let client = harness.connect("c", clean: true)
        client.subscribeOnly([("t", .atLeastOnce)])
        let publisher = harness.connect("p")
        for n in 1...3 { publisher.publish("t", "\(n)", qos: .atLeastOnce, id: UInt16(n)) }
        harness.advance(3600)
        XCTAssertEqual(payloads(client.take()), ["1", "2", "3"])
        XCTAssertEqual(harness.broker.statistics.sessions, 2)
        client.drop()
        XCTAssertEqual(harness.broker.statistics.sessions, 1)
        XCTAssertEqual(harness.broker.statistics.inflightMessages, 0)
        XCTAssertEqual(harness.broker.statistics.subscriptions, 0)
    }

    func test_statisticsSnapshot() {
        let harness = Harness()
        let subscriber = harness.connect("s", clean: false)
        subscriber.subscribeOnly([("a", .atLeastOnce), ("b/#", .atMostOnce)])
        let publisher = harness.connect("p")
        publisher.publish("a", "1", qos: .atLeastOnce, id: 1, retain: true)
        publisher.publish("b/c", "2")
        subscriber.drop()
        publisher.publish("a", "3", qos: .atLeastOnce, id: 2)
        var expected = BrokerStatistics()
        expected.connectedClients = 1
        expected.sessions = 2
        expected.messagesReceived = 3
        expected.messagesSent = 2
        expected.messagesDropped = 0
        expected.retainedMessages = 1
        expected.retainedBytes = 2  // topic `a`, payload `1`
        expected.subscriptions = 2
        expected.inflightMessages = 1
        expected.queuedMessages = 1
        expected.queuedBytes = 1
        XCTAssertEqual(harness.broker.statistics, expected)
    }

    func test_brokerOriginatedPublishMayUseSysAndRetain() {
        let harness = Harness(accessControl: DenyTopics(publish: ["$SYS/broker/uptime"]))
        let live = harness.connect("live")
        live.subscribeOnly([("$SYS/#", .atLeastOnce)])
        var actions: [Action] = []
        let message = Message(topic: topic("$SYS/broker/uptime"), payload: Array("42 seconds".utf8), qos: .atMostOnce)
        harness.broker.publish(message, retain: true, into: &actions)
        guard case .send(let connection, .publish(let delivery))? = actions.first, actions.count == 1 else {
            return XCTFail("expected one delivery, got \(actions)")
        }
        XCTAssertEqual(connection, live.id)
        XCTAssertTrue(delivery.message === message)
        XCTAssertFalse(delivery.retain)
        let late = harness.connect("late")
        late.subscribe([("$SYS/broker/+", .atMostOnce)])
        XCTAssertEqual(late.take(), [pub("$SYS/broker/uptime", "42 seconds", retain: true)])
    }
}
