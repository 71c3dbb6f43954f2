// Fuzz entry point for the broker core (§3, §4): three clients' byte streams, framed and fed as the server does.
import MQTTCodec
import MidgeCore

/// Turns an input into a session with a `Broker` and hands every event and its actions to `CoreChecker`.
///
/// Input layout (every byte is meaningful, so mutations stay valid inputs):
/// - byte 0 picks the configuration, one setting per bit (see `configuration(from:)`);
/// - then records, each starting with a control byte `c`. Bits 5-7 of `c` advance the fake clock
///   (`timeSteps`) before the record; bits 0-1 say what it is:
///   - 0, 1, 2: bytes for that client slot: one length byte `n`, then `n` bytes, as one read from the socket.
///     They are framed with the slot's leftover bytes exactly as the event loop frames a read;
///   - 3: an event, chosen by the next byte `e`: even → `tick`; odd → the connection in slot `(e >> 1) & 3` ends
///     (3 counts as 0) with reason `(e >> 3) & 3` of `closeReasons` (EOF, socket error, shutdown, malformed).
/// After the last record the clock jumps past every keepalive, the broker ticks, and the remaining connections
/// end with a shutdown, so every Will and keepalive path runs.
enum CoreTarget {
    static let timeSteps: [Int64] = [
        0, 1_000_000, 100_000_000, 1_000_000_000, 10_000_000_000, 45_000_000_000,
        100_000_000_000, 10_000_000_000_000,
    ]
    static let closeReasons: [CloseReason] = [
        .endOfStream, .connectionLost("Connection reset by peer"), .serverShutdown, .protocolError("fuzz"),
    ]

    static func run(_ input: UnsafeRawBufferPointer, trace: Bool = false) -> [String] {
        guard let first = input.first else { return [] }
        let harness = CoreHarness(configuration: configuration(from: first), trace: trace)
        var offset = 1
        while offset < input.count {
            let control = input[offset]
            offset += 1
            harness.advance(nanoseconds: timeSteps[Int(control >> 5)])
            let kind = Int(control & 0x03)
            guard offset < input.count else { break }
            let argument = input[offset]
            offset += 1
            if kind < 3 {
                let end = min(input.count, offset + Int(argument))
                harness.receive(UnsafeRawBufferPointer(rebasing: input[offset..<end]), slot: kind)
                offset = end
            } else if argument & 1 == 0 {
                harness.tick()
            } else {
                harness.end(slot: Int((argument >> 1) & 0x03) % 3, reason: closeReasons[Int(argument >> 3) & 0x03])
            }
        }
        harness.finish()
        return harness.checker.findings
    }

    /// Small windows and queues make the queueing, dropping and resending paths reachable in a short input.
    static func configuration(from byte: UInt8) -> BrokerConfiguration {
        var configuration = BrokerConfiguration()
        if byte & 0x01 != 0 { configuration.maxInflightMessages = 2 }
        if byte & 0x02 != 0 {
            configuration.maxQueuedMessages = 3
            configuration.maxQueuedBytes = 64
        }
        if byte & 0x04 != 0 { configuration.queueQoS0Messages = true }
        if byte & 0x08 != 0 { configuration.maxQoS = .atLeastOnce }
        if byte & 0x10 != 0 { configuration.retainAvailable = false }
        if byte & 0x20 != 0 { configuration.allowZeroLengthClientID = false }
        if byte & 0x40 != 0 {
            configuration.maxKeepalive = 60
            configuration.maxClientIDLength = 23
        }
        if byte & 0x80 != 0 { configuration.allowAnonymous = false }
        return configuration
    }
}

/// The server's side of the conversation, without sockets: framing per connection, the CONNECT-first rule, and
/// reporting closes, as the event loop does. Connection ids are never reused; a slot gets a fresh one whenever
/// its connection ends, like a client reconnecting.
final class CoreHarness {
    enum Phase {
        /// Nothing reached the core yet; the driver alone judges the first packet [MQTT-3.1.0-1].
        case awaitingConnect
        /// A CONNECT reached the core; from now on the core is told when the connection ends.
        case reachedCore
    }

    struct Slot {
        var connection: ConnectionID
        var phase: Phase = .awaitingConnect
        /// Bytes of an incomplete frame carried to the next read, like the event loop's `partial`.
        var partial: [UInt8] = []
        /// The core closed the connection during the current read.
        var closedByCore = false
    }

    let broker: Broker
    let checker: CoreChecker
    let decoder = FrameDecoder()
    let trace: Bool
    var slots: [Slot] = []
    var nextSerial: UInt64 = 1
    /// Starts well above zero so that no deadline computation sees a negative or zero time.
    var now = MonotonicTime(nanoseconds: 1_000_000_000_000)

    init(configuration: BrokerConfiguration, trace: Bool) {
        self.trace = trace
        broker = Broker(configuration: configuration)
        checker = CoreChecker(configuration: configuration)
        for _ in 0..<3 { slots.append(Slot(connection: freshConnection())) }
    }

    private func freshConnection() -> ConnectionID {
        nextSerial += 1
        return ConnectionID(loop: 0, serial: nextSerial)
    }

    private func info(_ slot: Int) -> ConnectionInfo {
        ConnectionInfo(remoteAddress: "127.0.0.1:\(50_000 + slot)", listenerPort: 1883)
    }

    func advance(nanoseconds: Int64) {
        now = MonotonicTime(nanoseconds: now.nanoseconds + nanoseconds)
    }

    /// A new connection in the slot, as when a client reconnects after its connection ended.
    private func renew(_ slot: Int) {
        slots[slot] = Slot(connection: freshConnection())
    }

    /// One read's worth of bytes for the slot's connection.
    func receive(_ chunk: UnsafeRawBufferPointer, slot: Int) {
        var bytes = slots[slot].partial
        bytes.append(contentsOf: chunk)
        slots[slot].partial = []
        var offset = 0
        while offset < bytes.count {
            let result = bytes.withUnsafeBytes { decode(UnsafeRawBufferPointer(rebasing: $0[offset...])) }
            switch result {
            case .success(nil):
                slots[slot].partial = Array(bytes[offset...])
                finishRead(slot)
                return
            case .failure(let error):
                decodeFailed(slot, error)
                return
            case .success(let .some((packet, consumed))):
                offset += consumed
                if slots[slot].phase == .awaitingConnect {
                    // The event loop closes a connection whose first packet is not CONNECT, telling no one.
                    guard case .connect = packet else {
                        trace(
                            "slot \(slot) \(slots[slot].connection): \(wireName(packet.type)) before CONNECT, dropped")
                        renew(slot)
                        return
                    }
                    slots[slot].phase = .reachedCore
                }
                // Packets after the core's `.close` still go to it: with several event loops, packets decoded
                // from the same read reach the core after it closed the connection, and it must ignore them.
                handle(packet, slot: slot)
            }
        }
        finishRead(slot)
    }

    private func decode(_ bytes: UnsafeRawBufferPointer) -> Result<(packet: Packet, consumed: Int)?, DecodeError> {
        do {
            return .success(try decoder.decode(bytes))
        } catch {
            return .failure(error)
        }
    }

    private func finishRead(_ slot: Int) {
        if slots[slot].closedByCore { renew(slot) }
    }

    private func decodeFailed(_ slot: Int, _ error: DecodeError) {
        let connection = slots[slot].connection
        trace("slot \(slot) \(connection): \(error)")
        if slots[slot].phase == .reachedCore {
            let why: String
            if case .malformed(let reason) = error { why = reason } else { why = error.description }
            report(.closed(connection, .protocolError(why)), slot: slot)
        }
        // A refused protocol level gets its CONNACK 0x01 from the driver; the core never hears of it.
        renew(slot)
    }

    private func handle(_ packet: Packet, slot: Int) {
        report(.packet(slots[slot].connection, packet), slot: slot)
    }

    func tick() {
        report(.tick, slot: nil)
    }

    /// The peer went away, or the driver gave up on the connection.
    func end(slot: Int, reason: CloseReason) {
        if slots[slot].phase == .reachedCore && !slots[slot].closedByCore {
            report(.closed(slots[slot].connection, reason), slot: slot)
        }
        renew(slot)
    }

    /// Past every keepalive deadline, then shutdown: every Will and timeout path gets its turn.
    func finish() {
        advance(nanoseconds: 100_000 * 1_000_000_000)
        tick()
        for slot in slots.indices { end(slot: slot, reason: .serverShutdown) }
    }

    private func report(_ event: CoreEvent, slot: Int?) {
        var actions: [Action] = []
        checker.willHandle(event, now: now)
        switch event {
        case .packet(let connection, let packet):
            guard let slot else { return }
            broker.handle(packet, from: connection, info: info(slot), now: now, into: &actions)
        case .closed(let connection, let reason):
            broker.connectionClosed(connection, reason: reason, now: now, into: &actions)
        case .tick:
            broker.tick(now: now, into: &actions)
        }
        if trace {
            print("t=\(now.nanoseconds / 1_000_000)ms \(CoreChecker.describe(event))")
            for action in actions { print("    \(CoreChecker.describe(action))") }
        }
        checker.check(actions, after: event, now: now)
        for case .close(let connection, _) in actions {
            for index in slots.indices where slots[index].connection == connection {
                slots[index].closedByCore = true
            }
        }
        // A connection the core closed outside one of its reads (keepalive, takeover) is gone before the next one.
        for index in slots.indices where slots[index].closedByCore && index != slot {
            renew(index)
        }
    }

    private func trace(_ line: @autoclosure () -> String) {
        if trace { print(line()) }
    }
}

/// What the harness hands the core.
enum CoreEvent {
    case packet(ConnectionID, Packet)
    case closed(ConnectionID, CloseReason)
    case tick
}
