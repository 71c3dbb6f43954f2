// Invariants on the core's actions (§3, §4.3, §4.4, §4.6): a model of each connection that every action must fit.
import MQTTCodec
import MidgeCore

/// Checks every batch of actions against what the protocol allows after the event that produced it. The model is
/// exact where the spec is (packet ids in flight, replies, keepalive) and an over-approximation elsewhere (which
/// messages may go out retained), so that a finding is always a real fault and never the checker's guess.
final class CoreChecker {
    /// An outbound QoS 1/2 delivery holding its packet id until the flow completes [MQTT-2.3.1-2].
    enum OutboundState: Equatable {
        case awaitingPuback, awaitingPubrec, awaitingPubcomp
    }

    struct ConnectionModel {
        let connect: Connect
        var sentAnything = false
        /// The CONNACK's return code, once sent.
        var returnCode: ConnectReturnCode?
        var closed = false
        var will: Will?
        var unacknowledged: [UInt16: OutboundState] = [:]
        var lastPacket: MonotonicTime
        /// The driver said its output is backed up: deliveries must wait in the session queue.
        var congested = false
        /// The core asked the driver to stop reading this publisher (`ReadingChange.pause`).
        var held = false
        /// Held at some point: the core may count a held client's silence as life, so its keepalive deadline is
        /// only known to be no earlier than the model's.
        var everHeld = false

        var keepaliveDeadline: MonotonicTime? {
            guard connect.keepAlive > 0 else { return nil }
            return MonotonicTime(nanoseconds: lastPacket.nanoseconds + Int64(connect.keepAlive) * 1_500_000_000)
        }
    }

    /// A topic and payload, to recognise messages without relying on the core's objects.
    struct MessageKey: Hashable {
        let topic: [UInt8]
        let payload: [UInt8]
    }

    let configuration: BrokerConfiguration
    /// Persistence is on: acknowledgements and some deliveries may be held until the store has written.
    let durable: Bool
    /// As last told to the core; with persistence on, QoS 1/2 PUBLISHes are neither routed nor acknowledged
    /// while the store cannot write.
    private var storeWritable = true
    private(set) var findings: [String] = []
    private var models: [ConnectionID: ConnectionModel] = [:]
    /// Every non-empty message ever published with RETAIN=1 or as a retained Will: the only ones that may go out
    /// with RETAIN=1 [MQTT-3.3.1-8][MQTT-3.3.1-9].
    private var everRetained: Set<MessageKey> = []

    // The current batch.
    private var event: CoreEvent = .tick
    private var now = MonotonicTime(nanoseconds: 0)
    /// The connection the event came from, if it is one the model knows as open.
    private var source: ConnectionID?
    /// The reply the event calls for on its own connection, as a packet type and id.
    private var expectedReply: (type: PacketType, id: UInt16?)?
    private var replies = 0
    private var expectedPubrel: UInt16?
    private var pubrels = 0
    /// Messages that may be forwarded live in this batch: the PUBLISH handled and the Wills of connections ended.
    private var live: Set<MessageKey> = []
    private var deliveriesPerConnection: [ConnectionID: Int] = [:]
    private var closedInBatch: Set<ConnectionID> = []
    private var subAckCodes: [SubAckReturnCode] = []
    /// The event came from a connection the core had already forgotten: it must answer with nothing at all.
    private var mustBeIgnored = false
    /// The event is the first CONNECT of its connection.
    private var opening = false

    init(configuration: BrokerConfiguration, durable: Bool) {
        self.configuration = configuration
        self.durable = durable
    }

    private var inflightLimit: Int {
        configuration.maxInflightMessages > 0 ? min(configuration.maxInflightMessages, 65535) : 65535
    }

    private func fail(_ message: String) {
        findings.append("\(CoreChecker.describe(event)) at \(now.nanoseconds / 1_000_000) ms: \(message)")
    }

    // MARK: Before the core sees the event

    /// Sets up what the batch may and must contain, and applies the event's own effect on the model.
    func willHandle(_ given: CoreEvent, now: MonotonicTime) {
        let event = given.judgedAsPacket
        self.event = event
        self.now = now
        source = nil
        expectedReply = nil
        replies = 0
        expectedPubrel = nil
        pubrels = 0
        live = []
        deliveriesPerConnection = [:]
        closedInBatch = []
        subAckCodes = []
        mustBeIgnored = false
        opening = false

        switch event {
        case .tick:
            return
        case .outputCongested(let connection):
            guard var model = models[connection], !model.closed else {
                mustBeIgnored = true
                return
            }
            model.congested = true
            models[connection] = model
        case .outputDrained(let connection):
            guard var model = models[connection], !model.closed else {
                mustBeIgnored = true
                return
            }
            model.congested = false
            source = connection
            models[connection] = model
        case .published(let message, let retain):
            live.insert(MessageKey(topic: message.topic.bytes, payload: message.payload))
            if retain && !message.payload.isEmpty {
                everRetained.insert(MessageKey(topic: message.topic.bytes, payload: message.payload))
            }
        case .recordsDurable, .connect, .outputConfirmed, .admission:
            return
        case .storeWritable(let writable):
            storeWritable = writable
        case .closed(let connection, _):
            guard var model = models[connection], !model.closed else {
                mustBeIgnored = true
                return
            }
            model.closed = true
            if let will = model.will {
                live.insert(MessageKey(topic: will.topic.bytes, payload: will.payload))
                model.will = nil
            }
            models[connection] = model
        case .packet(let connection, let packet):
            guard var model = models[connection] else {
                guard case .connect(let connect) = packet else {
                    fail("the harness sent \(wireName(packet.type)) first; it only forwards CONNECT first")
                    return
                }
                models[connection] = ConnectionModel(connect: connect, lastPacket: now)
                source = connection
                opening = true
                expectedReply = (.connack, nil)
                if let will = connect.will, will.retain, !will.payload.isEmpty {
                    everRetained.insert(MessageKey(topic: will.topic.bytes, payload: will.payload))
                }
                return
            }
            guard !model.closed else {
                mustBeIgnored = true  // [MQTT-3.1.4-5] nothing after a close is processed
                return
            }
            source = connection
            model.lastPacket = now
            willHandle(packet, model: &model)
            models[connection] = model
        }
    }

    private func willHandle(_ packet: Packet, model: inout ConnectionModel) {
        switch packet {
        case .publish(let publish):
            if publish.retain && !publish.payload.isEmpty {
                everRetained.insert(MessageKey(topic: publish.topic.bytes, payload: publish.payload))
            }
            if durable && !storeWritable && publish.qos != .atMostOnce {
                return  // refused: the client still owns it and will send it again
            }
            if !isReservedForBroker(publish.topic) {
                live.insert(MessageKey(topic: publish.topic.bytes, payload: publish.payload))
            }
            switch publish.qos {
            case .atMostOnce: break
            case .atLeastOnce: expectedReply = (.puback, publish.packetID?.rawValue)  // [MQTT-4.3.2-2]
            case .exactlyOnce: expectedReply = (.pubrec, publish.packetID?.rawValue)  // [MQTT-4.3.3-2]
            }
        case .puback(let id):
            if model.unacknowledged[id.rawValue] == .awaitingPuback { model.unacknowledged[id.rawValue] = nil }
        case .pubrec(let id):
            // [MQTT-4.3.3-1] PUBREL with the same id, also for a repeated PUBREC.
            if let state = model.unacknowledged[id.rawValue], state != .awaitingPuback {
                model.unacknowledged[id.rawValue] = .awaitingPubcomp
                expectedPubrel = id.rawValue
            }
        case .pubrel(let id):
            expectedReply = (.pubcomp, id.rawValue)  // [MQTT-4.3.3-2]
        case .pubcomp(let id):
            if model.unacknowledged[id.rawValue] == .awaitingPubcomp { model.unacknowledged[id.rawValue] = nil }
        case .subscribe(let subscribe):
            expectedReply = (.suback, subscribe.packetID.rawValue)  // [MQTT-3.8.4-1]
        case .unsubscribe(let unsubscribe):
            expectedReply = (.unsuback, unsubscribe.packetID.rawValue)  // [MQTT-3.10.4-4]
        case .pingreq:
            expectedReply = (.pingresp, nil)  // [MQTT-3.12.4-1]
        case .disconnect:
            model.will = nil  // [MQTT-3.14.4-3]
        case .connect, .connack, .suback, .unsuback, .pingresp:
            break  // a protocol violation: the connection must close
        }
    }

    // MARK: The actions

    /// `actions` are what the core returned, `held` what it kept back for the store (with persistence on): the
    /// two together are what it decided, in order for each connection, since once one send to a connection is
    /// held every later one is too.
    /// `released` is, after `.recordsDurable`, what the appends it confirms held.
    func check(
        _ returned: [Action], held: [Action], _ changes: [ReadingChange], after given: CoreEvent,
        released expected: [Action] = [], now: MonotonicTime
    ) {
        let event = given.judgedAsPacket
        switch event {
        case .recordsDurable:
            checkReleased(returned, expected: expected)
            if let action = held.first { fail("completing an append held \(CoreChecker.describe(action))") }
            return
        case .storeWritable:
            if let action = (returned + held).first {
                fail("a store health change produced \(CoreChecker.describe(action))")
            }
            return
        default:
            break
        }
        if !durable, let action = held.first { fail("held \(CoreChecker.describe(action)) without persistence") }
        let actions = returned + held
        if mustBeIgnored {
            if let action = actions.first {
                fail("event for an ended connection produced \(CoreChecker.describe(action))")
            }
            if let change = changes.first { fail("event for an ended connection produced \(change)") }
            return
        }
        for action in actions {
            switch action {
            case .send(let connection, let packet): checkSend(packet, to: connection)
            case .close(let connection, let reason): checkClose(connection, reason: reason)
            // The fuzzed broker admits every CONNECT itself (no profile asks for admission).
            case .admit(let request): fail("asked to admit \(request.connection) without asking for admissions")
            }
        }
        checkBatchEnd()
        for change in changes { checkReadingChange(change) }
    }

    /// A completed append releases exactly the sends its batch held, in order; the connection may have ended
    /// meanwhile (the driver drops sends for connections it no longer has).
    private func checkReleased(_ released: [Action], expected: [Action]) {
        let got = released.map(CoreChecker.describe)
        let wanted = expected.map(CoreChecker.describe)
        if got != wanted { fail("an append released \(got) instead of its held \(wanted)") }
    }

    /// Holds come only with `queue_full_policy block`, for open connections, and every resume ends a pause.
    private func checkReadingChange(_ change: ReadingChange) {
        if case .confirmOutput = change { return }  // window 0 here: never asked for (see CoreTarget)
        guard configuration.queueFullPolicy == .block else {
            fail("\(change) with queue_full_policy drop")
            return
        }
        guard var model = models[change.connection], !model.closed else {
            fail("\(change) of a connection that is not open")
            return
        }
        switch change {
        case .pause:
            if model.held { fail("\(change) of a connection already held") }
            model.held = true
            model.everHeld = true
        case .resume:
            if !model.held { fail("\(change) of a connection not held") }
            model.held = false
        case .confirmOutput:
            break
        }
        models[change.connection] = model
    }

    private func checkSend(_ packet: OutboundPacket, to connection: ConnectionID) {
        guard var model = models[connection] else {
            fail("sent to \(connection), which never sent CONNECT")
            return
        }
        defer { models[connection] = model }
        if model.closed {
            fail("sent \(CoreChecker.describe(packet)) to \(connection) after its close")
        }
        let first = !model.sentAnything
        model.sentAnything = true
        if let code = model.returnCode, code != .accepted {
            fail("sent \(CoreChecker.describe(packet)) to \(connection) after refusing its CONNECT")
        }
        switch packet {
        case .control(let control):
            if first, control.type != .connack {
                fail("first packet to \(connection) is \(wireName(control.type)), not CONNACK [MQTT-3.2.0-1]")
            }
            checkControl(control, to: connection, model: &model)
        case .publish(let delivery):
            if first { fail("first packet to \(connection) is PUBLISH, not CONNACK [MQTT-3.2.0-1]") }
            checkDelivery(delivery, to: connection, model: &model)
        }
    }

    private func checkControl(_ packet: Packet, to connection: ConnectionID, model: inout ConnectionModel) {
        checkEncoding(packet)
        let isReply = connection == source
        switch packet {
        case .connack(let connack):
            if model.returnCode != nil { fail("second CONNACK to \(connection)") }
            guard opening, connection == source else {
                fail("CONNACK to \(connection) without its first CONNECT")
                return
            }
            model.returnCode = connack.returnCode
            replies += 1
            if connack.returnCode == .accepted {
                model.will = model.connect.will
                // [MQTT-3.2.2-1] a clean session is never present.
                if model.connect.cleanSession && connack.sessionPresent {
                    fail("CONNACK with session present for a clean session [MQTT-3.2.2-1]")
                }
            }
        case .puback(let id), .pubrec(let id), .pubcomp(let id), .unsuback(let id):
            countReply(packet.type, id.rawValue, isReply: isReply, to: connection)
        case .pingresp:
            countReply(.pingresp, nil, isReply: isReply, to: connection)
        case .suback(let suback):
            countReply(.suback, suback.packetID.rawValue, isReply: isReply, to: connection)
            checkSubAck(suback)
        case .pubrel(let id):
            if isReply, expectedPubrel == id.rawValue {
                pubrels += 1
            } else if opening, connection == source, model.unacknowledged[id.rawValue] == nil {
                // A resumed session's PUBREL, re-sent after CONNACK [MQTT-4.4.0-1].
                model.unacknowledged[id.rawValue] = .awaitingPubcomp
                checkWindow(model, connection)
            } else {
                fail("unexpected PUBREL \(id) to \(connection)")
            }
        case .connect, .publish, .subscribe, .unsubscribe, .pingreq, .disconnect:
            fail("the server sent \(wireName(packet.type)), which only clients send")
        }
    }

    private func countReply(_ type: PacketType, _ id: UInt16?, isReply: Bool, to connection: ConnectionID) {
        guard isReply, let expected = expectedReply, expected.type == type, expected.id == id else {
            fail("unexpected \(wireName(type))\(id.map { " \($0)" } ?? "") to \(connection)")
            return
        }
        replies += 1
    }

    /// One code per filter, in order, each the requested QoS capped by `max_qos` [MQTT-3.9.3-1][MQTT-3.8.4-6].
    private func checkSubAck(_ suback: SubAck) {
        guard case .packet(_, .subscribe(let subscribe)) = event else { return }
        guard suback.returnCodes.count == subscribe.requests.count else {
            fail("SUBACK has \(suback.returnCodes.count) codes for \(subscribe.requests.count) filters [MQTT-3.9.3-1]")
            return
        }
        for (code, request) in zip(suback.returnCodes, subscribe.requests)
        where code != .granted(min(request.qos, configuration.maxQoS)) {
            fail("SUBACK code \(code.rawValue) for \(request.filter) at QoS \(request.qos.rawValue)")
        }
        subAckCodes = suback.returnCodes
    }

    private func checkDelivery(_ delivery: Delivery, to connection: ConnectionID, model: inout ConnectionModel) {
        let message = delivery.message
        let key = MessageKey(topic: message.topic.bytes, payload: message.payload)
        guard (delivery.qos == .atMostOnce) == (delivery.packetID == nil) else {
            fail("PUBLISH QoS \(delivery.qos.rawValue) with packet id \(delivery.packetID?.description ?? "none")")
            return
        }
        checkEncoding(delivery)
        // Downgraded only [MQTT-3.8.4-6], never above max_qos.
        if delivery.qos > message.qos || delivery.qos > configuration.maxQoS {
            fail("PUBLISH at QoS \(delivery.qos.rawValue) of a QoS \(message.qos.rawValue) message")
        }
        if delivery.qos == .atMostOnce && delivery.dup { fail("QoS 0 PUBLISH with DUP [MQTT-3.3.1-2]") }
        let resuming = opening && connection == source
        if delivery.dup && !resuming { fail("PUBLISH with DUP=1 outside a session resume [MQTT-3.3.1-1]") }
        if model.congested { fail("PUBLISH to \(connection) while its output is congested") }
        if let id = delivery.packetID {
            if let state = model.unacknowledged[id.rawValue] {
                fail("packet id \(id) reused to \(connection) while \(state) [MQTT-2.3.1-2]")
            }
            model.unacknowledged[id.rawValue] = delivery.qos == .exactlyOnce ? .awaitingPubrec : .awaitingPuback
            checkWindow(model, connection)
        }
        // The client's own SUBSCRIBE, CONNECT, acknowledgement or drained output may release queued, retained or
        // resent messages; everything else only forwards what this batch published.
        var releasesQueue = false
        if connection == source {
            switch event {
            case .packet(_, .subscribe), .packet(_, .puback), .packet(_, .pubcomp), .outputDrained: releasesQueue = true
            case .packet(_, .connect): releasesQueue = opening
            default: break
            }
        }
        // A bridge (`Connect.isBridge`) gets live forwards with RETAIN as published, deletions included: those are
        // checked as live forwards.
        if delivery.retain && !(model.connect.isBridge && !releasesQueue) {
            if !configuration.retainAvailable { fail("RETAIN=1 PUBLISH with retain_available false") }
            if !releasesQueue { fail("RETAIN=1 on a live forward [MQTT-3.3.1-9]") }
            if !everRetained.contains(key) {
                fail("RETAIN=1 PUBLISH of a message never retained on \(message.topic) [MQTT-3.3.1-8]")
            }
            checkRetainedMatch(delivery)
        } else if !releasesQueue {
            if !live.contains(key) { fail("PUBLISH on \(message.topic) that this event did not publish") }
            deliveriesPerConnection[connection, default: 0] += 1
            // One delivery per subscriber, at the best granted QoS [MQTT-3.3.5-1].
            if case .packet(_, .publish) = event, closedInBatch.isEmpty, deliveriesPerConnection[connection] ?? 0 > 1 {
                fail("\(deliveriesPerConnection[connection] ?? 0) deliveries of one PUBLISH to \(connection)")
            }
        }
    }

    /// Retained messages answering a SUBSCRIBE match a filter it was granted, at no more than its QoS [MQTT-3.3.1-6].
    private func checkRetainedMatch(_ delivery: Delivery) {
        guard case .packet(_, .subscribe(let subscribe)) = event, subAckCodes.count == subscribe.requests.count
        else { return }
        var best: QoS?
        for (request, code) in zip(subscribe.requests, subAckCodes) where request.filter.matches(delivery.message.topic)
        {
            if case .granted(let qos) = code { best = max(best ?? qos, qos) }
        }
        guard let best else {
            fail("retained \(delivery.message.topic) matches no filter granted by this SUBSCRIBE")
            return
        }
        if delivery.qos > best { fail("retained \(delivery.message.topic) at QoS \(delivery.qos.rawValue) > \(best)") }
    }

    private func checkWindow(_ model: ConnectionModel, _ connection: ConnectionID) {
        // A bridge has at least `Broker.bridgeInflightMinimum` in flight (each acknowledgement crosses its broker).
        let window = model.connect.isBridge ? max(inflightLimit, Broker.bridgeInflightMinimum) : inflightLimit
        if model.unacknowledged.count > window {
            fail("\(model.unacknowledged.count) unacknowledged deliveries to \(connection), window \(window)")
        }
    }

    private func checkClose(_ connection: ConnectionID, reason: CloseReason) {
        guard var model = models[connection] else {
            fail("closed \(connection), which never sent CONNECT")
            return
        }
        if model.closed { fail("closed \(connection) twice") }
        model.closed = true
        closedInBatch.insert(connection)
        if reason.firesWill, let will = model.will {
            live.insert(MessageKey(topic: will.topic.bytes, payload: will.payload))
        }
        model.will = nil
        switch reason {
        case .keepaliveTimeout:
            guard case .tick = event, let deadline = model.keepaliveDeadline, deadline <= now else {
                fail("keepalive close of \(connection) before 1.5 × its keepalive [MQTT-3.1.2-24]")
                break
            }
        case .connectRefused(let code):
            if model.returnCode != code {
                fail("closed \(connection) as refused (\(code)) after CONNACK \(String(describing: model.returnCode))")
            }
        case .clientDisconnected:
            guard case .packet(connection, .disconnect) = event else {
                fail("closed \(connection) as disconnected without its DISCONNECT")
                break
            }
        case .takenOver:
            guard case .packet(let newcomer, .connect(let connect)) = event, newcomer != connection,
                connect.clientID == model.connect.clientID, !connect.clientID.isEmpty
            else {
                fail("closed \(connection) as taken over without a CONNECT with its client id")
                break
            }
        case .protocolError:
            if connection != source { fail("closed \(connection) for a protocol error in another connection's event") }
        case .connectionLost, .limitExceeded, .serverShutdown:
            fail("the core closed \(connection) with a reason only the driver gives: \(reason)")
        }
        models[connection] = model
    }

    // MARK: After the batch

    private func checkBatchEnd() {
        switch event {
        case .tick:
            // Every connection past 1.5 × its keepalive is closed by the tick that sees it [MQTT-3.1.2-24].
            for (connection, model) in models where !model.closed && !model.everHeld {
                if let deadline = model.keepaliveDeadline, deadline <= now {
                    fail("\(connection) silent past its keepalive deadline was not closed [MQTT-3.1.2-24]")
                }
            }
        case .closed, .outputCongested, .outputDrained, .outputConfirmed, .published, .recordsDurable, .storeWritable,
            .connect, .admission:
            break
        case .packet(let connection, let packet):
            guard let model = models[connection], source == connection else { return }
            let closed = closedInBatch.contains(connection)
            if let expected = expectedReply, replies != 1, !(closed && replies == 0 && expected.type != .connack) {
                fail("\(replies) \(wireName(expected.type)) replies to \(connection), expected one")
            }
            if let id = expectedPubrel, pubrels != 1, !closed {
                fail("\(pubrels) PUBREL \(id) replies to \(connection), expected one [MQTT-4.3.3-1]")
            }
            switch packet {
            case .connect(let connect):
                if !opening {
                    if !closed { fail("second CONNECT on \(connection) did not close it [MQTT-3.1.0-2]") }
                } else if let code = model.returnCode, code != .accepted, !closed {
                    fail("refused CONNECT on \(connection) left open [MQTT-3.2.2-5]")
                } else if model.returnCode == .accepted && !connect.clientID.isEmpty {
                    // [MQTT-3.1.4-2] the client already connected with this id is disconnected.
                    for (other, otherModel) in models
                    where other != connection && !otherModel.closed && otherModel.returnCode == .accepted
                        && otherModel.connect.clientID == connect.clientID
                    {
                        fail("\(other) still open with client id \(connect.clientID) after \(connection) connected")
                    }
                }
            case .disconnect, .connack, .suback, .unsuback, .pingresp:
                if !closed { fail("\(wireName(packet.type)) from \(connection) did not close it") }
            default:
                break
            }
        }
    }

    // MARK: Helpers

    /// The server encodes what the core returns; the bytes must decode back to the same packet.
    private func checkEncoding(_ packet: Packet) {
        var bytes: [UInt8] = []
        packet.encode(into: &bytes)
        checkDecodes(bytes, to: packet)
    }

    private func checkEncoding(_ delivery: Delivery) {
        var bytes: [UInt8] = []
        Publish.encode(
            topic: delivery.message.topic, payload: delivery.message.payload, qos: delivery.qos,
            retain: delivery.retain, dup: delivery.dup, packetID: delivery.packetID, into: &bytes)
        let expected = Publish(
            topic: delivery.message.topic, payload: delivery.message.payload, qos: delivery.qos,
            retain: delivery.retain, dup: delivery.dup, packetID: delivery.packetID)
        checkDecodes(bytes, to: .publish(expected))
    }

    private func checkDecodes(_ bytes: [UInt8], to packet: Packet) {
        let decoded = bytes.withUnsafeBytes { try? FrameDecoder().decode($0) }
        guard let decoded, decoded.packet == packet, decoded.consumed == bytes.count else {
            fail("outbound \(wireName(packet.type)) encodes to \(hex(bytes)), which does not decode back to it")
            return
        }
    }

    /// `$SYS`, where clients may not publish, but for `$SYS/broker/connection/<id>/state` (bridge states).
    private func isReservedForBroker(_ topic: TopicName) -> Bool {
        let bytes = topic.bytes
        guard bytes.starts(with: Array("$SYS".utf8)) && (bytes.count == 4 || bytes[4] == UInt8(ascii: "/")) else {
            return false
        }
        let levels = bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        return
            !(levels.count == 5 && levels[1].elementsEqual("broker".utf8)
            && levels[2].elementsEqual("connection".utf8) && levels[4].elementsEqual("state".utf8))
    }

    static func describe(_ event: CoreEvent) -> String {
        switch event {
        case .packet(let connection, let packet), .connect(let connection, let packet, _):
            "\(describe(packet)) from \(connection)"
        case .closed(let connection, let reason): "\(connection) ended: \(reason)"
        case .admission(let connection, let answer): "admission of \(connection) answered \(answer.verdict)"
        case .tick: "tick"
        case .outputCongested(let connection): "output of \(connection) congested"
        case .outputDrained(let connection): "output of \(connection) drained"
        case .outputConfirmed(let connection): "output of \(connection) confirmed"
        case .published(let message, let retain):
            "broker publishes \(message.topic) q\(message.qos.rawValue)\(retain ? " retain" : "") "
                + "[\(message.payload.count) B]"
        case .recordsDurable(let sequence): "the log confirmed appends through \(sequence)"
        case .storeWritable(let writable): writable ? "store writable" : "store cannot write"
        }
    }

    static func describe(_ action: Action) -> String {
        switch action {
        case .send(let connection, let packet): "send \(describe(packet)) to \(connection)"
        case .close(let connection, let reason): "close \(connection): \(reason)"
        case .admit(let request): "admit \(request.connection) as \(request.clientID)"
        }
    }

    static func describe(_ packet: OutboundPacket) -> String {
        switch packet {
        case .control(let packet):
            return describe(packet)
        case .publish(let delivery):
            let id = delivery.packetID.map { " id \($0)" } ?? ""
            let flags = (delivery.dup ? " dup" : "") + (delivery.retain ? " retain" : "")
            return "PUBLISH \(delivery.message.topic) q\(delivery.qos.rawValue)\(id)\(flags) "
                + "[\(delivery.message.payload.count) B]"
        }
    }

    static func describe(_ packet: Packet) -> String {
        switch packet {
        case .connect(let connect):
            let will = connect.will.map { " will \($0.topic) q\($0.qos.rawValue)\($0.retain ? " retain" : "")" } ?? ""
            return "CONNECT \"\(connect.clientID)\" c\(connect.cleanSession ? 1 : 0) k\(connect.keepAlive)\(will)"
                + (connect.username.map { " u'\($0)'" } ?? "")
        case .connack(let connack):
            return "CONNACK \(connack.returnCode.rawValue)\(connack.sessionPresent ? " session present" : "")"
        case .publish(let publish):
            let id = publish.packetID.map { " id \($0)" } ?? ""
            let flags = (publish.dup ? " dup" : "") + (publish.retain ? " retain" : "")
            return "PUBLISH \(publish.topic) q\(publish.qos.rawValue)\(id)\(flags) [\(publish.payload.count) B]"
        case .puback(let id): return "PUBACK \(id)"
        case .pubrec(let id): return "PUBREC \(id)"
        case .pubrel(let id): return "PUBREL \(id)"
        case .pubcomp(let id): return "PUBCOMP \(id)"
        case .subscribe(let subscribe):
            let requests = subscribe.requests.map { "\($0.filter) q\($0.qos.rawValue)" }.joined(separator: ", ")
            return "SUBSCRIBE \(subscribe.packetID) [\(requests)]"
        case .suback(let suback):
            return "SUBACK \(suback.packetID) \(suback.returnCodes.map(\.rawValue))"
        case .unsubscribe(let unsubscribe):
            return "UNSUBSCRIBE \(unsubscribe.packetID) \(unsubscribe.filters.map(\.description))"
        case .unsuback(let id): return "UNSUBACK \(id)"
        case .pingreq: return "PINGREQ"
        case .pingresp: return "PINGRESP"
        case .disconnect: return "DISCONNECT"
        }
    }
}

extension CoreEvent {
    /// A CONNECT as the packet it is: the checker judges every packet alike, whatever facts came with it.
    var judgedAsPacket: CoreEvent {
        if case .connect(let connection, let packet, _) = self { return .packet(connection, packet) }
        return self
    }
}
