// Loopback test support: an in-process server on port 0, and a blocking MQTT client whose every wait is bounded.
import Glibc
import MQTTCodec
import MidgeCore
import Synchronization

@testable import MidgeServer

struct TestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

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
    func loop(of client: TestClient) throws -> Int {
        let marker = "Connection from 127.0.0.1:\(client.localPort) is "
        guard let line = log.waitForLine(where: { $0.hasPrefix(marker) }),
            let loop = line.split(separator: " ").last.flatMap({ Int($0.dropLast()) })
        else { throw TestError("no accept line for local port \(client.localPort)") }
        return loop
    }

    /// Opens TCP connections until one is accepted by a loop outside `excluded`, closing the others.
    /// The kernel spreads connections over the SO_REUSEPORT sockets by hash, so a few tries suffice.
    func client(onLoopOtherThan excluded: Set<Int>) throws -> (client: TestClient, loop: Int) {
        for _ in 0..<60 {
            let client = try TestClient(port: port)
            let loop = try self.loop(of: client)
            if !excluded.contains(loop) { return (client, loop) }
            client.close()
        }
        throw TestError("no connection landed outside loops \(excluded) in 60 tries")
    }
}

/// A blocking MQTT client over loopback TCP. Reads time out after `timeoutSeconds`, so no test waits forever.
final class TestClient: PacketClient {
    let fd: Int32
    let localPort: UInt16
    private var buffer: [UInt8] = []
    private let decoder = FrameDecoder()
    private var isClosed = false

    /// `receiveBuffer`: see `openLoopbackSocket`.
    init(port: UInt16, timeoutSeconds: Int = 10, receiveBuffer: Int32? = nil) throws {
        let fd = try openLoopbackSocket(port: port, timeoutSeconds: timeoutSeconds, receiveBuffer: receiveBuffer)
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        self.localPort = UInt16(bigEndian: local.sin_port)
    }

    deinit { close() }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(fd)
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written > 0 {
                offset += written
            } else if errno != EINTR {
                throw TestError("write failed: \(String(cString: strerror(errno)))")
            }
        }
    }

    func send(_ packet: Packet) throws {
        var bytes: [UInt8] = []
        packet.encode(into: &bytes)
        try send(bytes)
    }

    /// Reads more bytes; false at EOF (or reset). Throws on timeout.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                buffer.append(contentsOf: chunk[0..<count])
                return true
            }
            if count == 0 { return false }
            switch errno {
            case EINTR: continue
            case ECONNRESET: return false
            case EAGAIN: throw TestError("timed out waiting for the broker")
            default: throw TestError("read failed: \(String(cString: strerror(errno)))")
            }
        }
    }

    func receive() throws -> Packet {
        while true {
            let decoded = try buffer.withUnsafeBytes { try decoder.decode($0) }
            if let (packet, consumed) = decoded {
                buffer.removeFirst(consumed)
                return packet
            }
            guard try fill() else { throw TestError("connection closed while waiting for a packet") }
        }
    }

    /// Everything the broker sends until it closes the connection. Throws if it does not close in time.
    func readUntilClosed() throws -> [UInt8] {
        while try fill() {}
        defer { buffer = [] }
        return buffer
    }

    @discardableResult
    func connect(_ clientID: String, clean: Bool = true, keepAlive: UInt16 = 60, will: Will? = nil) throws -> ConnAck {
        try send(.connect(Connect(cleanSession: clean, keepAlive: keepAlive, clientID: clientID, will: will)))
        guard case .connack(let connack) = try receive() else { throw TestError("expected CONNACK") }
        return connack
    }

    /// The next PUBLISH, acknowledged if its QoS asks for it.
    func receivePublish() throws -> Publish {
        guard case .publish(let publish) = try receive() else { throw TestError("expected PUBLISH") }
        if publish.qos == .atLeastOnce, let id = publish.packetID { try send(.puback(id)) }
        return publish
    }

    func ping() throws {
        try send(.pingreq)
        guard case .pingresp = try receive() else { throw TestError("expected PINGRESP") }
    }
}

/// A test client that sends and receives whole packets, over a plain socket or a transport's channel; the
/// subscribe and publish steps every test uses are written once for both.
protocol PacketClient: AnyObject {
    func send(_ packet: Packet) throws
    func receive() throws -> Packet
}

extension PacketClient {
    func subscribe(_ filter: String, qos: QoS = .atMostOnce, id: UInt16 = 1) throws {
        guard let topicFilter = TopicFilter(filter), let packetID = PacketID(id) else {
            throw TestError("bad filter \(filter)")
        }
        let request = SubscriptionRequest(filter: topicFilter, qos: qos)
        try send(.subscribe(Subscribe(packetID: packetID, requests: [request])))
        guard case .suback(let suback) = try receive(), suback.packetID == packetID else {
            throw TestError("expected SUBACK \(id)")
        }
    }

    func publish(_ topic: String, _ payload: [UInt8], qos: QoS = .atMostOnce, id: UInt16? = nil) throws {
        guard let name = TopicName(topic) else { throw TestError("bad topic \(topic)") }
        try send(.publish(Publish(topic: name, payload: payload, qos: qos, packetID: id.flatMap(PacketID.init))))
    }
}

/// A blocking TCP socket connected to 127.0.0.1:`port` whose reads and writes time out. `receiveBuffer` shrinks the
/// kernel's receive buffer, so a client that stops reading backs up the broker soon.
func openLoopbackSocket(port: UInt16, timeoutSeconds: Int, receiveBuffer: Int32? = nil) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw TestError("socket failed") }
    if var size = receiveBuffer {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }
    // Each write leaves as its own segment, so byte-by-byte tests really split packets across reads.
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else {
        Glibc.close(fd)
        throw TestError("connect to port \(port) failed: \(String(cString: strerror(errno)))")
    }
    return fd
}
