// Fuzz entry point for the broker core (§3, §4): three clients' byte streams, framed and fed as the server does.
import MQTTCodec
import MidgeCore
import MidgeRecords

/// Turns an input into a session with a `Broker` and hands every event and its actions to `CoreChecker`.
///
/// Input layout (every byte is meaningful, so mutations stay valid inputs):
/// - bytes 0 and 1 pick the configuration, one setting per bit (see `configuration(from:_:)`);
/// - then records, each starting with a control byte `c`. Bits 5-7 of `c` advance the fake clock
///   (`timeSteps`) before the record; bits 0-1 say what it is:
///   - 0, 1, 2: bytes for that client slot: one length byte `n`, then `n` bytes, as one read from the socket.
///     They are framed with the slot's leftover bytes exactly as the event loop frames a read;
///   - 3: an event, chosen by the next byte `e`:
///     - odd: the connection in slot `(e >> 1) & 3` (3 counts as 0) ends with reason `(e >> 3) & 3` of
///       `closeReasons` (EOF, socket error, shutdown, malformed);
///     - even, by `(e >> 1) & 7`: 0-1 `tick`; 2 the store completes its appends (all of them when `e >> 4` is 0,
///       else the oldest); 3 the store becomes unwritable when bit 4 of `e` is set, writable otherwise; 4 the
///       output of slot `(e >> 4) % 3` is congested, 5 drained; 6 the broker publishes on topic
///       `systemTopics[(e >> 4) & 7]` retained, 7 not retained.
/// After the last record the store completes everything, the clock jumps past every keepalive, the broker ticks,
/// and the remaining connections end with a shutdown, so every Will, keepalive and held acknowledgement path runs.
enum CoreTarget {
    static let timeSteps: [Int64] = [
        0, 1_000_000, 100_000_000, 1_000_000_000, 10_000_000_000, 45_000_000_000,
        100_000_000_000, 10_000_000_000_000,
    ]
    static let closeReasons: [CloseReason] = [
        .endOfStream, .connectionLost("Connection reset by peer"), .serverShutdown, .protocolError("fuzz"),
    ]
    /// Topics of the broker's own messages: `$SYS`, and names the seeds subscribe to. The last one publishes an
    /// empty payload, which deletes a retained message.
    static let systemTopics = ["$SYS/broker/uptime", "a/b", "w", "r/x", "q/1", "f", "$SYS/x", "a/b"]

    static func run(_ input: UnsafeRawBufferPointer, trace: Bool = false) -> [String] {
        guard input.count >= 2 else { return [] }
        let harness = CoreHarness(
            configuration: configuration(from: input[0], input[1]), durable: input[1] & 0x08 != 0, trace: trace)
        var offset = 2
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
            } else {
                event(argument, harness)
            }
        }
        harness.finish()
        return harness.checker.findings
    }

    private static func event(_ argument: UInt8, _ harness: CoreHarness) {
        if argument & 1 != 0 {
            harness.end(slot: Int((argument >> 1) & 0x03) % 3, reason: closeReasons[Int(argument >> 3) & 0x03])
            return
        }
        let slot = Int(argument >> 4) % 3
        switch (argument >> 1) & 0x07 {
        case 2: harness.completeAppends(all: argument >> 4 == 0)
        case 3: harness.setStoreWritable(argument & 0x10 == 0)
        case 4: harness.outputCongested(slot: slot)
        case 5: harness.outputDrained(slot: slot)
        case 6, 7:
            let index = Int(argument >> 4) & 0x07
            guard let topic = TopicName(systemTopics[index]) else { return }
            let payload = index == systemTopics.count - 1 ? [] : [argument]
            harness.publish(
                Message(topic: topic, payload: payload, qos: QoS(rawValue: argument >> 7) ?? .atMostOnce),
                retain: (argument >> 1) & 0x07 == 6)
        default: harness.tick()
        }
    }

    /// Small windows and queues make the queueing, dropping, holding and resending paths reachable in a short
    /// input.
    static func configuration(from byte: UInt8, _ second: UInt8) -> BrokerConfiguration {
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
        if second & 0x01 != 0 { configuration.queueFullPolicy = .block }
        if second & 0x02 != 0 { configuration.maxInflightMessages = 0 }  // no limit but the id space
        if second & 0x04 != 0 { configuration.maxQueuedMessages = 0 }  // bytes only, when byte 0 set them
        if second & 0x10 != 0 { configuration.persistentClientExpiration = 60 }
        return configuration
    }
}

/// The server's side of the conversation, without sockets: framing per connection, the CONNECT-first rule,
/// holding a publisher's input while the core asks it to, and reporting closes, as the event loop does.
/// Connection ids are never reused; a slot gets a fresh one whenever its connection ends, like a client
/// reconnecting.
final class CoreHarness {
    enum Phase {
        /// Nothing reached the core yet; the driver alone judges the first packet [MQTT-3.1.0-1].
        case awaitingConnect
        /// A CONNECT reached the core; from now on the core is told when the connection ends.
        case reachedCore
    }

    /// Input that waits while the core holds the connection (`ReadingChange.pause`): packets, or the decode error
    /// that ends the connection once they are released.
    enum HeldInput {
        case packet(Packet)
        case failure(DecodeError)
    }

    struct Slot {
        var connection: ConnectionID
        var phase: Phase = .awaitingConnect
        /// Bytes of an incomplete frame carried to the next read, like the event loop's `input`.
        var partial: [UInt8] = []
        /// The core closed the connection during the current read.
        var closedByCore = false
        /// The core holds this publisher: only acknowledgements and PINGREQ reach it, the rest waits in order.
        var held = false
        var heldInput: [HeldInput] = []
    }

    let broker: Broker
    let checker: CoreChecker
    let decoder = FrameDecoder()
    let trace: Bool
    var slots: [Slot] = []
    var nextSerial: UInt64 = 1
    /// Starts well above zero so that no deadline computation sees a negative or zero time.
    var now = MonotonicTime(nanoseconds: 1_000_000_000_000)
    /// Slots the core released, whose held input is handed on once the current call returns.
    private var released: [Int] = []
    /// With persistence on: the log the core appends to; `completeAppends` confirms its appends.
    private let log: InMemoryRecordLog?
    /// The sends each unconfirmed append holds, by sequence: what its confirmation must release.
    private var heldByAppend: [UInt64: [Action]] = [:]

    init(configuration: BrokerConfiguration, durable: Bool, trace: Bool) {
        self.trace = trace
        broker = Broker(configuration: configuration)
        checker = CoreChecker(configuration: configuration, durable: durable)
        if durable {
            // An empty store: what a restart restores is the store's tests' business, what the core holds is ours.
            let log = InMemoryRecordLog()
            self.log = log
            broker.enableDurability(restoring: StoreState(), log: log, unixSeconds: 1_700_000_000, now: now)
        } else {
            log = nil
        }
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

    /// Acknowledgements complete the client's own outbound flows and PINGREQ keeps it alive, so they pass a hold.
    private static func passesHold(_ packet: Packet) -> Bool {
        switch packet {
        case .puback, .pubrec, .pubcomp, .pingreq: true
        default: false
        }
    }

    // MARK: Events from the input

    /// One read's worth of bytes for the slot's connection.
    func receive(_ chunk: UnsafeRawBufferPointer, slot: Int) {
        defer { handReleasedInput() }
        var bytes = slots[slot].partial
        bytes.append(contentsOf: chunk)
        slots[slot].partial = []
        var offset = 0
        while offset < bytes.count {
            switch bytes.withUnsafeBytes({ decode(UnsafeRawBufferPointer(rebasing: $0[offset...])) }) {
            case .success(nil):
                slots[slot].partial = Array(bytes[offset...])
                finishRead(slot)
                return
            case .failure(let error):
                if slots[slot].held && !slots[slot].closedByCore {
                    // The server keeps held bytes undecoded; the error surfaces when they are released.
                    slots[slot].heldInput.append(.failure(error))
                    return
                }
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
                if slots[slot].held && !slots[slot].closedByCore && !Self.passesHold(packet) {
                    slots[slot].heldInput.append(.packet(packet))
                    continue
                }
                // Packets after the core's `.close` still go to it: with several event loops, packets decoded
                // from the same read reach the core after it closed the connection, and it must ignore them.
                report(event(packet, slot: slot), slot: slot)
            }
        }
        finishRead(slot)
    }

    func tick() {
        report(.tick, slot: nil)
        handReleasedInput()
    }

    /// The peer went away, or the driver gave up on the connection. At EOF, what the client sent before closing
    /// is handed on first, held or not, as the event loop does.
    func end(slot: Int, reason: CloseReason) {
        let connection = slots[slot].connection
        if reason == .endOfStream {
            while slots[slot].connection == connection && !slots[slot].heldInput.isEmpty {
                handOn(slots[slot].heldInput.removeFirst(), slot: slot)
            }
        }
        if slots[slot].connection == connection && slots[slot].phase == .reachedCore && !slots[slot].closedByCore {
            report(.closed(connection, reason), slot: slot)
        }
        if slots[slot].connection == connection { renew(slot) }
        handReleasedInput()
    }

    func outputCongested(slot: Int) {
        report(.outputCongested(slots[slot].connection), slot: slot)
    }

    func outputDrained(slot: Int) {
        report(.outputDrained(slots[slot].connection), slot: slot)
        handReleasedInput()
    }

    func publish(_ message: Message, retain: Bool) {
        report(.published(message, retain: retain), slot: nil)
        handReleasedInput()
    }

    /// The log confirms its appends, oldest first (all, or only the oldest), releasing what the core held.
    func completeAppends(all: Bool) {
        while let log, let oldest = log.pending.first {
            if let sequence = log.confirm(through: oldest.sequence) {
                report(.recordsDurable(through: sequence), slot: nil)
            }
            if !all { break }
        }
        handReleasedInput()
    }

    func setStoreWritable(_ writable: Bool) {
        report(.storeWritable(writable), slot: nil)
    }

    /// The store catches up, the clock passes every keepalive deadline, then shutdown: every Will, timeout and
    /// held acknowledgement path gets its turn.
    func finish() {
        setStoreWritable(true)
        completeAppends(all: true)
        advance(nanoseconds: 100_000 * 1_000_000_000)
        tick()
        for slot in slots.indices { end(slot: slot, reason: .serverShutdown) }
        completeAppends(all: true)
    }

    // MARK: Framing

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

    private func handOn(_ input: HeldInput, slot: Int) {
        switch input {
        case .packet(let packet): report(event(packet, slot: slot), slot: slot)
        case .failure(let error): decodeFailed(slot, error)
        }
    }

    /// Released slots get their held input in order until the core holds them again; then the acknowledgements
    /// and PINGREQs among what is left pass, and the rest waits for the next release.
    private func handReleasedInput() {
        while !released.isEmpty {
            let slot = released.removeFirst()
            let connection = slots[slot].connection
            while slots[slot].connection == connection && !slots[slot].held && !slots[slot].heldInput.isEmpty {
                handOn(slots[slot].heldInput.removeFirst(), slot: slot)
            }
            guard slots[slot].connection == connection && slots[slot].held else { continue }
            var waiting = slots[slot].heldInput
            slots[slot].heldInput = []
            while !waiting.isEmpty && slots[slot].connection == connection {
                let input = waiting.removeFirst()
                if case .packet(let packet) = input, Self.passesHold(packet) {
                    report(event(packet, slot: slot), slot: slot)
                } else {
                    slots[slot].heldInput.append(input)
                }
                if case .failure = input { break }
            }
            if slots[slot].connection == connection { slots[slot].heldInput += waiting }
        }
        for index in slots.indices where slots[index].closedByCore { renew(index) }
    }

    // MARK: The core

    /// A CONNECT carries the connection's facts, as the event loops send it; later packets do not.
    private func event(_ packet: Packet, slot: Int) -> CoreEvent {
        if case .connect = packet { return .connect(slots[slot].connection, packet, info(slot)) }
        return .packet(slots[slot].connection, packet)
    }

    /// One event through the core as the event loops run it (`Broker.run`), as one run: its records are appended
    /// to the log at once, as the server does at the end of a run.
    private func report(_ event: CoreEvent, slot: Int?) {
        var actions: [Action] = []
        checker.willHandle(event, now: now)
        var expectedRelease: [Action] = []
        if case .recordsDurable(let sequence) = event {
            for append in heldByAppend.keys.sorted() where append <= sequence {
                expectedRelease += heldByAppend.removeValue(forKey: append) ?? []
            }
        }
        broker.run(event, now: now, into: &actions)
        var changes: [ReadingChange] = []
        broker.takeReadingChanges(into: &changes)
        // Read before every append, so the held sends are exactly those this event held back.
        let held = broker.sendsHeldForNextAppend
        broker.appendRecords()
        if let appended = log?.pending.last, !held.isEmpty { heldByAppend[appended.sequence] = held }
        if trace {
            print("t=\(now.nanoseconds / 1_000_000)ms \(CoreChecker.describe(event))")
            for action in actions { print("    \(CoreChecker.describe(action))") }
            for action in held { print("    held: \(CoreChecker.describe(action))") }
            for change in changes { print("    \(change)") }
        }
        checker.check(actions, held: held, changes, after: event, released: expectedRelease, now: now)
        for case .close(let connection, _) in actions {
            for index in slots.indices where slots[index].connection == connection {
                slots[index].closedByCore = true
            }
        }
        for change in changes {
            for index in slots.indices where slots[index].connection == change.connection {
                switch change {
                case .pause:
                    slots[index].held = true
                case .resume:
                    slots[index].held = false
                    released.append(index)
                case .confirmOutput:
                    break  // answered by the input's own drained events
                }
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
