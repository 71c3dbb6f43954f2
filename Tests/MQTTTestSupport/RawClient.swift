// A blocking loopback TCP client whose every wait is bounded: raw bytes out, whole MQTT frames in (§2.2, §4.8).
// Byte-exact writes let a test send malformed packets; whole-packet helpers cover the common steps.

import Foundation
import Glibc
import MQTTCodec

/// Why a test step did not get what it waited for.
public struct TestError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Used by one thread at a time; Sendable so a test can hand a client to a reader thread.
public final class RawClient: @unchecked Sendable {
    public let name: String
    /// The socket; -1 once closed. For tests that speak another protocol on it (TLS, HTTP).
    public private(set) var fd: Int32
    /// The client's ephemeral port, which the broker's log names.
    public let localPort: UInt16
    /// How long `receive`, `readUntilClosed` and `read` wait, and how long a blocked write may take.
    public let timeoutSeconds: Int
    private var buffer: [UInt8] = []
    /// The peer ended the stream (EOF or reset); nothing more can arrive.
    public private(set) var isClosed = false
    /// The broker sent bytes that cannot be framed (a 5-byte remaining length); reading stops there.
    public private(set) var framingError: WireError?

    /// Connects to 127.0.0.1:`port`. `receiveBuffer`: see `openLoopbackSocket`.
    public init(port: UInt16, name: String = "client", timeoutSeconds: Int = 10, receiveBuffer: Int32? = nil) throws {
        self.name = name
        self.timeoutSeconds = timeoutSeconds
        let fd = try openLoopbackSocket(port: port, timeoutSeconds: timeoutSeconds, receiveBuffer: receiveBuffer)
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        localPort = UInt16(bigEndian: local.sin_port)
    }

    deinit {
        if fd >= 0 { Glibc.close(fd) }
    }

    /// Closes the socket without sending DISCONNECT: to the broker this is a network failure.
    public func close() {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
        isClosed = true
    }

    /// Closes with an RST instead of a FIN (SO_LINGER 0), the most abrupt end a client can make.
    public func reset() {
        if fd >= 0 {
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        }
        close()
    }

    /// Writes all of `bytes`; throws if the broker has already closed the connection.
    public func send(_ bytes: [UInt8]) throws {
        guard fd >= 0 else { throw TestError("\(name): send on a closed socket") }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress.map { $0 + offset }, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    throw TestError("\(name): send blocked for \(timeoutSeconds) s")
                }
                throw TestError("\(name): send: \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }

    /// Sends every packet in one write, so the broker sees them in a single read (pipelining tests).
    public func send(_ packets: [UInt8]...) throws {
        try send(packets.flatMap { $0 })
    }

    /// Sends, ignoring a broker that has already closed: for bytes written after an expected refusal.
    public func sendIgnoringClose(_ bytes: [UInt8]) {
        _ = try? send(bytes)
    }

    /// The next whole frame, or nil when the deadline passes or the connection ends first.
    public func readFrame(timeout: Double = 5) -> Frame? {
        let deadline = Date().addingTimeInterval(timeout)
        var rounds = 0
        while rounds < 1_000_000 {
            rounds += 1
            do {
                if let frame = try Frame.slice(from: buffer) {
                    buffer.removeFirst(frame.bytes.count)
                    return frame
                }
            } catch {
                framingError = error
                return nil
            }
            if isClosed { return nil }
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { return nil }
            guard waitReadable(events: Int16(POLLIN), milliseconds: Int32(min(remaining * 1000 + 1, 60_000))) else {
                continue
            }
            fill()
        }
        return nil
    }

    /// The raw bytes received so far or within `timeout`, taken out of the buffer; nil on timeout or close.
    /// For transports layered on TCP (WebSocket) that do their own framing.
    public func readBytes(timeout: Double) -> [UInt8]? {
        if buffer.isEmpty && !isClosed && waitReadable(events: Int16(POLLIN), milliseconds: Int32(timeout * 1000)) {
            fill()
        }
        guard !buffer.isEmpty else { return nil }
        defer { buffer.removeAll() }
        return buffer
    }

    /// Reads bytes once if any are waiting; EOF or a reset marks the connection closed.
    private func fill() {
        guard fd >= 0 else {
            isClosed = true
            return
        }
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count > 0 {
            buffer += chunk[0..<count]
        } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
            isClosed = true
        }
    }

    private func waitReadable(events: Int16, milliseconds: Int32) -> Bool {
        guard fd >= 0 else { return true }
        var descriptor = pollfd(fd: fd, events: events, revents: 0)
        return poll(&descriptor, 1, max(0, milliseconds)) > 0
    }

    /// The next packet, decoded; throws on timeout, on a closed connection, or on bytes no server may send.
    public func readPacket(timeout: Double = 5) throws -> Packet {
        guard let frame = readFrame(timeout: timeout) else {
            if let framingError { throw TestError("\(name): unframeable bytes from the broker: \(framingError)") }
            throw TestError(
                "\(name): " + (isClosed ? "connection closed by the broker" : "no packet within \(timeout) s")
                    + (buffer.isEmpty ? "" : " (\(buffer.count) stray bytes buffered)"))
        }
        do {
            return try frame.decode()
        } catch {
            throw TestError("\(name): undecodable packet \(frame): \(error)")
        }
    }

    /// The next packet, which must be a PUBLISH.
    public func readPublish(timeout: Double = 5) throws -> Publish {
        let packet = try readPacket(timeout: timeout)
        guard let publish = packet.publish else { throw TestError("\(name): expected PUBLISH, got \(packet)") }
        return publish
    }

    /// Reads the CONNACK that must be the first packet [MQTT-3.2.0-1].
    public func readConnAck(timeout: Double = 5) throws -> ConnAck {
        let packet = try readPacket(timeout: timeout)
        guard case .connack(let connack) = packet else { throw TestError("\(name): expected CONNACK, got \(packet)") }
        return connack
    }

    public func readSubAck(timeout: Double = 5) throws -> SubAck {
        let packet = try readPacket(timeout: timeout)
        guard case .suback(let suback) = packet else { throw TestError("\(name): expected SUBACK, got \(packet)") }
        return suback
    }

    /// Collects every PUBLISH arriving within `window` seconds, acknowledging none of them.
    public func drainPublishes(window: Double) throws -> [Publish] {
        var publishes: [Publish] = []
        let deadline = Date().addingTimeInterval(window)
        while publishes.count < 100_000 {
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0, let frame = readFrame(timeout: remaining) else { break }
            let packet = try frame.decode()
            guard let publish = packet.publish else { throw TestError("\(name): expected PUBLISH, got \(packet)") }
            publishes.append(publish)
        }
        return publishes
    }

    /// Waits for the broker to end the connection; a frame that is not in `allowed` arriving first is an error.
    /// Returns the frames that did arrive before the end.
    @discardableResult
    public func expectClosed(timeout: Double = 5, allowing allowed: (Frame) -> Bool = { _ in false }) throws -> [Frame]
    {
        let deadline = Date().addingTimeInterval(timeout)
        var received: [Frame] = []
        while received.count < 10_000 {
            if let frame = readFrame(timeout: max(0, deadline.timeIntervalSinceNow)) {
                guard allowed(frame) else {
                    throw TestError("\(name): expected the connection to be closed, but received \(frame)")
                }
                received.append(frame)
                continue
            }
            if let framingError { throw TestError("\(name): unframeable bytes from the broker: \(framingError)") }
            if isClosed {
                guard buffer.isEmpty else {
                    throw TestError("\(name): closed with \(buffer.count) bytes of a partial packet")
                }
                return received
            }
            throw TestError("\(name): connection still open after \(timeout) s")
        }
        throw TestError("\(name): flood of packets instead of a close")
    }

    /// Checks that no bytes arrive and the connection stays open for `seconds`.
    public func expectNothing(for seconds: Double) throws {
        if let frame = readFrame(timeout: seconds) {
            throw TestError("\(name): expected nothing, received \(frame)")
        }
        if let framingError { throw TestError("\(name): unframeable bytes from the broker: \(framingError)") }
        if isClosed { throw TestError("\(name): connection closed while expecting it to stay open") }
        if !buffer.isEmpty { throw TestError("\(name): expected nothing, received \(buffer.count) bytes") }
    }

    /// Sends PINGREQ and reads up to its PINGRESP; returns the PUBLISHes that came before it.
    /// Because the broker answers in order, this proves everything sent earlier has been handled.
    @discardableResult
    public func sync(timeout: Double = 5) throws -> [Publish] {
        try send(Wire.pingreq)
        var publishes: [Publish] = []
        while publishes.count < 100_000 {
            let packet = try readPacket(timeout: timeout)
            if case .pingresp = packet { return publishes }
            guard let publish = packet.publish else {
                throw TestError("\(name): expected PINGRESP, got \(packet)")
            }
            publishes.append(publish)
        }
        throw TestError("\(name): no PINGRESP")
    }

    /// Reads until `count` PUBLISHes have arrived, completing every flow on the way as a well-behaved client
    /// does (PUBACK, PUBREC/PUBCOMP for deliveries, PUBREL for its own QoS 2 publishes), whatever the order in
    /// which the broker interleaves them.
    public func collectPublishes(count: Int, timeout: Double = 5) throws -> [Publish] {
        try collectPublishes(limit: count, timeout: timeout) { $0.count >= count }
    }

    /// Like `collectPublishes(count:)`, reading until `done` holds for what has arrived (at most `limit`).
    public func collectPublishes(limit: Int, timeout: Double = 5, until done: ([Publish]) -> Bool) throws -> [Publish] {
        var publishes: [Publish] = []
        var awaitingPubrel: Set<UInt16> = []
        for _ in 0..<(limit * 4 + 16) {
            if done(publishes) && awaitingPubrel.isEmpty { return publishes }
            let packet: Packet
            do {
                packet = try readPacket(timeout: timeout)
            } catch {
                throw TestError("\(error) after \(publishes.count) publishes, \(awaitingPubrel.count) open flows")
            }
            switch packet {
            case .publish(let publish):
                publishes.append(publish)
                if publish.qos == .atLeastOnce { try send(Wire.puback(publish.id)) }
                if publish.qos == .exactlyOnce {
                    try send(Wire.pubrec(publish.id))
                    awaitingPubrel.insert(publish.id)
                }
            case .pubrel(let id):
                try send(Wire.pubcomp(id.rawValue))
                awaitingPubrel.remove(id.rawValue)
            case .pubrec(let id):
                try send(Wire.pubrel(id.rawValue))
            case .puback, .pubcomp:
                break
            case let other:
                throw TestError("\(name): unexpected \(other) while collecting publishes")
            }
        }
        throw TestError("\(name): \(publishes.count) publishes, \(awaitingPubrel.count) open flows")
    }
}

/// Whole packets, each wait bounded by `timeoutSeconds`: what the in-process server tests use.
extension RawClient: PacketClient {
    public func send(_ packet: Packet) throws {
        var bytes: [UInt8] = []
        packet.encode(into: &bytes)
        try send(bytes)
    }

    /// The next packet; throws when none arrives within `timeoutSeconds` or the connection ends first.
    public func receive() throws -> Packet {
        try readPacket(timeout: Double(timeoutSeconds))
    }

    /// Everything the broker sends until it closes the connection. Throws if it does not close in time.
    public func readUntilClosed() throws -> [UInt8] {
        while !isClosed {
            guard waitReadable(events: Int16(POLLIN), milliseconds: Int32(timeoutSeconds * 1000)) else {
                throw TestError("\(name): connection still open after \(timeoutSeconds) s")
            }
            fill()
        }
        defer { buffer = [] }
        return buffer
    }
}

/// The TCP stream as a byte channel, for the transports layered on it (TLS, WebSocket) and for HTTP.
extension RawClient: ByteChannel {
    public func write(_ bytes: [UInt8]) throws {
        try send(bytes)
    }

    /// The bytes buffered or arriving next, nil at the end of the stream; throws after `timeoutSeconds` of silence.
    public func read() throws -> [UInt8]? {
        while buffer.isEmpty && !isClosed {
            guard waitReadable(events: Int16(POLLIN), milliseconds: Int32(timeoutSeconds * 1000)) else {
                throw TestError("\(name): timed out waiting for the broker")
            }
            fill()
        }
        guard !buffer.isEmpty else { return nil }
        defer { buffer.removeAll() }
        return buffer
    }
}

/// A blocking TCP socket connected to 127.0.0.1:`port` whose reads and writes time out. `receiveBuffer` shrinks the
/// kernel's receive buffer, so a client that stops reading backs up the broker soon.
public func openLoopbackSocket(port: UInt16, timeoutSeconds: Int, receiveBuffer: Int32? = nil) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw TestError("socket: \(String(cString: strerror(errno)))") }
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
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else {
        let message = String(cString: strerror(errno))
        Glibc.close(fd)
        throw TestError("connect to 127.0.0.1:\(port): \(message)")
    }
    return fd
}
