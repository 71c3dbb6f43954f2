// One benchmark thread: an epoll loop over its connections that publishes, acknowledges and records deliveries.
import CLinux
import Glibc
import MQTTCodec

final class BenchLoop {
    let settings: BenchSettings
    let epoll: Int32
    private(set) var connections: [BenchConnection] = []
    private var byDescriptor: [Int32: BenchConnection] = [:]
    var tracker: DeliveryTracker
    private var readBuffer = [UInt8](repeating: 0, count: 256 * 1024)
    private var events = [epoll_event](repeating: epoll_event(), count: 512)
    private var templates: [PublishTemplate] = []
    var publishing = false
    var windowStart: UInt64 = 0
    var windowEnd: UInt64 = .max
    var publishStart: UInt64 = 0
    var protocolErrors = 0

    init(settings: BenchSettings) throws(BenchError) {
        self.settings = settings
        epoll = epoll_create1(CLINUX_EPOLL_CLOEXEC)
        guard epoll >= 0 else { throw .system("epoll_create1") }
        tracker = DeliveryTracker(subscribers: settings.subscribers, publishers: settings.publishers)
    }

    func prepareTemplates(topics: [TopicName]) {
        templates = topics.map { PublishTemplate(topic: $0, payloadSize: settings.payloadSize, qos: settings.qos) }
    }

    /// Connects and sends CONNECT (and SUBSCRIBE for subscribers); replies are handled by `poll`.
    func open(role: Role, clientID: String, source: String?, keepAlive: UInt16 = 60) throws(BenchError) {
        var port = settings.port
        if case .subscriber = role, let subscriberPort = settings.subscriberPort { port = subscriberPort }
        let fd = try openConnection(host: settings.host, port: port, source: source)
        let connection = BenchConnection(fd: fd, role: role)
        var clean = true
        if case .subscriber = role, settings.persistentSubscribers { clean = false }
        Packet.connect(Connect(cleanSession: clean, keepAlive: keepAlive, clientID: clientID)).encode(
            into: &connection.output)
        if case .subscriber = role, let filter = TopicFilter(settings.filter) {
            let subscribe = Subscribe(
                packetID: PacketID(connection.takePacketID())!,
                requests: [SubscriptionRequest(filter: filter, qos: settings.qos)])
            Packet.subscribe(subscribe).encode(into: &connection.output)
        }
        var event = epoll_event()
        event.events = CLINUX_EPOLLIN
        event.data.fd = fd
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0 else { throw .system("epoll_ctl") }
        connections.append(connection)
        byDescriptor[fd] = connection
        flush(connection)
    }

    var allReady: Bool {
        connections.allSatisfy { connection in
            if case .subscriber = connection.role { return connection.connected && connection.subscribed }
            return connection.connected
        }
    }

    var closedCount: Int { connections.reduce(0) { $0 + ($1.closed ? 1 : 0) } }
    var publishedTotal: Int { connections.reduce(0) { $0 + $1.published } }
    var acknowledgedTotal: Int { connections.reduce(0) { $0 + $1.acknowledged } }
    var inflightTotal: Int { connections.reduce(0) { $0 + $1.inflight } }

    /// One turn: top up publishers, wait for events at most `timeoutMilliseconds`, handle them.
    func poll(timeoutMilliseconds: Int32) {
        var mayPublishMore = false
        if publishing {
            let now = monotonicNanoseconds()
            for connection in connections where !connection.closed {
                if case .publisher(let index) = connection.role {
                    mayPublishMore = topUp(connection, publisher: index, now: now) || mayPublishMore
                    flush(connection)
                }
            }
        }
        let timeout = mayPublishMore ? 0 : timeoutMilliseconds
        let count = events.withUnsafeMutableBufferPointer {
            epoll_wait(epoll, $0.baseAddress, Int32($0.count), timeout)
        }
        guard count > 0 else { return }
        for index in 0..<Int(count) {
            let fd = events[index].data.fd
            let mask = events[index].events
            guard let connection = byDescriptor[fd], !connection.closed else { continue }
            if mask & (CLINUX_EPOLLIN | CLINUX_EPOLLHUP | CLINUX_EPOLLERR) != 0 { readAvailable(connection) }
            if mask & CLINUX_EPOLLOUT != 0 || connection.pendingOutput > 0 { flush(connection) }
        }
    }

    /// Adds as many messages as the publisher may send now. Returns true if it could send more at once.
    private func topUp(_ connection: BenchConnection, publisher: Int, now: UInt64) -> Bool {
        guard !templates.isEmpty, connection.connected else { return false }
        var allowed: Int
        if settings.rate > 0 {
            let elapsed = Double(now &- publishStart) / 1e9
            allowed = Int(elapsed * settings.rate / Double(settings.publishers)) - connection.published
        } else {
            allowed = connection.pendingOutput < 32 * 1024 ? 64 : 0
        }
        if settings.qos != .atMostOnce { allowed = min(allowed, settings.window - connection.inflight) }
        guard allowed > 0 else { return false }
        for _ in 0..<allowed {
            connection.appendMessage(templates[connection.topicCursor], publisher: publisher, now: now)
            connection.topicCursor += 1
            if connection.topicCursor == templates.count { connection.topicCursor = 0 }
        }
        return settings.rate == 0 && settings.qos == .atMostOnce
    }

    func flush(_ connection: BenchConnection) {
        while connection.pendingOutput > 0 {
            let written = connection.output.withUnsafeBytes {
                write(connection.fd, $0.baseAddress! + connection.outputOffset, connection.pendingOutput)
            }
            if written > 0 {
                connection.outputOffset += written
                continue
            }
            if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }
            if written < 0 && errno == EINTR { continue }
            markClosed(connection)
            return
        }
        if connection.pendingOutput == 0 {
            connection.output.removeAll(keepingCapacity: true)
            connection.outputOffset = 0
        }
        let wantWritable = connection.pendingOutput > 0
        if wantWritable != connection.watchingWritable {
            connection.watchingWritable = wantWritable
            var event = epoll_event()
            event.events = CLINUX_EPOLLIN | (wantWritable ? CLINUX_EPOLLOUT : 0)
            event.data.fd = connection.fd
            _ = epoll_ctl(epoll, EPOLL_CTL_MOD, connection.fd, &event)
        }
    }

    private func readAvailable(_ connection: BenchConnection) {
        for _ in 0..<16 {
            let count = readBuffer.withUnsafeMutableBytes { read(connection.fd, $0.baseAddress, $0.count) }
            if count == 0 {
                markClosed(connection)
                return
            }
            if count < 0 {
                if errno == EINTR { continue }
                if errno != EAGAIN && errno != EWOULDBLOCK { markClosed(connection) }
                break
            }
            if connection.input.isEmpty {
                let consumed = readBuffer.withUnsafeBytes {
                    process(UnsafeRawBufferPointer(rebasing: $0[0..<count]), on: connection)
                }
                if consumed < count { connection.input.append(contentsOf: readBuffer[consumed..<count]) }
            } else {
                connection.input.append(contentsOf: readBuffer[0..<count])
                let consumed = connection.input.withUnsafeBytes { process($0, on: connection) }
                connection.input.removeFirst(consumed)
            }
            if connection.closed { return }
            if count < readBuffer.count { break }
        }
        flush(connection)
    }

    /// Handles every whole packet at the front of `bytes`; returns how many bytes were used.
    private func process(_ bytes: UnsafeRawBufferPointer, on connection: BenchConnection) -> Int {
        var offset = 0
        let now = monotonicNanoseconds()
        while bytes.count - offset >= 2 {
            let first = bytes[offset]
            var remaining = 0, multiplier = 1, cursor = offset + 1
            while true {
                guard cursor < bytes.count, cursor - offset <= 4 else {
                    if cursor - offset > 4 { protocolError(connection) }
                    return offset
                }
                let byte = bytes[cursor]
                remaining += Int(byte & 0x7F) * multiplier
                multiplier *= 128
                cursor += 1
                if byte & 0x80 == 0 { break }
            }
            let end = cursor + remaining
            guard end <= bytes.count else { return offset }
            handlePacket(
                type: first >> 4, flags: first & 0x0F, body: cursor, end: end, in: bytes, on: connection, now: now)
            offset = end
            if connection.closed { return offset }
        }
        return offset
    }

    private func handlePacket(
        type: UInt8, flags: UInt8, body: Int, end: Int, in bytes: UnsafeRawBufferPointer,
        on connection: BenchConnection,
        now: UInt64
    ) {
        func packetID(at offset: Int) -> UInt16 { UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1]) }
        switch type {
        case 2:  // CONNACK
            guard end - body == 2, bytes[body + 1] == 0 else { return protocolError(connection) }
            connection.connected = true
        case 3:  // PUBLISH
            guard case .subscriber(let subscriber) = connection.role else { return }
            let qos = (flags >> 1) & 3
            let topicLength = Int(packetID(at: body))
            var payload = body + 2 + topicLength
            var id: UInt16 = 0
            if qos > 0 {
                id = packetID(at: payload)
                payload += 2
            }
            if end - payload >= PayloadLayout.minimumSize {
                let publisher = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: payload, as: UInt32.self)))
                let sequence = UInt64(
                    littleEndian: bytes.loadUnaligned(fromByteOffset: payload + PayloadLayout.sequence, as: UInt64.self)
                )
                let sentAt = UInt64(
                    littleEndian: bytes.loadUnaligned(fromByteOffset: payload + PayloadLayout.sentAt, as: UInt64.self))
                // The members of a shared group are one subscriber between them: a message reaching two is a duplicate.
                tracker.record(
                    subscriber: settings.sharedGroup ? 0 : subscriber, publisher: publisher, sequence: sequence,
                    latency: now &- sentAt,
                    inWindow: now >= windowStart && now <= windowEnd)
            }
            if qos == 1 { appendAck(0x40, id, to: connection) }
            if qos == 2 { appendAck(0x50, id, to: connection) }
        case 4, 7:  // PUBACK, PUBCOMP: a publisher's message is done
            connection.inflight -= 1
            connection.acknowledged += 1
        case 5:  // PUBREC
            appendAck(0x62, packetID(at: body), to: connection)
        case 6:  // PUBREL
            appendAck(0x70, packetID(at: body), to: connection)
        case 9:  // SUBACK
            guard end - body == 3, bytes[body + 2] != 0x80 else { return protocolError(connection) }
            connection.subscribed = true
        case 13:  // PINGRESP
            break
        default:
            protocolError(connection)
        }
    }

    private func appendAck(_ firstByte: UInt8, _ id: UInt16, to connection: BenchConnection) {
        connection.output.append(contentsOf: [firstByte, 2, UInt8(id >> 8), UInt8(id & 0xFF)])
    }

    private func protocolError(_ connection: BenchConnection) {
        protocolErrors += 1
        markClosed(connection)
    }

    private func markClosed(_ connection: BenchConnection) {
        guard !connection.closed else { return }
        connection.closed = true
        _ = epoll_ctl(epoll, EPOLL_CTL_DEL, connection.fd, nil)
        close(connection.fd)
    }

    func closeAll() {
        for connection in connections where !connection.closed {
            connection.output.removeAll()
            connection.outputOffset = 0
            connection.output.append(contentsOf: [0xE0, 0x00])  // DISCONNECT
            flush(connection)
            markClosed(connection)
        }
        close(epoll)
    }
}
