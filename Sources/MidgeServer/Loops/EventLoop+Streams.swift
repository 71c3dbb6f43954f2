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
        // A socketless connection (see `openSocketlessConnection`), counted against max_connections first.
        guard limit < 0 || count <= limit, connections.hasRoom, let fd = Self.socketlessFD() else {
            server.connectionCount.subtract(1, ordering: .relaxed)
            return nil
        }
        // A stream is a request as an HTTP/1.1 connection is: the listener's own max_connections counts it too.
        let runtime = transports.countedBy[parent.rawValue]
        if let runtime,
            runtime.connectionCount.add(1, ordering: .relaxed).newValue > runtime.configuration.maxConnections
        {
            runtime.connectionCount.subtract(1, ordering: .relaxed)
            server.connectionCount.subtract(1, ordering: .relaxed)
            Syscall.close(fd)
            return nil
        }
        let id = connections.nextID(loop: index)
        let connection = Connection(id: id, fd: fd, info: parentConnection.info, hasTransport: true)
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
