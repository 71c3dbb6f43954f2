// The topic history as bytes, for `persistence true`: what a restart keeps of the HTTP gateway's message buffer.
import CZlib
import MQTTCodec

/// Layout (integers little-endian): `MIDGEHIS`, version 1, the last id (8 bytes), the message count (4), then per
/// message its id (8), the wall-clock time it was recorded in nanoseconds (8), QoS (1), topic length (2), topic,
/// payload length (4), payload; last a CRC-32 of everything before it (zlib's). Times are wall-clock in the file
/// because the history's own clock is monotonic, which restarts with the machine.
extension TopicHistory {
    static let fileMagic = Array("MIDGEHIS".utf8)

    /// `wallNow` and `now` are the same instant on the wall clock and on the history's clock, in nanoseconds.
    public func encoded(wallNow: Int64, now: Int64) -> [UInt8] {
        var out = Self.fileMagic
        out.append(1)
        Self.append(lastID, 8, to: &out)
        let kept = slots[head...].filter { $0.message != nil }
        Self.append(UInt64(kept.count), 4, to: &out)
        for slot in kept {
            guard let message = slot.message else { continue }
            Self.append(slot.id, 8, to: &out)
            Self.append(UInt64(bitPattern: wallNow - (now - slot.recordedAt)), 8, to: &out)
            out.append(message.qos.rawValue)
            Self.append(UInt64(message.topic.bytes.count), 2, to: &out)
            out.append(contentsOf: message.topic.bytes)
            Self.append(UInt64(message.payload.count), 4, to: &out)
            out.append(contentsOf: message.payload)
        }
        Self.append(UInt64(Self.checksum(out)), 4, to: &out)
        return out
    }

    /// A history from `encoded` bytes, under `limits` (which may have changed since), with what is too old already
    /// dropped; nil when the bytes are not a whole, intact file of this format.
    public static func decode(_ bytes: [UInt8], limits: TopicHistoryLimits, wallNow: Int64, now: Int64)
        -> TopicHistory?
    {
        guard bytes.count >= fileMagic.count + 1 + 8 + 4 + 4, bytes.starts(with: fileMagic),
            bytes[fileMagic.count] == 1
        else { return nil }
        let body = bytes[..<(bytes.count - 4)]
        guard read(bytes, at: bytes.count - 4, 4) == UInt64(checksum(body)) else { return nil }
        var offset = fileMagic.count + 1
        func take(_ width: Int) -> UInt64? {
            guard offset + width <= body.count else { return nil }
            defer { offset += width }
            return read(bytes, at: offset, width)
        }
        guard let last = take(8), let count = take(4) else { return nil }
        var history = TopicHistory(limits: limits)
        var previous: UInt64 = 0
        for _ in 0..<count {
            guard let id = take(8), id > previous, id <= last, let wall = take(8), let qosByte = take(1),
                let qos = QoS(rawValue: UInt8(qosByte)), let topicLength = take(2).map(Int.init),
                offset + topicLength <= body.count
            else { return nil }
            let topic = TopicName(bytes: Array(bytes[offset..<(offset + topicLength)]))
            offset += topicLength
            guard let topic, let payloadLength = take(4).map(Int.init), offset + payloadLength <= body.count else {
                return nil
            }
            let payload = Array(bytes[offset..<(offset + payloadLength)])
            offset += payloadLength
            previous = id
            let recordedAt = now - (wallNow - Int64(bitPattern: wall))
            history.restore(GatewayMessage(topic: topic, payload: payload, qos: qos), id: id, recordedAt: recordedAt)
        }
        guard offset == body.count else { return nil }
        history.continueAbove(last)
        history.expire(now: now)
        return history
    }

    private static func append(_ value: UInt64, _ width: Int, to out: inout [UInt8]) {
        for index in 0..<width { out.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(index)))) }
    }

    private static func read(_ bytes: [UInt8], at offset: Int, _ width: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<width { value |= UInt64(bytes[offset + index]) << (8 * UInt64(index)) }
        return value
    }

    private static func checksum(_ bytes: some Collection<UInt8>) -> UInt32 {
        Array(bytes).withUnsafeBufferPointer { buffer in
            UInt32(truncatingIfNeeded: crc32(0, buffer.baseAddress, uInt(buffer.count)))
        }
    }
}
