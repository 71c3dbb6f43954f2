// The encoding of a record: a type byte and a body of little-endian fields, the same in every file that holds
// records. How records are framed, checksummed and batched is the file's business (MidgeStore), not this one's.
import MQTTCodec

/// Why bytes handed to `StoreRecord.decode` are not a record.
public enum RecordDecodingError: Error, Sendable, Equatable {
    /// The type byte is not one this version knows (a newer writer?).
    case unknownType(UInt8)
    /// The body does not decode; the reason names the field.
    case malformed(String)
}

enum RecordType: UInt8 {
    case retainedSet = 1
    case retainedCleared, sessionCreated, sessionEnded, sessionSeen, subscriptionAdded,
        subscriptionRemoved, messageStored, deliveryQueued, deliveryInFlight, deliveryCompleted, inboundReceived,
        inboundReleased
}

extension StoreRecord {
    /// The type byte and the body, in bytes. MQTT strings have a 2-byte length, payloads a 4-byte one.
    public var encodedLength: Int {
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

    /// Writes the type byte and the body, exactly `encodedLength` bytes, into `bytes` from `offset`; the caller
    /// sized `bytes` for them (checked in debug builds).
    public func encode(into bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        var writer = RawWriter(bytes, at: offset)
        writeTypeAndBody(&writer)
    }

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

    /// The record whose type byte and body are exactly `body`.
    public static func decode(_ body: UnsafeRawBufferPointer) throws(RecordDecodingError) -> StoreRecord {
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
                throw .malformed("delivery state \(stateByte)")
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
            case let kind: throw .malformed("delivery reference kind \(kind)")
            }
        case .inboundReceived:
            let clientID = try r.clientID()
            record = .inboundReceived(clientID: clientID, packetID: try r.packetID())
        case .inboundReleased:
            let clientID = try r.clientID()
            record = .inboundReleased(clientID: clientID, packetID: try r.packetID())
        }
        guard r.offset == body.count else { throw .malformed("\(body.count - r.offset) bytes after the fields") }
        return record
    }
}

/// Bounds-checked little-endian reads over one record body.
private struct BodyReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    mutating func byte() throws(RecordDecodingError) -> UInt8 {
        guard offset < bytes.count else { throw .malformed("body too short") }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func integer<T: FixedWidthInteger>(_ type: T.Type) throws(RecordDecodingError) -> T {
        let size = MemoryLayout<T>.size
        guard bytes.count - offset >= size else { throw .malformed("body too short") }
        defer { offset += size }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    mutating func raw(count: Int) throws(RecordDecodingError) -> [UInt8] {
        guard bytes.count - offset >= count else { throw .malformed("body too short") }
        defer { offset += count }
        return Array(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count]))
    }

    mutating func shortBytes() throws(RecordDecodingError) -> [UInt8] { try raw(count: Int(try integer(UInt16.self))) }
    mutating func longBytes() throws(RecordDecodingError) -> [UInt8] { try raw(count: Int(try integer(UInt32.self))) }

    mutating func flag() throws(RecordDecodingError) -> Bool {
        switch try byte() {
        case 0: return false
        case 1: return true
        case let other: throw .malformed("flag \(other)")
        }
    }

    mutating func qos() throws(RecordDecodingError) -> QoS {
        let raw = try byte()
        guard let qos = QoS(rawValue: raw) else { throw .malformed("QoS \(raw)") }
        return qos
    }

    mutating func packetID() throws(RecordDecodingError) -> PacketID {
        guard let id = PacketID(try integer(UInt16.self)) else { throw .malformed("packet id 0") }
        return id
    }

    mutating func topic() throws(RecordDecodingError) -> TopicName {
        guard let topic = TopicName(bytes: try shortBytes()) else { throw .malformed("invalid topic name") }
        return topic
    }

    mutating func filter() throws(RecordDecodingError) -> TopicFilter {
        guard let filter = TopicFilter(bytes: try shortBytes()) else { throw .malformed("invalid topic filter") }
        return filter
    }

    mutating func clientID() throws(RecordDecodingError) -> String {
        let raw = try shortBytes()
        guard let clientID = String(validating: raw, as: UTF8.self) else { throw .malformed("client id not UTF-8") }
        return clientID
    }
}

/// Little-endian writes into bytes already sized for them (`StoreRecord.encodedLength`); the bounds are the
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
