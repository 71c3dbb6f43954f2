// MQTT clients that send and receive whole packets, over a plain socket (`RawClient`) or a transport's byte channel
// (`ChannelClient`): the connect, subscribe, publish and acknowledge steps most tests take are written once for both.

import MQTTCodec

public protocol PacketClient: AnyObject {
    func send(_ packet: Packet) throws
    /// The next packet; throws on timeout or when the connection ends first.
    func receive() throws -> Packet
}

extension PacketClient {
    /// Sends CONNECT and returns the CONNACK.
    @discardableResult
    public func connect(
        _ clientID: String, clean: Bool = true, keepAlive: UInt16 = 60, will: Will? = nil, username: String? = nil,
        password: String? = nil
    ) throws -> ConnAck {
        try send(
            .connect(
                Connect(
                    cleanSession: clean, keepAlive: keepAlive, clientID: clientID, will: will, username: username,
                    password: password.map { Array($0.utf8) })))
        let packet = try receive()
        guard case .connack(let connack) = packet else { throw TestError("expected CONNACK, got \(packet)") }
        return connack
    }

    /// Subscribes to one filter and waits for its SUBACK.
    public func subscribe(_ filter: String, qos: QoS = .atMostOnce, id: UInt16 = 1) throws {
        guard let topicFilter = TopicFilter(filter), let packetID = PacketID(id) else {
            throw TestError("bad filter \(filter)")
        }
        let request = SubscriptionRequest(filter: topicFilter, qos: qos)
        try send(.subscribe(Subscribe(packetID: packetID, requests: [request])))
        guard case .suback(let suback) = try receive(), suback.packetID == packetID else {
            throw TestError("expected SUBACK \(id)")
        }
    }

    public func publish(_ topic: String, _ payload: [UInt8], qos: QoS = .atMostOnce, id: UInt16? = nil) throws {
        guard let name = TopicName(topic) else { throw TestError("bad topic \(topic)") }
        try send(.publish(Publish(topic: name, payload: payload, qos: qos, packetID: id.flatMap(PacketID.init))))
    }

    /// The next packet, which must be a PUBLISH; acknowledged with PUBACK when it is QoS 1 and `acknowledge` holds.
    public func receivePublish(acknowledge: Bool = true) throws -> Publish {
        let packet = try receive()
        guard case .publish(let publish) = packet else { throw TestError("expected PUBLISH, got \(packet)") }
        if acknowledge, publish.qos == .atLeastOnce, let id = publish.packetID { try send(.puback(id)) }
        return publish
    }

    /// PINGREQ, then its PINGRESP as the next packet.
    public func ping() throws {
        try send(.pingreq)
        let packet = try receive()
        guard case .pingresp = packet else { throw TestError("expected PINGRESP, got \(packet)") }
    }
}

/// Bytes in and out of a connection, whatever carries them.
public protocol ByteChannel: AnyObject {
    func write(_ bytes: [UInt8]) throws
    /// Some bytes, or nil at the end of the stream. Throws on timeout.
    func read() throws -> [UInt8]?
    func close()
}

/// An MQTT client over any byte channel.
public final class ChannelClient: PacketClient {
    public let channel: any ByteChannel
    private var buffer: [UInt8] = []
    private let decoder = FrameDecoder()

    public init(_ channel: any ByteChannel) {
        self.channel = channel
    }

    public func send(_ packet: Packet) throws {
        var bytes: [UInt8] = []
        packet.encode(into: &bytes)
        try channel.write(bytes)
    }

    public func receive() throws -> Packet {
        for _ in 0..<10_000 {
            let decoded = try buffer.withUnsafeBytes { try decoder.decode($0) }
            if let (packet, consumed) = decoded {
                buffer.removeFirst(consumed)
                return packet
            }
            guard let more = try channel.read() else { throw TestError("connection closed while waiting for a packet") }
            buffer += more
        }
        throw TestError("no packet")
    }

    /// Reads until the broker ends the stream; throws if it does not in time.
    public func waitUntilClosed() throws {
        for _ in 0..<10_000 {
            guard try channel.read() != nil else { return }
        }
        throw TestError("still open")
    }
}
