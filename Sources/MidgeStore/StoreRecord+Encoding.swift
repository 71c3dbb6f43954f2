// The on-disk framing of a record: [length u32][crc32c u32][type u8][body] in snapshots and version-1 log segments,
// [length u32][type u8][body] inside a batch of a version-2 segment (LogBatch.swift checksums the batch whole). All
// integers little-endian.
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
    /// A record inside a batch whose bytes were all there and checked out, yet do not decode (a bug, or a newer
    /// writer): damage, not a torn write.
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
        append(to: &buffer, headerSize: StoreRecord.frameHeaderSize) { raw, start in
            var crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[start..<start + 4]))
            crc = CRC32C.checksum(
                UnsafeRawBufferPointer(rebasing: raw[(start + StoreRecord.frameHeaderSize)...]), continuing: crc)
            raw.storeBytes(of: crc.littleEndian, toByteOffset: start + 4, as: UInt32.self)
        }
    }

    static let entryHeaderSize = 4

    /// Appends this record as an entry of a batch: the frame without a checksum of its own.
    func appendEntry(to buffer: inout [UInt8]) {
        append(to: &buffer, headerSize: StoreRecord.entryHeaderSize) { _, _ in }
    }

    /// The length, `headerSize - 4` bytes left for `seal`, then the type and body; `seal` gets the buffer and the
    /// record's start once the rest is written.
    ///
    /// Sized first and written through a pointer: appending field by field to the growing array (a capacity check
    /// and a generic copy each) took ~140 ns for a 56-byte record, release build.
    private func append(
        to buffer: inout [UInt8], headerSize: Int, seal: (UnsafeMutableRawBufferPointer, _ start: Int) -> Void
    ) {
        let start = buffer.count
        let length = typeAndBodyLength
        buffer.append(contentsOf: repeatElement(0, count: headerSize + length))
        buffer.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt32(length).littleEndian, toByteOffset: start, as: UInt32.self)
            var writer = RawWriter(raw, at: start + headerSize)
            writeTypeAndBody(&writer)
            seal(raw, start)
        }
    }

    /// This record's frame as a new array.
    public var frame: [UInt8] {
        var buffer: [UInt8] = []
        appendFrame(to: &buffer)
        return buffer
    }

    /// The type byte and the body, in bytes. MQTT strings have a 2-byte length, payloads a 4-byte one.
    private var typeAndBodyLength: Int {
        switch self {
        case .retainedSet(let topic, let payload, _): 1 + 2 + topic.bytes.count + 1 + 4 + payload.count
        case .retainedCleared(let topic): 1 + 2 + topic.bytes.count
        case .sessionCreated(let clientID, _), .sessionSeen(let clientID, _): 1 + 2 + clientID.utf8.count + 8
        case .sessionEnded(let clientID): 1 + 2 + clientID.utf8.count
        case .subscriptionAdded(let clientID, let filter, _): 1 + 2 + clientID.utf8.count + 2 + filter.bytes.count + 1
        case .subscriptionRemoved(let clientID, let filter): 1 + 2 + clientID.utf8.count + 2 + filter.bytes.count
        case .messageStored(_, let topic, let payload, _): 1 + 8 + 2 + topic.bytes.count + 1 + 4 + payload.count
        case .deliveryQueued(let clientID, _, _, _): 1 + 2 + clientID.utf8.count + 8 + 1 + 1
        case .deliveryInFlight(let clientID, _, _, _, _, _): 1 + 2 + clientID.utf8.count + 8 + 2 + 1 + 1 + 1
        case .deliveryCompleted(let clientID, .packet): 1 + 2 + clientID.utf8.count + 1 + 2
        case .deliveryCompleted(let clientID, .queued): 1 + 2 + clientID.utf8.count + 1 + 8
        case .inboundReceived(let clientID, _), .inboundReleased(let clientID, _): 1 + 2 + clientID.utf8.count + 2
        }
    }

    /// Writes exactly `typeAndBodyLength` bytes.
    private func writeTypeAndBody(_ w: inout RawWriter) {
        switch self {
        case .retainedSet(let topic, let payload, let qos):
            w.byte(RecordType.retainedSet.rawValue)
            w.shortBytes(topic.bytes)
            w.byte(qos.rawValue)
            w.longBytes(payload)
        case .retainedCleared(let topic):
            w.byte(RecordType.retainedCleared.rawValue)
            w.shortBytes(topic.bytes)
        case .sessionCreated(let clientID, let seconds):
            w.byte(RecordType.sessionCreated.rawValue)
            w.shortString(clientID)
            w.integer(UInt64(bitPattern: seconds))
        case .sessionEnded(let clientID):
            w.byte(RecordType.sessionEnded.rawValue)
            w.shortString(clientID)
        case .sessionSeen(let clientID, let seconds):
            w.byte(RecordType.sessionSeen.rawValue)
            w.shortString(clientID)
            w.integer(UInt64(bitPattern: seconds))
        case .subscriptionAdded(let clientID, let filter, let qos):
            w.byte(RecordType.subscriptionAdded.rawValue)
            w.shortString(clientID)
            w.shortBytes(filter.bytes)
            w.byte(qos.rawValue)
        case .subscriptionRemoved(let clientID, let filter):
            w.byte(RecordType.subscriptionRemoved.rawValue)
            w.shortString(clientID)
            w.shortBytes(filter.bytes)
        case .messageStored(let id, let topic, let payload, let qos):
            w.byte(RecordType.messageStored.rawValue)
            w.integer(id)
            w.shortBytes(topic.bytes)
            w.byte(qos.rawValue)
            w.longBytes(payload)
        case .deliveryQueued(let clientID, let messageID, let qos, let retain):
            w.byte(RecordType.deliveryQueued.rawValue)
            w.shortString(clientID)
            w.integer(messageID)
            w.byte(qos.rawValue)
            w.byte(retain ? 1 : 0)
        case .deliveryInFlight(let clientID, let messageID, let packetID, let qos, let retain, let state):
            w.byte(RecordType.deliveryInFlight.rawValue)
            w.shortString(clientID)
            w.integer(messageID)
            w.integer(packetID.rawValue)
            w.byte(qos.rawValue)
            w.byte(retain ? 1 : 0)
            w.byte(state.rawValue)
        case .deliveryCompleted(let clientID, let delivery):
            w.byte(RecordType.deliveryCompleted.rawValue)
            w.shortString(clientID)
            switch delivery {
            case .packet(let packetID):
                w.byte(0)
                w.integer(packetID.rawValue)
            case .queued(let messageID):
                w.byte(1)
                w.integer(messageID)
            }
        case .inboundReceived(let clientID, let packetID):
            w.byte(RecordType.inboundReceived.rawValue)
            w.shortString(clientID)
            w.integer(packetID.rawValue)
        case .inboundReleased(let clientID, let packetID):
            w.byte(RecordType.inboundReleased.rawValue)
            w.shortString(clientID)
            w.integer(packetID.rawValue)
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

    /// Reads the batch entry at `offset` of a batch's records, whose checksum has already been verified.
    static func readEntry(in bytes: UnsafeRawBufferPointer, at offset: Int) -> Frame {
        let available = bytes.count - offset
        if available == 0 { return .end }
        guard available >= entryHeaderSize else { return .damaged(.tornHeader(available: available)) }
        let length = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        guard length > 0, length <= maximumRecordLength else { return .damaged(.invalidLength(length)) }
        let size = entryHeaderSize + Int(length)
        guard size <= available else { return .damaged(.tornRecord(length: size, available: available)) }
        do {
            let body = UnsafeRawBufferPointer(rebasing: bytes[(offset + entryHeaderSize)..<(offset + size)])
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

/// Little-endian writes into bytes already sized for them (`StoreRecord.typeAndBodyLength`); the bounds are the
/// caller's to get right, and are checked in debug builds.
struct RawWriter {
    private let bytes: UnsafeMutableRawBufferPointer
    private var offset: Int

    init(_ bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        self.bytes = bytes
        self.offset = offset
    }

    mutating func byte(_ value: UInt8) {
        bytes[offset] = value
        offset += 1
    }

    mutating func integer<T: FixedWidthInteger>(_ value: T) {
        assert(offset + MemoryLayout<T>.size <= bytes.count, "record longer than its computed length")
        bytes.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
    }

    private mutating func raw(_ source: UnsafeRawBufferPointer) {
        assert(offset + source.count <= bytes.count, "record longer than its computed length")
        if let base = source.baseAddress, let target = bytes.baseAddress {
            (target + offset).copyMemory(from: base, byteCount: source.count)
        }
        offset += source.count
    }

    /// A 16-bit length and the bytes: topics and filters are MQTT strings, at most 65535 bytes.
    mutating func shortBytes(_ value: [UInt8]) {
        precondition(value.count <= Int(UInt16.max), "an MQTT string is at most 65535 bytes")
        integer(UInt16(value.count))
        value.withUnsafeBytes { raw($0) }
    }

    /// A client id as an MQTT string, its UTF-8 copied straight from the String's storage.
    mutating func shortString(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            precondition(utf8.count <= Int(UInt16.max), "an MQTT string is at most 65535 bytes")
            integer(UInt16(utf8.count))
            raw(UnsafeRawBufferPointer(utf8))
        }
    }

    mutating func longBytes(_ value: [UInt8]) {
        integer(UInt32(value.count))
        value.withUnsafeBytes { raw($0) }
    }
}

extension [UInt8] {
    mutating func appendInteger<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}
