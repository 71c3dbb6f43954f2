import MQTTCodec
// mosquitto's `connection` sections: every bridge key with its default and mosquitto's meaning, the topic line's
// forms, how topics are renamed as they cross, and the keys refused with a reason.
import XCTest

@testable import MidgeServer

final class BridgeConfigurationTests: XCTestCase {
    private func parse(_ text: String) throws -> Configuration {
        try Configuration.parse(text: text, fileName: "bridge.conf")
    }

    private func parseError(_ text: String) -> ConfigError? {
        do throws(ConfigError) {
            _ = try Configuration.parse(text: text, fileName: "bridge.conf")
            XCTFail("expected an error for \(text.debugDescription)")
            return nil
        } catch {
            return error
        }
    }

    func testDefaultsAreMosquittos() throws {
        let bridge = try XCTUnwrap(try parse("connection hub\naddress broker.example\ntopic a/#\n").bridges.first)
        XCTAssertEqual(bridge.name, "hub")
        XCTAssertEqual(bridge.addresses, [.init(host: "broker.example", port: 1883)])
        XCTAssertEqual(bridge.topics.map(\.direction), [.out])
        XCTAssertEqual(bridge.topics.map(\.qos), [.atMostOnce])
        XCTAssertEqual(bridge.protocolVersion, .v3_1_1)
        XCTAssertFalse(bridge.cleanSession)
        XCTAssertFalse(bridge.effectiveLocalCleanSession, "local_cleansession follows cleansession")
        XCTAssertEqual(bridge.keepaliveInterval, 60)
        XCTAssertEqual(bridge.idleTimeout, 60)
        XCTAssertEqual(bridge.threshold, 10)
        XCTAssertEqual(bridge.startType, .automatic)
        XCTAssertEqual(bridge.restartTimeout, .backoff(base: 5, cap: 30))
        XCTAssertTrue(bridge.notifications)
        XCTAssertFalse(bridge.notificationsLocalOnly)
        XCTAssertTrue(bridge.tryPrivate)
        XCTAssertTrue(bridge.attemptUnsubscribe)
        XCTAssertTrue(bridge.outgoingRetain)
        XCTAssertFalse(bridge.roundRobin)
        XCTAssertFalse(bridge.tls.isEnabled)
        XCTAssertEqual(bridge.effectiveRemoteClientID(hostName: "edge1"), "edge1.hub")
        XCTAssertEqual(bridge.effectiveLocalClientID(hostName: "edge1"), "local.edge1.hub")
        XCTAssertEqual(bridge.effectiveNotificationTopic(hostName: "edge1"), "$SYS/broker/connection/edge1.hub/state")
    }

    func testEveryKeyIsRead() throws {
        let text = """
            connection cloud
            addresses 10.0.0.1:8883 [::1]:1884 backup.example
            round_robin true
            topic sensors/# out 1
            topic cmd/# in 2 site/ cloud/site/
            topic "" both 0 local/one remote/two
            bridge_protocol_version mqttv31
            cleansession true
            local_cleansession false
            remote_clientid edge-1
            local_clientid edge-1-local
            remote_username edge
            remote_password s3cret word
            local_username bridge-user
            local_password unused
            keepalive_interval 30
            idle_timeout 120
            start_type lazy
            threshold 50
            restart_timeout 7
            notifications false
            notification_topic edge/state
            notifications_local_only true
            try_private false
            bridge_attempt_unsubscribe false
            bridge_outgoing_retain false
            bridge_bind_address 127.0.0.1
            bridge_cafile /etc/ca.pem
            bridge_capath /etc/certs
            bridge_certfile /etc/edge.pem
            bridge_keyfile /etc/edge.key
            bridge_insecure true
            bridge_tls_version tlsv1.3
            bridge_alpn x-amzn-mqtt-ca
            """
        let bridge = try XCTUnwrap(try parse(text).bridges.first)
        XCTAssertEqual(
            bridge.addresses,
            [
                .init(host: "10.0.0.1", port: 8883), .init(host: "::1", port: 1884),
                .init(host: "backup.example", port: 1883),
            ])
        XCTAssertTrue(bridge.roundRobin)
        XCTAssertEqual(bridge.topics.map(\.localFilter.description), ["sensors/#", "site/cmd/#", "local/one"])
        XCTAssertEqual(bridge.topics.map(\.remoteFilter.description), ["sensors/#", "cloud/site/cmd/#", "remote/two"])
        XCTAssertEqual(bridge.topics.map(\.direction), [.out, .in, .both])
        XCTAssertEqual(bridge.topics.map(\.qos), [.atLeastOnce, .exactlyOnce, .atMostOnce])
        XCTAssertEqual(bridge.protocolVersion, .v3_1)
        XCTAssertTrue(bridge.cleanSession)
        XCTAssertFalse(bridge.effectiveLocalCleanSession)
        XCTAssertEqual(bridge.remoteClientID, "edge-1")
        XCTAssertEqual(bridge.localClientID, "edge-1-local")
        XCTAssertEqual(bridge.remoteUsername, "edge")
        XCTAssertEqual(bridge.remotePassword, "s3cret word", "the rest of the line, spaces kept")
        XCTAssertEqual(bridge.localUsername, "bridge-user")
        XCTAssertEqual(bridge.keepaliveInterval, 30)
        XCTAssertEqual(bridge.idleTimeout, 120)
        XCTAssertEqual(bridge.startType, .lazy)
        XCTAssertEqual(bridge.threshold, 50)
        XCTAssertEqual(bridge.restartTimeout, .constant(seconds: 7))
        XCTAssertFalse(bridge.notifications)
        XCTAssertEqual(bridge.notificationTopic, "edge/state")
        XCTAssertTrue(bridge.notificationsLocalOnly)
        XCTAssertFalse(bridge.tryPrivate)
        XCTAssertFalse(bridge.attemptUnsubscribe)
        XCTAssertFalse(bridge.outgoingRetain)
        XCTAssertEqual(bridge.bindAddress, "127.0.0.1")
        XCTAssertEqual(
            bridge.tls,
            BridgeTLSSettings(
                caFile: "/etc/ca.pem", caPath: "/etc/certs", certificateFile: "/etc/edge.pem",
                keyFile: "/etc/edge.key", insecure: true, minimumVersion: .tlsv13, alpn: "x-amzn-mqtt-ca"))
    }

    func testKeysBelongToTheLatestConnectionAndGlobalKeysStayGlobal() throws {
        let configuration = try parse(
            "connection a\naddress one\ntopic x out\nmax_inflight_messages 7\nconnection b\naddress two\ntopic y in\n")
        XCTAssertEqual(configuration.bridges.map(\.name), ["a", "b"])
        XCTAssertEqual(configuration.bridges.map { $0.addresses.map(\.host) }, [["one"], ["two"]])
        XCTAssertEqual(configuration.broker.maxInflightMessages, 7)
    }

    func testBackoffFormOfRestartTimeout() throws {
        let bridge = try XCTUnwrap(try parse("connection a\naddress h\ntopic x\nrestart_timeout 2 40\n").bridges.first)
        XCTAssertEqual(bridge.restartTimeout, .backoff(base: 2, cap: 40))
        XCTAssertEqual(Bridge.nextWait(after: 0, restart: bridge.restartTimeout), 2, "the first wait is the base")
        for last in [2, 5, 13, 40] {
            let next = Bridge.nextWait(after: last, restart: bridge.restartTimeout)
            XCTAssertTrue((2...40).contains(next), "\(next) after \(last)")
            XCTAssertLessThanOrEqual(next, max(2, last * 3))
        }
        XCTAssertEqual(Bridge.nextWait(after: 9, restart: .constant(seconds: 9)), 9)
    }

    func testMistakesAreReportedWithTheirLine() {
        let cases: [(String, String, String)] = [
            ("address h\n", "address", "must follow a 'connection' line"),
            ("connection a\nconnection a\n", "connection", "already configured"),
            ("connection a\naddress h:0\n", "address", "not HOST"),
            ("connection a\ntopic x sideways\n", "topic", "not in, out or both"),
            ("connection a\ntopic x out 3\n", "topic", "not a QoS"),
            ("connection a\ntopic x out 1 onlyone\n", "topic", "expects PATTERN"),
            ("connection a\ntopic \"\" out 1 a/ \"\"\n", "topic", "empty pattern needs"),
            ("connection a\ntopic x out 1 a/+/ b/\n", "topic", "may not contain"),
            ("connection a\ntopic a/#/b\n", "topic", "not a valid topic filter"),
            ("connection a\nbridge_protocol_version mqttv50\n", "bridge_protocol_version", "MQTT v5"),
            ("connection a\nstart_type sometimes\n", "start_type", "automatic, lazy or once"),
            ("connection a\nrestart_timeout 9 3\n", "restart_timeout", "BASE <= CAP"),
            ("connection a\nbridge_tls_version sslv3\n", "bridge_tls_version", "tlsv1.2"),
            ("connection a\nbridge_bind_address example.org\n", "bridge_bind_address", "not an IP address"),
            ("connection a\nbridge_psk 00ff\n", "bridge_psk", "not supported"),
            ("connection a\nbridge_identity me\n", "bridge_identity", "not supported"),
            ("connection a\nbridge_require_ocsp true\n", "bridge_require_ocsp", "not supported"),
            ("connection a\ntopic x\n", "connection", "no address"),
            ("connection a\naddress h\n", "connection", "no topic"),
            (
                "connection a\naddress h\ntopic x\nbridge_certfile c.pem\nbridge_cafile ca.pem\n", "connection",
                "go together"
            ),
            ("connection a\naddress h\ntopic x\nbridge_insecure true\n", "connection", "need bridge_cafile"),
        ]
        for (text, key, words) in cases {
            let error = parseError(text)
            XCTAssertEqual(error?.key, key, text)
            XCTAssertTrue(error?.message.contains(words) ?? false, "\(text): \(error?.message ?? "no error")")
        }
    }

    func testTopicsAreRenamedByTheFirstLineThatCarriesThem() throws {
        let topics = try [
            BridgeTopic(
                pattern: "#", direction: .both, qos: .atLeastOnce, localPrefix: "local/", remotePrefix: "remote/"),
            BridgeTopic(pattern: "", direction: .out, localPrefix: "a/b/one", remotePrefix: "c/d/two"),
            BridgeTopic(pattern: "plain/+", direction: .in),
        ]
        func name(_ text: String) -> TopicName { TopicName(text)! }
        XCTAssertEqual(topics.remoteTopic(forLocal: name("local/x/y")), name("remote/x/y"))
        XCTAssertEqual(topics.remoteTopic(forLocal: name("local/")), name("remote/"), "an empty last level")
        XCTAssertEqual(topics.remoteTopic(forLocal: name("a/b/one")), name("c/d/two"))
        XCTAssertNil(topics.remoteTopic(forLocal: name("a/b/one/more")), "the empty pattern is exactly its topic")
        XCTAssertNil(topics.remoteTopic(forLocal: name("plain/x")), "an `in` line carries nothing out")
        XCTAssertEqual(topics.localTopic(forRemote: name("remote/z")), name("local/z"))
        XCTAssertEqual(topics.localTopic(forRemote: name("plain/x")), name("plain/x"))
        XCTAssertNil(topics.localTopic(forRemote: name("c/d/two")), "an `out` line carries nothing in")
        XCTAssertNil(topics.localTopic(forRemote: name("other")))
    }

    func testBridgeKeysAreSupportedKeys() {
        XCTAssertTrue(Set(Configuration.bridgeKeys).isSubset(of: Set(Configuration.supportedKeys)))
        XCTAssertTrue(Set(Configuration.bridgeKeys).isDisjoint(with: Configuration.unimplementedMosquittoKeys))
    }
}
