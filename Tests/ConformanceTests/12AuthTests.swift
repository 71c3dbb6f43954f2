// Black-box tests of refused CONNECTs and access control (§3.1.4, §3.2.2, §3.3.5, §3.8.4): password and ACL files.

import Foundation
import MQTTCodec
import MQTTTestSupport
import XCTest

final class AuthTests: ConformanceCase {
    /// A broker that only lets `alice` / `secret` in, with a password file made by `mosquitto_passwd`.
    private func passwordBroker() throws -> BrokerProcess {
        let path = try makePasswordFile(user: "alice", password: "secret")
        return try startBroker(config: ["allow_anonymous false", "password_file \(path)"])
    }

    /// Checks a refusal: CONNACK with session present 0 and a code from `codes`, then EOF, and a PINGREQ sent
    /// after the refusal gets no PINGRESP.
    private func expectRefusal(
        _ label: String, _ bytes: [UInt8], codes: [UInt8], broker: BrokerProcess, file: StaticString = #filePath,
        line: UInt = #line
    ) throws {
        let client = try open(name: label, to: broker)
        try client.send(bytes)
        client.sendIgnoringClose(Wire.pingreq)
        let frame = try XCTUnwrap(client.readFrame(), "\(label): no CONNACK", file: file, line: line)
        XCTAssertEqual(Array(frame.bytes.prefix(3)), [0x20, 0x02, 0x00], "\(label): \(frame)", file: file, line: line)
        XCTAssertTrue(
            codes.contains(frame.bytes.last ?? 0), "\(label): return code of \(frame)", file: file, line: line)
        XCTAssertNoThrow(
            try client.expectClosed(), "\(label): no close or a reply after the refusal", file: file, line: line)
    }

    func test_MQTT_3_1_4_5_nothingProcessedAfterRefusedConnect() throws {
        // Bad password + retained PUBLISH in one write: CONNACK 0x04/0x05, EOF, and nothing retained afterwards.
        let broker = try passwordBroker()
        let topic = uniqueTopic()
        let client = try open(to: broker)
        try client.send(
            Wire.connect(uniqueID(), username: "alice", password: "wrong"),
            Wire.publish(topic, "smuggled", qos: 1, retain: true, id: 1))
        let frame = try XCTUnwrap(client.readFrame(), "no CONNACK")
        XCTAssertTrue([[0x20, 0x02, 0x00, 0x04], [0x20, 0x02, 0x00, 0x05]].contains(frame.bytes), "\(frame)")
        try client.expectClosed()
        let subscriber = try connect(username: "alice", password: "secret", to: broker)
        try subscribe(subscriber, topic, qos: 1)
        try subscriber.expectNothing(for: 0.5)
    }

    func test_MQTT_3_2_2_4_refusalHasSessionPresent0() throws {
        // A bad password for an id with a stored session gets `20 02 00 04` or `20 02 00 05`.
        let broker = try passwordBroker()
        let id = uniqueID()
        let first = try connect(id, clean: false, username: "alice", password: "secret", to: broker)
        try subscribe(first, uniqueTopic(), qos: 1)
        try disconnectAndWait(first)
        try expectRefusal(
            "bad password", Wire.connect(id, clean: false, username: "alice", password: "wrong"), codes: [4, 5],
            broker: broker)
        // The session is still there for the right password.
        _ = try connect(id, clean: false, username: "alice", password: "secret", to: broker, expectSessionPresent: true)
    }

    func test_MQTT_3_2_2_5_refusalThenClose() throws {
        // Refusals 0x01, 0x02 and 0x04/0x05 are each followed by EOF; a PINGREQ after them gets no PINGRESP.
        let broker = try passwordBroker()
        try expectRefusal(
            "protocol level 6", Wire.connect(clientID: Array(uniqueID().utf8), level: 6), codes: [1], broker: broker)
        try expectRefusal(
            "empty id", Wire.connect("", clean: false, username: "alice", password: "secret"), codes: [2],
            broker: broker)
        try expectRefusal(
            "bad password", Wire.connect(uniqueID(), username: "alice", password: "wrong"), codes: [4, 5],
            broker: broker)
        try expectRefusal(
            "unknown user", Wire.connect(uniqueID(), username: "bob", password: "x"), codes: [4, 5], broker: broker)
        try expectRefusal("anonymous", Wire.connect(uniqueID()), codes: [4, 5], broker: broker)
    }

    func test_MQTT_3_3_5_2_unauthorizedPublishDropped() throws {
        // A QoS 1 publish the ACL denies gets a normal PUBACK (or a close) and reaches no subscriber.
        let acl = try writeFile("acl", ["topic readwrite allowed/#", "topic read denied/#"])
        let broker = try startBroker(config: ["acl_file \(acl)"])
        let subscriber = try connect(to: broker)
        try subscriber.send(Wire.subscribe(id: 1, [(Array("denied/#".utf8), 1), (Array("allowed/#".utf8), 1)]))
        _ = try subscriber.readSubAck()
        let publisher = try connect(to: broker)
        try publisher.send(Wire.publish("denied/x", "secret", qos: 1, id: 3))
        if let frame = publisher.readFrame() {
            XCTAssertEqual(frame.bytes, [0x40, 0x02, 0x00, 0x03], "a denied publish is acknowledged normally")
            try publish(publisher, "allowed/x", "fine", qos: 1, id: 4)
            try receive(subscriber, topic: "allowed/x", payload: "fine", qos: 1)
        } else {
            XCTAssertTrue(publisher.isClosed, "neither PUBACK nor close")
        }
        try subscriber.expectNothing(for: 0.3)
    }

    func test_MQTT_3_8_4_5_oneReturnCodePerFilter() throws {
        // Allowed and ACL-denied filters in one SUBSCRIBE get one code each (0, 1, 2 or 0x80), allowed ones granted.
        let acl = try writeFile("acl", ["topic readwrite allowed/#"])
        let broker = try startBroker(config: ["acl_file \(acl)"])
        let client = try connect(to: broker)
        let requests: [(filter: [UInt8], qos: UInt8)] = [
            (Array("allowed/a".utf8), 1), (Array("secret/b".utf8), 2), (Array("allowed/c".utf8), 0),
            (Array("secret/#".utf8), 1),
        ]
        try client.send(Wire.subscribe(id: 21, requests))
        let frame = try XCTUnwrap(client.readFrame())
        XCTAssertEqual(frame.first, 0x90)
        let codes = Array(frame.body.dropFirst(2))
        XCTAssertEqual(codes.count, requests.count)
        XCTAssertEqual(codes.first, 1)
        XCTAssertEqual(codes.dropFirst(2).first, 0)
        for code in codes { XCTAssertTrue([0, 1, 2, 0x80].contains(code), "code \(code)") }
    }
}

extension ConformanceCase {
    /// A password file holding one user, made by the real `mosquitto_passwd` in a scratch directory of the test.
    func makePasswordFile(user: String, password: String) throws -> String {
        let tool = "/usr/bin/mosquitto_passwd"
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: tool), "mosquitto_passwd is not installed")
        let directory = try BrokerProcess.makeScratchDirectory()
        scratchDirectories.append(directory)
        let path = directory.appendingPathComponent("passwords").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = ["-c", "-b", path, user, password]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestError("mosquitto_passwd failed") }
        return path
    }
}
