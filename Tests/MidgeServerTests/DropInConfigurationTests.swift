// The mosquitto 2.0 keys a mosquitto installation brings along: include_dir, pid_file, user, listener forms, logging,
// the moot keys (one warning each) and the keys still refused because ignoring them would weaken security.
import Foundation
import MQTTCodec
import MidgeCore
import Synchronization
import XCTest

@testable import MidgeServer

/// `include_dir` over a dictionary instead of the file system.
struct InMemoryConfigFiles: ConfigFileSource {
    var directories: [String: [String]] = [:]
    var files: [String: String] = [:]

    func entries(ofDirectory path: String) -> [String]? { directories[path] }
    func text(ofFile path: String) -> String? { files[path] }
}

final class DropInConfigurationTests: XCTestCase {
    private func parse(_ text: String, files: InMemoryConfigFiles = InMemoryConfigFiles()) throws -> Configuration {
        try Configuration.parse(text: text, fileName: "test.conf", files: files)
    }

    private func parseError(_ text: String, files: InMemoryConfigFiles = InMemoryConfigFiles()) -> ConfigError? {
        do {
            _ = try Configuration.parse(text: text, fileName: "test.conf", files: files)
            XCTFail("expected an error for \(text.debugDescription)")
            return nil
        } catch {
            return error
        }
    }

    /// Debian's /etc/mosquitto/mosquitto.conf as shipped, with its conf.d holding one listener.
    func testDebianStockConfigurationWithConfD() throws {
        let stock = """
            # Place your local configuration in /etc/mosquitto/conf.d/
            #
            # A full description of the configuration file is at
            # /usr/share/doc/mosquitto/examples/mosquitto.conf.example

            pid_file /run/mosquitto/mosquitto.pid

            persistence true
            persistence_location /var/lib/mosquitto/

            log_dest file /var/log/mosquitto/mosquitto.log

            include_dir /etc/mosquitto/conf.d
            """
        let files = InMemoryConfigFiles(
            directories: ["/etc/mosquitto/conf.d": ["README", "local.conf"]],
            files: ["/etc/mosquitto/conf.d/local.conf": "listener 1883 localhost\nallow_anonymous true\n"])
        let configuration = try parse(stock, files: files)
        XCTAssertEqual(configuration.pidFile, "/run/mosquitto/mosquitto.pid")
        XCTAssertTrue(configuration.persistence)
        XCTAssertEqual(configuration.persistenceLocation, "/var/lib/mosquitto/")
        XCTAssertEqual(configuration.logDestinations, [.file("/var/log/mosquitto/mosquitto.log")])
        XCTAssertEqual(configuration.listeners.count, 1)
        XCTAssertEqual(configuration.listeners[0].host, "localhost")
        XCTAssertTrue(configuration.broker.allowAnonymous)
        XCTAssertEqual(configuration.warnings, [])
    }

    /// mosquitto reads a directory's *.conf files in sorted order, as if they stood at the include_dir line.
    func testIncludeDirReadsConfFilesInSortedOrderAndNamesThemInErrors() throws {
        let files = InMemoryConfigFiles(
            directories: ["/c": ["b.conf", "a.conf", "c.conf.disabled", "10.conf"]],
            files: ["/c/a.conf": "max_qos 1\n", "/c/b.conf": "max_qos 0\nthreads 4\n", "/c/10.conf": "threads 2\n"])
        let configuration = try parse("threads 1\ninclude_dir /c\n", files: files)
        // 10.conf, a.conf, b.conf: b's values are the last ones read.
        XCTAssertEqual(configuration.broker.maxQoS, .atMostOnce)
        XCTAssertEqual(configuration.threads, 4)

        var broken = files
        broken.files["/c/b.conf"] = "max_qos 1\nno_such_key 1\n"
        let error = parseError("include_dir /c\n", files: broken)
        XCTAssertEqual(error?.description, "/c/b.conf:2: no_such_key: unknown configuration key")

        let missing = parseError("# x\ninclude_dir /nowhere\n")
        XCTAssertEqual(missing?.line, 2)
        XCTAssertEqual(missing?.key, "include_dir")
        XCTAssertTrue(missing?.message.contains("/nowhere") ?? false)

        let looping = InMemoryConfigFiles(
            directories: ["/l": ["self.conf"]], files: ["/l/self.conf": "include_dir /l\n"])
        XCTAssertEqual(parseError("include_dir /l\n", files: looping)?.key, "include_dir")
    }

    func testListenerHostNamesUnixSocketsDomainsAndInterfaces() throws {
        let configuration = try parse(
            """
            listener 1883 localhost
            socket_domain ipv6
            listener 0 /run/midge/mqtt.sock
            listener 8883
            socket_domain ipv4
            bind_interface lo
            """)
        XCTAssertEqual(configuration.listeners[0].host, "localhost")
        XCTAssertNil(configuration.listeners[0].address)
        XCTAssertEqual(configuration.listeners[0].socketDomain, .ipv6)
        XCTAssertEqual(configuration.listeners[1].unixSocketPath, "/run/midge/mqtt.sock")
        XCTAssertEqual(try configuration.listeners[1].resolvedBindAddresses(), [.unix("/run/midge/mqtt.sock")])
        XCTAssertEqual(configuration.listeners[2].bindAddresses, [.anyIPv4])
        XCTAssertEqual(configuration.listeners[2].bindInterface, "lo")
        XCTAssertEqual(try parse("bind_address localhost\n").listeners[0].host, "localhost")
        XCTAssertEqual(parseError("socket_domain ipv5\n")?.key, "socket_domain")
        XCTAssertEqual(parseError("bind_interface a-very-long-interface\n")?.key, "bind_interface")
    }

    /// Resolution happens when the listener opens; a numeric address resolves to itself.
    func testHostNameResolutionKeepsOneFamilyWithSocketDomain() throws {
        var listener = ListenerConfiguration(port: 1883)
        listener.host = "127.0.0.1"
        XCTAssertEqual(try listener.resolvedBindAddresses(), [.loopbackIPv4])
        listener.socketDomain = .ipv6
        XCTAssertThrowsError(try listener.resolvedBindAddresses())
    }

    func testServiceAndLoggingKeys() throws {
        let configuration = try parse(
            """
            pid_file /run/midge/midge.pid
            user mosquitto
            log_dest syslog
            log_dest stdout
            log_dest file /var/log/midge.log
            log_facility 5
            log_timestamp_format %Y-%m-%dT%H:%M:%S
            log_type subscribe
            log_type error
            connection_messages false
            """)
        XCTAssertEqual(configuration.pidFile, "/run/midge/midge.pid")
        XCTAssertEqual(configuration.user, "mosquitto")
        XCTAssertEqual(configuration.logDestinations, [.syslog, .stdout, .file("/var/log/midge.log")])
        XCTAssertEqual(configuration.logFacility, 5)
        XCTAssertEqual(configuration.logTimestampFormat, "%Y-%m-%dT%H:%M:%S")
        XCTAssertEqual(configuration.logTypes, [.subscribe, .error])
        XCTAssertFalse(configuration.connectionMessages)
        XCTAssertEqual(configuration.warnings, [])
        XCTAssertEqual(parseError("log_facility 8\n")?.key, "log_facility")
        XCTAssertEqual(parseError("log_dest dlt\n")?.key, "log_dest")
    }

    /// Every moot key is accepted with exactly one warning that names it and says why it has no effect.
    func testEveryMootKeyStartsWithOneWarningEach() throws {
        let keys = Configuration.mootKeys.keys.sorted()
        let text = keys.map { "\($0) 1" }.joined(separator: "\n")
        let configuration = try parse(text)
        XCTAssertEqual(configuration.warnings.map(\.key), keys)
        XCTAssertEqual(configuration.warnings.map(\.line), Array(1...keys.count))
        for warning in configuration.warnings {
            XCTAssertTrue(warning.message.hasPrefix("accepted, no effect: "), warning.description)
        }
        XCTAssertEqual(Set(keys).intersection(Configuration.supportedKeys), [])
        XCTAssertEqual(Set(keys).intersection(Configuration.unimplementedMosquittoKeys), [])
    }

    func testExampleFileNamesEveryMootKey() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("broker.conf.example")
        let text = try String(contentsOf: url, encoding: .utf8)
        for key in Configuration.mootKeys.keys { XCTAssertTrue(text.contains(key), key) }
    }

    /// Their default values are accepted silently and the others take effect; log_type websockets warns once.
    func testCoreKeysTakeEffect() throws {
        let quiet = try parse(
            """
            per_listener_settings false
            check_retain_source false
            upgrade_outgoing_qos false
            max_inflight_bytes 0
            connection_messages true
            """)
        XCTAssertEqual(quiet.warnings, [])
        XCTAssertTrue(try parse("upgrade_outgoing_qos true\n").broker.upgradeOutgoingQoS)
        XCTAssertTrue(try parse("").broker.checkRetainSource, "mosquitto's default")
        XCTAssertFalse(try parse("check_retain_source false\n").broker.checkRetainSource)
        XCTAssertEqual(try parse("max_inflight_bytes 65536\n").broker.maxInflightBytes, 65536)
        let warned = try parse("max_inflight_bytes 65536\nlog_type unsubscribe\nlog_type websockets\n")
        XCTAssertEqual(warned.warnings.map(\.key), ["log_type"], "websockets only: unsubscribe is logged")
        XCTAssertEqual(try parse("log_dest topic\nlog_dest stderr\n").logDestinations, [.topic, .stderr])
    }

    /// Security plugins and engines stay refused, naming the key (bridge keys: `BridgeConfigurationTests`).
    func testSecurityPluginKeysAreStillRefused() {
        for key in ["auth_plugin", "plugin", "tls_engine", "tls_keyform"] {
            let error = parseError("\(key) x\n")
            XCTAssertEqual(error?.key, key)
            XCTAssertTrue(error?.message.contains("does not implement yet") ?? false, key)
        }
    }

    /// A listener that cannot be opened is reported with the line that declared it.
    func testListenersRememberTheLineThatDeclaredThem() throws {
        let configuration = try parse("# x\nlistener 1883\nport 1884\n")
        XCTAssertEqual(
            configuration.listeners.map(\.origin.description), ["test.conf:3: port", "test.conf:2: listener"])
    }

    func testSeveralCommandLinePortsEachOnBothLoopbackAddresses() throws {
        let listeners = try parse("").effectiveListeners(commandLinePorts: [1884, 1885])
        XCTAssertEqual(
            listeners,
            [
                ListenerConfiguration(port: 1884, address: .loopbackIPv4),
                ListenerConfiguration(port: 1884, address: .loopbackIPv6),
                ListenerConfiguration(port: 1885, address: .loopbackIPv4),
                ListenerConfiguration(port: 1885, address: .loopbackIPv6),
            ])
    }

    func testUnreadableFileErrorNamesTheFileOnly() {
        let error = ConfigError(fileName: "/etc/midge/midge.conf", line: 0, key: "-c", message: "unable to open")
        XCTAssertEqual(error.description, "/etc/midge/midge.conf: unable to open")
    }

    func testConnectionMessagesAreRecognisedByTheirMosquittoWording() {
        XCTAssertTrue(Logger.isConnectionMessage("New client connected from 127.0.0.1:5 as a (p2, c1, k60)."))
        XCTAssertTrue(Logger.isConnectionMessage("New connection from 127.0.0.1:5 on port 1883."))
        XCTAssertTrue(Logger.isConnectionMessage("Client a disconnected."))
        XCTAssertTrue(Logger.isConnectionMessage("Client a closed its connection."))
        XCTAssertFalse(Logger.isConnectionMessage("Client a already connected, closing old connection."))
        XCTAssertFalse(Logger.isConnectionMessage("Opening ipv4 listen socket on port 1883."))
    }

    func testConnectionMessagesFalseDropsOnlyThoseLines() {
        let lines = LinesBox()
        var format = LogFormat()
        format.connectionMessages = false
        let logger = Logger(types: .all, format: format) { lines.append($0) }
        logger.log(.notice, "New client connected from 127.0.0.1:5 as a (p2, c1, k60).")
        logger.log(.notice, "Client a disconnected.")
        logger.log(.notice, "midge version 0 running")
        logger.log(SubscriptionEvent.subscribed(clientID: "a", qos: .atLeastOnce, filter: TopicFilter("t/#")!))
        XCTAssertEqual(lines.all, ["midge version 0 running", "a 1 t/#"])
    }

    /// SIGHUP's re-read log settings apply from the next line.
    func testReconfigureChangesTypesAndConnectionMessages() {
        let lines = LinesBox()
        let logger = Logger(types: [.notice]) { lines.append($0) }
        logger.log(.notice, "Client a disconnected.")
        logger.log(.debug, "hidden")
        var format = LogFormat()
        format.connectionMessages = false
        logger.reconfigure(types: [.notice, .debug], timestamps: false, format: format)
        logger.log(.notice, "Client b disconnected.")
        logger.log(.debug, "shown")
        XCTAssertEqual(lines.all, ["Client a disconnected.", "shown"])
    }

    func testTimestampFormat() {
        let lines = LinesBox()
        var format = LogFormat()
        format.timestampFormat = "[%Y]"
        let logger = Logger(types: .all, timestamps: true, format: format) { lines.append($0) }
        logger.log(.notice, "x")
        XCTAssertTrue(lines.all.first?.hasPrefix("[2") ?? false, "\(lines.all)")
        XCTAssertTrue(lines.all.first?.hasSuffix("]: x") ?? false, "\(lines.all)")
    }
}

/// Lines a test logger produced, from whichever thread.
final class LinesBox: Sendable {
    private let lines = Mutex<[String]>([])

    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}
