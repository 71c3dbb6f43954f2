// Black-box test of `per_listener_settings true` (mosquitto 2.0): the common "anonymous on localhost, passwords on
// the network" set-up, with an ACL that binds only the second listener. Runs against mosquitto too.

import Foundation
import MQTTCodec
import MQTTTestSupport
import XCTest

final class PerListenerSettingsTests: ConformanceCase {
    func test_perListener_anonymousOnOneListenerPasswordsAndACLOnTheOther() throws {
        let passwords = try makePasswordFile(user: "alice", password: "secret")
        let acl = URL(fileURLWithPath: passwords).deletingLastPathComponent().appendingPathComponent("acl").path
        try "user alice\ntopic readwrite alice/#\n".write(toFile: acl, atomically: true, encoding: .utf8)
        let securePort = try BrokerProcess.freePort()
        // The first listener (the harness's own) allows anonymous clients; the second wants alice and her ACL.
        let broker = try startBroker(config: [
            "per_listener_settings true", "allow_anonymous true",
            "listener \(securePort) 127.0.0.1", "allow_anonymous false", "password_file \(passwords)",
            "acl_file \(acl)",
        ])

        let local = try connect(uniqueID("local"), to: broker)
        try subscribe(local, "#")

        let anonymous = try RawClient(port: securePort, name: "anonymous on the secure listener")
        try anonymous.send(Wire.connect(uniqueID("anon")))
        XCTAssertEqual(try anonymous.readConnAck().returnCode, .notAuthorized)

        let wrong = try RawClient(port: securePort, name: "wrong password")
        try wrong.send(Wire.connect(uniqueID("wrong"), username: "alice", password: "nope"))
        XCTAssertTrue([.badUsernameOrPassword, .notAuthorized].contains(try wrong.readConnAck().returnCode))

        let alice = try RawClient(port: securePort, name: "alice")
        try alice.send(Wire.connect(uniqueID("alice"), username: "alice", password: "secret"))
        XCTAssertEqual(try alice.readConnAck().returnCode, .accepted)
        // Her ACL: alice/# is hers; anything else is acknowledged and dropped [MQTT-3.3.5-2].
        try publish(alice, "alice/ok", "allowed", qos: 1)
        try publish(alice, "other/topic", "denied", qos: 1)
        let seen = try local.drainPublishes(window: 0.5).map(\.topicString)
        XCTAssertEqual(seen, ["alice/ok"], "the local listener, without an ACL, sees what alice may publish")

        // The local listener's anonymous clients are not bound by alice's listener's ACL.
        let localPublisher = try connect(uniqueID("local-pub"), to: broker)
        try publish(localPublisher, "other/topic", "free", qos: 1)
        XCTAssertEqual(try local.readPublish().topicString, "other/topic")
    }
}

/// mosquitto's `mount_point`: clients of a mounted listener live under its prefix. Runs against mosquitto too.
final class MountPointConformanceTests: ConformanceCase {
    func test_mountPoint_clientsOfAMountedListenerLiveUnderItsPrefix() throws {
        let mountedPort = try BrokerProcess.freePort()
        let broker = try startBroker(config: ["listener \(mountedPort) 127.0.0.1", "mount_point tenant/"])
        let outside = try connect(uniqueID("outside"), to: broker)
        try subscribe(outside, "tenant/#")

        let inside = try RawClient(port: mountedPort, name: "mounted")
        try inside.send(Wire.connect(uniqueID("inside")))
        XCTAssertEqual(try inside.readConnAck().returnCode, .accepted)
        try subscribe(inside, "jobs/#")
        try inside.send(Wire.publish("jobs/1", "from inside"))
        XCTAssertEqual(try outside.readPublish().topicString, "tenant/jobs/1", "the broker sees the full topic")
        // mosquitto.conf(5) says the prefix is removed from what is sent to the client; Debian's mosquitto 2.0.11
        // sends the full topic. Midge does what the documentation says.
        let seen = { (topic: String) in self.kind == .mosquitto ? "tenant/" + topic : topic }
        let echoed = try inside.readPublish()
        XCTAssertEqual(echoed.topicString, seen("jobs/1"), "the mounted client sees its own topic without the prefix")

        try publish(outside, "tenant/jobs/2", "from outside")
        XCTAssertEqual(try inside.readPublish().topicString, seen("jobs/2"))
        try publish(outside, "jobs/3", "not under the mount")
        try inside.expectNothing(for: 0.3)
    }
}
