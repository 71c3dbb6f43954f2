// The event loops as the HTTP gateway hub's host: wake-ups of subscriber transports on their own loops, and the
// recorder's connection, made on loop 0.
import CLinux
import Glibc
import MidgeCore
import Synchronization

/// Requests for a loop from other threads: the hub's (it runs on whatever loop recorded a message) and the bridges'
/// (their connections, made on loop 0). Delivered like auth verdicts: behind a `LoopLocked`, with an eventfd write
/// when there were none.
final class LoopGatewayHost: GatewayHubHost {
    /// One loop's requests. Wake-ups are a set: a busy topic wakes a subscriber once per turn, not once per message.
    struct Requests {
        var wakes: Set<ConnectionID> = []
        var recorders: [GatewayHub] = []
        var bridges: [BridgeRequest] = []
        var isEmpty: Bool { wakes.isEmpty && recorders.isEmpty && bridges.isEmpty }
    }

    private final class Inbox: Sendable {
        let requests = LoopLocked(Requests())
    }

    private let inboxes: [Inbox]
    private let handles: [LoopHandle]

    init(handles: [LoopHandle]) {
        self.handles = handles
        inboxes = handles.map { _ in Inbox() }
    }

    func startRecorder(for hub: GatewayHub) {
        post(loop: 0) { $0.recorders.append(hub) }
    }

    func wake(_ connection: ConnectionID) {
        post(loop: connection.loop) { $0.wakes.insert(connection) }
    }

    func post(loop: Int, _ add: (inout Requests) -> Void) {
        guard loop < inboxes.count else { return }
        let first = inboxes[loop].requests.withLock { requests in
            let wasEmpty = requests.isEmpty
            add(&requests)
            return wasEmpty
        }
        // The loop drains its eventfd before it takes the requests: one added after the take finds them empty.
        if first { Syscall.signalEventFD(handles[loop].wakeFD) }
    }

    func take(loop: Int) -> Requests {
        inboxes[loop].requests.withLock { requests in
            defer { requests = Requests() }
            return requests
        }
    }
}

extension EventLoop {
    func takeGatewayRequests() {
        let requests = server.gatewayHost.take(loop: index)
        for hub in requests.recorders { startRecorder(hub) }
        if !requests.bridges.isEmpty { serveBridgeRequests(requests.bridges) }
        for id in requests.wakes { pokeTransport(id) }
    }

    /// The recorder's connection: a socketless one, so the core can address the recorder like any client.
    private func startRecorder(_ hub: GatewayHub) {
        var clientID = ""
        let info = ConnectionInfo(remoteAddress: "gateway", listenerPort: 0)
        let opened = openSocketlessConnection(info: info) { id in
            // The random user name in the client id: a client that could guess the id would take the session over.
            clientID = GatewayHub.recorderUsername + "-" + String(id.rawValue, radix: 16)
            return GatewayRecorder(hub: hub, clientID: clientID)
        }
        guard let id = opened else {
            logger.log(.error, "Unable to start the HTTP gateway's recorder: \(String(cString: strerror(errno))).")
            hub.recorderStartFailed()
            return
        }
        hub.recorderStarted(id)
        logger.log(.info, "The HTTP gateway's recorder is \(clientID).")
        pokeTransport(id)
    }
}
