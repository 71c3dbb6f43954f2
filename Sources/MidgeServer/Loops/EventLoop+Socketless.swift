// Connections with no client behind a socket of their own: the HTTP gateway's recorder, a bridge's primer, HTTP/2
// streams. Each gets a socket pair whose other end is closed at once: nothing is read from or written to it, but the
// connection's fd is closed like any other's when it ends, so the loop needs no second kind of connection.
import CLinux
import Glibc
import MidgeCore

extension EventLoop {
    /// One end of a fresh socket pair, the other end closed; nil when no pair can be made (errno says why).
    static func socketlessFD() -> Int32? {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, CLINUX_SOCK_STREAM | CLINUX_SOCK_NONBLOCK | CLINUX_SOCK_CLOEXEC, 0, &fds) == 0 else {
            return nil
        }
        Syscall.close(fds[1])
        return fds[0]
    }

    /// A socketless connection with the transport `make` builds for its id, counted among the server's
    /// connections; nil when the table is full or no socket pair can be made.
    func openSocketlessConnection(info: ConnectionInfo, _ make: (ConnectionID) -> any ConnectionTransport)
        -> ConnectionID?
    {
        guard connections.hasRoom, let fd = Self.socketlessFD() else { return nil }
        server.connectionCount.add(1, ordering: .relaxed)
        let id = connections.nextID(loop: index)
        let connection = Connection(id: id, fd: fd, info: info, hasTransport: true)
        connections.insert(connection)
        attachTransport(connection, make(id))
        return id
    }
}
