// Rate limits on one loop: new connections per second per listener (`max_connection_rate`), and PUBLISH packets
// and bytes per second per client (`max_client_message_rate`, `max_client_byte_rate`). Over a limit nothing is
// refused: the loop stops reading (the listener's backlog, the client's socket) until the next second, so TCP
// slows the sender down.
import CLinux
import Glibc
import MidgeCore

/// One loop's share of the limits and this second's usage. Windows are one second long and fixed.
struct LoopLimits {
    static let window: Int64 = 1_000_000_000

    let messageRate: Int
    let byteRate: Int
    /// Accepts per second for each listen socket group on this loop (the listener's rate split over the loops,
    /// since the kernel spreads connections over them); nil: no limit.
    let acceptRates: [Int?]
    var acceptsLeft: [Int]
    /// Listener groups whose socket is out of the epoll set until the next window.
    var pausedListeners: [Int] = []
    /// This window's PUBLISH packets and bytes per client; only clients that sent something have an entry.
    var usage: [UInt64: (messages: Int, bytes: Int)] = [:]
    /// Clients not read until the next window.
    var pausedClients: [Connection] = []
    var windowEnd: Int64

    init(settings: ServerSettings, listeners: [ListenerRuntime], now: Int64) {
        messageRate = settings.maxClientMessageRate
        byteRate = settings.maxClientByteRate
        let loops = max(1, settings.threads)
        acceptRates = listeners.map { runtime in
            guard let rate = runtime.configuration.maxConnectionRate, rate > 0 else { return nil }
            return max(1, (rate + loops - 1) / loops)
        }
        acceptsLeft = acceptRates.map { $0 ?? 0 }
        windowEnd = now + Self.window
    }

    /// Something waits for the next window, so the loop must wake for it.
    var holdsAnything: Bool { !pausedListeners.isEmpty || !pausedClients.isEmpty }
}

extension EventLoop {
    /// Takes one accept from the listener's allowance; at zero the listener leaves the epoll set until the next
    /// window and the connections wait in the kernel's backlog.
    func mayAccept(listener: Int) -> Bool {
        guard listener < limits.acceptRates.count, limits.acceptRates[listener] != nil else { return true }
        if limits.acceptsLeft[listener] > 0 {
            limits.acceptsLeft[listener] -= 1
            return true
        }
        // Also when it is paused already: resuming after an accept failure re-adds every listener.
        try? Syscall.epollControl(
            handle.epollFD, EPOLL_CTL_MOD, handle.listeners[listener].fd, events: 0,
            token: Self.listenerTokenBit | UInt64(listener))
        if !limits.pausedListeners.contains(listener) {
            limits.pausedListeners.append(listener)
            logger.log(
                .info,
                "max_connection_rate reached on port \(handle.listeners[listener].port): new connections "
                    + "wait for the next second.")
        }
        return false
    }

    func countBytes(_ connection: Connection, _ count: Int) {
        var entry = limits.usage[connection.id.rawValue] ?? (0, 0)
        entry.bytes += count
        limits.usage[connection.id.rawValue] = entry
        if entry.bytes >= limits.byteRate { throttle(connection, "max_client_byte_rate") }
    }

    func countMessage(_ connection: Connection) {
        var entry = limits.usage[connection.id.rawValue] ?? (0, 0)
        entry.messages += 1
        limits.usage[connection.id.rawValue] = entry
        if entry.messages >= limits.messageRate { throttle(connection, "max_client_message_rate") }
    }

    /// Stops reading the client for the rest of the window. What it already sent is still handled.
    private func throttle(_ connection: Connection, _ limit: String) {
        guard !connection.rateLimited, connection.state != .closing else { return }
        connection.rateLimited = true
        limits.pausedClients.append(connection)
        updateRegistration(connection)
        logger.log(
            .debug,
            "\(connection.id) from \(connection.info.remoteAddress) reached \(limit); not read until the next second.")
    }

    /// A new second: allowances refilled, paused listeners and clients read again.
    func startRateWindow() {
        limits.windowEnd = now + LoopLimits.window
        limits.usage.removeAll(keepingCapacity: true)
        for listener in limits.acceptRates.indices { limits.acceptsLeft[listener] = limits.acceptRates[listener] ?? 0 }
        if !limits.pausedListeners.isEmpty {
            let listeners = limits.pausedListeners
            limits.pausedListeners.removeAll()
            for listener in listeners where !stopping && acceptPausedUntil == nil {
                try? Syscall.epollControl(
                    handle.epollFD, EPOLL_CTL_MOD, handle.listeners[listener].fd, events: CLINUX_EPOLLIN,
                    token: Self.listenerTokenBit | UInt64(listener))
            }
        }
        if !limits.pausedClients.isEmpty {
            let clients = limits.pausedClients
            limits.pausedClients.removeAll()
            for connection in clients where connection.rateLimited {
                connection.rateLimited = false
                if connection.state != .closing && connections[connection.id] === connection {
                    updateRegistration(connection)
                }
            }
        }
    }
}
