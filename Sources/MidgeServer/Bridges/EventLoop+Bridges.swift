// Loop 0 as the bridges' host: it makes each bridge's connection (the socket the bridge's queue connected, or a
// primer with no socket), ends it on request, and at its tick compares lazy bridges' queues with their thresholds
// and publishes their local notifications.
import CLinux
import Glibc
import MQTTCodec
import MidgeCore
import MidgeTLS

/// What a bridge asks of loop 0, through the loop's request inbox.
enum BridgeRequest {
    case adopt(BridgeSocket)
    case prime(Bridge)
    case disconnect(Bridge, reason: String)
}

/// Loop 0's view of its bridges: the connection each one has now, and the notification last published for it.
/// Confined to loop 0 like the rest of its state; debug builds check every access (see `LoopOwner`).
struct BridgeTable {
    var connections: [ObjectIdentifier: ConnectionID] {
        _read {
            assertOwned()
            yield storedConnections
        }
        _modify {
            assertOwned()
            yield &storedConnections
        }
    }
    var notified: [ObjectIdentifier: Bool] {
        _read {
            assertOwned()
            yield storedNotified
        }
        _modify {
            assertOwned()
            yield &storedNotified
        }
    }
    private var storedConnections: [ObjectIdentifier: ConnectionID] = [:]
    private var storedNotified: [ObjectIdentifier: Bool] = [:]
    #if DEBUG
        /// Loop 0's owner, set by the loop as it starts; nil (unchecked) for a table no loop holds.
        var owner: LoopOwner?
    #endif

    /// Whether the current thread may touch the table now; always true in release builds.
    var isOwnedByCurrentThread: Bool {
        #if DEBUG
            owner?.isCurrentThreadAllowed ?? true
        #else
            true
        #endif
    }

    @inline(__always)
    private func assertOwned() {
        assert(isOwnedByCurrentThread, "loop 0's bridge table touched off its thread")
    }
}

extension LoopGatewayHost: BridgeHost {
    func adopt(_ socket: BridgeSocket) { post(loop: 0) { $0.bridges.append(.adopt(socket)) } }
    func prime(_ bridge: Bridge) { post(loop: 0) { $0.bridges.append(.prime(bridge)) } }
    func disconnect(_ bridge: Bridge, reason: String) {
        post(loop: 0) { $0.bridges.append(.disconnect(bridge, reason: reason)) }
    }
}

extension EventLoop {
    func serveBridgeRequests(_ requests: [BridgeRequest]) {
        assertOwned()
        for request in requests {
            switch request {
            case .adopt(let socket): adoptBridgeSocket(socket)
            case .prime(let bridge): primeBridge(bridge)
            case .disconnect(let bridge, let reason):
                guard let id = bridgeTable.connections[ObjectIdentifier(bridge)], let connection = connections[id]
                else { continue }
                logger.log(.notice, "Bridge \(bridge.name): reconnecting, \(reason).")
                transportClosed(connection, reason: .clientDisconnected)
            }
        }
    }

    private func adoptBridgeSocket(_ socket: BridgeSocket) {
        let bridge = socket.bridge
        guard !stopping, connections.hasRoom else {
            Syscall.close(socket.fd)
            bridge.connectionEnded(idle: false)
            return
        }
        let tls: TLSConnection?
        do {
            tls = try bridge.makeTLSConnection(for: socket)
        } catch {
            logger.log(.error, "Bridge \(bridge.name): unable to start TLS: \(error).")
            Syscall.close(socket.fd)
            bridge.connectionEnded(idle: false)
            return
        }
        let id = connections.nextID(loop: index)
        do {
            try Syscall.epollControl(
                handle.epollFD, EPOLL_CTL_ADD, socket.fd, events: CLINUX_EPOLLIN | CLINUX_EPOLLRDHUP,
                token: id.rawValue)
        } catch {
            logger.log(.error, "Bridge \(bridge.name): unable to watch its connection: \(error).")
            Syscall.close(socket.fd)
            bridge.connectionEnded(idle: false)
            return
        }
        server.connectionCount.add(1, ordering: .relaxed)
        let info = ConnectionInfo(
            remoteAddress: "bridge \(bridge.name) to \(socket.address)", listenerPort: 0, isInternal: true)
        let connection = Connection(id: id, fd: socket.fd, info: info, hasTransport: true)
        connections.insert(connection)
        let tryPrivate = bridge.configuration.tryPrivate && !bridge.privateRefused.load(ordering: .relaxed)
        attachTransport(
            connection,
            BridgeTransport(
                bridge: bridge, role: .link, remoteAddress: socket.address.description, tryPrivate: tryPrivate,
                tls: tls,
                now: MonotonicTime(nanoseconds: now)))
        bridgeTable.connections[ObjectIdentifier(bridge)] = id
        pokeTransport(id)
    }

    /// The primer's connection is socketless, as the gateway recorder's.
    private func primeBridge(_ bridge: Bridge) {
        let info = ConnectionInfo(remoteAddress: "bridge \(bridge.name)", listenerPort: 0, isInternal: true)
        let opened =
            stopping
            ? nil
            : openSocketlessConnection(info: info) { _ in
                BridgeTransport(
                    bridge: bridge, role: .primer, tryPrivate: false, tls: nil, now: MonotonicTime(nanoseconds: now))
            }
        guard let id = opened else {
            logger.log(.error, "Bridge \(bridge.name): unable to set up its local session.")
            return
        }
        pokeTransport(id)
    }

    /// At loop 0's tick: each bridge's waiting messages for `/metrics`, lazy bridges started above their threshold,
    /// and `1`/`0` on the notification topic whenever the connection state changed (a `0` first, as mosquitto).
    func tickBridges(_ broker: Broker) {
        assertRunsCore()
        for bridge in server.bridges {
            let key = ObjectIdentifier(bridge)
            let pending = broker.pendingMessageCount(clientID: bridge.localClientID) ?? 0
            bridge.counters.queued.store(pending, ordering: .relaxed)
            if bridge.waitsForThreshold.load(ordering: .relaxed) && pending >= bridge.configuration.threshold {
                bridge.thresholdReached()
            }
            guard let topic = bridge.notificationTopic else { continue }
            let connected = bridge.counters.connected.load(ordering: .relaxed)
            guard bridgeTable.notified[key] != connected else { continue }
            bridgeTable.notified[key] = connected
            let message = Message(topic: topic, payload: Array((connected ? "1" : "0").utf8), qos: .atLeastOnce)
            broker.publish(message, retain: true, into: &output.actions)
            routeCoreActions()
        }
    }

    /// The connection of a bridge is gone: forget it, so a later request does not end its successor.
    func forgetBridgeConnection(_ id: ConnectionID) {
        guard !bridgeTable.connections.isEmpty else { return }
        for (key, value) in bridgeTable.connections where value == id { bridgeTable.connections[key] = nil }
    }
}
