// Black-box tests of session state across connections (§3.1.2.4, §3.2.2.2, §4.1, §4.4, §4.5).

import Foundation
import MQTTCodec
import MQTTTestSupport
import XCTest

final class SessionTests: ConformanceCase {
    func test_MQTT_3_1_2_4_persistentSessionResumes() throws {
        // Clean 0, subscribe, disconnect, reconnect clean 0: session present 1 and the old subscription delivers.
        let id = uniqueID()
        let topic = uniqueTopic()
        let first = try connect(id, clean: false, expectSessionPresent: false)
        try subscribe(first, topic, qos: 1)
        try disconnectAndWait(first)
        let again = try connect(id, clean: false, expectSessionPresent: true)
        let publisher = try connect()
        try publish(publisher, topic, "resumed", qos: 1)
        try receive(again, topic: topic, payload: "resumed", qos: 1)
    }

    func test_MQTT_3_1_2_5_offlineQoS1And2Queued() throws {
        // While a clean-0 subscriber is away, 3 QoS 1 and 1 QoS 2 messages are queued; all 4 arrive on reconnect.
        let id = uniqueID()
        let topic = uniqueTopic()
        let subscriber = try connect(id, clean: false)
        try subscribe(subscriber, topic, qos: 2)
        try disconnectAndWait(subscriber)
        let publisher = try connect()
        for number in 1...3 {
            try publish(publisher, topic, "q1-\(number)", qos: 1, id: UInt16(number))
        }
        try publish(publisher, topic, "q2", qos: 2, id: 4)
        let back = try connect(id, clean: false, expectSessionPresent: true)
        var payloads: [String: UInt8] = [:]
        for _ in 0..<4 {
            let publish = try back.readPublish()
            payloads[publish.payloadString] = publish.qos.rawValue
            try acknowledge(back, publish)
        }
        XCTAssertEqual(payloads, ["q1-1": 1, "q1-2": 1, "q1-3": 1, "q2": 2])
        try back.expectNothing(for: 0.3)
    }

    func test_MQTT_3_1_2_6_cleanSessionDiscardsState() throws {
        // Clean 1 drops the stored session: SP 0, old subscription gone, and a later clean-0 connect finds nothing.
        let id = uniqueID()
        let topic = uniqueTopic()
        let first = try connect(id, clean: false)
        try subscribe(first, topic, qos: 1)
        try disconnectAndWait(first)
        let clean = try connect(id, clean: true, expectSessionPresent: false)
        let publisher = try connect()
        try publish(publisher, topic, "not for the clean session", qos: 1)
        try clean.expectNothing(for: 0.5)
        try disconnectAndWait(clean)
        try publish(publisher, topic, "not queued either", qos: 1)
        let later = try connect(id, clean: false, expectSessionPresent: false)
        try later.expectNothing(for: 0.5)
        try disconnectAndWait(later)
        _ = try connect(id, clean: true)
    }

    func test_MQTT_3_1_3_2_sessionsKeyedByClientID() throws {
        // Two client ids keep separate subscriptions and queues; each reconnect finds only its own state.
        let idA = uniqueID("a")
        let idB = uniqueID("b")
        let topicA = uniqueTopic("a")
        let topicB = uniqueTopic("b")
        let a = try connect(idA, clean: false)
        try subscribe(a, topicA, qos: 1)
        try disconnectAndWait(a)
        let b = try connect(idB, clean: false)
        try subscribe(b, topicB, qos: 1)
        try disconnectAndWait(b)
        let publisher = try connect()
        try publish(publisher, topicA, "for a", qos: 1, id: 1)
        try publish(publisher, topicB, "for b", qos: 1, id: 2)
        let backB = try connect(idB, clean: false, expectSessionPresent: true)
        try receive(backB, topic: topicB, payload: "for b", qos: 1)
        try backB.expectNothing(for: 0.3)
        let backA = try connect(idA, clean: false, expectSessionPresent: true)
        try receive(backA, topic: topicA, payload: "for a", qos: 1)
        try backA.expectNothing(for: 0.3)
    }

    func test_MQTT_3_1_4_3_cleanSessionHandledBeforeConnAck() throws {
        // The session is resumed (queued message after CONNACK) or discarded (nothing) as the clean flag says.
        let id = uniqueID()
        let topic = uniqueTopic()
        let first = try connect(id, clean: false)
        try subscribe(first, topic, qos: 1)
        try disconnectAndWait(first)
        let publisher = try connect()
        try publish(publisher, topic, "queued", qos: 1)
        let resumed = try connect(id, clean: false, expectSessionPresent: true)
        try receive(resumed, topic: topic, payload: "queued", qos: 1)
        try disconnectAndWait(resumed)
        try publish(publisher, topic, "queued again", qos: 1)
        let discarded = try connect(id, clean: true, expectSessionPresent: false)
        try discarded.expectNothing(for: 0.5)
    }

    func test_MQTT_3_2_2_1_cleanSessionGetsSessionPresent0() throws {
        // An id with a stored session that connects with clean session 1 gets CONNACK `20 02 00 00`.
        let id = uniqueID()
        let first = try connect(id, clean: false)
        try subscribe(first, uniqueTopic(), qos: 1)
        try disconnectAndWait(first)
        let client = try open()
        try client.send(Wire.connect(id, clean: true))
        XCTAssertEqual(try XCTUnwrap(client.readFrame()).bytes, [0x20, 0x02, 0x00, 0x00])
    }

    func test_MQTT_3_2_2_2_storedSessionGetsSessionPresent1() throws {
        // Clean session 0, disconnect, reconnect clean session 0: CONNACK `20 02 01 00`.
        let id = uniqueID()
        let first = try connect(id, clean: false)
        try disconnectAndWait(first)
        let client = try open()
        try client.send(Wire.connect(id, clean: false))
        XCTAssertEqual(try XCTUnwrap(client.readFrame()).bytes, [0x20, 0x02, 0x01, 0x00])
        try disconnectAndWait(client)
        _ = try connect(id, clean: true)
    }

    func test_MQTT_3_2_2_3_newPersistentSessionGetsSessionPresent0() throws {
        // A brand-new id with clean session 0 gets CONNACK `20 02 00 00`.
        let id = uniqueID()
        let client = try open()
        try client.send(Wire.connect(id, clean: false))
        XCTAssertEqual(try XCTUnwrap(client.readFrame()).bytes, [0x20, 0x02, 0x00, 0x00])
        try disconnectAndWait(client)
        _ = try connect(id, clean: true)
    }

    func test_MQTT_4_1_0_1_sessionStateSurvivesReconnect() throws {
        // An unacknowledged in-flight QoS 1 and a message queued while offline both arrive after a clean-0 reconnect.
        let id = uniqueID()
        let topic = uniqueTopic()
        let subscriber = try connect(id, clean: false)
        try subscribe(subscriber, topic, qos: 1)
        let publisher = try connect()
        try publish(publisher, topic, "in flight", qos: 1, id: 1)
        let inFlight = try subscriber.readPublish()
        XCTAssertEqual(inFlight.payloadString, "in flight")
        try disconnectAndWait(subscriber)
        try publish(publisher, topic, "queued", qos: 1, id: 2)
        let back = try connect(id, clean: false, expectSessionPresent: true)
        let redelivered = try back.readPublish()
        XCTAssertEqual(redelivered.payloadString, "in flight")
        XCTAssertEqual(redelivered.id, inFlight.id, "redelivery keeps the packet id")
        try acknowledge(back, redelivered)
        try receive(back, topic: topic, payload: "queued", qos: 1)
    }

    func test_MQTT_4_1_0_2_cleanSessionLivesWithConnection() throws {
        // A clean-1 session delivers a 200-message QoS 1 stream while connected, and nothing survives the close.
        let id = uniqueID()
        let topic = uniqueTopic()
        let subscriber = try connect(id, clean: true)
        try subscribe(subscriber, topic, qos: 1)
        let publisher = try connect()
        let count = 200
        var stream: [UInt8] = []
        for number in 1...count {
            stream += Wire.publish(topic, "m\(number)", qos: 1, id: UInt16(number))
        }
        try publisher.send(stream)
        var received = 0
        for _ in 0..<count {
            let publish = try subscriber.readPublish()
            try acknowledge(subscriber, publish)
            received += 1
        }
        XCTAssertEqual(received, count)
        for _ in 0..<count {
            _ = try publisher.readPacket()
        }
        try disconnectAndWait(subscriber)
        try publish(publisher, topic, "after close", qos: 1, id: 1)
        let later = try connect(id, clean: false, expectSessionPresent: false)
        try later.expectNothing(for: 0.3)
        try disconnectAndWait(later)
        _ = try connect(id, clean: true)
    }

    func test_MQTT_4_4_0_1_unacknowledgedResentOnReconnect() throws {
        // Clean-0 reconnect resends an unacked QoS 1 PUBLISH (DUP 1, same id) and a pending PUBREL (same id).
        let id = uniqueID()
        let topic1 = uniqueTopic("one")
        let topic2 = uniqueTopic("two")
        let subscriber = try connect(id, clean: false)
        try subscribe(subscriber, topic1, qos: 1, id: 1)
        try subscribe(subscriber, topic2, qos: 2, id: 2)
        let publisher = try connect()
        try publish(publisher, topic1, "one", qos: 1, id: 1)
        let one = try subscriber.readPublish()
        try publish(publisher, topic2, "two", qos: 2, id: 2)
        let two = try subscriber.readPublish()
        XCTAssertEqual(two.qos, .exactlyOnce)
        try subscriber.send(Wire.pubrec(two.id))
        XCTAssertEqual(try subscriber.readPacket(), .pubrel(try packetID(two.id)))
        subscriber.close()

        let back = try connect(id, clean: false, expectSessionPresent: true)
        var sawPublish = false
        var sawPubrel = false
        for _ in 0..<2 {
            let packet = try back.readPacket()
            switch packet {
            case .publish(let publish):
                XCTAssertEqual(publish.payloadString, "one")
                XCTAssertTrue(publish.dup, "redelivery must have DUP 1")
                XCTAssertEqual(publish.id, one.id, "redelivery keeps the packet id")
                try back.send(Wire.puback(publish.id))
                sawPublish = true
            case .pubrel(let pubrelID):
                XCTAssertEqual(pubrelID.rawValue, two.id, "PUBREL keeps the packet id")
                try back.send(Wire.pubcomp(pubrelID.rawValue))
                sawPubrel = true
            default:
                XCTFail("unexpected \(packet)")
            }
        }
        XCTAssertTrue(sawPublish && sawPubrel)
        try back.sync()
    }

    func test_MQTT_4_5_0_1_messageGoesToEverySession() throws {
        // Three matching subscribers, one of them offline with clean session 0: all three get the message.
        let topic = uniqueTopic()
        let a = try connect()
        let b = try connect()
        try subscribe(a, topic, qos: 1)
        try subscribe(b, topic, qos: 1)
        let offlineID = uniqueID()
        let offline = try connect(offlineID, clean: false)
        try subscribe(offline, topic, qos: 1)
        try disconnectAndWait(offline)
        let publisher = try connect()
        try publish(publisher, topic, "everyone", qos: 1)
        try receive(a, topic: topic, payload: "everyone", qos: 1)
        try receive(b, topic: topic, payload: "everyone", qos: 1)
        let back = try connect(offlineID, clean: false, expectSessionPresent: true)
        try receive(back, topic: topic, payload: "everyone", qos: 1)
    }

    func test_MQTT_3_3_1_1_redeliveryHasDup1() throws {
        // An unacknowledged QoS 1 delivery comes again after a clean-0 reconnect with DUP 1 and the same id.
        let id = uniqueID()
        let topic = uniqueTopic()
        let subscriber = try connect(id, clean: false)
        try subscribe(subscriber, topic, qos: 1)
        let publisher = try connect()
        try publish(publisher, topic, "again", qos: 1)
        let first = try subscriber.readPublish()
        XCTAssertFalse(first.dup, "first delivery has DUP 0")
        subscriber.close()
        let back = try connect(id, clean: false, expectSessionPresent: true)
        let second = try back.readPublish()
        XCTAssertEqual(second.payloadString, "again")
        XCTAssertTrue(second.dup, "re-delivery has DUP 1")
        XCTAssertEqual(second.id, first.id)
        try acknowledge(back, second)
    }
}
