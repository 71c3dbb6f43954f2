// Ways to feed bytes to a FrameDecoder in tests: whole, byte by byte, and as a stream cut into uneven chunks.

import MQTTCodec

typealias DecodeOutcome = Result<(packet: Packet, consumed: Int)?, DecodeError>

/// One `decode` call over the bytes, with the typed error captured.
func decodeFront(_ bytes: ArraySlice<UInt8>, with decoder: FrameDecoder = FrameDecoder()) -> DecodeOutcome {
    bytes.withUnsafeBytes { raw in
        Result { () throws(DecodeError) in try decoder.decode(raw) }
    }
}

func decodeFront(_ bytes: [UInt8], with decoder: FrameDecoder = FrameDecoder()) -> DecodeOutcome {
    decodeFront(bytes[...], with: decoder)
}

/// What a connection does: append each chunk to a buffer, decode every complete packet at its front, keep the rest.
/// Chunk sizes cycle through `chunkSizes`. Stops at the first error.
func decodeStream(
    _ bytes: [UInt8], chunkSizes: [Int], with decoder: FrameDecoder = FrameDecoder()
) -> (packets: [Packet], leftover: Int, error: DecodeError?) {
    var packets: [Packet] = []
    var buffer: [UInt8] = []
    var position = 0
    var chunk = 0
    // Each pass appends at least one byte, so the loop ends after at most bytes.count passes.
    while position < bytes.count {
        let size = min(chunkSizes[chunk % chunkSizes.count], bytes.count - position)
        buffer.append(contentsOf: bytes[position..<(position + size)])
        position += size
        chunk += 1
        var front = 0
        // Each decoded packet consumes at least two bytes, so this loop is bounded by the buffer's length.
        while front < buffer.count {
            switch decodeFront(buffer[front...], with: decoder) {
            case .failure(let error):
                return (packets, buffer.count - front, error)
            case .success(nil):
                break
            case .success(let decoded?):
                packets.append(decoded.packet)
                front += decoded.consumed
                continue
            }
            break
        }
        buffer.removeFirst(front)
    }
    return (packets, buffer.count, nil)
}

func encoded(_ packet: Packet) -> [UInt8] {
    var buffer: [UInt8] = []
    packet.encode(into: &buffer)
    return buffer
}
