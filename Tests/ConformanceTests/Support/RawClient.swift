// A blocking loopback TCP client with poll(2) deadlines: raw bytes out, whole MQTT frames in (§2.2, §4.8).

import Foundation
import Glibc
import MQTTCodec

/// Why a read did not give the packet a test waited for.
struct ClientError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Used by one thread at a time; Sendable so a test can hand a client to a reader thread.
final class RawClient: @unchecked Sendable {
    let name: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    /// The peer ended the stream (EOF or reset); nothing more can arrive.
    private(set) var isClosed = false
    /// The broker sent bytes that cannot be framed (a 5-byte remaining length); reading stops there.
    private(set) var framingError: WireError?

    init(port: UInt16, name: String = "client") throws {
        self.name = name
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ClientError("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            let message = String(cString: strerror(errno))
            Glibc.close(fd)
            throw ClientError("connect to 127.0.0.1:\(port): \(message)")
        }
    }

    deinit {
        if fd >= 0 { Glibc.close(fd) }
    }

    /// Closes the socket without sending DISCONNECT: to the broker this is a network failure.
    func close() {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
        isClosed = true
    }

    /// Closes with an RST instead of a FIN (SO_LINGER 0), the most abrupt end a client can make.
    func reset() {
        if fd >= 0 {
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        }
        close()
    }

    /// Writes all of `bytes`; throws if the broker has already closed the connection.
    func send(_ bytes: [UInt8]) throws {
        guard fd >= 0 else { throw ClientError("\(name): send on a closed socket") }
        var offset = 0
        var attempts = 0
        while offset < bytes.count {
            attempts += 1
            guard attempts < 100_000 else { throw ClientError("\(name): send made no progress") }
            let written = bytes.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress.map { $0 + offset }, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    _ = waitReadable(events: Int16(POLLOUT), milliseconds: 100)
                    continue
                }
                throw ClientError("\(name): send: \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }

    /// Sends every packet in one write, so the broker sees them in a single read (pipelining tests).
    func send(_ packets: [UInt8]...) throws {
        try send(packets.flatMap { $0 })
    }

    /// Sends, ignoring a broker that has already closed: for bytes written after an expected refusal.
    func sendIgnoringClose(_ bytes: [UInt8]) {
        _ = try? send(bytes)
    }

    /// The next whole frame, or nil when the deadline passes or the connection ends first.
    func readFrame(timeout: Double = 5) -> Frame? {
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
    func readBytes(timeout: Double) -> [UInt8]? {
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
    func readPacket(timeout: Double = 5) throws -> Packet {
        guard let frame = readFrame(timeout: timeout) else {
            if let framingError { throw ClientError("\(name): unframeable bytes from the broker: \(framingError)") }
            throw ClientError(
                "\(name): " + (isClosed ? "connection closed by the broker" : "no packet within \(timeout) s")
                    + (buffer.isEmpty ? "" : " (\(buffer.count) stray bytes buffered)"))
        }
        do {
            return try frame.decode()
        } catch {
            throw ClientError("\(name): undecodable packet \(frame): \(error)")
        }
    }

    /// The next packet, which must be a PUBLISH.
    func readPublish(timeout: Double = 5) throws -> Publish {
        let packet = try readPacket(timeout: timeout)
        guard let publish = packet.publish else { throw ClientError("\(name): expected PUBLISH, got \(packet)") }
        return publish
    }

    /// Reads the CONNACK that must be the first packet [MQTT-3.2.0-1].
    func readConnAck(timeout: Double = 5) throws -> ConnAck {
        let packet = try readPacket(timeout: timeout)
        guard case .connack(let connack) = packet else { throw ClientError("\(name): expected CONNACK, got \(packet)") }
        return connack
    }

    func readSubAck(timeout: Double = 5) throws -> SubAck {
        let packet = try readPacket(timeout: timeout)
        guard case .suback(let suback) = packet else { throw ClientError("\(name): expected SUBACK, got \(packet)") }
        return suback
    }

    /// Collects every PUBLISH arriving within `window` seconds, acknowledging none of them.
    func drainPublishes(window: Double) throws -> [Publish] {
        var publishes: [Publish] = []
        let deadline = Date().addingTimeInterval(window)
        while publishes.count < 100_000 {
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0, let frame = readFrame(timeout: remaining) else { break }
            let packet = try frame.decode()
            guard let publish = packet.publish else { throw ClientError("\(name): expected PUBLISH, got \(packet)") }
            publishes.append(publish)
        }
        return publishes
    }

    /// Waits for the broker to end the connection; a frame that is not in `allowed` arriving first is an error.
    /// Returns the frames that did arrive before the end.
    @discardableResult
    func expectClosed(timeout: Double = 5, allowing allowed: (Frame) -> Bool = { _ in false }) throws -> [Frame] {
        let deadline = Date().addingTimeInterval(timeout)
        var received: [Frame] = []
        while received.count < 10_000 {
            if let frame = readFrame(timeout: max(0, deadline.timeIntervalSinceNow)) {
                guard allowed(frame) else {
                    throw ClientError("\(name): expected the connection to be closed, but received \(frame)")
                }
                received.append(frame)
                continue
            }
            if let framingError { throw ClientError("\(name): unframeable bytes from the broker: \(framingError)") }
            if isClosed {
                guard buffer.isEmpty else {
                    throw ClientError("\(name): closed with \(buffer.count) bytes of a partial packet")
                }
                return received
            }
            throw ClientError("\(name): connection still open after \(timeout) s")
        }
        throw ClientError("\(name): flood of packets instead of a close")
    }

    /// Checks that no bytes arrive and the connection stays open for `seconds`.
    func expectNothing(for seconds: Double) throws {
        if let frame = readFrame(timeout: seconds) {
            throw ClientError("\(name): expected nothing, received \(frame)")
        }
        if let framingError { throw ClientError("\(name): unframeable bytes from the broker: \(framingError)") }
        if isClosed { throw ClientError("\(name): connection closed while expecting it to stay open") }
        if !buffer.isEmpty { throw ClientError("\(name): expected nothing, received \(buffer.count) bytes") }
    }

    /// Sends PINGREQ and reads up to its PINGRESP; returns the PUBLISHes that came before it.
    /// Because the broker answers in order, this proves everything sent earlier has been handled.
    @discardableResult
    func sync(timeout: Double = 5) throws -> [Publish] {
        try send(Wire.pingreq)
        var publishes: [Publish] = []
        while publishes.count < 100_000 {
            let packet = try readPacket(timeout: timeout)
            if case .pingresp = packet { return publishes }
            guard let publish = packet.publish else {
                throw ClientError("\(name): expected PINGRESP, got \(packet)")
            }
            publishes.append(publish)
        }
        throw ClientError("\(name): no PINGRESP")
    }

    /// Reads until `count` PUBLISHes have arrived, completing every flow on the way as a well-behaved client
    /// does (PUBACK, PUBREC/PUBCOMP for deliveries, PUBREL for its own QoS 2 publishes), whatever the order in
    /// which the broker interleaves them.
    func collectPublishes(count: Int, timeout: Double = 5) throws -> [Publish] {
        try collectPublishes(limit: count, timeout: timeout) { $0.count >= count }
    }

    /// Like `collectPublishes(count:)`, reading until `done` holds for what has arrived (at most `limit`).
    func collectPublishes(limit: Int, timeout: Double = 5, until done: ([Publish]) -> Bool) throws -> [Publish] {
        var publishes: [Publish] = []
        var awaitingPubrel: Set<UInt16> = []
        for _ in 0..<(limit * 4 + 16) {
            if done(publishes) && awaitingPubrel.isEmpty { return publishes }
            let packet: Packet
            do {
                packet = try readPacket(timeout: timeout)
            } catch {
                throw ClientError("\(error) after \(publishes.count) publishes, \(awaitingPubrel.count) open flows")
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
                throw ClientError("\(name): unexpected \(other) while collecting publishes")
            }
        }
        throw ClientError("\(name): \(publishes.count) publishes, \(awaitingPubrel.count) open flows")
    }
}
