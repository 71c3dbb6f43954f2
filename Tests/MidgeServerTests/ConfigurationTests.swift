// The configuration parser: every key, mosquitto 2.0 defaults, located errors, and the example file's coverage.
import Foundation
import MQTTCodec
import MidgeCore
import XCTest

@testable import MidgeServer

final class ConfigurationTests: XCTestCase {
    private func parse(_ text: String) throws -> Configuration {
        try Configuration.parse(text: text, fileName: "test.conf")
    }

    private func parseError(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> ConfigError? {
        do {
            _ = try Configuration.parse(text: text, fileName: "test.conf")
            XCTFail("expected an error for \(text.debugDescription)", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    func testEmptyFileIsLocalOnlyModeWithMosquittoDefaults() throws {
        let configuration = try parse("")
        XCTAssertEqual(configuration.listeners, [])
        XCTAssertEqual(
            configuration.effectiveListeners(commandLinePort: nil),
            [
                ListenerConfiguration(port: 1883, address: .loopbackIPv4),
                ListenerConfiguration(port: 1883, address: .loopbackIPv6),
            ])
        XCTAssertTrue(configuration.broker.allowAnonymous)
        XCTAssertNil(configuration.threads)
        XCTAssertEqual(configuration.connectTimeout, 10)
        XCTAssertEqual(configuration.maxConnections, -1)
        XCTAssertEqual(configuration.maxRemainingLength, 268_435_455)
        XCTAssertEqual(configuration.logTypes, [.error, .warning, .notice, .information])
        XCTAssertEqual(configuration.logDestinations, [.stderr])
        XCTAssertTrue(configuration.logTimestamp)
        XCTAssertNil(configuration.passwordFile)
        XCTAssertNil(configuration.aclFile)
    }

    func testCommandLinePortReplacesTheDefaultPortButStaysOnLoopback() throws {
        let configuration = try parse("# only a comment\n")
        XCTAssertEqual(
            configuration.effectiveListeners(commandLinePort: 1884),
            [
                ListenerConfiguration(port: 1884, address: .loopbackIPv4),
                ListenerConfiguration(port: 1884, address: .loopbackIPv6),
            ])
    }

    func testListenersAndTheirEffectOnAnonymousAccess() throws {
        let configuration = try parse("listener 1883\nlistener 8883 127.0.0.1\nlistener 0 ::1\n")
        XCTAssertEqual(
            configuration.listeners,
            [
                ListenerConfiguration(port: 1883, address: nil),
                ListenerConfiguration(port: 8883, address: .loopbackIPv4),
                ListenerConfiguration(port: 0, address: .loopbackIPv6),
            ])
        XCTAssertEqual(configuration.listeners[0].bindAddresses, [.anyIPv4, .anyIPv6])
        // mosquitto 2.0: declaring a listener turns anonymous access off unless the file says otherwise.
        XCTAssertFalse(configuration.broker.allowAnonymous)
        // -p is ignored once the file declares listeners, as in mosquitto.
        XCTAssertEqual(configuration.effectiveListeners(commandLinePort: 1999), configuration.listeners)
        XCTAssertTrue(try parse("allow_anonymous true\nlistener 1883\n").broker.allowAnonymous)
        XCTAssertFalse(try parse("allow_anonymous false\n").broker.allowAnonymous)
    }

    func testLegacyPortAndBindAddressMakeTheDefaultListener() throws {
        XCTAssertEqual(try parse("port 1884\n").listeners, [ListenerConfiguration(port: 1884, address: nil)])
        XCTAssertEqual(
            try parse("bind_address 127.0.0.1\nport 1885\nlistener 9000\n").listeners,
            [ListenerConfiguration(port: 1885, address: .loopbackIPv4), ListenerConfiguration(port: 9000)])
        XCTAssertEqual(
            try parse("bind_address ::1\n").listeners, [ListenerConfiguration(port: 1883, address: .loopbackIPv6)])
        XCTAssertFalse(try parse("port 1884\n").broker.allowAnonymous)
    }

    func testEveryServerAndCoreKey() throws {
        let configuration = try parse(
            """
            threads 3
            connect_timeout 2
            max_connections 100
            message_size_limit 1024
            max_inflight_messages 7
            max_queued_messages 50
            max_queued_bytes 4096
            queue_full_policy block
            queue_qos0_messages true
            max_keepalive 300
            allow_zero_length_clientid false
            auto_id_prefix  gen id-
            retain_available false
            max_qos 1
            log_timestamp false
            password_file /etc/midge/pass words
            acl_file /etc/midge/acl
            """)
        XCTAssertEqual(configuration.threads, 3)
        XCTAssertEqual(configuration.connectTimeout, 2)
        XCTAssertEqual(configuration.maxConnections, 100)
        XCTAssertEqual(configuration.messageSizeLimit, 1024)
        XCTAssertEqual(configuration.broker.messageSizeLimit, 1024)
        XCTAssertEqual(configuration.maxRemainingLength, 1024 + 65_539, "only packets that cannot fit are refused")
        XCTAssertEqual(configuration.broker.maxInflightMessages, 7)
        XCTAssertEqual(configuration.broker.maxQueuedMessages, 50)
        XCTAssertEqual(configuration.broker.maxQueuedBytes, 4096)
        XCTAssertEqual(configuration.broker.queueFullPolicy, .block)
        XCTAssertTrue(configuration.broker.queueQoS0Messages)
        XCTAssertEqual(configuration.broker.maxKeepalive, 300)
        XCTAssertFalse(configuration.broker.allowZeroLengthClientID)
        XCTAssertEqual(configuration.broker.autoIDPrefix, "gen id-")
        XCTAssertFalse(configuration.broker.retainAvailable)
        XCTAssertEqual(configuration.broker.maxQoS, .atLeastOnce)
        XCTAssertFalse(configuration.logTimestamp)
        XCTAssertEqual(configuration.passwordFile, "/etc/midge/pass words")
        XCTAssertEqual(configuration.aclFile, "/etc/midge/acl")
    }

    /// mosquitto's max_packet_size counts the whole packet: 1000 bytes leave 997 for the body behind a type byte and
    /// two length bytes. message_size_limit limits payloads in the core; the decoder only refuses what cannot fit.
    func testMaxPacketSizeCountsTheWholePacket() throws {
        XCTAssertEqual(try parse("max_packet_size 1000\n").maxRemainingLength, 997)
        XCTAssertEqual(try parse("max_packet_size 129\n").maxRemainingLength, 127)
        XCTAssertEqual(try parse("max_packet_size 131\n").maxRemainingLength, 128)
        XCTAssertEqual(try parse("max_packet_size 2\n").maxRemainingLength, 0)
        XCTAssertEqual(try parse("max_packet_size 0\n").maxRemainingLength, 268_435_455)
        XCTAssertEqual(try parse("max_packet_size 268435460\n").maxRemainingLength, 268_435_455)
        XCTAssertEqual(try parse("max_packet_size 1000\nmessage_size_limit 500\n").maxRemainingLength, 997)
        XCTAssertEqual(try parse("message_size_limit 5000\n").maxRemainingLength, 5000 + 65_539)
        XCTAssertEqual(parseError("max_packet_size 1\n")?.key, "max_packet_size")
    }

    func testQueueFullPolicyDefaultsToDropLikeMosquitto() throws {
        XCTAssertEqual(try parse("").broker.queueFullPolicy, .drop)
        XCTAssertEqual(try parse("queue_full_policy drop\n").broker.queueFullPolicy, .drop)
    }

    func testMosquittoZeroMeansNoInflightLimit() throws {
        XCTAssertEqual(try parse("max_inflight_messages 0").broker.maxInflightMessages, 65535)
    }

    func testLogTypeReplacesTheDefaultThenAccumulates() throws {
        XCTAssertEqual(try parse("log_type error\n").logTypes, [.error])
        XCTAssertEqual(try parse("log_type error\nlog_type debug\n").logTypes, [.error, .debug])
        XCTAssertEqual(try parse("log_type all\n").logTypes, .all)
        XCTAssertEqual(try parse("log_type all\nlog_type none\n").logTypes, [])
    }

    func testLogDestinations() throws {
        XCTAssertEqual(try parse("log_dest stdout\n").logDestinations, [.stdout])
        XCTAssertEqual(
            try parse("log_dest file /var/log/midge broker.log\nlog_dest stderr\n").logDestinations,
            [.file("/var/log/midge broker.log"), .stderr])
        XCTAssertEqual(try parse("log_dest none\n").logDestinations, [])
    }

    func testCommentsBlankLinesIndentationAndCRLF() throws {
        let configuration = try parse("# comment\r\n\r\n   \tthreads 2\r\n  # indented comment\r\nmax_qos 0\r\n")
        XCTAssertEqual(configuration.threads, 2)
        XCTAssertEqual(configuration.broker.maxQoS, .atMostOnce)
    }

    func testUnknownKeyNamesFileLineAndKey() {
        let error = parseError("threads 2\n\nno_such_key 1\n")
        XCTAssertEqual(error?.fileName, "test.conf")
        XCTAssertEqual(error?.line, 3)
        XCTAssertEqual(error?.key, "no_such_key")
        XCTAssertEqual(error?.description, "test.conf:3: no_such_key: unknown configuration key")
    }

    func testMosquittoKeysNotImplementedSaySo() {
        for text in ["auth_opt_x y", "plugin_opt_x y"] {
            let error = parseError(text + "\n")
            XCTAssertEqual(error?.line, 1)
            XCTAssertTrue(
                error?.message.contains("does not implement yet") ?? false, "\(text): \(String(describing: error))")
        }
    }

    func testBadValuesAreErrorsOnTheirLine() {
        let cases: [(String, String)] = [
            ("listener", "listener"), ("listener abc", "listener"), ("listener 70000", "listener"),
            ("listener 1883 local_host", "listener"), ("listener 1 2 3", "listener"),
            ("listener 1883 /tmp/mqtt.sock", "listener"),
            ("listener 0 /" + String(repeating: "x", count: 107), "listener"),
            ("port -1", "port"), ("bind_address example/com", "bind_address"),
            ("threads 0", "threads"), ("threads 129", "threads"), ("connect_timeout 0", "connect_timeout"),
            ("allow_anonymous yes", "allow_anonymous"), ("max_connections -2", "max_connections"),
            ("message_size_limit 268435456", "message_size_limit"), ("max_qos 3", "max_qos"),
            ("max_keepalive 65536", "max_keepalive"), ("log_type loud", "log_type"), ("log_dest file", "log_dest"),
            ("log_dest stdout stderr", "log_dest"), ("log_timestamp 1", "log_timestamp"),
            ("password_file", "password_file"), ("threads 2 3", "threads"),
            ("queue_qos0_messages", "queue_qos0_messages"), ("queue_full_policy wait", "queue_full_policy"),
        ]
        for (text, key) in cases {
            let error = parseError("# first\n" + text + "\n")
            XCTAssertEqual(error?.line, 2, text)
            XCTAssertEqual(error?.key, key, text)
        }
    }

    /// Every key the parser reads has a commented-out example setting in broker.conf.example, and the file
    /// parses both as shipped and with every example setting uncommented.
    func testExampleFileDocumentsEveryKeyAndParses() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("broker.conf.example")
        let text = try String(contentsOf: url, encoding: .utf8)
        _ = try Configuration.parse(text: text, fileName: "broker.conf.example")
        let noFiles = InMemoryConfigFiles(directories: ["/etc/midge/conf.d": []])

        var documented: Set<String> = []
        var uncommented: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            // Example settings are `#key value`; prose and headings have a space after the `#`.
            guard line.hasPrefix("#"), line.dropFirst().first != " ",
                let word = line.dropFirst().split(separator: " ").first
            else {
                uncommented.append(String(line))
                continue
            }
            if Configuration.supportedKeys.contains(String(word)) {
                documented.insert(String(word))
                uncommented.append(String(line.dropFirst()))
            } else {
                uncommented.append(String(line))
            }
        }
        XCTAssertEqual(Set(Configuration.supportedKeys).subtracting(documented), [], "undocumented keys")
        let enabled = try Configuration.parse(
            text: uncommented.joined(separator: "\n"), fileName: "enabled", files: noFiles)
        XCTAssertFalse(enabled.listeners.isEmpty)
    }

    func testEveryImplementedKeyIsOutsideTheNotImplementedList() {
        XCTAssertEqual(Set(Configuration.supportedKeys).intersection(Configuration.unimplementedMosquittoKeys), [])
    }

    func testAddressParsingAndFormatting() {
        XCTAssertEqual(IPAddress("127.0.0.1"), .loopbackIPv4)
        XCTAssertEqual(IPAddress("::1"), .loopbackIPv6)
        XCTAssertEqual(IPAddress("::1")?.description, "::1")
        XCTAssertEqual(IPAddress("10.1.2.3")?.description, "10.1.2.3")
        XCTAssertEqual(IPAddress("fe80::1:2")?.description, "fe80::1:2")
        XCTAssertNil(IPAddress("localhost"))
        XCTAssertNil(IPAddress("1.2.3"))
    }
}
