// The on-disk framing of a record: [length u32][crc32c u32][type u8][body], all integers little-endian.
import MQTTCodec

/// Why the bytes at some offset are not a record. The description is what the recovery log line says.
public enum FrameDamage: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file ends inside the 8-byte frame header.
    case tornHeader(available: Int)
    /// The file ends before the `length` bytes the header announces: a write cut short by a crash.
    case tornRecord(length: Int, available: Int)
    /// Only zero bytes remain: the file size was extended but the data never reached the disk.
    case zeroFilledTail(bytes: Int)
    /// A length of 0 or beyond `maximumRecordLength`.
    case invalidLength(UInt32)
    case checksumMismatch
    /// The checksum holds but the type byte is not one this version knows (a newer writer?).
    case unknownType(UInt8)
    /// The checksum holds but the body does not decode.
    case malformedBody(String)
    /// The file ends inside a batch header (segment version 2).
    case tornBatchHeader(available: Int)
    /// The file ends before the end of the batch its header announces: a write cut short by a crash.
    case tornBatch(size: Int, available: Int, records: Int)
    /// A batch header whose checksum or values are wrong.
    case invalidBatchHeader(String)
    /// The header holds, but the record frames do not fill the batch as it says.
    case malformedBatch(String)
    /// A damaged record frame inside a batch whose length was all there: damage, not a torn write.
    indirect case inBatch(record: Int, of: Int, FrameDamage)

    public var description: String {
        switch self {
        case .tornHeader(let available): "torn record (file ends \(available) bytes into a frame header)"
        case .tornRecord(let length, let available):
            "torn record (file ends \(available) bytes into a \(length)-byte record)"
        case .zeroFilledTail(let bytes): "torn record (\(bytes) zero bytes where a record should be)"
        case .invalidLength(let length): "invalid record length \(length)"
        case .checksumMismatch: "checksum mismatch"
        case .unknownType(let type): "unknown record type \(type)"
        case .malformedBody(let why): "malformed record (\(why))"
        case .tornBatchHeader(let available): "torn batch (file ends \(available) bytes into a batch header)"
        case .tornBatch(let size, let available, let records):
            "torn batch (file ends \(available) bytes into a \(size)-byte batch of \(records) records)"
        case .invalidBatchHeader(let why): "invalid batch header (\(why))"
        case .malformedBatch(let why): "malformed batch (\(why))"
        case .inBatch(let record, let count, let damage): "record \(record) of a \(count)-record batch: \(damage)"
        }
    }
}

/// The result of reading one frame.
enum Frame {
    case record(StoreRecord, size: Int)
    case end
    case damaged(FrameDamage)
}

enum RecordType: UInt8 {
    case retainedSet = 1
    case retainedCleared, sessionCreated, sessionEnded, sessionSeen, subscriptionAdded,
        subscriptionRemoved, messageStored, deliveryQueued, deliveryInFlight, deliveryCompleted, inboundReceived,
        inboundReleased
}

extension StoreRecord {
    /// Type byte plus body; a whole MQTT payload (256 MiB) plus its topic and ids must fit.
    static let maximumRecordLength = 268_435_455 + 65_535 + 64
    static let frameHeaderSize = 8

    /// Appends this record's frame to `buffer`. The checksum covers the length field, the type and the body,
    /// so a damaged length is caught as well as damaged contents.
    func appendFrame(to buffer: inout [UInt8]) {
        let start = buffer.count
        buffer.append(contentsOf: [0, 0, 0, 0, 0, 0, 0, 0] as [UInt8])
        encodeTypeAndBody(into: &buffer)
        let length = UInt32(buffer.count - start - StoreRecord.frameHeaderSize)
        buffer.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: length.littleEndian, toByteOffset: start, as: UInt32.self)
            var crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[start..<start + 4]))
            crc = CRC32C.checksum(
                UnsafeRawBufferPointer(rebasing: raw[(start + StoreRecord.frameHeaderSize)...]), continuing: crc)
            raw.storeBytes(of: crc.littleEndian, toByteOffset: start + 4, as: UInt32.self)
        }
    }

    /// This record's frame as a new array.
    public var frame: [UInt8] {
        var buffer: [UInt8] = []
        appendFrame(to: &buffer)
        return buffer
    }

    private func encodeTypeAndBody(into b: inout [UInt8]) {
        switch self {
        case .retainedSet(let topic, let payload, let qos):
            b.append(RecordType.retainedSet.rawValue)
            b.appendShortBytes(topic.bytes)
            b.append(qos.rawValue)
            b.appendLongBytes(payload)
        case .retainedCleared(let topic):
            b.append(RecordType.retainedCleared.rawValue)
            b.appendShortBytes(topic.bytes)
        case .sessionCreated(let clientID, let seconds):
            b.append(RecordType.sessionCreated.rawValue)
            b.appendShortBytes(Array(clientID.utf8))
            b.appendInteger(UInt64(bitPattern: seconds))
        case .sessionEnded(let clientID):
            b.append(RecordType.sessionEnded.rawValue)
            b.appendShortBytes(Array(clientID.utf8))
        case .sessionSeen(let clientID, let seconds):
            b.append(RecordType.sessionSeen.rawValue)
            b.appendShortBytes(Array(clientID.utf8))
            b.appendInteger(UInt64(bitPattern: seconds))
        case .subscriptionAdded(let clientID, let filter, let qos):
            b.append(RecordType.subscriptionAdded.rawValue)
            b.appendShortBytes(Array(clientID.utf8))
            b.appendShortBytes(filter.bytes)
            b.append(qos.rawValue)
        case .subscriptionRemoved(let clientID, let filter):
            b.append(RecordType.subscriptionRemoved.rawValue)
            b.appendShortBytes(Array(clientID.utf8))
            b.appendShortBytes(filter.bytes)
        case .messageStored(let id, let topic, let payload, let qos):
            b.append(RecordType.messageStored.rawValue)
            b.appendInteger(id)
            b.appendShortBytes(topic.bytes)
            b.append(qos.rawValue)
            b.appendLongBytes(payload)
        case .deliveryQueued(let clientID, let messageID, let qos, let retain):
            b.append(RecordType.deliveryQueued.rawValue)
            b.appendShortBytes(Array(clientID.utf8))
            b.appendInteger(messageID)
            b.append(qos.rawValue)
            b.append(retain ? 1 : 0)
        case .deliveryInFlight(let clientID, let messageID, let packetID, let qos, let retain, let state):
            b.append(RecordType.deliveryInFlight.rawValue)
            b.appendShortBytes(Array(clientID.utf8))
            b.appendInteger(messageID)
            b.appendInteger(packetID.rawValue)
            b.append(qos.rawValue)
            b.append(retain ? 1 : 0)
            b.append(state.rawValue)
        case .deliveryCompleted(let clientID, let delivery):
            b.append(RecordType.deliveryCompleted.rawValue)
            b.appendShortBytes(Array(clientID.utf8))
            switch delivery {
            case .packet(let packetID):
                b.append(0)
                b.appendInteger(packetID.rawValue)
            case .queued(let messageID):
                b.append(1)
                b.appendInteger(messageID)
            }
        case .inboundReceived(let clientID, let packetID):
            b.append(RecordType.inboundReceived.rawValue)
            b.appendShortBytes(Array(clientID.utf8))
            b.appendInteger(packetID.rawValue)
        case .inboundReleased(let clientID, let packetID):
            b.append(RecordType.inboundReleased.rawValue)
            b.appendShortBytes(Array(clientID.utf8))
            b.appendInteger(packetID.rawValue)
        }
    }

    /// Reads the frame at `offset`. `.end` only when `offset` is exactly the end of the bytes.
    static func readFrame(in bytes: UnsafeRawBufferPointer, at offset: Int) -> Frame {
        let available = bytes.count - offset
        if available == 0 { return .end }
        if available < frameHeaderSize {
            return isZero(bytes, from: offset)
                ? .damaged(.zeroFilledTail(bytes: available))
                : .damaged(.tornHeader(available: available))
        }
        let length = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        let storedCRC = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
        if length == 0 && storedCRC == 0 && isZero(bytes, from: offset) {
            return .damaged(.zeroFilledTail(bytes: available))
        }
        guard length > 0, length <= maximumRecordLength else { return .damaged(.invalidLength(length)) }
        let size = frameHeaderSize + Int(length)
        guard size <= available else { return .damaged(.tornRecord(length: size, available: available)) }
        var crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + 4]))
        let body = UnsafeRawBufferPointer(rebasing: bytes[(offset + frameHeaderSize)..<(offset + size)])
        crc = CRC32C.checksum(body, continuing: crc)
        guard crc == storedCRC else { return .damaged(.checksumMismatch) }
        do {
            return .record(try decodeTypeAndBody(body), size: size)
        } catch {
            return .damaged(error)
        }
    }

    static func isZero(_ bytes: UnsafeRawBufferPointer, from offset: Int) -> Bool {
        for index in offset..<bytes.count where bytes[index] != 0 { return false }
        return true
    }

    static func decodeTypeAndBody(_ body: UnsafeRawBufferPointer) throws(FrameDamage) -> StoreRecord {
        var r = BodyReader(bytes: body)
        let typeByte = try r.byte()
        guard let type = RecordType(rawValue: typeByte) else { throw .unknownType(typeByte) }
        let record: StoreRecord
        switch type {
        case .retainedSet:
            let topic = try r.topic()
            let qos = try r.qos()
            record = .retainedSet(topic: topic, payload: try r.longBytes(), qos: qos)
        case .retainedCleared:
            record = .retainedCleared(topic: try r.topic())
        case .sessionCreated:
            let clientID = try r.clientID()
            record = .sessionCreated(clientID: clientID, unixSeconds: Int64(bitPattern: try r.integer(UInt64.self)))
        case .sessionEnded:
            record = .sessionEnded(clientID: try r.clientID())
        case .sessionSeen:
            let clientID = try r.clientID()
            record = .sessionSeen(clientID: clientID, unixSeconds: Int64(bitPattern: try r.integer(UInt64.self)))
        case .subscriptionAdded:
            let clientID = try r.clientID()
            let filter = try r.filter()
            record = .subscriptionAdded(clientID: clientID, filter: filter, qos: try r.qos())
        case .subscriptionRemoved:
            let clientID = try r.clientID()
            record = .subscriptionRemoved(clientID: clientID, filter: try r.filter())
        case .messageStored:
            let id = try r.integer(UInt64.self)
            let topic = try r.topic()
            let qos = try r.qos()
            record = .messageStored(id: id, topic: topic, payload: try r.longBytes(), qos: qos)
        case .deliveryQueued:
            let clientID = try r.clientID()
            let messageID = try r.integer(UInt64.self)
            let qos = try r.qos()
            record = .deliveryQueued(clientID: clientID, messageID: messageID, qos: qos, retain: try r.flag())
        case .deliveryInFlight:
            let clientID = try r.clientID()
            let messageID = try r.integer(UInt64.self)
            let packetID = try r.packetID()
            let qos = try r.qos()
            let retain = try r.flag()
            let stateByte = try r.byte()
            guard let state = DeliveryState(rawValue: stateByte) else {
                throw .malformedBody("delivery state \(stateByte)")
            }
            record = .deliveryInFlight(
                clientID: clientID, messageID: messageID, packetID: packetID, qos: qos, retain: retain, state: state)
        case .deliveryCompleted:
            let clientID = try r.clientID()
            switch try r.byte() {
            case 0: record = .deliveryCompleted(clientID: clientID, delivery: .packet(try r.packetID()))
            case 1:
                record = .deliveryCompleted(
                    clientID: clientID, delivery: .queued(messageID: try r.integer(UInt64.self)))
            case let kind: throw .malformedBody("delivery reference kind \(kind)")
            }
        case .inboundReceived:
            let clientID = try r.clientID()
            record = .inboundReceived(clientID: clientID, packetID: try r.packetID())
        case .inboundReleased:
            let clientID = try r.clientID()
            record = .inboundReleased(clientID: clientID, packetID: try r.packetID())
        }
        guard r.offset == body.count else { throw .malformedBody("\(body.count - r.offset) bytes after the fields") }
        return record
    }
}

/// Bounds-checked little-endian reads over one record body.
private struct BodyReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    mutating func byte() throws(FrameDamage) -> UInt8 {
        guard offset < bytes.count else { throw .malformedBody("body too short") }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func integer<T: FixedWidthInteger>(_ type: T.Type) throws(FrameDamage) -> T {
        let size = MemoryLayout<T>.size
        guard bytes.count - offset >= size else { throw .malformedBody("body too short") }
        defer { offset += size }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    mutating func raw(count: Int) throws(FrameDamage) -> [UInt8] {
        guard bytes.count - offset >= count else { throw .malformedBody("body too short") }
        defer { offset += count }
        return Array(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count]))
    }

    mutating func shortBytes() throws(FrameDamage) -> [UInt8] { try raw(count: Int(try integer(UInt16.self))) }
    mutating func longBytes() throws(FrameDamage) -> [UInt8] { try raw(count: Int(try integer(UInt32.self))) }

    mutating func flag() throws(FrameDamage) -> Bool {
        switch try byte() {
        case 0: return false
        case 1: return true
        case let other: throw .malformedBody("flag \(other)")
        }
    }

    mutating func qos() throws(FrameDamage) -> QoS {
        let raw = try byte()
        guard let qos = QoS(rawValue: raw) else { throw .malformedBody("QoS \(raw)") }
        return qos
    }

    mutating func packetID() throws(FrameDamage) -> PacketID {
        guard let id = PacketID(try integer(UInt16.self)) else { throw .malformedBody("packet id 0") }
        return id
    }

    mutating func topic() throws(FrameDamage) -> TopicName {
        guard let topic = TopicName(bytes: try shortBytes()) else { throw .malformedBody("invalid topic name") }
        return topic
    }

    mutating func filter() throws(FrameDamage) -> TopicFilter {
        guard let filter = TopicFilter(bytes: try shortBytes()) else { throw .malformedBody("invalid topic filter") }
        return filter
    }

    mutating func clientID() throws(FrameDamage) -> String {
        let raw = try shortBytes()
        guard let clientID = String(validating: raw, as: UTF8.self) else { throw .malformedBody("client id not UTF-8") }
        return clientID
    }
}

extension [UInt8] {
    mutating func appendInteger<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    /// A 16-bit length and the bytes: topics, filters and client ids are MQTT strings, at most 65535 bytes.
    mutating func appendShortBytes(_ bytes: [UInt8]) {
        precondition(bytes.count <= Int(UInt16.max), "an MQTT string is at most 65535 bytes")
        appendInteger(UInt16(bytes.count))
        append(contentsOf: bytes)
    }

    mutating func appendLongBytes(_ bytes: [UInt8]) {
        appendInteger(UInt32(bytes.count))
        append(contentsOf: bytes)
    }
}
