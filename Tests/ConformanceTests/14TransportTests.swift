// Black-box tests of conformance as a whole (§7): transport, interoperability with stock clients, bridging.

import Foundation
import MQTTCodec
import MQTTTestSupport
import XCTest

final class TransportTests: ConformanceCase {
    func test_MQTT_7_0_0_1_bridgeConformsAsClient() throws {
        // A broker that dials out to other brokers must also pass the client rules; midge has no bridge.
        throw XCTSkip("midge has no bridge: no outgoing connections to check against the client rules")
    }

    func test_MQTT_7_0_0_2_stockClientsInteroperate() throws {
        // Unmodified mosquitto_sub and mosquitto_pub exchange a retained QoS 1 and a live QoS 2 message.
        let sub = "/usr/bin/mosquitto_sub"
        let pub = "/usr/bin/mosquitto_pub"
        try XCTSkipUnless(
            FileManager.default.isExecutableFile(atPath: sub) && FileManager.default.isExecutableFile(atPath: pub),
            "mosquitto-clients is not installed")
        let port = String(try broker.port)
        let topic = uniqueTopic()
        try run(pub, ["-h", "127.0.0.1", "-p", port, "-t", topic, "-q", "1", "-r", "-m", "retained"])
        let subscriber = Process()
        subscriber.executableURL = URL(fileURLWithPath: sub)
        subscriber.arguments = ["-h", "127.0.0.1", "-p", port, "-t", topic, "-q", "2", "-C", "2", "-W", "10"]
        let output = Pipe()
        subscriber.standardOutput = output
        subscriber.standardError = FileHandle.nullDevice
        try subscriber.run()
        defer { if subscriber.isRunning { kill(subscriber.processIdentifier, SIGKILL) } }
        // mosquitto_sub prints the retained message once it has subscribed; only then is the live one published.
        var text = try readLines(output, until: "retained\n")
        XCTAssertEqual(text, "retained\n")
        try run(pub, ["-h", "127.0.0.1", "-p", port, "-t", topic, "-q", "2", "-m", "live"])
        text += try readLines(output, until: "live\n")
        for _ in 0..<200 where subscriber.isRunning { usleep(50_000) }
        XCTAssertEqual(text, "retained\nlive\n")
        XCTAssertEqual(subscriber.terminationStatus, 0)
        try run(pub, ["-h", "127.0.0.1", "-p", port, "-t", topic, "-r", "-n"])
    }

    func test_MQTT_7_1_1_1_tcpTransportCarriesProtocol() throws {
        // A plain TCP connection carries a whole session: CONNECT, SUBSCRIBE, QoS 0/1/2 PUBLISH, PING, DISCONNECT.
        let topic = uniqueTopic()
        let client = try connect()
        try subscribe(client, topic, qos: 2)
        try client.send((0...2).flatMap { Wire.publish(topic, "q\($0)", qos: UInt8($0), id: UInt16($0 + 1)) })
        let deliveries = try client.collectPublishes(count: 3)
        XCTAssertEqual(deliveries.map(\.payloadString).sorted(), ["q0", "q1", "q2"])
        // The publisher-side PUBACK and PUBCOMP may still be on their way; the PINGRESP comes after them.
        try client.send(Wire.pingreq)
        var pong = false
        for _ in 0..<4 where !pong {
            switch try client.readPacket() {
            case .pingresp: pong = true
            case .puback, .pubcomp: break
            case let other: XCTFail("unexpected \(other)")
            }
        }
        XCTAssertTrue(pong)
        try disconnectAndWait(client)
    }

    /// Reads a pipe until its text ends with `suffix`, for at most 10 s.
    private func readLines(_ pipe: Pipe, until suffix: String) throws -> String {
        var text = ""
        let deadline = Date().addingTimeInterval(10)
        let fd = pipe.fileHandleForReading.fileDescriptor
        while !text.hasSuffix(suffix) && deadline.timeIntervalSinceNow > 0 {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 100) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            text += String(decoding: chunk[0..<count], as: UTF8.self)
        }
        return text
    }

    private func run(_ tool: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<200 where process.isRunning { usleep(50_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            throw TestError("\(tool) did not finish")
        }
        XCTAssertEqual(process.terminationStatus, 0, "\(tool) \(arguments.joined(separator: " "))")
    }
}
