// Reading a mosquitto 2.0 persistence file (mosquitto.db, format version 6, as written by mosquitto 2.0 on
// x86_64/aarch64) into this store's records: retained messages and persistent sessions with their subscriptions and
// queued messages.
import MQTTCodec
import MidgeRecords

/// What a mosquitto.db holds that a migration carries over.
///
/// The file is a 15-byte magic, a CRC (unused, zero), a big-endian version, then chunks: a big-endian type and
/// length, and a body that is a C struct written as it lies in memory (so padded, with its 64-bit message store ids
/// in the writer's byte order, little-endian on the machines mosquitto packages ship for) followed by its strings.
/// 16- and 32-bit fields are big-endian.
public struct MosquittoDatabase: Sendable, Equatable {
    public struct Message: Sendable, Equatable {
        public var topic: String
        public var payload: [UInt8]
        public var qos: UInt8
        public var retain: Bool
    }

    public struct Client: Sendable, Equatable {
        public var subscriptions: [(filter: String, qos: UInt8)] = []
        /// Outgoing messages, queued or in flight, in the file's order.
        public var messages: [Message] = []
        /// Inbound QoS 2 packet ids waiting for PUBREL.
        public var inboundPacketIDs: [UInt16] = []

        public static func == (lhs: Client, rhs: Client) -> Bool {
            lhs.subscriptions.map(\.filter) == rhs.subscriptions.map(\.filter)
                && lhs.subscriptions.map(\.qos) == rhs.subscriptions.map(\.qos) && lhs.messages == rhs.messages
                && lhs.inboundPacketIDs == rhs.inboundPacketIDs
        }
    }

    public var retained: [Message] = []
    /// By client id, for every session mosquitto kept.
    public var clients: [String: Client] = [:]
    /// Entries that could not be carried over (a topic Midge refuses, a message that is missing), one line each.
    public var skipped: [String] = []

    public struct FormatError: Error, CustomStringConvertible {
        public let description: String
    }

    static let magic: [UInt8] = [0x00, 0xB5, 0x00] + Array("mosquitto db".utf8)

    private enum Chunk: UInt32 {
        case configuration = 1, messageStore = 2, clientMessage = 3, retain = 4, subscription = 5, client = 6
    }

    /// mosquitto's `mosq_md_out` and its queued and in-flight outgoing states are all carried over as queued;
    /// `mosq_md_in` with `mosq_ms_wait_for_pubrel` is an inbound QoS 2 id to remember.
    private static let directionIn: UInt8 = 0
    private static let waitForPubrel: UInt8 = 7

    public init(bytes: [UInt8]) throws(FormatError) {
        guard bytes.count >= 23, Array(bytes[0..<15]) == Self.magic else {
            throw FormatError(description: "not a mosquitto persistence file (no mosquitto db header)")
        }
        var reader = Reader(bytes: bytes, offset: 19)
        let version = try reader.u32()
        guard version == 6 else {
            throw FormatError(
                description: "mosquitto db format version \(version); only version 6 (mosquitto 2.0) is read")
        }
        var stored: [UInt64: Message] = [:]
        var retainedIDs: [UInt64] = []
        var clientMessages:
            [(client: String, storeID: UInt64, qos: UInt8, state: UInt8, mid: UInt16, direction: UInt8)] = []
        while !reader.atEnd {
            let type = try reader.u32()
            let length = Int(try reader.u32())
            var body = try reader.slice(length)
            switch Chunk(rawValue: type) {
            case .messageStore:
                let id = try body.u64le()
                try body.skip(8)  // expiry time
                let payloadLength = Int(try body.u32())
                try body.skip(2)  // source mid
                let sourceIDLength = Int(try body.u16())
                let sourceUsernameLength = Int(try body.u16())
                let topicLength = Int(try body.u16())
                try body.skip(2)  // source port
                let qos = try body.u8()
                let retain = try body.u8() != 0
                try body.skip(sourceIDLength + sourceUsernameLength)
                let topic = try body.string(topicLength)
                let payload = try body.bytes(payloadLength)
                stored[id] = Message(topic: topic, payload: payload, qos: min(qos, 2), retain: retain)
            case .retain:
                retainedIDs.append(try body.u64le())
            case .client:
                try body.skip(8 + 4 + 2)  // session expiry time and interval, last mid
                let idLength = Int(try body.u16())
                try body.skip(2)  // listener port
                let usernameLength = Int(try body.u16())
                try body.skip(4)  // padding
                let id = try body.string(idLength)
                try body.skip(usernameLength)
                if clients[id] == nil { clients[id] = Client() }
            case .subscription:
                try body.skip(4)  // subscription identifier (MQTT 5)
                let idLength = Int(try body.u16())
                let topicLength = Int(try body.u16())
                let qos = try body.u8()
                try body.skip(3)  // options, padding
                let id = try body.string(idLength)
                let filter = try body.string(topicLength)
                clients[id, default: Client()].subscriptions.append((filter, qos & 0x03))
            case .clientMessage:
                let storeID = try body.u64le()
                let mid = try body.u16()
                let idLength = Int(try body.u16())
                let qos = try body.u8()
                let state = try body.u8()
                try body.skip(1)  // retain and dup flags
                let direction = try body.u8()
                let id = try body.string(idLength)
                clientMessages.append((id, storeID, qos, state, mid, direction))
            case .configuration, nil:
                continue
            }
        }
        for id in retainedIDs {
            guard let message = stored[id] else {
                skipped.append("retained message \(id): its message is missing from the file")
                continue
            }
            retained.append(message)
        }
        for entry in clientMessages {
            if entry.direction == Self.directionIn {
                if entry.state == Self.waitForPubrel {
                    clients[entry.client, default: Client()].inboundPacketIDs.append(entry.mid)
                }
                continue
            }
            guard var message = stored[entry.storeID] else {
                skipped.append("a message for \(entry.client): its message is missing from the file")
                continue
            }
            message.qos = min(entry.qos, 2)
            clients[entry.client, default: Client()].messages.append(message)
        }
    }

    /// The records that give this store the same retained messages and sessions. Message ids start at
    /// `firstMessageID` (the target store's `nextMessageID`); `unixSeconds` is when the sessions were last seen.
    public func records(firstMessageID: UInt64, unixSeconds: Int64) -> (records: [StoreRecord], skipped: [String]) {
        var records: [StoreRecord] = []
        var skipped = skipped
        func qos(_ value: UInt8) -> QoS { QoS(rawValue: value) ?? .atMostOnce }
        for message in retained {
            guard let topic = TopicName(message.topic) else {
                skipped.append("retained message on '\(message.topic)': not a valid MQTT 3.1.1 topic")
                continue
            }
            records.append(.retainedSet(topic: topic, payload: message.payload, qos: qos(message.qos)))
        }
        var nextID = firstMessageID
        for (clientID, client) in clients.sorted(by: { $0.key < $1.key }) {
            records.append(.sessionCreated(clientID: clientID, unixSeconds: unixSeconds))
            for subscription in client.subscriptions {
                guard let filter = TopicFilter(subscription.filter) else {
                    skipped.append("subscription of \(clientID) to '\(subscription.filter)': not a valid filter")
                    continue
                }
                records.append(.subscriptionAdded(clientID: clientID, filter: filter, qos: qos(subscription.qos)))
            }
            // In-flight messages go back to the queue: the client gets them again under new packet ids, which
            // QoS 1 allows; a QoS 2 message mosquitto had already sent may arrive twice.
            for message in client.messages where message.qos > 0 {
                guard let topic = TopicName(message.topic) else {
                    skipped.append("message for \(clientID) on '\(message.topic)': not a valid MQTT 3.1.1 topic")
                    continue
                }
                records.append(
                    .messageStored(id: nextID, topic: topic, payload: message.payload, qos: qos(message.qos)))
                records.append(
                    .deliveryQueued(
                        clientID: clientID, messageID: nextID, qos: qos(message.qos), retain: message.retain))
                nextID += 1
            }
            for packetID in client.inboundPacketIDs {
                if let id = PacketID(packetID) { records.append(.inboundReceived(clientID: clientID, packetID: id)) }
            }
        }
        return (records, skipped)
    }
}

/// Bounds-checked reads; every failure is a truncated or damaged file.
private struct Reader {
    let bytes: [UInt8]
    var offset: Int
    var end: Int

    init(bytes: [UInt8], offset: Int, end: Int? = nil) {
        self.bytes = bytes
        self.offset = offset
        self.end = end ?? bytes.count
    }

    var atEnd: Bool { offset >= end }

    private mutating func take(_ count: Int) throws(MosquittoDatabase.FormatError) -> ArraySlice<UInt8> {
        guard count >= 0, end - offset >= count else {
            throw MosquittoDatabase.FormatError(description: "the file is truncated or damaged at byte \(offset)")
        }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    mutating func skip(_ count: Int) throws(MosquittoDatabase.FormatError) { _ = try take(count) }
    mutating func u8() throws(MosquittoDatabase.FormatError) -> UInt8 { try take(1).first ?? 0 }
    mutating func u16() throws(MosquittoDatabase.FormatError) -> UInt16 {
        try take(2).reduce(0) { $0 << 8 | UInt16($1) }
    }
    mutating func u32() throws(MosquittoDatabase.FormatError) -> UInt32 {
        try take(4).reduce(0) { $0 << 8 | UInt32($1) }
    }
    mutating func u64le() throws(MosquittoDatabase.FormatError) -> UInt64 {
        try take(8).reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }
    mutating func bytes(_ count: Int) throws(MosquittoDatabase.FormatError) -> [UInt8] { Array(try take(count)) }
    mutating func string(_ count: Int) throws(MosquittoDatabase.FormatError) -> String {
        String(decoding: try take(count), as: UTF8.self)
    }
    /// The next `count` bytes as a reader of their own.
    mutating func slice(_ count: Int) throws(MosquittoDatabase.FormatError) -> Reader {
        let start = offset
        _ = try take(count)
        return Reader(bytes: bytes, offset: start, end: start + count)
    }
}
