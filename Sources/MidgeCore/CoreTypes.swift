// The vocabulary between the sans-I/O broker core and whatever drives it: ids, time, messages, actions.
import MQTTCodec

/// Identifies one network connection for its whole life; never reused while the process runs.
/// The server puts the owning event loop's index in the top 8 bits.
public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(loop: Int, serial: UInt64) { self.rawValue = UInt64(loop) << 56 | (serial & 0x00FF_FFFF_FFFF_FFFF) }
    public var loop: Int { Int(rawValue >> 56) }
    public var description: String { "#\(rawValue & 0x00FF_FFFF_FFFF_FFFF)@\(loop)" }

    public static func == (lhs: ConnectionID, rhs: ConnectionID) -> Bool { lhs.rawValue == rhs.rawValue }

    public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }

    /// The core looks a connection up for every packet. Its id is chosen by the driver, never by a client, so the
    /// table needs no protection against chosen collisions and a multiply-xorshift mix (splitmix64's finaliser)
    /// replaces SipHash: measured with callgrind, 225 of ~4900 instructions per fan-in message went to hashing.
    public func _rawHashValue(seed: Int) -> Int {
        var mixed = rawValue ^ UInt64(bitPattern: Int64(seed))
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int(truncatingIfNeeded: mixed ^ (mixed >> 31))
    }
}

/// Monotonic time in nanoseconds. The core never reads a clock: every call is handed `now`.
public struct MonotonicTime: Comparable, Hashable, Sendable {
    public var nanoseconds: Int64
    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }
    public static func < (lhs: MonotonicTime, rhs: MonotonicTime) -> Bool { lhs.nanoseconds < rhs.nanoseconds }
    public static func + (lhs: MonotonicTime, seconds: Double) -> MonotonicTime {
        MonotonicTime(nanoseconds: lhs.nanoseconds + Int64(seconds * 1_000_000_000))
    }
    public static func seconds(_ seconds: Double) -> MonotonicTime { MonotonicTime(nanoseconds: 0) + seconds }
}

/// An application message as the broker stores it: one instance shared by every delivery, retained
/// slot and offline queue that refers to it, so fan-out copies a reference, never the payload.
public final class Message: Sendable {
    public let topic: TopicName
    public let payload: [UInt8]
    /// The QoS the publisher used; each delivery is downgraded to its subscription's grant.
    public let qos: QoS
    /// The durable store's id for the body (`StoreRecord.messageStored`); 0 while persistence is off.
    let storeID: UInt64
    public init(topic: TopicName, payload: [UInt8], qos: QoS) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.storeID = 0
    }

    init(topic: TopicName, payload: [UInt8], qos: QoS, storeID: UInt64) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.storeID = storeID
    }
}

/// One PUBLISH to one subscriber: the shared message plus the per-delivery header fields.
public struct Delivery: Sendable {
    public let message: Message
    public var qos: QoS
    public var retain: Bool
    public var dup: Bool
    /// Present exactly when `qos` is above 0.
    public var packetID: PacketID?
    public init(message: Message, qos: QoS, retain: Bool, dup: Bool, packetID: PacketID?) {
        self.message = message
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.packetID = packetID
    }
}

/// A packet the core wants written. PUBLISH is special so that the payload is shared, not copied.
public enum OutboundPacket: Sendable {
    case publish(Delivery)
    case control(Packet)
}

/// Why a connection ended. The reason decides whether the Will is published [MQTT-3.1.2-8].
public enum CloseReason: Sendable, Equatable, CustomStringConvertible {
    /// DISCONNECT received: the Will is discarded [MQTT-3.14.4-3].
    case clientDisconnected
    /// EOF or a socket error without DISCONNECT.
    case connectionLost(String)
    /// Malformed input or a protocol violation [MQTT-4.8.0-1].
    case protocolError(String)
    /// No packet within 1.5 × keepalive [MQTT-3.1.2-24].
    case keepaliveTimeout
    /// Another connection took over the client id [MQTT-3.1.4-2].
    case takenOver
    /// CONNECT refused with a non-zero CONNACK [MQTT-3.2.2-5].
    case connectRefused(ConnectReturnCode)
    /// A per-client limit was exceeded (e.g. a full inbound queue) [MQTT-4.8.0-2].
    case limitExceeded(String)
    /// The broker is shutting down.
    case serverShutdown

    public var firesWill: Bool {
        switch self {
        case .clientDisconnected, .connectRefused, .serverShutdown: false
        case .connectionLost, .protocolError, .keepaliveTimeout, .takenOver, .limitExceeded: true
        }
    }

    public var description: String {
        switch self {
        case .clientDisconnected: "client disconnected"
        case .connectionLost(let why): "connection lost (\(why))"
        case .protocolError(let why): "protocol error (\(why))"
        case .keepaliveTimeout: "exceeded keepalive timeout"
        case .takenOver: "session taken over by a new connection"
        case .connectRefused(let code): "connection refused (\(code))"
        case .limitExceeded(let why): "limit exceeded (\(why))"
        case .serverShutdown: "server shutting down"
        }
    }
}

/// What the core asks its driver to do, in order.
public enum Action: Sendable {
    /// Queue this packet for writing on the connection.
    case send(ConnectionID, OutboundPacket)
    /// Flush what was queued for the connection, then close it. The core has already forgotten
    /// the connection: the driver must not report its closing back, and later events from it are ignored.
    case close(ConnectionID, CloseReason)
    /// Judge this CONNECT's credentials and answer with `Broker.admissionAnswered`; until then the connection is
    /// pending. Hold its input meanwhile: the core keeps what arrives, but holding bounds it. Indirect: one per
    /// CONNECT, while every delivery is an `Action` moved and destroyed at the size of the largest case.
    indirect case admit(AdmissionRequest)
}

extension Action {
    /// The connection the action is for; its owning event loop carries it out.
    @inlinable
    public var connection: ConnectionID {
        switch self {
        case .send(let id, _), .close(let id, _): id
        case .admit(let request): request.connection
        }
    }
}

/// What the core asks its driver about reading a connection, under `QueueFullPolicy.block` only. Kept apart from
/// `Action` (drivers that switch over actions need not know about it); drain it with `Broker.takeReadingChanges`
/// after every call that produces actions, and carry the changes out in order.
public enum ReadingChange: Sendable, Equatable {
    /// Stop taking PUBLISHes from the connection: a queue it feeds is full. The driver stops reading its socket,
    /// except that PUBACK, PUBREC, PUBCOMP and PINGREQ that arrive are still passed on (ahead of the held
    /// PUBLISHes, which no ordering rule forbids), so a held client that also subscribes can drain its own
    /// deliveries and stays alive. Everything else waits, in order.
    case pause(ConnectionID)
    /// Take the connection's held packets, in order, and read its socket again.
    case resume(ConnectionID)
    /// The core has handed the connection half its `BrokerConfiguration.outputWindowBytes` of deliveries: call
    /// `Broker.outputConfirmed` once every delivery before this change is taken into the connection's output
    /// (whether or not that output is congested). With either queue-full policy.
    case confirmOutput(ConnectionID)

    public var connection: ConnectionID {
        switch self {
        case .pause(let id), .resume(let id), .confirmOutput(let id): id
        }
    }
}

/// Facts about a connection that the driver knows and the core needs for decisions and log lines.
public struct ConnectionInfo: Sendable {
    public var remoteAddress: String
    public var listenerPort: UInt16
    /// The listener's `mount_point`: put before every topic and filter the client sends, and taken off every topic
    /// it is sent (the driver does that as it encodes), so clients of that listener live in their own subtree.
    public var mountPoint: [UInt8]
    /// Which `ListenerSecurity` applies (0: the broker-wide settings; see `Broker.init(listenerSecurity:)`).
    public var securityProfile: Int
    /// A client inside the broker (a bridge's local side): its CONNECT is not refused for anonymity, client id
    /// rules (`clientid_prefixes`, `use_username_as_clientid`) or the memory limit, as mosquitto exempts its bridges.
    /// Its user name, if any, is still what the ACL checks.
    public var isInternal: Bool
    public init(
        remoteAddress: String, listenerPort: UInt16, mountPoint: [UInt8] = [], securityProfile: Int = 0,
        isInternal: Bool = false
    ) {
        self.remoteAddress = remoteAddress
        self.listenerPort = listenerPort
        self.mountPoint = mountPoint
        self.securityProfile = securityProfile
        self.isInternal = isInternal
    }
}

public enum LogLevel: Int, Sendable, Comparable {
    case debug, info, notice, warning, error
    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Where the core's log lines go. Called on the thread that drives the core.
public typealias LogSink = (LogLevel, String) -> Void

extension CloseReason {
    /// EOF from the peer without a DISCONNECT: the driver should report exactly this value so the log says
    /// "closed its connection" rather than "socket error". The Will fires [MQTT-3.1.2-8].
    public static let endOfStream = CloseReason.connectionLost("end of stream")
}
