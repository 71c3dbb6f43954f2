// A one-connection loopback server that drives a TLSConnection exactly as the event loop is meant to: non-blocking
// socket, read → feed → readPlaintext, writePlaintext → takeCiphertext → send, EAGAIN → wait for POLLOUT.
import Foundation
import Glibc
import XCTest

@testable import MidgeTLS

/// How a served connection ended.
struct ServedConnection {
    var handshakeComplete = false
    var protocolVersion: String?
    var commonName: String?
    var pskIdentity: String?
    var sawCloseNotify = false
    var sawEndOfStream = false
    /// Sends the socket took only part of, or refused with EAGAIN: the write path's backpressure case.
    var shortWrites = 0
    var error: TLSError?
    /// Plaintext that arrived and the handler left unconsumed.
    var leftover: [UInt8] = []
}

final class LoopbackTLSServer {
    let listener: Int32
    let port: UInt16

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard listener >= 0 else { throw TestFailure("socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && listen(listener, 4) == 0 && getsockname(listener, $0, &length) == 0
            }
        }
        guard bound else {
            close(listener)
            throw TestFailure("bind/listen on 127.0.0.1: errno \(errno)")
        }
        self.listener = listener
        port = UInt16(bigEndian: address.sin_port)
    }

    deinit { close(listener) }

    /// Accepts one client and serves it until it closes, fails, or `wakeups` polls of at most 100 ms pass.
    /// `handler` sees the plaintext received so far (it removes what it consumed) and returns bytes to send.
    /// A small `sendBufferSize` makes large writes meet EAGAIN.
    func serveOne(
        context: TLSContext, wakeups: Int = 300, sendBufferSize: Int32? = nil,
        handler: (TLSConnection, inout [UInt8]) throws -> [UInt8]
    ) throws -> ServedConnection {
        var pending = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        var accepted: Int32 = -1
        for _ in 0..<wakeups where accepted < 0 {
            if poll(&pending, 1, 100) > 0 { accepted = accept(listener, nil, nil) }
        }
        guard accepted >= 0 else { throw TestFailure("no client connected") }
        defer { close(accepted) }
        guard fcntl(accepted, F_SETFL, fcntl(accepted, F_GETFL) | O_NONBLOCK) == 0 else {
            throw TestFailure("O_NONBLOCK: errno \(errno)")
        }
        if var size = sendBufferSize {
            _ = setsockopt(accepted, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }

        let tls = try TLSConnection(context: context)
        var outcome = ServedConnection()
        var plaintext: [UInt8] = []
        var readBuffer = [UInt8](repeating: 0, count: 16 * 1024)
        var unsent: [UInt8] = []  // ciphertext the socket did not take yet (the connection's pending writes)
        var unsentStart = 0

        /// Writes what the socket takes now; on EAGAIN the rest waits for POLLOUT. Returns false on a dead socket.
        func flush() -> Bool {
            unsent += tls.takeCiphertext()
            while unsentStart < unsent.count {
                let sent = unsent[unsentStart...].withUnsafeBytes {
                    send(accepted, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
                }
                if sent > 0 {
                    if sent < unsent.count - unsentStart { outcome.shortWrites += 1 }
                    unsentStart += sent
                } else if sent < 0 && (errno == EAGAIN || errno == EINTR) {
                    outcome.shortWrites += 1
                    return true
                } else {
                    return false
                }
            }
            unsent.removeAll(keepingCapacity: true)
            unsentStart = 0
            return true
        }

        wakeupLoop: for _ in 0..<wakeups {
            var descriptor = pollfd(
                fd: accepted, events: Int16(POLLIN) | (unsent.isEmpty ? 0 : Int16(POLLOUT)), revents: 0)
            guard poll(&descriptor, 1, 100) > 0 else { continue }
            if descriptor.revents & Int16(POLLOUT) != 0 && !flush() { break }
            guard descriptor.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 else { continue }

            // Read path: a bounded number of reads per wake-up, each fed as it arrives.
            for _ in 0..<16 {
                let count = read(accepted, &readBuffer, readBuffer.count)
                if count > 0 {
                    try readBuffer.withUnsafeBytes { try tls.feed(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
                } else if count == 0 {
                    outcome.sawEndOfStream = true
                    break
                } else {
                    if errno != EAGAIN && errno != EINTR { outcome.sawEndOfStream = true }
                    break
                }
            }
            do {
                let status = try tls.readPlaintext(appendingTo: &plaintext)
                if tls.isHandshakeComplete {
                    try tls.writePlaintext(try handler(tls, &plaintext))
                }
                if status == .closedByPeer {
                    outcome.sawCloseNotify = true
                    tls.close()
                }
            } catch let error as TLSError {
                outcome.error = error  // fatal: the alert in takeCiphertext() goes out best-effort below
            }
            let alive = flush()
            if !alive || outcome.error != nil || outcome.sawCloseNotify || outcome.sawEndOfStream { break wakeupLoop }
        }
        outcome.handshakeComplete = tls.isHandshakeComplete
        outcome.protocolVersion = tls.protocolVersion
        outcome.commonName = tls.peerCertificateSubjectCommonName
        outcome.pskIdentity = tls.pskIdentity
        outcome.leftover = plaintext
        return outcome
    }
}

/// The MQTT 3.1.1 framing the real-client tests need: one packet off the front of a buffer, and a PUBLISH encoder.
enum MiniMQTT {
    struct Packet {
        let type: UInt8
        let flags: UInt8
        let body: [UInt8]
    }

    /// Removes and returns the first whole packet, or nil while it is incomplete.
    static func next(_ buffer: inout [UInt8]) -> Packet? {
        guard buffer.count >= 2 else { return nil }
        var length = 0
        var multiplier = 1
        var index = 1
        while true {
            guard index < buffer.count, index <= 4 else { return nil }
            let byte = buffer[index]
            length += Int(byte & 0x7f) * multiplier
            multiplier *= 128
            index += 1
            if byte & 0x80 == 0 { break }
        }
        guard buffer.count >= index + length else { return nil }
        let packet = Packet(
            type: buffer[0] >> 4, flags: buffer[0] & 0x0f, body: Array(buffer[index..<(index + length)]))
        buffer.removeFirst(index + length)
        return packet
    }

    static func remainingLength(_ value: Int) -> [UInt8] {
        var value = value
        var bytes: [UInt8] = []
        repeat {
            var byte = UInt8(value % 128)
            value /= 128
            if value > 0 { byte |= 0x80 }
            bytes.append(byte)
        } while value > 0
        return bytes
    }

    static func publish(topic: String, payload: [UInt8]) -> [UInt8] {
        let name = Array(topic.utf8)
        let length = 2 + name.count + payload.count
        return [0x30] + remainingLength(length) + [UInt8(name.count >> 8), UInt8(name.count & 0xff)] + name + payload
    }

    /// Topic and payload of a QoS 0 or 1 PUBLISH body, with the packet id for QoS 1.
    static func parsePublish(_ packet: Packet) -> (topic: String, packetID: [UInt8]?, payload: [UInt8]) {
        let topicLength = Int(packet.body[0]) << 8 | Int(packet.body[1])
        let topic = String(decoding: packet.body[2..<(2 + topicLength)], as: UTF8.self)
        var offset = 2 + topicLength
        var packetID: [UInt8]?
        if (packet.flags >> 1) & 0x03 > 0 {
            packetID = Array(packet.body[offset..<(offset + 2)])
            offset += 2
        }
        return (topic, packetID, Array(packet.body[offset...]))
    }
}

/// Runs `arguments` under `timeout` so a hung client cannot hang the test, without waiting for it.
func startBounded(_ tool: String, _ arguments: [String], stdout: String) throws -> Process {
    guard let timeout = findExecutable("timeout") else { throw XCTSkip("timeout(1) is not installed") }
    _ = FileManager.default.createFile(atPath: stdout, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: timeout)
    process.arguments = ["20", tool] + arguments
    process.standardOutput = FileHandle(forWritingAtPath: stdout)
    process.standardError = FileHandle(forWritingAtPath: stdout + ".err")
    try process.run()
    return process
}

/// The first executable called `name` on PATH or in the usual places, or nil.
func findExecutable(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
    let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/bin", "/usr/local/bin"]
    for directory in directories where FileManager.default.isExecutableFile(atPath: directory + "/" + name) {
        return directory + "/" + name
    }
    return nil
}
