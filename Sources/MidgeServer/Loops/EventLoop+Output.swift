// Writing: the core's actions for this loop's connections, PUBLISH encoding into pooled buffers, one flush per
// dirty connection per turn, output congestion reported to the core, closing.
import CLinux
import Glibc
import MQTTCodec
import MidgeCore

extension EventLoop {
    /// Carries out one of the core's actions for a connection of this loop. One flat pattern per case: matching
    /// the outbound packet in a nested switch made the compiler copy the whole action first.
    func apply(_ action: borrowing Action) {
        assertOwned()
        switch action {
        case .send(let id, .publish(let delivery)):
            guard let connection = connections[id], connection.state != .closing else { return }
            prepareOutput(connection)
            settings.metrics.loops[index].countPublishSent(delivery.qos, payloadBytes: delivery.message.payload.count)
            Publish.encode(
                topic: delivery.message.topic, payload: delivery.message.payload, qos: delivery.qos,
                retain: delivery.retain, dup: delivery.dup, packetID: delivery.packetID,
                droppingTopicPrefix: connection.info.mountPoint.count, into: &connection.output)
            markDirty(connection)
        case .send(let id, .control(let control)):
            guard let connection = connections[id], connection.state != .closing else { return }
            prepareOutput(connection)
            settings.metrics.loops[index].countControlSent()
            control.encode(into: &connection.output)
            markDirty(connection)
        case .close(let id, _):
            // The core has forgotten the connection already: no report back.
            guard let connection = connections[id] else { return }
            connection.reachedCore = false
            beginClose(connection)
        case .admit(let request):
            admit(request)
        }
    }

    /// Carries out one of the core's pauses or resumes for a connection of this loop.
    func apply(_ change: ReadingChange) {
        assertOwned()
        switch change {
        case .pause(let id):
            guard let connection = connections[id] else { return }
            hold(connection)
        case .resume(let id):
            guard let connection = connections[id] else { return }
            release(connection)
        case .confirmOutput(let id):
            guard let connection = connections[id] else { return }
            // Answered by `noteOutputLevel` at the end of this turn, once the deliveries before it are encoded.
            connection.confirmationAsked = true
            markDirty(connection)
        }
    }

    /// Gives a connection without an output buffer one from the pool, before anything is encoded into it.
    @inline(__always)
    func prepareOutput(_ connection: Connection) {
        if connection.output.capacity == 0, let buffer = outputPool.popLast() { connection.output = buffer }
    }

    func markDirty(_ connection: Connection) {
        assertOwned()
        guard !connection.isDirty else { return }
        connection.isDirty = true
        dirty.append(connection)
    }

    func beginClose(_ connection: Connection) {
        guard connection.state != .closing else { return }
        connection.state = .closing
        connection.input = []
        if connection.hasTransport { closeTransport(connection) }
        markDirty(connection)
    }

    /// Writes what is unsent, usually in one `write`. On EAGAIN keeps the rest and asks for EPOLLOUT.
    /// Returns why the socket failed, or nil. A fully written buffer goes back to the pool.
    func flush(_ connection: Connection) -> String? {
        if connection.hasTransport, let reason = sealTransportOutput(connection) { return reason.description }
        // Writing and compacting move the output's start: the transport's mark of what is sealed moves with it.
        defer { if connection.hasTransport { transportOutputWritten(connection) } }
        while connection.outputSent < connection.output.count {
            let sent = connection.outputSent
            let attempt = connection.output.withUnsafeBytes { bytes in
                Result { () throws(SyscallError) in
                    try Syscall.write(connection.fd, from: UnsafeRawBufferPointer(rebasing: bytes[sent...]))
                }
            }
            let result: IOResult<Int>
            switch attempt {
            case .success(let value): result = value
            case .failure(let error): return "write failed: \(String(cString: strerror(error.errno)))"
            }
            switch result {
            case .done(let written):
                settings.metrics.loops[index].countWritten(written)
                connection.outputSent += written
            case .wouldBlock:
                if connection.state != .closing && !connection.watchesWritable {
                    connection.watchesWritable = true
                    updateRegistration(connection)
                }
                // Compact once the written prefix dominates, so appends do not grow the buffer forever.
                if connection.outputSent >= 64 * 1024 && connection.outputSent * 2 >= connection.output.count {
                    connection.output.removeFirst(connection.outputSent)
                    connection.outputSent = 0
                }
                return nil
            }
        }
        recycleOutput(connection)
        if connection.watchesWritable && connection.state != .closing {
            connection.watchesWritable = false
            updateRegistration(connection)
        }
        return nil
    }

    /// Takes the connection's (written) output buffer back into the pool, or frees it if the pool is full or the
    /// buffer grew large in a burst.
    private func recycleOutput(_ connection: Connection) {
        connection.outputSent = 0
        guard connection.output.capacity > 0 else { return }
        var buffer: [UInt8] = []
        swap(&buffer, &connection.output)
        if buffer.capacity <= settings.pooledOutputCapacity && outputPool.count < settings.outputPoolSize {
            buffer.removeAll(keepingCapacity: true)
            outputPool.append(buffer)
        }
    }

    /// Tells the core when the connection's unsent output crosses the high-water mark and when it is back at the
    /// low-water mark, so deliveries wait in its session queue (bounded, under the queue-full policy) rather
    /// than in this buffer.
    func noteOutputLevel(_ connection: Connection) {
        if !connection.reachedCore {
            noteTransportOutputLevel(connection)
            return
        }
        guard connection.state == .connected else { return }
        let unsent = connection.unsentCount
        if connection.confirmationAsked {
            connection.confirmationAsked = false
            report(.outputConfirmed(connection.id))
        }
        if !connection.outputCongested {
            if unsent >= settings.congestionHighWater {
                connection.outputCongested = true
                report(.outputCongested(connection.id))
            }
        } else if unsent <= settings.congestionLowWater {
            connection.outputCongested = false
            report(.outputDrained(connection.id))
            // An HTTP subscriber stopped reading the gateway's history while congested: it reads on next turn.
            if connection.hasTransport { server.gatewayHost.wake(connection.id) }
        }
    }

    /// A transport that is no MQTT client itself (an HTTP/2 connection) still must not be fed while its socket is
    /// congested: the core hears nothing of it, but `pokeTransport` skips it and the drain wakes it.
    private func noteTransportOutputLevel(_ connection: Connection) {
        guard connection.hasTransport, connection.state == .awaitingConnect else { return }
        let unsent = connection.unsentCount
        if !connection.outputCongested {
            if unsent >= settings.congestionHighWater { connection.outputCongested = true }
        } else if unsent <= settings.congestionLowWater {
            connection.outputCongested = false
            server.gatewayHost.wake(connection.id)
        }
    }

    /// The end of a turn's writing: every dirty connection is flushed once, and closed if it is closing.
    func flushDirtyConnections() {
        assertOwned()
        // Index loop: flushing can fail, and reporting that to the core (on loop 0) can dirty more connections.
        var position = 0
        while position < dirty.count {
            let connection = dirty[position]
            position += 1
            connection.isDirty = false
            if let failure = flush(connection), connection.state != .closing {
                connectionLost(connection, reason: .connectionLost(failure))
            }
            if connection.state == .closing {
                close(connection)
            } else {
                noteOutputLevel(connection)
            }
        }
        dirty.removeAll(keepingCapacity: true)
    }

    /// The fd leaves the epoll set by itself when closed (it is never duplicated).
    func close(_ connection: Connection) {
        assertOwned()
        guard connections.remove(connection.id) else { return }
        forget(connection)
        Syscall.close(connection.fd)
        connection.output = []
        connection.input = []
        server.connectionCount.subtract(1, ordering: .relaxed)
    }
}
