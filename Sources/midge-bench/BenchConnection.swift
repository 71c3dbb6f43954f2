// One benchmark client connection: its role, its buffers and its share of the MQTT flow.
import MQTTCodec

enum Role {
    case publisher(index: Int)
    case subscriber(index: Int)
    case idle
}

/// A PUBLISH packet prepared once per topic; each message copies it and patches id, sequence and time in place.
struct PublishTemplate {
    let bytes: [UInt8]
    let packetIDOffset: Int?
    let payloadOffset: Int

    init(topic: TopicName, payloadSize: Int, qos: QoS) {
        var bytes: [UInt8] = []
        Publish.encode(
            topic: topic, payload: [UInt8](repeating: UInt8(ascii: "x"), count: payloadSize), qos: qos, retain: false,
            dup: false, packetID: qos == .atMostOnce ? nil : PacketID(1), into: &bytes)
        self.bytes = bytes
        payloadOffset = bytes.count - payloadSize
        packetIDOffset = qos == .atMostOnce ? nil : payloadOffset - 2
    }
}

/// Where a benchmark payload keeps its bookkeeping: publisher index, sequence number, send time.
enum PayloadLayout {
    static let publisher = 0  // UInt32, little-endian
    static let sequence = 4  // UInt64
    static let sentAt = 12  // UInt64, CLOCK_MONOTONIC nanoseconds
    static let minimumSize = 20
}

final class BenchConnection {
    let fd: Int32
    let role: Role
    var connected = false
    var subscribed = false
    var closed = false
    var output: [UInt8] = []
    var outputOffset = 0
    var input: [UInt8] = []
    var nextPacketID: UInt16 = 1
    var inflight = 0
    var published = 0
    var acknowledged = 0
    var sequence: UInt64 = 0
    var topicCursor = 0
    var watchingWritable = false

    init(fd: Int32, role: Role) {
        self.fd = fd
        self.role = role
        output.reserveCapacity(64 * 1024)
    }

    var pendingOutput: Int { output.count - outputOffset }

    func takePacketID() -> UInt16 {
        let id = nextPacketID
        nextPacketID = nextPacketID == UInt16.max ? 1 : nextPacketID + 1
        return id
    }

    /// Appends one PUBLISH from `template`, stamped with this connection's next sequence number and `now`.
    func appendMessage(_ template: PublishTemplate, publisher: Int, now: UInt64) {
        let start = output.count
        output.append(contentsOf: template.bytes)
        let packetID: UInt16? = template.packetIDOffset == nil ? nil : takePacketID()
        output.withUnsafeMutableBytes { raw in
            if let offset = template.packetIDOffset, let packetID {
                raw.storeBytes(of: packetID.bigEndian, toByteOffset: start + offset, as: UInt16.self)
            }
            let payload = start + template.payloadOffset
            raw.storeBytes(
                of: UInt32(publisher).littleEndian, toByteOffset: payload + PayloadLayout.publisher, as: UInt32.self)
            raw.storeBytes(of: sequence.littleEndian, toByteOffset: payload + PayloadLayout.sequence, as: UInt64.self)
            raw.storeBytes(of: now.littleEndian, toByteOffset: payload + PayloadLayout.sentAt, as: UInt64.self)
        }
        sequence += 1
        published += 1
        if packetID != nil { inflight += 1 }
    }
}
