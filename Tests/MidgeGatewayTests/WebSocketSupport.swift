// Helpers for WebSocket tests: feeding bytes whole, byte by byte and in uneven chunks, and reading the replies back
// (the frames themselves are built and parsed by MQTTTestSupport's `WebSocketFrames`).

import MQTTCodec
import MQTTTestSupport
import XCTest

@testable import MidgeGateway

/// What one connection produced from a whole input.
struct WebSocketOutcome: Equatable, CustomStringConvertible {
    var stream: [UInt8] = []
    var reply: [UInt8] = []
    var closure: WebSocketConnection.Closure?

    /// Short, so a failing comparison of 64 KiB streams stays readable.
    var description: String {
        let closure = String(describing: closure)
        return "stream: \(stream.count) bytes \(stream.prefix(16))…, reply: \(reply.prefix(32)), closure: \(closure)"
    }
}

/// Feeds `bytes` to a fresh connection three ways (whole, byte by byte, chunks of 3 and 7) and checks that all three
/// agree before returning the outcome: frame boundaries inside a read must not matter.
func feedWebSocket(
    _ bytes: [UInt8], limits: WebSocketLimits = WebSocketLimits(), deflate: PerMessageDeflateParameters? = nil,
    file: StaticString = #filePath, line: UInt = #line
) -> WebSocketOutcome {
    func run(chunkSizes: [Int]) -> WebSocketOutcome {
        let connection = WebSocketConnection(limits: limits, deflate: deflate)
        var outcome = WebSocketOutcome()
        var position = 0
        var chunk = 0
        // Each pass consumes at least one byte.
        while position < bytes.count {
            let size = min(chunkSizes[chunk % chunkSizes.count], bytes.count - position)
            let receipt = connection.receive(
                Array(bytes[position..<(position + size)]), appendingDataTo: &outcome.stream)
            outcome.reply += receipt.reply
            if let closure = receipt.closure {
                XCTAssertNil(outcome.closure, "a connection ends once", file: file, line: line)
                outcome.closure = closure
            }
            position += size
            chunk += 1
        }
        return outcome
    }
    let whole = run(chunkSizes: [max(bytes.count, 1)])
    XCTAssertEqual(run(chunkSizes: [1]), whole, "byte by byte differs from whole", file: file, line: line)
    XCTAssertEqual(run(chunkSizes: [3, 7]), whole, "chunks differ from whole", file: file, line: line)
    return whole
}

/// The server's Close frame for `code`, with no reason.
func closeFrame(_ code: UInt16) -> [UInt8] {
    [0x88, 0x02, UInt8(code >> 8), UInt8(code & 0xFF)]
}

/// Every MQTT packet in `stream`, which must hold whole packets only.
func mqttPackets(_ stream: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> [Packet] {
    var packets: [Packet] = []
    var front = 0
    let decoder = FrameDecoder()
    // Each decoded packet consumes at least two bytes.
    while front < stream.count {
        let result = stream[front...].withUnsafeBytes { raw in
            Result { () throws(DecodeError) in try decoder.decode(raw) }
        }
        guard case .success(let decoded?) = result else {
            XCTFail("stream does not end on a packet boundary: \(result)", file: file, line: line)
            return packets
        }
        packets.append(decoded.packet)
        front += decoded.consumed
    }
    return packets
}

/// A server frame parsed back: flags, opcode and unmasked payload.
struct ServerFrame: Equatable {
    var fin: Bool
    var rsv1: Bool
    var opcode: UInt8
    var payload: [UInt8]
}

func parseServerFrames(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> [ServerFrame] {
    var frames: [ServerFrame] = []
    var index = 0
    // Each frame consumes at least two bytes.
    while index + 2 <= bytes.count {
        guard let frame = WebSocketFrames.server(in: bytes[index...]) else {
            XCTFail("truncated server frame", file: file, line: line)
            return frames
        }
        XCTAssertFalse(frame.masked, "server frames are never masked", file: file, line: line)
        frames.append(ServerFrame(fin: frame.fin, rsv1: frame.rsv1, opcode: frame.opcode, payload: frame.payload))
        index += frame.length
    }
    XCTAssertEqual(index, bytes.count, "bytes left after the last server frame", file: file, line: line)
    return frames
}
