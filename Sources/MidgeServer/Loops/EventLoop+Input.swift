// Reading and framing (§2.2), the first-packet rules (§3.1), and input held back for a full queue
// (`queue_full_policy block`): only acknowledgements and PINGREQ pass a hold.
import CLinux
import Glibc
import MQTTCodec
import MidgeCore

extension EventLoop {
    func handleIO(_ connection: Connection, events: UInt32) {
        assertOwned()
        if events & CLINUX_EPOLLOUT != 0 && connection.state != .closing {
            if let failure = flush(connection) {
                connectionLost(connection, reason: .connectionLost(failure))
                return
            }
            noteOutputLevel(connection)
        }
        // EOF, hang-up and socket errors all surface through read() (0 or an errno), so one path handles them.
        guard events & (CLINUX_EPOLLIN | CLINUX_EPOLLRDHUP | CLINUX_EPOLLHUP | CLINUX_EPOLLERR) != 0 else { return }
        // A dead socket (HUP/ERR are reported even without EPOLLIN) is read to its end regardless, or it would
        // be reported again on every turn.
        let dead = events & (CLINUX_EPOLLHUP | CLINUX_EPOLLERR) != 0
        if broker == nil && !dead
            && server.coreBacklog.load(ordering: .relaxed) + input.weight > settings.coreBacklogHighWater
        {
            pauseReads(connection)
            return
        }
        readAvailable(connection, dead: dead)
    }

    private func readAvailable(_ connection: Connection, dead: Bool) {
        for _ in 0..<Self.maxReadsPerWakeup {
            guard connection.state != .closing, !connection.heldInputFull && !connection.rateLimited || dead else {
                return
            }
            let result: IOResult<Int>
            do {
                result = try Syscall.read(connection.fd, into: readBuffer)
            } catch {
                connectionLost(connection, reason: .connectionLost(String(cString: strerror(error.errno))))
                return
            }
            switch result {
            case .wouldBlock:
                return
            case .done(0):
                // What the client sent before closing is handled first, held or not: its last PUBLISHes and a
                // DISCONNECT (which discards the Will) must not be lost to a hold.
                decodeInput(connection, ignoringHold: true)
                connectionLost(connection, reason: .endOfStream)
                return
            case .done(let count):
                settings.metrics.loops[index].countRead(count)
                received(connection, count: count)
                if count < readBuffer.count { return }  // the socket is drained; skip the EAGAIN read
            }
        }
    }

    /// Frames and dispatches what one read brought. Whole packets are decoded straight out of the read
    /// buffer; only an incomplete tail (or, while held, what waits for the release) is copied into `input`.
    private func received(_ connection: Connection, count: Int) {
        let fresh = UnsafeRawBufferPointer(rebasing: readBuffer[0..<count])
        if limits.byteRate > 0 { countBytes(connection, count) }
        if connection.hasTransport {
            receivedThroughTransport(connection, fresh)
        } else {
            receivedMQTT(connection, fresh)
        }
    }

    /// Frames and dispatches MQTT bytes: straight from the socket, or what a transport made of them.
    func receivedMQTT(_ connection: Connection, _ fresh: UnsafeRawBufferPointer) {
        let count = fresh.count
        if connection.input.isEmpty && !connection.isHeld {
            let consumed = decodePackets(connection, from: fresh)
            if connection.state != .closing && consumed < count {
                connection.input = Array(fresh[consumed...])
            }
        } else {
            connection.input.append(contentsOf: fresh)
            if !connection.isHeld { decodeInput(connection) }
        }
        if connection.isHeld && connection.state != .closing { scanHeldInput(connection) }
    }

    /// Decodes the whole packets at the front of `input`, keeping the rest (an incomplete packet, or everything
    /// from the packet on which the connection was held). A drained `input` gives its buffer back.
    private func decodeInput(_ connection: Connection, ignoringHold: Bool = false) {
        guard !connection.input.isEmpty else { return }
        var pending = connection.input
        connection.input = []
        let consumed = pending.withUnsafeBytes { decodePackets(connection, from: $0, ignoringHold: ignoringHold) }
        guard connection.state != .closing, consumed < pending.count else { return }
        if consumed > 0 {
            // A fresh, exact-size array: the large one goes, so a burst does not stay pinned to the connection.
            pending = Array(pending[consumed...])
        }
        connection.input = pending
    }

    /// Decodes and dispatches packets from the front of `bytes` until they run out, the connection closes, or
    /// the core holds it (on loop 0 that can happen in the middle). Returns the bytes consumed.
    func decodePackets(
        _ connection: Connection, from bytes: UnsafeRawBufferPointer, ignoringHold: Bool = false
    ) -> Int {
        var offset = 0
        while offset < bytes.count && connection.state != .closing && (ignoringHold || !connection.isHeld) {
            do {
                guard let (packet, consumed) = try decoder.decode(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
                else { break }
                offset += consumed
                dispatch(packet, from: connection)
            } catch {
                decodeFailed(connection, error)
                break
            }
        }
        return offset
    }

    // MARK: Held input

    /// Packet types that pass a hold: PUBACK, PUBREC and PUBCOMP complete this client's outbound flows, so a
    /// held client that also subscribes keeps draining its own queue (without this, a client publishing to a
    /// topic it subscribes to could hold itself forever); PINGREQ keeps it alive. No ordering rule ties them to
    /// the client's earlier PUBLISHes: their answers go out in the order the spec asks for [MQTT-4.6.0-2].
    @inline(__always)
    static func passesHold(_ firstByte: UInt8) -> Bool {
        switch firstByte >> 4 {
        case PacketType.puback.rawValue, PacketType.pubrec.rawValue, PacketType.pubcomp.rawValue,
            PacketType.pingreq.rawValue:
            true
        default:
            false
        }
    }

    /// The length of the whole packet at `offset`, or nil when it is incomplete or its header is not one the
    /// scan should judge (the release decodes it properly and reports any error then).
    private static func frameLength(_ bytes: UnsafeMutableRawBufferPointer, at offset: Int, limit: Int) -> Int? {
        var length = 0
        var shift = 0
        var index = offset + 1
        while true {
            guard index < bytes.count, index - offset <= 4 else { return nil }
            let byte = bytes[index]
            index += 1
            length |= Int(byte & 0x7F) << shift
            if byte & 0x80 == 0 { break }
            shift += 7
        }
        guard length <= limit, index + length <= bytes.count else { return nil }
        return index + length - offset
    }

    /// Passes on the acknowledgements and PINGREQs in the held input's unscanned part and keeps everything else,
    /// in order, for the release. Stops reading once `heldInputLimit` bytes wait.
    func scanHeldInput(_ connection: Connection) {
        var buffer = connection.input
        connection.input = []
        var read = Int(connection.heldScanned)
        var write = read
        let limit = settings.maxRemainingLength
        buffer.withUnsafeMutableBytes { bytes in
            while read < bytes.count, let length = Self.frameLength(bytes, at: read, limit: limit) {
                // Nothing passes before the core has the CONNECT.
                if Self.passesHold(bytes[read]) && connection.state != .authenticating {
                    let frame = UnsafeRawBufferPointer(rebasing: bytes[read..<(read + length)])
                    do throws(DecodeError) {
                        if let (packet, _) = try decoder.decode(frame) { dispatch(packet, from: connection) }
                    } catch {
                        decodeFailed(connection, error)
                    }
                    if connection.state == .closing { return }
                } else {
                    if write != read, let base = bytes.baseAddress { memmove(base + write, base + read, length) }
                    write += length
                }
                read += length
            }
            if write != read, let base = bytes.baseAddress { memmove(base + write, base + read, bytes.count - read) }
        }
        guard connection.state != .closing else { return }
        buffer.removeLast(read - write)
        connection.heldScanned = Int32(write)
        connection.input = buffer
        if connection.isHeld && !connection.heldInputFull && buffer.count >= settings.heldInputLimit {
            connection.heldInputFull = true
            updateRegistration(connection)
        }
    }

    /// `ReadingChange.resume` of a connection: its held packets are decoded in order and handed on (possibly
    /// holding it again at once, on loop 0), and its socket is read again.
    func handReleasedInput() {
        var position = 0
        while position < released.count {
            let connection = released[position]
            position += 1
            guard connection.state != .closing, !connection.isHeld else { continue }
            decodeInput(connection)
            if connection.isHeld && connection.state != .closing { scanHeldInput(connection) }
        }
        released.removeAll(keepingCapacity: true)
    }

    func hold(_ connection: Connection) {
        guard !connection.isHeld, connection.state != .closing else { return }
        connection.isHeld = true
        connection.heldScanned = 0
    }

    func release(_ connection: Connection) {
        guard connection.isHeld else { return }
        connection.isHeld = false
        connection.heldScanned = 0
        if connection.heldInputFull {
            connection.heldInputFull = false
            if connection.state != .closing { updateRegistration(connection) }
        }
        released.append(connection)
    }

    // MARK: Packets

    private func dispatch(_ packet: Packet, from connection: Connection) {
        settings.metrics.loops[index].countReceived(packet)
        switch connection.state {
        case .awaitingConnect:
            guard case .connect = packet else {
                // [MQTT-3.1.0-1] the first packet must be CONNECT: close without a reply.
                let name = String(describing: packet.type).uppercased()
                let address = connection.info.remoteAddress
                logger.log(.notice, "Client <unknown> from \(address) sent \(name) before CONNECT, disconnecting.")
                beginClose(connection)
                return
            }
            beginConnect(connection, packet)
        case .connected:
            if limits.messageRate > 0, case .publish = packet { countMessage(connection) }
            // Everything else, a second CONNECT included [MQTT-3.1.0-2], is the core's to judge.
            report(.packet(connection.id, packet))
        case .authenticating, .closing:
            // Authenticating: only reached at the end of the stream, when the client is gone anyway.
            return
        }
    }

    private func decodeFailed(_ connection: Connection, _ error: DecodeError) {
        if case .unacceptableProtocolVersion(let level) = error, connection.state == .awaitingConnect {
            logger.log(
                .notice,
                "Client <unknown> from \(connection.info.remoteAddress) uses unsupported protocol level \(level), "
                    + "disconnecting.")
            // [MQTT-3.1.2-2] CONNACK with return code 0x01, then close.
            let refusal = ConnAck(sessionPresent: false, returnCode: .unacceptableProtocolVersion)
            prepareOutput(connection)
            Packet.connack(refusal).encode(into: &connection.output)
            beginClose(connection)
            return
        }
        if connection.reachedCore {
            // [MQTT-4.8.0-1] a protocol error for the core, which logs it with the client id and publishes the Will.
            let why: String
            if case .malformed(let reason) = error { why = reason } else { why = error.description }
            if connection.hasTransport { noteCloseReason(connection, .protocolError(why)) }
            report(.closed(connection.id, .protocolError(why)))
        } else {
            logger.log(
                .notice, "Client <unknown> from \(connection.info.remoteAddress): \(error), disconnecting.")
        }
        beginClose(connection)
    }

    /// EOF or a socket error. Before CONNECT the core never knew the connection; after, it must be told.
    func connectionLost(_ connection: Connection, reason: CloseReason) {
        guard connection.state != .closing else { return }
        if connection.hasTransport { noteCloseReason(connection, reason) }
        if connection.reachedCore {
            report(.closed(connection.id, reason))
        } else {
            logger.log(.notice, "Client <unknown> from \(connection.info.remoteAddress) closed its connection.")
        }
        beginClose(connection)
    }

    // MARK: Flow control towards the core

    func pauseReads(_ connection: Connection) {
        guard !connection.readsPaused else { return }
        connection.readsPaused = true
        input.pausedConnections.append(connection)
        updateRegistration(connection)
        handle.awaitsCoreDrain.store(true, ordering: .sequentiallyConsistent)
    }

    func resumeReads() {
        handle.awaitsCoreDrain.store(false, ordering: .sequentiallyConsistent)
        for connection in input.pausedConnections where connection.readsPaused {
            connection.readsPaused = false
            if connection.state != .closing && connections[connection.id] === connection {
                updateRegistration(connection)
            }
        }
        input.pausedConnections.removeAll()
    }

    /// EPOLLIN unless reading is paused for the core's backlog or a full held input; EPOLLOUT while output waits.
    func updateRegistration(_ connection: Connection) {
        let reading = !connection.readsPaused && !connection.heldInputFull && !connection.rateLimited
        var events: UInt32 = reading ? CLINUX_EPOLLIN | CLINUX_EPOLLRDHUP : 0
        if connection.watchesWritable { events |= CLINUX_EPOLLOUT }
        try? Syscall.epollControl(
            handle.epollFD, EPOLL_CTL_MOD, connection.fd, events: events, token: connection.id.rawValue)
    }
}
