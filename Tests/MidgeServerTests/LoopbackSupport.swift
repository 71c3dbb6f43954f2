// Loopback test support: an in-process server on port 0 (the clients are MQTTTestSupport's).
import Glibc
import MQTTCodec
import MQTTTestSupport
import MidgeCore
import Synchronization

@testable import MidgeServer

/// The server's log lines, kept for assertions.
final class LogCapture: Sendable {
    /// Behind a `LoopLock`, which ThreadSanitizer sees (it reported this capture's `Mutex` as racing once in four runs).
    private let lines = LoopLocked<[String]>([])

    func append(_ line: String) { lines.withLock { $0.append(line) } }

    var all: [String] { lines.withLock { $0 } }

    /// The first line matching `predicate`, polling for at most `seconds`.
    func waitForLine(seconds: Int = 10, where predicate: (String) -> Bool) -> String? {
        for _ in 0..<(seconds * 100) {
            if let line = all.first(where: predicate) { return line }
            usleep(10_000)
        }
        return nil
    }
}

/// A server started in this process on an ephemeral loopback port.
final class RunningServer {
    let server: Server
    let log: LogCapture
    let metrics: ServerMetrics

    init(threads: Int = 3, config: String = "", adjust: (inout ServerSettings) -> Void = { _ in }) throws {
        let text = "listener 0 127.0.0.1\nallow_anonymous true\nthreads \(threads)\n" + config
        let configuration = try Configuration.parse(text: text, fileName: "test.conf")
        let log = LogCapture()
        let logger = Logger(types: .all, timestamps: false, sink: { log.append($0) })
        var settings = ServerSettings(configuration: configuration)
        adjust(&settings)
        server = try Server.start(settings: settings, logger: logger)
        self.log = log
        metrics = settings.metrics
    }

    var port: UInt16 { server.listeners[0].port }

    func stop() {
        server.stop()
        server.wait()
    }

    /// The event loop that accepted `client`, read from the debug line every accept logs.
    func loop(of client: RawClient) throws -> Int {
        let marker = "Connection from 127.0.0.1:\(client.localPort) is "
        guard let line = log.waitForLine(where: { $0.hasPrefix(marker) }),
            let loop = line.split(separator: " ").last.flatMap({ Int($0.dropLast()) })
        else { throw TestError("no accept line for local port \(client.localPort)") }
        return loop
    }

    /// Opens TCP connections until one is accepted by a loop outside `excluded`, closing the others.
    /// The kernel spreads connections over the SO_REUSEPORT sockets by hash, so a few tries suffice.
    func client(onLoopOtherThan excluded: Set<Int>) throws -> (client: RawClient, loop: Int) {
        for _ in 0..<60 {
            let client = try RawClient(port: port)
            let loop = try self.loop(of: client)
            if !excluded.contains(loop) { return (client, loop) }
            client.close()
        }
        throw TestError("no connection landed outside loops \(excluded) in 60 tries")
    }
}
