// Helpers for WebSocket tests: masked client frames, and feeding bytes whole, byte by byte and in uneven chunks.

import MQTTCodec
import XCTest

@testable import MidgeGateway

/// The masking key of the RFC 6455 §5.7 examples.
let rfcMask: [UInt8] = [0x37, 0xfa, 0x21, 0x3d]

/// A client frame: masked unless `masked` is false. `flags` adds RSV bits (0x40 = RSV1).
func clientFrame(
    _ opcode: UInt8, _ payload: [UInt8], fin: Bool = true, flags: UInt8 = 0, masked: Bool = true,
    mask: [UInt8] = rfcMask
) -> [UInt8] {
    var frame: [UInt8] = [(fin ? 0x80 : 0) | flags | opcode]
    let maskBit: UInt8 = masked ? 0x80 : 0
    if payload.count < 126 {
        frame.append(maskBit | UInt8(payload.count))
    } else if payload.count <= 0xFFFF {
        frame += [maskBit | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
    } else {
        frame.append(maskBit | 127)
        frame += (0..<8).reversed().map { UInt8(truncatingIfNeeded: payload.count >> ($0 * 8)) }
    }
    guard masked else { return frame + payload }
    frame += mask
    frame += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
    return frame
}

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
        XCTAssertEqual(bytes[index + 1] & 0x80, 0, "server frames are never masked", file: file, line: line)
        var length = Int(bytes[index + 1] & 0x7F)
        var offset = index + 2
        if length == 126 {
            length = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
            offset += 2
        } else if length == 127 {
            length = bytes[offset..<(offset + 8)].reduce(0) { $0 << 8 | Int($1) }
            offset += 8
        }
        guard offset + length <= bytes.count else {
            XCTFail("truncated server frame", file: file, line: line)
            return frames
        }
        frames.append(
            ServerFrame(
                fin: bytes[index] & 0x80 != 0, rsv1: bytes[index] & 0x40 != 0, opcode: bytes[index] & 0x0F,
                payload: Array(bytes[offset..<(offset + length)])))
        index = offset + length
    }
    XCTAssertEqual(index, bytes.count, "bytes left after the last server frame", file: file, line: line)
    return frames
}
