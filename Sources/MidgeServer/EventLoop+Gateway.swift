// The event loops as the HTTP gateway hub's host: wake-ups of subscriber transports on their own loops, and the
// recorder's connection, made on loop 0.
import CLinux
import Glibc
import MidgeCore
import Synchronization

/// Requests for a loop from the hub, which runs on whatever loop recorded a message; delivered like auth verdicts:
/// a list behind a mutex and an eventfd write when the list was empty.
final class LoopGatewayHost: GatewayHubHost {
    enum Request: Sendable {
        case wake(ConnectionID)
        case startRecorder(GatewayHub)
    }

    private final class Inbox: Sendable {
        let requests = Mutex<[Request]>([])
    }

    private let inboxes: [Inbox]
    private let handles: [LoopHandle]

    init(handles: [LoopHandle]) {
        self.handles = handles
        inboxes = handles.map { _ in Inbox() }
    }

    func startRecorder(for hub: GatewayHub) { post(.startRecorder(hub), loop: 0) }

    func wake(_ connection: ConnectionID) { post(.wake(connection), loop: connection.loop) }

    private func post(_ request: Request, loop: Int) {
        guard loop < inboxes.count else { return }
        let first = inboxes[loop].requests.withLock { inbox in
            inbox.append(request)
            return inbox.count == 1
        }
        // The loop drains its eventfd before it takes the list: a request added after the take finds it empty.
        if first { Syscall.signalEventFD(handles[loop].wakeFD) }
    }

    func take(loop: Int) -> [Request] {
        inboxes[loop].requests.withLock { inbox in
            defer { inbox = [] }
            return inbox
        }
    }
}

extension EventLoop {
    func takeGatewayRequests() {
        var woken: Set<ConnectionID> = []
        for request in server.gatewayHost.take(loop: index) {
            switch request {
            case .wake(let id):
                // One call reads everything recorded so far: several wake-ups of one turn are one poke.
                if woken.insert(id).inserted { pokeTransport(id) }
            case .startRecorder(let hub):
                startRecorder(hub)
            }
        }
    }

    /// The recorder's connection: a socket pair whose other end is closed at once, since nothing is ever written
    /// to or read from it; the connection exists so the core can address the recorder like any client.
    private func startRecorder(_ hub: GatewayHub) {
        var fds: [Int32] = [-1, -1]
        guard connections.hasRoom,
            socketpair(AF_UNIX, CLINUX_SOCK_STREAM | CLINUX_SOCK_NONBLOCK | CLINUX_SOCK_CLOEXEC, 0, &fds) == 0
        else {
            logger.log(.error, "Unable to start the HTTP gateway's recorder: \(String(cString: strerror(errno))).")
            hub.recorderStartFailed()
            return
        }
        Syscall.close(fds[1])
        server.connectionCount.add(1, ordering: .relaxed)
        let id = connections.nextID(loop: index)
        let connection = Connection(
            id: id, fd: fds[0], info: ConnectionInfo(remoteAddress: "gateway", listenerPort: 0), hasTransport: true)
        connections.insert(connection)
        let clientID = "midge-gateway-" + String(id.rawValue, radix: 16)
        attachTransport(connection, GatewayRecorder(hub: hub, clientID: clientID))
        hub.recorderStarted(id)
        logger.log(.info, "The HTTP gateway's recorder is \(clientID).")
        pokeTransport(id)
    }
}
