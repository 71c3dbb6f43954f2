// Black-box tests of shared subscriptions (`$share/<group>/<filter>`) for MQTT 3.1.1 clients, runnable against
// mosquitto 2.0 (`CONFORMANCE_BROKER=mosquitto`), which serves them the same way.

import Foundation
import MQTTCodec
import MQTTTestSupport
import XCTest

final class SharedSubscriptionConformanceTests: ConformanceCase {
    func test_shared_eachMessageReachesOneMemberAndEveryOrdinarySubscriber() throws {
        // One message to one member of the group, round robin; an ordinary subscriber gets all of them.
        let topic = uniqueTopic("jobs")
        let members = try (0..<3).map { index -> RawClient in
            let member = try connect(uniqueID("member\(index)"))
            try subscribe(member, "$share/workers/" + topic + "/#", qos: 1)
            return member
        }
        let watcher = try connect(uniqueID("watcher"))
        try subscribe(watcher, topic + "/#")
        let publisher = try connect(uniqueID("publisher"))
        for index in 0..<9 { try publish(publisher, topic + "/job", "\(index)", qos: 1) }
        let all = try watcher.collectPublishes(count: 9)
        XCTAssertEqual(all.map(\.payloadString), (0..<9).map(String.init))
        var seen: [String] = []
        for member in members {
            let got = try member.drainPublishes(window: 0.5)
            for publish in got where publish.qos == .atLeastOnce {
                try member.send(Wire.puback(publish.id))
            }
            XCTAssertEqual(got.count, 3, "round robin over three members")
            seen += got.map(\.payloadString)
        }
        XCTAssertEqual(seen.sorted(), (0..<9).map(String.init).sorted(), "each message to exactly one member")
    }

    func test_shared_noRetainedMessageOnASharedSubscribe() throws {
        // Midge differs from Debian's mosquitto 2.0.11 here, which replays retained messages to a shared
        // subscription: with several members each would get the same retained message, against the point of a group
        // (MQTT 5 §4.8.2 forbids it; later mosquitto releases follow that).
        try skipOnMosquitto("mosquitto 2.0.11 replays retained messages to shared subscriptions")
        let topic = uniqueTopic("retained")
        let publisher = try connect(uniqueID("publisher"))
        try publish(publisher, topic, "kept", retain: true)
        let member = try connect(uniqueID("member"))
        try subscribe(member, "$share/g/" + topic)
        try member.expectNothing(for: 0.5)
        try publish(publisher, topic, "", retain: true)
    }

    func test_shared_emptyGroupIsRefusedInTheSuback() throws {
        // Debian's mosquitto 2.0.11 grants `$share//…` to a 3.1.1 client as a plain filter on that literal topic, so a
        // client that meant a group gets a SUBACK and then nothing: a silent failure. Midge refuses it.
        try skipOnMosquitto("mosquitto 2.0.11 grants an empty share group to 3.1.1 clients")
        let client = try connect(uniqueID("bad-group"))
        try client.send(Wire.subscribe(id: 3, "$share//" + uniqueTopic(), qos: 0))
        let suback = try client.readSubAck()
        XCTAssertEqual(suback.returnCodes.map(\.rawValue), [0x80])
    }
}
