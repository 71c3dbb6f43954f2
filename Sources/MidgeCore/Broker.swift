// The broker as a deterministic state machine: packets and time in, actions out. No I/O, no clocks, no threads.
import MQTTCodec

public final class Broker {
    public init(
        configuration: BrokerConfiguration, authenticator: any Authenticator = AllowAll(),
        accessControl: any AccessControl = AllowAll(), log: @escaping LogSink = { _, _ in }
    ) {
        fatalError("BUG: not built yet")
    }

    /// A decoded packet from a connection. The first packet of a connection is always CONNECT
    /// (the driver closes connections whose first packet is anything else, without telling the core).
    public func handle(
        _ packet: Packet, from connection: ConnectionID, info: ConnectionInfo, now: MonotonicTime,
        into actions: inout [Action]
    ) {
        fatalError("BUG: not built yet")
    }

    /// The driver closed the connection (EOF, socket error, malformed input, shutdown).
    /// Ignored for connections the core does not know or has already closed itself.
    public func connectionClosed(
        _ connection: ConnectionID, reason: CloseReason, now: MonotonicTime, into actions: inout [Action]
    ) {
        fatalError("BUG: not built yet")
    }

    /// Time passed: keepalive expiry and other deadlines. Call at least once a second,
    /// or at `nextDeadline`.
    public func tick(now: MonotonicTime, into actions: inout [Action]) {
        fatalError("BUG: not built yet")
    }

    /// The earliest time `tick` has work to do, if any.
    public var nextDeadline: MonotonicTime? {
        fatalError("BUG: not built yet")
    }
}
