// CONNECT handling: refusals, client ids, session present, takeover (§3.1, §3.2).
import MQTTCodec
import MidgeCore
import XCTest

/// Answers with a fixed code, and accepts only the given user/password pair when one is set.
struct FixedAuthenticator: Authenticator {
    var username = "user"
    var password: [UInt8] = Array("secret".utf8)
    func authenticate(clientID: String, username: String?, password: [UInt8]?) -> ConnectReturnCode {
        guard let username else { return .accepted }
        return username == self.username && password == self.password ? .accepted : .badUsernameOrPassword
    }
}

final class ConnectTests: XCTestCase {
    func test_MQTT_3_1_4_4_validConnectGetsConnackZero() {
        let harness = Harness()
        let client = harness.connectExpectingAnything("a")
        XCTAssertEqual(client.take(), [connack(.accepted)])
        XCTAssertFalse(client.isClosed)
    }

    func test_MQTT_3_1_3_5_shortAlphanumericIDsAccepted() {
        let harness = Harness()
        for id in ["a", String(repeating: "Z", count: 23), "0aZ9"] { harness.connect(id) }
        XCTAssertEqual(harness.broker.statistics.connectedClients, 3)
    }

    func test_MQTT_3_1_3_6_emptyClientIDWithCleanSessionGetsUniqueID() {
        let harness = Harness()
        let first = harness.connect("")
        let second = harness.connect("")
        XCTAssertFalse(first.isClosed, "an assigned id must not take over another client")
        XCTAssertFalse(second.isClosed)
        XCTAssertEqual(harness.broker.statistics.connectedClients, 2)
        XCTAssertEqual(harness.logs.count("as auto-"), 2)
        // Both work as normal clients.
        first.subscribeOnly([("t", .atMostOnce)])
        second.publish("t", "hello")
        XCTAssertEqual(first.take(), [pub("t", "hello")])
    }

    func test_MQTT_3_1_3_6_assignedIDIsThePrefixAndAUUID() {
        var configuration = BrokerConfiguration()
        configuration.autoIDPrefix = "gen-"
        let harness = Harness(configuration)
        harness.connect("")
        guard let line = harness.logs.lines.map(\.1).first(where: { $0.hasPrefix("New client connected") }),
            let start = line.range(of: " as gen-")?.upperBound
        else { return XCTFail("no connect line with the prefix: \(harness.logs.lines)") }
        let uuid = line[start...].prefix { $0 != " " }
        XCTAssertEqual(uuid.count, 36, "\(uuid)")
        XCTAssertEqual(uuid.split(separator: "-").map(\.count), [8, 4, 4, 4, 12], "\(uuid)")
    }

    func test_MQTT_3_1_3_8_emptyClientIDWithPersistentSessionRefused() {
        let harness = Harness()
        let client = harness.connectExpectingAnything("", clean: false)
        XCTAssertEqual(client.take(), [connack(.identifierRejected)])
        XCTAssertEqual(client.closeReason, .connectRefused(.identifierRejected))
    }

    func test_MQTT_3_1_3_9_emptyClientIDRefusedWhenNotAllowed() {
        var configuration = BrokerConfiguration()
        configuration.allowZeroLengthClientID = false
        let harness = Harness(configuration)
        let client = harness.connectExpectingAnything("")
        XCTAssertEqual(client.take(), [connack(.identifierRejected)])
        XCTAssertEqual(client.closeReason, .connectRefused(.identifierRejected))
    }

    func test_MQTT_3_1_3_9_clientIDLongerThanLimitRefused() {
        var configuration = BrokerConfiguration()
        configuration.maxClientIDLength = 5
        let harness = Harness(configuration)
        harness.connect("12345")
        let client = harness.connectExpectingAnything("123456")
        XCTAssertEqual(client.take(), [connack(.identifierRejected)])
        XCTAssertTrue(client.isClosed)
    }

    func test_MQTT31ClientIDAbove23BytesRefused() {
        let harness = Harness()
        let ok = harness.connectExpectingAnything(String(repeating: "a", count: 23), version: .v3_1)
        XCTAssertEqual(ok.take(), [connack(.accepted)])
        let long = harness.connectExpectingAnything(String(repeating: "b", count: 24), version: .v3_1)
        XCTAssertEqual(long.take(), [connack(.identifierRejected)])
        XCTAssertTrue(long.isClosed)
        // 3.1.1 has no such limit.
        let modern = harness.connectExpectingAnything(String(repeating: "c", count: 24))
        XCTAssertEqual(modern.take(), [connack(.accepted)])
    }

    func test_MQTT31EmptyClientIDRefused() {
        let harness = Harness()
        let client = harness.connectExpectingAnything("", version: .v3_1)
        XCTAssertEqual(client.take(), [connack(.identifierRejected)])
    }

    func test_keepaliveAboveMaximumRefusedWithIdentifierRejected() {
        var configuration = BrokerConfiguration()
        configuration.maxKeepalive = 60
        let harness = Harness(configuration)
        harness.connect("ok", keepAlive: 60)
        let client = harness.connectExpectingAnything("slow", keepAlive: 61)
        XCTAssertEqual(client.take(), [connack(.identifierRejected)])
        XCTAssertTrue(client.isClosed)
    }

    func test_anonymousRefusedWhenNotAllowed() {
        var configuration = BrokerConfiguration()
        configuration.allowAnonymous = false
        let harness = Harness(configuration)
        let anonymous = harness.connectExpectingAnything("a")
        XCTAssertEqual(anonymous.take(), [connack(.notAuthorized)])
        XCTAssertEqual(anonymous.closeReason, .connectRefused(.notAuthorized))
        harness.connect("b", username: "someone")
    }

    func test_authenticatorAnswerIsTheConnackCode() {
        let harness = Harness(authenticator: FixedAuthenticator())
        let bad = harness.connectExpectingAnything("a", username: "user", password: Array("wrong".utf8))
        XCTAssertEqual(bad.take(), [connack(.badUsernameOrPassword)])
        XCTAssertEqual(bad.closeReason, .connectRefused(.badUsernameOrPassword))
        harness.connect("b", username: "user", password: Array("secret".utf8))
        XCTAssertTrue(harness.logs.contains("New client connected from 127.0.0.1:40002 as b (p2, c1, k0, u'user')."))
    }

    func test_MQTT_3_2_2_4_refusedConnackHasSessionPresentZero() {
        let harness = Harness(authenticator: FixedAuthenticator())
        let first = harness.connect("a", clean: false)
        first.subscribeOnly([("t", .atLeastOnce)])
        first.disconnect()
        let refused = harness.connectExpectingAnything("a", clean: false, username: "user", password: [1])
        XCTAssertEqual(refused.take(), [connack(.badUsernameOrPassword, sessionPresent: false)])
        // The stored session is untouched by the refused attempt.
        harness.connect("a", clean: false, sessionPresent: true)
    }

    func test_MQTT_3_1_4_5_nothingProcessedAfterRefusedConnect() {
        var configuration = BrokerConfiguration()
        configuration.allowAnonymous = false
        let harness = Harness(configuration)
        let refused = harness.connectExpectingAnything("a")
        // Pipelined after the CONNECT: must all be ignored, including another CONNECT.
        refused.publish("t", "sneaky", retain: true)
        refused.send(
            .subscribe(
                Subscribe(packetID: pid(1), requests: [SubscriptionRequest(filter: filter("#"), qos: .atMostOnce)])))
        refused.send(.connect(Connect(clientID: "a", username: "user")))
        refused.send(.pingreq)
        XCTAssertEqual(refused.take(), [connack(.notAuthorized)])
        let subscriber = harness.connect("s", username: "user")
        XCTAssertEqual(subscriber.subscribe([("t", .atMostOnce)]), [.granted(.atMostOnce)])
        XCTAssertEqual(subscriber.take(), [], "the retained publish must not have been stored")
        XCTAssertEqual(harness.broker.statistics.messagesReceived, 0)
    }

    func test_willTopicTheClientMayNotPublishToIsRefused() {
        let harness = Harness(accessControl: DenyTopics(publish: ["forbidden"]))
        let client = harness.connectExpectingAnything("a", will: will("forbidden", "bye"))
        XCTAssertEqual(client.take(), [connack(.notAuthorized)])
        XCTAssertTrue(client.isClosed)
    }

    func test_MQTT_3_2_2_1_cleanSessionHasSessionPresentZero() {
        let harness = Harness()
        let first = harness.connect("a", clean: false)
        first.subscribeOnly([("t", .atLeastOnce)])
        first.disconnect()
        harness.connect("a", clean: true, sessionPresent: false)
    }

    func test_MQTT_3_2_2_2_storedSessionHasSessionPresentOne() {
        let harness = Harness()
        harness.connect("a", clean: false).disconnect()
        harness.connect("a", clean: false, sessionPresent: true)
    }

    func test_MQTT_3_2_2_3_newPersistentSessionHasSessionPresentZero() {
        let harness = Harness()
        harness.connect("brand-new", clean: false, sessionPresent: false)
    }

    func test_MQTT_3_1_2_4_persistentSessionKeepsSubscriptions() {
        let harness = Harness()
        let first = harness.connect("sub", clean: false)
        first.subscribeOnly([("t", .atMostOnce)])
        first.drop()
        let again = harness.connect("sub", clean: false, sessionPresent: true)
        harness.connect("pub").publish("t", "still subscribed")
        XCTAssertEqual(again.take(), [pub("t", "still subscribed")])
    }

    func test_MQTT_3_1_2_6_cleanSessionDiscardsStoredSession() {
        let harness = Harness()
        let publisher = harness.connect("pub")
        let first = harness.connect("sub", clean: false)
        first.subscribeOnly([("t", .atLeastOnce)])
        first.disconnect()
        publisher.publish("t", "queued", qos: .atLeastOnce, id: 1)
        let clean = harness.connect("sub", clean: true, sessionPresent: false)
        XCTAssertEqual(clean.take(), [], "neither the queue nor the subscription survives")
        publisher.publish("t", "after", qos: .atLeastOnce, id: 2)
        XCTAssertEqual(clean.take(), [])
        clean.disconnect()
        let later = harness.connect("sub", clean: false, sessionPresent: false)
        XCTAssertEqual(later.take(), [])
        XCTAssertEqual(harness.broker.statistics.subscriptions, 0)
    }

    func test_MQTT_3_1_3_2_sessionsAreKeyedByClientID() {
        let harness = Harness()
        let a = harness.connect("a", clean: false)
        a.subscribeOnly([("for-a", .atLeastOnce)])
        a.disconnect()
        let b = harness.connect("b", clean: false)
        b.subscribeOnly([("for-b", .atLeastOnce)])
        b.disconnect()
        let publisher = harness.connect("p")
        publisher.publish("for-a", "1", qos: .atLeastOnce, id: 1)
        publisher.publish("for-b", "2", qos: .atLeastOnce, id: 2)
        let b2 = harness.connectExpectingAnything("b", clean: false)
        XCTAssertEqual(
            b2.take(), [connack(.accepted, sessionPresent: true), pub("for-b", "2", qos: .atLeastOnce, id: 1)])
        let a2 = harness.connectExpectingAnything("a", clean: false)
        XCTAssertEqual(
            a2.take(), [connack(.accepted, sessionPresent: true), pub("for-a", "1", qos: .atLeastOnce, id: 1)])
    }

    /// Client ids are compared byte for byte: "café" with U+00E9 and with "e" + U+0301 are canonically equivalent
    /// Swift strings (`==` is true) but two different ids, so two sessions, and neither takes the other over.
    func test_MQTT_3_1_3_4_clientIDsAreComparedByteForByteNotByCanonicalEquivalence() {
        let composed = "caf\u{E9}"
        let decomposed = "cafe\u{301}"
        XCTAssertEqual(composed, decomposed, "the premise: Swift's String == normalises")
        let harness = Harness()
        let first = harness.connect(composed, clean: false)
        first.subscribeOnly([("for-composed", .atLeastOnce)])
        let second = harness.connect(decomposed, clean: false)
        XCTAssertFalse(first.isClosed, "a different id must not take the session over")
        let publisher = harness.connect("p")
        publisher.publish("for-composed", "1", qos: .atLeastOnce, id: 1)
        XCTAssertEqual(payloads(first.take()), ["1"])
        XCTAssertEqual(second.take(), [])
        XCTAssertEqual(harness.broker.statistics.sessions, 3)
    }

    func test_MQTT_3_1_4_2_takeoverClosesOldConnectionBeforeConnack() {
        let harness = Harness()
        let watcher = harness.connect("watcher")
        watcher.subscribeOnly([("wills/#", .atMostOnce)])
        let old = harness.connect("x", will: will("wills/x", "gone"))
        let new = harness.connectExpectingAnything("x")
        XCTAssertEqual(old.closeReason, .takenOver)
        XCTAssertEqual(new.take(), [connack(.accepted)])
        XCTAssertEqual(watcher.take(), [pub("wills/x", "gone")], "the old connection's Will is published")
        // Order: the old connection's close, then the Will, then the new CONNACK.
        let order: [String] = harness.actions.suffix(3).map {
            switch $0 {
            case .close(let id, _): id == old.id ? "close old" : "close ?"
            case .send(let id, _): id == watcher.id ? "will" : id == new.id ? "connack" : "?"
            case .admit: "admit"
            }
        }
        XCTAssertEqual(order, ["close old", "will", "connack"])
        XCTAssertTrue(harness.logs.contains("Client x already connected, closing old connection."))
        XCTAssertFalse(new.isClosed)
        // Packets still arriving from the old connection are ignored.
        old.publish("wills/x", "late")
        XCTAssertEqual(watcher.take(), [])
    }

    func test_MQTT_3_1_4_2_takeoverWithPersistentSessionResumesIt() {
        let harness = Harness()
        let publisher = harness.connect("p")
        let old = harness.connect("x", clean: false)
        old.subscribeOnly([("t", .atLeastOnce)])
        publisher.publish("t", "unacked", qos: .atLeastOnce, id: 1)
        XCTAssertEqual(old.take(), [pub("t", "unacked", qos: .atLeastOnce, id: 1)])
        let new = harness.connectExpectingAnything("x", clean: false)
        XCTAssertEqual(
            new.take(),
            [connack(.accepted, sessionPresent: true), pub("t", "unacked", qos: .atLeastOnce, id: 1, dup: true)])
        XCTAssertEqual(old.closeReason, .takenOver)
    }

    func test_MQTT_3_1_4_2_takeoverOfACleanSessionStartsAFreshOne() {
        let harness = Harness()
        let old = harness.connect("x", clean: true)
        old.subscribeOnly([("t", .atLeastOnce)])
        let new = harness.connectExpectingAnything("x", clean: false)
        XCTAssertEqual(new.take(), [connack(.accepted, sessionPresent: false)])
        harness.connect("p").publish("t", "x", qos: .atLeastOnce, id: 1)
        XCTAssertEqual(new.take(), [], "the old clean session's subscription ended with its connection")
    }

    func test_MQTT_3_2_0_1_connackIsTheFirstPacketOnAResumedSession() {
        let harness = Harness()
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atLeastOnce, clean: false)
        publisher.publish("t", "in flight", qos: .atLeastOnce, id: 1)
        subscriber.drop()
        publisher.publish("t", "queued", qos: .atLeastOnce, id: 2)
        publisher.publish("t", "retained", qos: .atLeastOnce, id: 3, retain: true)
        let again = harness.connectExpectingAnything("s", clean: false)
        again.send(
            .subscribe(
                Subscribe(packetID: pid(5), requests: [SubscriptionRequest(filter: filter("t"), qos: .atLeastOnce)])))
        let packets = harness.actions.compactMap { action -> String? in
            guard case .send(let id, let packet) = action, id == again.id else { return nil }
            switch packet {
            case .control(.connack): return "CONNACK"
            case .control(.suback): return "SUBACK"
            case .publish(let delivery): return String(decoding: delivery.message.payload, as: UTF8.self)
            case .control: return "other"
            }
        }
        XCTAssertEqual(packets, ["CONNACK", "in flight", "queued", "retained", "SUBACK", "retained"])
    }

    func test_MQTT_3_1_0_2_secondConnectIsAProtocolViolation() {
        let harness = Harness()
        let watcher = harness.connect("watcher")
        watcher.subscribeOnly([("will", .atMostOnce)])
        let client = harness.connect("a", will: will("will", "bye"))
        client.send(.connect(Connect(clientID: "a")))
        XCTAssertEqual(client.take(), [], "no second CONNACK")
        guard case .protocolError? = client.closeReason else { return XCTFail("expected a protocol error close") }
        XCTAssertEqual(watcher.take(), [pub("will", "bye")])
        XCTAssertTrue(harness.logs.contains("Client a (127.0.0.1:40002) disconnected due to protocol error"))
    }

    func test_serverOnlyPacketsFromAClientAreProtocolViolations() {
        let harness = Harness()
        let packets: [Packet] = [
            .connack(ConnAck(sessionPresent: false, returnCode: .accepted)),
            .suback(SubAck(packetID: pid(1), returnCodes: [.granted(.atMostOnce)])), .unsuback(pid(1)), .pingresp,
        ]
        for (index, packet) in packets.enumerated() {
            let client = harness.connect("c\(index)")
            client.send(packet)
            XCTAssertEqual(client.take(), [])
            guard case .protocolError? = client.closeReason else { return XCTFail("\(packet) must close") }
        }
    }

    func test_packetsFromAClosedConnectionAreIgnored() {
        let harness = Harness()
        let subscriber = harness.connect("s")
        subscriber.subscribeOnly([("t", .atMostOnce)])
        let client = harness.connect("a")
        client.disconnect()
        XCTAssertEqual(client.closeReason, .clientDisconnected)
        client.publish("t", "after disconnect")  // [MQTT-3.14.4-2]
        client.send(.pingreq)
        XCTAssertEqual(subscriber.take(), [])
        XCTAssertEqual(client.take(), [])
        // The driver reporting the close afterwards is ignored too.
        client.drop()
        XCTAssertEqual(harness.broker.statistics.connectedClients, 1)
    }
}
