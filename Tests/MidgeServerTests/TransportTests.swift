// TLS and MQTT-over-WebSocket listeners end to end, in process: real OpenSSL clients and RFC 6455 client frames
// against the broker's transports, with plain TCP clients on the other side.
import COpenSSL
import Foundation
import Glibc
import MQTTCodec
import MQTTTestSupport
import MidgeCore
import XCTest

@testable import MidgeAuth
@testable import MidgeServer

final class TransportTests: XCTestCase {
    /// A broker with its plain listener first and one more listener configured by `second`.
    private func start(second: String, threads: Int = 2, config: String = "") throws -> RunningServer {
        try RunningServer(threads: threads, config: config + "listener 0 127.0.0.1\n" + second)
    }

    private func secondPort(_ running: RunningServer) -> UInt16 { running.server.listeners[1].port }

    // MARK: TLS

    func testTLSClientPublishesToPlainSubscriberAndReceives() throws {
        let running = try start(second: TLSFixture.serverSettings())
        defer { running.stop() }
        let plain = try RawClient(port: running.port)
        try plain.connect("plain")
        try plain.subscribe("tls/#", qos: .atLeastOnce)

        let tls = ChannelClient(try TLSChannel(port: secondPort(running)))
        XCTAssertEqual(try tls.connect("secure").returnCode, .accepted)
        try tls.subscribe("back", qos: .atMostOnce)
        try tls.publish("tls/one", Array("over TLS".utf8), qos: .atLeastOnce, id: 7)
        guard case .puback(let id) = try tls.receive() else { return XCTFail("expected PUBACK") }
        XCTAssertEqual(id.rawValue, 7)
        XCTAssertEqual(try plain.receivePublish().payload, Array("over TLS".utf8))

        // A payload spanning several TLS records arrives whole.
        let large = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try plain.publish("back", large)
        XCTAssertEqual(try tls.receivePublish().payload, large)
        try tls.ping()
    }

    func testRequiredClientCertificate() throws {
        let running = try start(second: TLSFixture.serverSettings(requireCertificate: true))
        defer { running.stop() }
        // No certificate: the handshake fails (TLS 1.3 reports it on the first read).
        let refused = try? ChannelClient(TLSChannel(port: secondPort(running))).connect("anonymous")
        XCTAssertNil(refused)
        XCTAssertNotNil(running.log.waitForLine { $0.contains("sent no certificate") })

        let client = ChannelClient(
            try TLSChannel(
                port: secondPort(running), certificate: TLSFixture.path("client.crt"),
                key: TLSFixture.path("client.key")))
        XCTAssertEqual(try client.connect("with-cert").returnCode, .accepted)
        try client.ping()
    }

    /// use_identity_as_username: the certificate's CN is the user name; CONNECT's own credentials do not count.
    func testIdentityAsUsername() throws {
        let running = try start(second: TLSFixture.serverSettings(requireCertificate: true, identity: true))
        defer { running.stop() }
        let client = ChannelClient(
            try TLSChannel(
                port: secondPort(running), certificate: TLSFixture.path("client.crt"),
                key: TLSFixture.path("client.key")))
        XCTAssertEqual(try client.connect("cert-user", username: "ignored", password: "wrong").returnCode, .accepted)
        let line = running.log.waitForLine { $0.contains("as cert-user ") }
        XCTAssertNotNil(line)
        XCTAssertTrue(line?.contains("u'device-42'") ?? false, line ?? "")
    }

    /// A client that stops in the middle of its handshake holds nothing up: others on the same loop connect, and
    /// connect_timeout closes the stalled one.
    func testStalledHandshakeDoesNotBlockOthersAndTimesOut() throws {
        let running = try start(second: TLSFixture.serverSettings(), threads: 1, config: "connect_timeout 1\n")
        defer { running.stop() }
        let stalled = try RawClient(port: secondPort(running))
        // The start of a TLS record header announcing a ClientHello, and then nothing.
        try stalled.write([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03])
        let other = ChannelClient(try TLSChannel(port: secondPort(running)))
        XCTAssertEqual(try other.connect("not-blocked").returnCode, .accepted)
        XCTAssertNil(try stalled.read(), "the stalled client must be closed by connect_timeout")
        XCTAssertNotNil(running.log.waitForLine { $0.contains("sent no CONNECT within") })
        try other.ping()
    }

    func testNotTLSAtAllIsRefused() throws {
        let running = try start(second: TLSFixture.serverSettings())
        defer { running.stop() }
        let raw = try RawClient(port: secondPort(running))
        var connect: [UInt8] = []
        Packet.connect(Connect(clientID: "plain-on-tls")).encode(into: &connect)
        try raw.write(connect)
        // An alert (or nothing), then the end of the stream: never a CONNACK.
        var received: [UInt8] = []
        while let more = try raw.read() { received += more }
        XCTAssertNotEqual(received.first, 0x20)
        XCTAssertNotNil(running.log.waitForLine { $0.contains("TLS handshake failed") })
    }

    // MARK: WebSocket

    func testWebSocketClientTalksToPlainClient() throws {
        let running = try start(second: "protocol websockets\n")
        defer { running.stop() }
        let socket = try WebSocketChannel(over: try RawClient(port: secondPort(running)))
        XCTAssertEqual(socket.statusCode, 101)
        XCTAssertTrue(socket.response.lowercased().contains("sec-websocket-protocol: mqtt"), socket.response)
        let ws = ChannelClient(socket)
        XCTAssertEqual(try ws.connect("ws").returnCode, .accepted)
        try ws.subscribe("to/ws")
        let plain = try RawClient(port: running.port)
        try plain.connect("plain")
        try plain.subscribe("from/ws", qos: .atMostOnce)
        try ws.publish("from/ws", Array("hello".utf8))
        XCTAssertEqual(try plain.receivePublish().payload, Array("hello".utf8))
        try plain.publish("to/ws", Array("back".utf8))
        XCTAssertEqual(try ws.receivePublish().payload, Array("back".utf8))

        // A packet split over frames, and a ping answered with its payload.
        var ping: [UInt8] = []
        Packet.pingreq.encode(into: &ping)
        try socket.sendFrame(opcode: 0x2, [ping[0]], fin: false)
        try socket.sendFrame(opcode: 0x9, [1, 2, 3])
        try socket.sendFrame(opcode: 0x0, [ping[1]], fin: true)
        guard case .pingresp = try ws.receive() else { return XCTFail("expected PINGRESP") }
        XCTAssertEqual(socket.pongs, [[1, 2, 3]])
    }

    func testWebSocketCompressionIsNegotiatedOnlyWhereTheListenerOffersIt() throws {
        let offer = "permessage-deflate; client_max_window_bits"
        let plainListener = try start(second: "protocol websockets\n")
        defer { plainListener.stop() }
        let declined = try WebSocketChannel(over: try RawClient(port: secondPort(plainListener)), extensions: offer)
        XCTAssertEqual(declined.statusCode, 101)
        XCTAssertFalse(declined.response.lowercased().contains("permessage-deflate"), declined.response)

        let compressing = try start(second: "protocol websockets\nwebsockets_compression true\n")
        defer { compressing.stop() }
        let socket = try WebSocketChannel(over: try RawClient(port: secondPort(compressing)), extensions: offer)
        XCTAssertEqual(socket.statusCode, 101)
        XCTAssertTrue(socket.response.lowercased().contains("sec-websocket-extensions: permessage-deflate"))
        // Uncompressed frames stay valid with the extension agreed (RFC 7692 §6): MQTT flows both ways.
        let ws = ChannelClient(socket)
        XCTAssertEqual(try ws.connect("ws-deflate").returnCode, .accepted)
        try ws.subscribe("small")
        let plain = try RawClient(port: compressing.port)
        try plain.connect("plain-deflate")
        try plain.subscribe("from/ws", qos: .atMostOnce)
        try ws.publish("from/ws", Array(repeating: UInt8(ascii: "z"), count: 300))
        XCTAssertEqual(try plain.receivePublish().payload.count, 300)
        try plain.publish("small", Array("hi".utf8))
        XCTAssertEqual(try ws.receivePublish().payload, Array("hi".utf8))
    }

    func testWebSocketTextFrameClosesWithUnsupportedData() throws {
        let running = try start(second: "protocol websockets\n")
        defer { running.stop() }
        let socket = try WebSocketChannel(over: try RawClient(port: secondPort(running)))
        var connect: [UInt8] = []
        Packet.connect(Connect(clientID: "text")).encode(into: &connect)
        try socket.sendFrame(opcode: 0x1, connect)
        XCTAssertNil(try socket.read())
        XCTAssertEqual(socket.closeCode, 1003)
    }

    /// RFC 6455 §5.1: a client frame must be masked; §5.2: reserved opcodes are errors. Both fail with 1002.
    func testBadWebSocketFramesCloseWithProtocolError() throws {
        let running = try start(second: "protocol websockets\n")
        defer { running.stop() }
        let unmasked = try WebSocketChannel(over: try RawClient(port: secondPort(running)))
        try unmasked.inner.write([0x82, 0x02, 0xC0, 0x00])
        XCTAssertNil(try unmasked.read())
        XCTAssertEqual(unmasked.closeCode, 1002)
        let reserved = try WebSocketChannel(over: try RawClient(port: secondPort(running)))
        try reserved.sendFrame(opcode: 0x3, [1])
        XCTAssertNil(try reserved.read())
        XCTAssertEqual(reserved.closeCode, 1002)
    }

    func testWebSocketOversizedFrameClosesWithMessageTooBig() throws {
        let running = try start(second: "protocol websockets\n", config: "max_packet_size 1000\n")
        defer { running.stop() }
        let socket = try WebSocketChannel(over: try RawClient(port: secondPort(running)))
        try socket.sendFrame(opcode: 0x2, [UInt8](repeating: 0, count: 2000))
        XCTAssertNil(try socket.read())
        XCTAssertEqual(socket.closeCode, 1009)
    }

    /// A Close frame without DISCONNECT is a lost connection: the Will goes out, and the close is answered.
    func testWebSocketCloseFrameFiresWill() throws {
        let running = try start(second: "protocol websockets\n")
        defer { running.stop() }
        let watcher = try RawClient(port: running.port)
        try watcher.connect("watcher")
        try watcher.subscribe("will/ws", qos: .atMostOnce)
        let socket = try WebSocketChannel(over: try RawClient(port: secondPort(running)))
        let ws = ChannelClient(socket)
        let will = Will(
            topic: try XCTUnwrap(TopicName("will/ws")), payload: Array("gone".utf8), qos: .atMostOnce, retain: false)
        try ws.connect("leaver", will: will)
        try socket.sendFrame(opcode: 0x8, [0x03, 0xE8])
        XCTAssertNil(try socket.read())
        XCTAssertEqual(socket.closeCode, 1000)
        XCTAssertEqual(try watcher.receivePublish().payload, Array("gone".utf8))
    }

    func testPlainHTTPRequestToWebSocketListenerIsRefused() throws {
        let running = try start(second: "protocol websockets\n")
        defer { running.stop() }
        let raw = try RawClient(port: secondPort(running))
        try raw.write(Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8))
        var received: [UInt8] = []
        while let more = try raw.read() { received += more }
        XCTAssertTrue(String(decoding: received, as: UTF8.self).hasPrefix("HTTP/1.1 426"))
    }

    func testWebSocketOverTLS() throws {
        let running = try start(second: "protocol websockets\n" + TLSFixture.serverSettings())
        defer { running.stop() }
        let socket = try WebSocketChannel(over: try TLSChannel(port: secondPort(running)))
        XCTAssertEqual(socket.statusCode, 101)
        let client = ChannelClient(socket)
        XCTAssertEqual(try client.connect("wss").returnCode, .accepted)
        try client.subscribe("wss/t")
        try client.publish("wss/t", Array("loop".utf8))
        XCTAssertEqual(try client.receivePublish().payload, Array("loop".utf8))
        // The broker's close: DISCONNECT ends it with a normal closure.
        try client.send(.disconnect)
        XCTAssertNil(try socket.read())
        XCTAssertEqual(socket.closeCode, 1000)
    }

    // MARK: Limits

    func testPerListenerMaxConnections() throws {
        let running = try start(second: "protocol websockets\nmax_connections 1\n")
        defer { running.stop() }
        let first = try WebSocketChannel(over: try RawClient(port: secondPort(running)))
        XCTAssertEqual(first.statusCode, 101)
        let second = try RawClient(port: secondPort(running))
        XCTAssertNil(try second.read())
        XCTAssertNotNil(running.log.waitForLine { $0.contains("max_connections (1) reached on port") })
        // The plain listener is not limited by it.
        let plain = try RawClient(port: running.port)
        try plain.connect("plain")
        first.close()
        // Once the first has gone, its place is free again (the close is seen asynchronously: bounded retries).
        var accepted = false
        for _ in 0..<50 where !accepted {
            let next = try WebSocketChannel(over: try RawClient(port: secondPort(running)))
            accepted = next.statusCode == 101
            if !accepted { usleep(20_000) }
        }
        XCTAssertTrue(accepted)
    }
}

/// SIGHUP's reloads, driven in process: certificates through `Server.hangup`, password files through the
/// reloadable authenticator the executable installs.
final class ReloadTests: XCTestCase {
    private var scratch = ""

    override func setUpWithError() throws {
        scratch = NSTemporaryDirectory() + "midge-reload-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: scratch) }

    func testBrokenCertificateKeepsThePreviousOneAndConnectionsStay() throws {
        let certificate = scratch + "/server.crt"
        try FileManager.default.copyItem(atPath: TLSFixture.path("server.crt"), toPath: certificate)
        let settings = "certfile \(certificate)\nkeyfile \(TLSFixture.path("server.key"))\n"
        let running = try RunningServer(threads: 1, config: "listener 0 127.0.0.1\n" + settings)
        defer { running.stop() }
        let port = running.server.listeners[1].port
        let before = ChannelClient(try TLSChannel(port: port))
        try before.connect("before")

        try Data("not a certificate\n".utf8).write(to: URL(fileURLWithPath: certificate))
        running.server.hangup()
        XCTAssertNotNil(running.log.waitForLine { $0.contains("Unable to reload the TLS files") })
        try before.ping()
        let during = ChannelClient(try TLSChannel(port: port))
        XCTAssertEqual(try during.connect("during").returnCode, .accepted)

        try FileManager.default.removeItem(atPath: certificate)
        try FileManager.default.copyItem(atPath: TLSFixture.path("server.crt"), toPath: certificate)
        running.server.hangup()
        XCTAssertNotNil(running.log.waitForLine { $0.contains("Reloaded the TLS certificate") })
        try before.ping()
        try during.ping()
        let after = ChannelClient(try TLSChannel(port: port))
        XCTAssertEqual(try after.connect("after").returnCode, .accepted)
    }

    private static func line(_ user: String, _ password: String) -> String {
        user + ":" + PasswordHash.make(password: Array(password.utf8)).encoded + "\n"
    }

    func testPasswordFileReplacedWhileConnected() throws {
        let first = try PasswordFile(text: Self.line("alice", "one"), source: "first")
        let reloadable = ReloadableAuthenticator(first)
        let running = try RunningServer(threads: 2, config: "allow_anonymous false\n") { $0.authenticator = reloadable }
        defer { running.stop() }
        let alice = ChannelClient(try RawClient(port: running.port))
        XCTAssertEqual(try alice.connect("alice-1", username: "alice", password: "one").returnCode, .accepted)
        let second = try PasswordFile(text: Self.line("alice", "two"), source: "second")
        reloadable.replace(with: second)
        try alice.ping()
        let old = ChannelClient(try RawClient(port: running.port))
        // mosquitto 2.0 answers a wrong password with 5, not authorised.
        XCTAssertEqual(try old.connect("alice-2", username: "alice", password: "one").returnCode, .notAuthorized)
        let new = ChannelClient(try RawClient(port: running.port))
        XCTAssertEqual(try new.connect("alice-3", username: "alice", password: "two").returnCode, .accepted)
    }
}

/// Bad passwords cost the guesser, not the broker: checks run off the core, and an address that keeps failing
/// waits longer for each answer while everyone else goes on.
final class AuthGateTests: XCTestCase {
    func testRepeatedFailuresAreDelayedWhileOthersCarryOn() throws {
        let file = try PasswordFile(
            text: "bob:" + PasswordHash.make(password: Array("right".utf8)).encoded + "\n", source: "test")
        let running = try RunningServer(threads: 2, config: "allow_anonymous false\n") { $0.authenticator = file }
        defer { running.stop() }
        let bob = ChannelClient(try RawClient(port: running.port))
        XCTAssertEqual(try bob.connect("bob", username: "bob", password: "right").returnCode, .accepted)
        try bob.subscribe("t")

        for attempt in 0..<AuthGate.freeFailures {
            let guess = ChannelClient(try RawClient(port: running.port))
            let answer = try guess.connect("guess-\(attempt)", username: "bob", password: "x")
            XCTAssertEqual(answer.returnCode, .notAuthorized)
        }
        // The next guesses wait; meanwhile the connected client's traffic flows.
        let guesses = try (0..<3).map { attempt in
            let guess = ChannelClient(try RawClient(port: running.port))
            try guess.send(
                .connect(Connect(clientID: "late-\(attempt)", username: "bob", password: Array("y".utf8))))
            return guess
        }
        XCTAssertNotNil(running.log.waitForLine { $0.contains("Delaying the authentication") })
        try bob.ping()
        try bob.publish("t", [1])
        XCTAssertEqual(try bob.receivePublish().payload, [1])
        for guess in guesses {
            guard case .connack(let connack) = try guess.receive() else { return XCTFail("expected CONNACK") }
            XCTAssertEqual(connack.returnCode, .notAuthorized)
        }
        // A right password from the same address is still accepted, only later.
        let late = ChannelClient(try RawClient(port: running.port))
        XCTAssertEqual(try late.connect("bob-2", username: "bob", password: "right").returnCode, .accepted)
    }

    /// Packets behind a CONNECT that waits for its check keep their order and reach the core after it.
    func testPacketsBehindAWaitingConnectFollowIt() throws {
        let file = try PasswordFile(
            text: "carol:" + PasswordHash.make(password: Array("pw".utf8)).encoded + "\n", source: "test")
        let running = try RunningServer(threads: 1, config: "allow_anonymous false\n") { $0.authenticator = file }
        defer { running.stop() }
        let carol = ChannelClient(try RawClient(port: running.port))
        var bytes: [UInt8] = []
        Packet.connect(Connect(clientID: "carol", username: "carol", password: Array("pw".utf8))).encode(into: &bytes)
        Packet.pingreq.encode(into: &bytes)
        let filter = try XCTUnwrap(TopicFilter("c/#"))
        let packetID = try XCTUnwrap(PacketID(3))
        let request = SubscriptionRequest(filter: filter, qos: .atMostOnce)
        Packet.subscribe(Subscribe(packetID: packetID, requests: [request])).encode(into: &bytes)
        try carol.channel.write(bytes)
        guard case .connack(let connack) = try carol.receive() else { return XCTFail("expected CONNACK") }
        XCTAssertEqual(connack.returnCode, .accepted)
        guard case .pingresp = try carol.receive() else { return XCTFail("expected PINGRESP") }
        guard case .suback = try carol.receive() else { return XCTFail("expected SUBACK") }
    }
}

/// Over a rate limit a client or a listener is slowed (not read for the rest of the second), never refused.
final class RateLimitTests: XCTestCase {
    func testPublisherOverMessageRateIsSlowedNotDisconnected() throws {
        let running = try RunningServer(threads: 2, config: "max_client_message_rate 5\n")
        defer { running.stop() }
        let subscriber = try RawClient(port: running.port)
        try subscriber.connect("sub")
        try subscriber.subscribe("rate/#", qos: .atMostOnce)
        let publisher = try RawClient(port: running.port)
        try publisher.connect("pub")
        var burst: [UInt8] = []
        for index in 0..<12 {
            let topic = try XCTUnwrap(TopicName("rate/t"))
            Packet.publish(Publish(topic: topic, payload: [UInt8(index)], qos: .atMostOnce)).encode(into: &burst)
        }
        // Sent in separate writes so the broker reads them in several turns.
        for index in stride(from: 0, to: burst.count, by: 9) {
            try publisher.send(Array(burst[index..<min(index + 9, burst.count)]))
        }
        for index in 0..<12 { XCTAssertEqual(try subscriber.receivePublish().payload, [UInt8(index)]) }
        try publisher.ping()
        XCTAssertNotNil(running.log.waitForLine { $0.contains("reached max_client_message_rate") })
    }

    func testPublisherOverByteRateIsSlowedNotDisconnected() throws {
        let running = try RunningServer(threads: 1, config: "max_client_byte_rate 2000\n")
        defer { running.stop() }
        let subscriber = try RawClient(port: running.port)
        try subscriber.connect("sub")
        try subscriber.subscribe("bytes", qos: .atMostOnce)
        let publisher = try RawClient(port: running.port)
        try publisher.connect("pub")
        for index in 0..<5 { try publisher.publish("bytes", [UInt8](repeating: UInt8(index), count: 1500)) }
        for index in 0..<5 {
            XCTAssertEqual(try subscriber.receivePublish().payload, [UInt8](repeating: UInt8(index), count: 1500))
        }
        try publisher.ping()
        XCTAssertNotNil(running.log.waitForLine { $0.contains("reached max_client_byte_rate") })
    }

    func testConnectionsOverTheRateWaitAndAreThenAccepted() throws {
        let running = try RunningServer(threads: 1, config: "listener 0 127.0.0.1\nmax_connection_rate 2\n")
        defer { running.stop() }
        let port = running.server.listeners[1].port
        let clients = try (0..<5).map { _ in try RawClient(port: port) }
        for (index, client) in clients.enumerated() {
            XCTAssertEqual(try client.connect("rate-\(index)").returnCode, .accepted)
        }
        XCTAssertNotNil(running.log.waitForLine { $0.contains("max_connection_rate reached on port \(port)") })
    }
}
