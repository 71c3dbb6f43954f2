// HTTP/2 on a TLS HTTP listener against a real client: curl negotiates h2 by ALPN, multiplexes two SSE streams on
// one connection, and publishes over h2; HTTP/1.1 clients of the same listener keep working.
import Foundation
import MQTTTestSupport
import XCTest

@testable import MidgeServer

/// A child process whose output is collected as it comes, so a test can wait for what a stream has delivered.
private final class RunningCommand: @unchecked Sendable {
    let process = Process()
    private let lock = NSLock()
    private var stdout = Data()
    private var stderr = Data()

    init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        out.fileHandleForReading.readabilityHandler = { [weak self] handle in self?.append(handle.availableData) }
        err.fileHandleForReading.readabilityHandler = { [weak self] handle in
            self?.append(handle.availableData, error: true)
        }
        try process.run()
    }

    private func append(_ data: Data, error: Bool = false) {
        lock.lock()
        if error { stderr.append(data) } else { stdout.append(data) }
        lock.unlock()
    }

    var output: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: stdout, as: UTF8.self)
    }
    var errors: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: stderr, as: UTF8.self)
    }

    /// Waits (bounded, so a broken server fails the test instead of hanging it) until `done` holds.
    func wait(until done: (RunningCommand) -> Bool, _ what: String) throws {
        for _ in 0..<2000 {
            if done(self) { return }
            usleep(10_000)
        }
        throw TestError("gave up waiting for \(what); stdout: \(output) stderr: \(errors)")
    }

    func finish() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }

    func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}

final class HTTP2LoopbackTests: XCTestCase {
    private func curlSupportsHTTP2() throws -> Bool {
        let version = try RunningCommand(["curl", "-V"])
        _ = version.finish()
        try version.wait(until: { $0.output.contains("Features:") }, "curl -V")
        return version.output.contains("HTTP2")
    }

    private func curl(_ port: UInt16, _ arguments: [String]) -> [String] {
        [
            "curl", "--silent", "--show-error", "--cacert", TLSFixture.path("ca.crt"), "--resolve",
            "localhost:\(port):127.0.0.1",
        ] + arguments
    }

    func testTwoSSEStreamsShareOneConnectionAndBothGetAnEventPublishedOverHTTP2() throws {
        guard try curlSupportsHTTP2() else { throw XCTSkip("this curl has no HTTP/2") }
        let server = try RunningServer(
            threads: 2, config: "listener 0 127.0.0.1\nprotocol http\n" + TLSFixture.serverSettings())
        defer { server.stop() }
        let port = server.server.listeners[1].port
        let base = "https://localhost:\(port)"

        // -Z with HTTP/2 multiplexes the transfers on one connection; -N writes each event as it arrives.
        let streams = try RunningCommand(
            curl(port, ["--http2", "-v", "-N", "-Z", "\(base)/subscribe?topic=h2/a", "\(base)/subscribe?topic=h2/%2B"]))
        defer { streams.stop() }
        try streams.wait(
            until: { $0.output.components(separatedBy: "retry:").count == 3 }, "both streams to open")
        XCTAssertTrue(streams.errors.contains("ALPN: server accepted h2"), streams.errors)
        XCTAssertEqual(streams.errors.components(separatedBy: "Connected to").count, 2, "one connection")

        let publish = try RunningCommand(
            curl(
                port,
                [
                    "--http2", "-w", "\n%{http_version} %{http_code}", "-X", "POST", "--data-binary", "over-h2",
                    "\(base)/publish?topic=h2/a",
                ]))
        XCTAssertEqual(publish.finish(), 0, publish.errors)
        try publish.wait(until: { $0.output.contains("\n2 ") }, "the publish answer")
        XCTAssertTrue(publish.output.hasSuffix("\n2 200"), publish.output)
        XCTAssertTrue(publish.output.contains(#"{"published":1}"#), publish.output)

        try streams.wait(
            until: { $0.output.components(separatedBy: #""payload":"over-h2""#).count == 3 }, "the event on both")

        // HTTP/1.1 on the same listener, as before ALPN was offered.
        let metrics = try RunningCommand(
            curl(port, ["--http1.1", "-w", "\n%{http_version} %{http_code}", "\(base)/metrics"]))
        XCTAssertEqual(metrics.finish(), 0, metrics.errors)
        try metrics.wait(until: { $0.output.contains("\n1.1 ") }, "the metrics answer")
        XCTAssertTrue(metrics.output.hasSuffix("\n1.1 200"), metrics.output)

        // The client goes away: both subscriptions end with its connection.
        streams.stop()
        for _ in 0..<2000 where server.metrics.gateway.openStreams.load(ordering: .relaxed) != 0 { usleep(10_000) }
        XCTAssertEqual(server.metrics.gateway.openStreams.load(ordering: .relaxed), 0)
    }

    func testRequestsOverHTTP2GetTheSameRefusalsAsOverHTTP11() throws {
        guard try curlSupportsHTTP2() else { throw XCTSkip("this curl has no HTTP/2") }
        let server = try RunningServer(
            threads: 2,
            config: "listener 0 127.0.0.1\nprotocol http\n" + TLSFixture.serverSettings())
        defer { server.stop() }
        let port = server.server.listeners[1].port
        let base = "https://localhost:\(port)"
        for version in ["--http2", "--http1.1"] {
            let command = try RunningCommand(
                curl(port, [version, "-w", "\n%{http_code}", "\(base)/publish?topic=%24SYS/x", "--data-binary", "x"]))
            XCTAssertEqual(command.finish(), 0, command.errors)
            try command.wait(until: { $0.output.contains("\n") }, "the answer")
            XCTAssertTrue(command.output.hasSuffix("\n403"), "\(version): \(command.output)")
            let missing = try RunningCommand(curl(port, [version, "-w", "\n%{http_code}", "\(base)/nowhere"]))
            XCTAssertEqual(missing.finish(), 0, missing.errors)
            try missing.wait(until: { $0.output.contains("\n") }, "the answer")
            XCTAssertTrue(missing.output.hasSuffix("\n404"), "\(version): \(missing.output)")
        }
    }
}
