// The event loop as the host of HTTP/2 streams: a connection with no socket of its own per stream, made as the
// gateway recorder's is, so the core addresses each request's MQTT session like any client's.
import CLinux
import Glibc
import MidgeCore

extension EventLoop: StreamConnectionHost {
    func openStreamConnection(parent: ConnectionID, _ make: (ConnectionID) -> any ConnectionTransport)
        -> ConnectionID?
    {
        guard let parentConnection = connections[parent] else { return nil }
        let limit = settings.maxConnections
        let count = server.connectionCount.add(1, ordering: .relaxed).newValue
        var fds: [Int32] = [-1, -1]
        // A socket pair whose other end is closed at once: nothing is written to or read from it, but the
        // connection's fd is closed like any other's when it ends.
        guard limit < 0 || count <= limit, connections.hasRoom,
            socketpair(AF_UNIX, CLINUX_SOCK_STREAM | CLINUX_SOCK_NONBLOCK | CLINUX_SOCK_CLOEXEC, 0, &fds) == 0
        else {
            server.connectionCount.subtract(1, ordering: .relaxed)
            return nil
        }
        Syscall.close(fds[1])
        // A stream is a request as an HTTP/1.1 connection is: the listener's own max_connections counts it too.
        let runtime = transports.countedBy[parent.rawValue]
        if let runtime,
            runtime.connectionCount.add(1, ordering: .relaxed).newValue > runtime.configuration.maxConnections
        {
            runtime.connectionCount.subtract(1, ordering: .relaxed)
            server.connectionCount.subtract(1, ordering: .relaxed)
            Syscall.close(fds[0])
            return nil
        }
        let id = connections.nextID(loop: index)
        let connection = Connection(id: id, fd: fds[0], info: parentConnection.info, hasTransport: true)
        connections.insert(connection)
        attachTransport(connection, make(id))
        if let runtime { transports.countedBy[id.rawValue] = runtime }
        logger.log(.debug, "HTTP/2 stream of \(parent) is \(id) on event loop \(index).")
        // Not now: this runs inside the parent's transport call; the request starts on the next turn.
        server.gatewayHost.wake(id)
        return id
    }

    func wakeConnection(_ id: ConnectionID) {
        server.gatewayHost.wake(id)
    }
}
