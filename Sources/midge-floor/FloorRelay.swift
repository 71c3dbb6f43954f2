// The least a broker can do for midge-bench: one thread, one epoll set, every PUBLISH frame copied unchanged to
// every subscriber, then acknowledged. No sessions, topics, queues or limits. What it measures is the machine's
// share of a latency figure: the wake-ups and the loopback TCP path that any broker pays as well.
import CLinux
import Glibc
import MQTTCodec

final class FloorConnection {
    let fd: Int32
    var input: [UInt8] = []
    var output: [UInt8] = []
    var outputSent = 0
    var isSubscriber = false
    var isDirty = false
    var watchesWritable = false

    init(fd: Int32) { self.fd = fd }
}

final class FloorRelay {
    private let listener: Int32
    private let epoll: Int32
    private var connections: [Int32: FloorConnection] = [:]
    private var subscribers: [FloorConnection] = []
    private var dirty: [FloorConnection] = []
    private var readBuffer = [UInt8](repeating: 0, count: 64 * 1024)

    init(listener: Int32) {
        self.listener = listener
        epoll = epoll_create1(CLINUX_EPOLL_CLOEXEC)
        precondition(epoll >= 0, "epoll_create1 failed")
        watch(listener, events: CLINUX_EPOLLIN, operation: EPOLL_CTL_ADD)
    }

    func run() -> Never {
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while true {
            let count = events.withUnsafeMutableBufferPointer { epoll_wait(epoll, $0.baseAddress, Int32($0.count), -1) }
            for index in 0..<max(Int(count), 0) {
                let fd = events[index].data.fd
                if fd == listener {
                    acceptAll()
                } else if let connection = connections[fd] {
                    if events[index].events & CLINUX_EPOLLOUT != 0 { markDirty(connection) }
                    if events[index].events & (CLINUX_EPOLLIN | CLINUX_EPOLLHUP | CLINUX_EPOLLERR) != 0 {
                        readAvailable(connection)
                    }
                }
            }
            // Delivery before acknowledgement, as in both brokers: the subscriber became dirty first.
            for connection in dirty where connections[connection.fd] === connection { flush(connection) }
            dirty.removeAll(keepingCapacity: true)
        }
    }

    private func watch(_ fd: Int32, events: UInt32, operation: Int32) {
        var event = epoll_event()
        event.events = events
        event.data.fd = fd
        _ = epoll_ctl(epoll, operation, fd, &event)
    }

    private func acceptAll() {
        while true {
            let fd = clinux_accept4(listener, nil, nil, CLINUX_SOCK_NONBLOCK | CLINUX_SOCK_CLOEXEC)
            guard fd >= 0 else { return }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            connections[fd] = FloorConnection(fd: fd)
            watch(fd, events: CLINUX_EPOLLIN, operation: EPOLL_CTL_ADD)
        }
    }

    private func readAvailable(_ connection: FloorConnection) {
        while true {
            let count = readBuffer.withUnsafeMutableBytes { read(connection.fd, $0.baseAddress, $0.count) }
            if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) { return drop(connection) }
            if count < 0 { return }
            connection.input.append(contentsOf: readBuffer[0..<count])
            var consumed = 0
            while true {
                let parsed = connection.input.withUnsafeBytes { bytes in
                    Result { () throws(DecodeError) in
                        try FixedHeader.parse(
                            UnsafeRawBufferPointer(rebasing: bytes[consumed...]), limit: RemainingLength.maximum)
                    }
                }
                guard case .success(let parsedHeader) = parsed else { return drop(connection) }
                guard let header = parsedHeader,
                    connection.input.count - consumed - header.byteCount >= header.remainingLength
                else { break }
                let start = consumed
                let body = start + header.byteCount..<start + header.byteCount + header.remainingLength
                consumed = body.upperBound
                guard handle(header, frame: start..<body.upperBound, body: body, from: connection) else {
                    return drop(connection)
                }
            }
            connection.input.removeFirst(consumed)
            if count < readBuffer.count { return }
        }
    }

    /// Returns false for what the floor does not do (QoS 2, anything a benchmark client does not send).
    private func handle(
        _ header: FixedHeader, frame: Range<Int>, body: Range<Int>, from connection: FloorConnection
    ) -> Bool {
        let input = connection.input
        switch header.type {
        case .connect:
            send([0x20, 0x02, 0x00, 0x00], to: connection)
        case .publish:
            let qos = (header.flags >> 1) & 3
            guard qos < 2, body.count >= 2 else { return false }
            for subscriber in subscribers { send(input[frame], to: subscriber) }
            if qos == 1 {
                let id = body.lowerBound + 2 + (Int(input[body.lowerBound]) << 8 | Int(input[body.lowerBound + 1]))
                guard id + 2 <= body.upperBound else { return false }
                send([0x40, 0x02, input[id], input[id + 1]], to: connection)
            }
        case .puback:  // from a subscriber: nothing is kept to release
            break
        case .subscribe:  // every filter granted at its own QoS, capped at 1
            guard body.count >= 2 else { return false }
            var granted: [UInt8] = [input[body.lowerBound], input[body.lowerBound + 1]]
            var cursor = body.lowerBound + 2
            while cursor + 2 < body.upperBound {
                cursor += 2 + (Int(input[cursor]) << 8 | Int(input[cursor + 1]))
                guard cursor < body.upperBound else { return false }
                granted.append(min(input[cursor], 1))
                cursor += 1
            }
            send([0x90, UInt8(granted.count)] + granted, to: connection)
            if !connection.isSubscriber {
                connection.isSubscriber = true
                subscribers.append(connection)
            }
        case .pingreq:
            send([0xD0, 0x00], to: connection)
        default:  // DISCONNECT, QoS 2's packets, and what a server never receives
            return false
        }
        return true
    }

    private func send<Bytes: Collection<UInt8>>(_ bytes: Bytes, to connection: FloorConnection) {
        connection.output.append(contentsOf: bytes)
        markDirty(connection)
    }

    private func markDirty(_ connection: FloorConnection) {
        guard !connection.isDirty else { return }
        connection.isDirty = true
        dirty.append(connection)
    }

    private func flush(_ connection: FloorConnection) {
        connection.isDirty = false
        while connection.outputSent < connection.output.count {
            let sent = connection.outputSent
            let written = connection.output.withUnsafeBytes {
                write(connection.fd, $0.baseAddress! + sent, $0.count - sent)
            }
            if written < 0 && errno == EINTR { continue }
            if written < 0 && errno == EAGAIN { break }
            if written <= 0 { return drop(connection) }
            connection.outputSent += written
        }
        let wantsWritable = connection.outputSent < connection.output.count
        if !wantsWritable {
            connection.output.removeAll(keepingCapacity: true)
            connection.outputSent = 0
        }
        if wantsWritable != connection.watchesWritable {
            connection.watchesWritable = wantsWritable
            watch(
                connection.fd, events: CLINUX_EPOLLIN | (wantsWritable ? CLINUX_EPOLLOUT : 0), operation: EPOLL_CTL_MOD)
        }
    }

    private func drop(_ connection: FloorConnection) {
        guard connections.removeValue(forKey: connection.fd) != nil else { return }
        subscribers.removeAll { $0 === connection }
        close(connection.fd)
    }
}
