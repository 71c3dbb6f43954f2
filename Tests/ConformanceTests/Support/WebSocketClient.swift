// A hand-made RFC 6455 client for MQTT over WebSocket (§6): opening handshake, masked client frames, reassembly.

import Foundation
import MQTTCodec
import MQTTTestSupport

final class WebSocketClient {
    let socket: RawClient
    /// The status line and headers of the handshake response.
    private(set) var responseHead = ""
    /// Bytes from TCP not yet parsed into WebSocket frames.
    private var wireBuffer: [UInt8] = []
    /// MQTT bytes reassembled from binary (and continuation) frames.
    private var stream: [UInt8] = []
    /// The server sent a Close frame.
    private(set) var receivedClose = false
    /// The upgrade request's size, for tests that count what a client sent.
    private(set) var requestBytes = 0

    /// The RFC 6455 sample key, whose expected accept value the RFC gives, so no SHA-1 is needed here.
    static let sampleKey = "dGhlIHNhbXBsZSBub25jZQ=="
    static let sampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

    init(port: UInt16, subprotocol: String? = "mqtt", path: String = "/mqtt", extensions: String? = nil) throws {
        socket = try RawClient(port: port, name: "websocket")
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: \(WebSocketClient.sampleKey)\r\nSec-WebSocket-Version: 13\r\n"
        if let subprotocol { request += "Sec-WebSocket-Protocol: \(subprotocol)\r\n" }
        if let extensions { request += "Sec-WebSocket-Extensions: \(extensions)\r\n" }
        request += "\r\n"
        requestBytes = request.utf8.count
        try socket.send(Array(request.utf8))
        let deadline = Date().addingTimeInterval(5)
        let terminator: [UInt8] = [13, 10, 13, 10]
        for _ in 0..<10_000 {
            if let end = WebSocketClient.find(terminator, in: wireBuffer) {
                responseHead = String(decoding: wireBuffer[0..<end], as: UTF8.self)
                wireBuffer.removeFirst(end + 4)
                return
            }
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0, let bytes = socket.readBytes(timeout: remaining) else { break }
            wireBuffer += bytes
        }
        throw TestError("websocket: no handshake response (got \(wireBuffer.count) bytes)")
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count)
        where haystack[start..<(start + needle.count)].elementsEqual(needle) {
            return start
        }
        return nil
    }

    var statusCode: Int? {
        let parts = responseHead.split(separator: "\r\n").first?.split(separator: " ") ?? []
        return parts.count > 1 ? Int(parts[1]) : nil
    }

    /// The value of a response header, matched without regard to case.
    func header(_ name: String) -> String? {
        for line in responseHead.split(separator: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            if line[..<colon].lowercased() == name.lowercased() {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }

    /// Sends one frame, masked with a fresh key as every client frame must be (RFC 6455 §5.3).
    func sendFrame(opcode: UInt8, _ payload: [UInt8], fin: Bool = true) throws {
        let key = (0..<4).map { _ in UInt8.random(in: 0...255) }
        try socket.send(clientFrame(opcode, payload, fin: fin, mask: key))
    }

    func sendBinary(_ payload: [UInt8]) throws {
        try sendFrame(opcode: 0x2, payload)
    }

    /// Parses whole server frames out of `wireBuffer`: data into `stream`, Close noted, Ping answered.
    private func parseFrames() throws {
        for _ in 0..<10_000 {
            guard let frame = WebSocketFrames.server(in: wireBuffer) else { return }
            guard !frame.masked else { throw TestError("websocket: server frame is masked") }
            wireBuffer.removeFirst(frame.length)
            let payload = frame.payload
            switch frame.opcode {
            case 0x0, 0x2: stream += payload
            case 0x8: receivedClose = true
            case 0x9: try? sendFrame(opcode: 0xA, payload)
            case 0xA: break
            default: throw TestError("websocket: server sent opcode \(frame.opcode)")
            }
        }
    }

    /// The next whole MQTT packet carried by binary frames, or nil on timeout or close.
    func readFrame(timeout: Double = 5) throws -> Frame? {
        let deadline = Date().addingTimeInterval(timeout)
        for _ in 0..<100_000 {
            try parseFrames()
            if let frame = try Frame.slice(from: stream) {
                stream.removeFirst(frame.bytes.count)
                return frame
            }
            if receivedClose || socket.isClosed { return nil }
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { return nil }
            if let bytes = socket.readBytes(timeout: remaining) { wireBuffer += bytes }
        }
        return nil
    }

    func readPacket(timeout: Double = 5) throws -> Packet {
        guard let frame = try readFrame(timeout: timeout) else {
            throw TestError(
                "websocket: " + (receivedClose || socket.isClosed ? "closed" : "no packet within \(timeout) s"))
        }
        return try frame.decode()
    }

    /// Waits for the server to end the connection (a Close frame or EOF) with no MQTT packet before it.
    func expectClosed(timeout: Double = 5) throws {
        if let frame = try readFrame(timeout: timeout) {
            throw TestError("websocket: expected a close, received \(frame)")
        }
        guard receivedClose || socket.isClosed else { throw TestError("websocket: still open after \(timeout) s") }
    }
}
