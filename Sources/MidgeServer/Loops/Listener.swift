// Listening sockets: numeric addresses, host names and unix socket paths; one SO_REUSEPORT socket per event loop;
// peer address formatting.
import CLinux
import Glibc

/// A numeric IPv4 or IPv6 address, parsed once with inet_pton, or the path of a unix domain socket (which a
/// listener binds in the same places, so it is one more case rather than a parallel type).
public enum IPAddress: Sendable, Equatable, CustomStringConvertible {
    case v4([UInt8])
    case v6([UInt8])
    case unix(String)

    public static let anyIPv4 = IPAddress.v4([0, 0, 0, 0])
    public static let anyIPv6 = IPAddress.v6([UInt8](repeating: 0, count: 16))
    public static let loopbackIPv4 = IPAddress.v4([127, 0, 0, 1])
    public static let loopbackIPv6 = IPAddress.v6([UInt8](repeating: 0, count: 15) + [1])

    /// Nil unless `text` is a numeric IPv4 (`127.0.0.1`) or IPv6 (`::1`) address; host names are not resolved.
    public init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self = .v4(withUnsafeBytes(of: &v4) { Array($0) })
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            self = .v6(withUnsafeBytes(of: &v6) { Array($0) })
            return
        }
        return nil
    }

    /// The family name mosquitto uses in its "Opening … listen socket" lines.
    public var familyName: String {
        switch self {
        case .v4: "ipv4"
        case .v6: "ipv6"
        case .unix: "unix"
        }
    }

    public var description: String {
        switch self {
        case .v4(let bytes): bytes.map(String.init).joined(separator: ".")
        case .v6(let bytes): Self.format(family: AF_INET6, bytes: bytes)
        case .unix(let path): path
        }
    }

    private static func format(family: Int32, bytes: [UInt8]) -> String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let ok = bytes.withUnsafeBytes { raw in
            inet_ntop(family, raw.baseAddress, &text, socklen_t(text.count)) != nil
        }
        guard ok else { return "?" }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Calls `body` with a sockaddr for this address and `port`.
    func withSocketAddress<R, E: Error>(
        port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) throws(E) -> R
    ) throws(E) -> R {
        switch self {
        case .v4(let bytes):
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &address.sin_addr) { $0.copyBytes(from: bytes) }
            return try withUnsafePointer(to: &address) { (pointer) throws(E) in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (raw) throws(E) in
                    try body(raw, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        case .v6(let bytes):
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &address.sin6_addr) { $0.copyBytes(from: bytes) }
            return try withUnsafePointer(to: &address) { (pointer) throws(E) in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (raw) throws(E) in
                    try body(raw, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        case .unix(let path):
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            // The parser keeps paths under sun_path's 108 bytes (with its terminating zero).
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                let bytes = Array(path.utf8.prefix(raw.count - 1))
                raw.copyBytes(from: bytes)
            }
            return try withUnsafePointer(to: &address) { (pointer) throws(E) in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (raw) throws(E) in
                    try body(raw, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
        }
    }

    var family: Int32 {
        switch self {
        case .v4: AF_INET
        case .v6: AF_INET6
        case .unix: AF_UNIX
        }
    }

    /// `address:port` as mosquitto prints peers (`127.0.0.1:5555`, `::1:5555`).
    static func describePeer(_ storage: sockaddr_storage) -> String {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafeBytes(of: &storage) { raw in
                let address = raw.loadUnaligned(as: sockaddr_in.self)
                let bytes = withUnsafeBytes(of: address.sin_addr) { Array($0) }
                return "\(IPAddress.v4(bytes)):\(UInt16(bigEndian: address.sin_port))"
            }
        case AF_INET6:
            return withUnsafeBytes(of: &storage) { raw in
                let address = raw.loadUnaligned(as: sockaddr_in6.self)
                let bytes = withUnsafeBytes(of: address.sin6_addr) { Array($0) }
                return "\(IPAddress.v6(bytes)):\(UInt16(bigEndian: address.sin6_port))"
            }
        case AF_UNIX:
            return "unix socket"
        default:
            return "?"
        }
    }
}

extension ListenerConfiguration {
    /// What this listener binds: its unix socket, its numeric address, every address its host name resolves to,
    /// or the wildcard addresses; `socket_domain` keeps one family.
    func resolvedBindAddresses() throws(ServerError) -> [IPAddress] {
        if let unixSocketPath { return [.unix(unixSocketPath)] }
        guard let host else { return bindAddresses }
        var hints = addrinfo()
        hints.ai_family = socketDomain?.family ?? AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &list)
        guard status == 0 else {
            throw ServerError(
                description: "Unable to resolve the listener address \(host): \(String(cString: gai_strerror(status)))."
            )
        }
        defer { freeaddrinfo(list) }
        var addresses: [IPAddress] = []
        var entry = list
        while let current = entry {
            entry = current.pointee.ai_next
            guard let raw = current.pointee.ai_addr else { continue }
            let address: IPAddress
            switch current.pointee.ai_family {
            case AF_INET:
                let inet = UnsafeRawPointer(raw).loadUnaligned(as: sockaddr_in.self)
                address = .v4(withUnsafeBytes(of: inet.sin_addr) { Array($0) })
            case AF_INET6:
                let inet6 = UnsafeRawPointer(raw).loadUnaligned(as: sockaddr_in6.self)
                address = .v6(withUnsafeBytes(of: inet6.sin6_addr) { Array($0) })
            default:
                continue
            }
            if !addresses.contains(address) { addresses.append(address) }
        }
        guard !addresses.isEmpty else {
            throw ServerError(description: "The listener address \(host) resolves to no usable address.")
        }
        return addresses
    }
}

/// One bound address of a listener, with one socket per event loop.
struct ListenSocketGroup: Sendable {
    let address: IPAddress
    /// The real port, also when port 0 was asked for.
    let port: UInt16
    /// `fds[i]` belongs to event loop i.
    let fds: [Int32]

    /// Binds `count` SO_REUSEPORT sockets to one address, so the kernel spreads incoming connections
    /// over the loops without any hand-off between threads.
    ///
    /// A plain socket (no SO_REUSEPORT) is bound first as a probe. It fails with EADDRINUSE when anything
    /// holds the port, including another broker's SO_REUSEPORT group, which would otherwise be joined
    /// silently and handed half the connections. With port 0 it also picks the real port for the group.
    static func open(
        address: IPAddress, port: UInt16, count: Int, interface: String? = nil, backlog: Int32 = 1024
    ) throws(SyscallError) -> ListenSocketGroup {
        if case .unix = address { return try openUnix(address: address, count: count, backlog: backlog) }
        let probe = try makeSocket(address: address, reusePort: false, interface: interface)
        let realPort: UInt16
        do throws(SyscallError) {
            try bind(probe, address: address, port: port)
            realPort = port != 0 ? port : try boundPort(probe)
        } catch {
            Syscall.close(probe)
            throw error
        }
        Syscall.close(probe)
        var fds: [Int32] = []
        do throws(SyscallError) {
            for _ in 0..<count {
                let fd = try makeSocket(address: address, reusePort: true, interface: interface)
                fds.append(fd)
                try bind(fd, address: address, port: realPort)
                try Syscall.blocking("listen") { listen(fd, backlog) }
            }
        } catch {
            for fd in fds { Syscall.close(fd) }
            throw error
        }
        return ListenSocketGroup(address: address, port: realPort, fds: fds)
    }

    /// A unix socket has no SO_REUSEPORT: one socket, and a duplicate of it per loop, so each loop registers and
    /// closes its own descriptor. A socket file left by a broker that is gone is replaced; one that answers is in
    /// use, and is left alone.
    private static func openUnix(address: IPAddress, count: Int, backlog: Int32) throws(SyscallError)
        -> ListenSocketGroup
    {
        guard case .unix(let path) = address else { fatalError("BUG: openUnix with \(address)") }
        if isStaleUnixSocket(address) { unlink(path) }
        let fd = try makeSocket(address: address, reusePort: false, interface: nil)
        var fds = [fd]
        do throws(SyscallError) {
            try bind(fd, address: address, port: 0)
            try Syscall.blocking("listen") { listen(fd, backlog) }
            while fds.count < count {
                fds.append(try Syscall.blocking("fcntl") { fcntl(fd, F_DUPFD_CLOEXEC, 0) })
            }
        } catch {
            for fd in fds { Syscall.close(fd) }
            throw error
        }
        return ListenSocketGroup(address: address, port: 0, fds: fds)
    }

    /// True when a socket file exists at the path and nothing accepts connections on it.
    private static func isStaleUnixSocket(_ address: IPAddress) -> Bool {
        guard case .unix(let path) = address else { return false }
        var status = stat()
        guard lstat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFSOCK else { return false }
        let fd = socket(AF_UNIX, CLINUX_SOCK_STREAM | CLINUX_SOCK_CLOEXEC, 0)
        guard fd >= 0 else { return false }
        defer { Syscall.close(fd) }
        let answered = address.withSocketAddress(port: 0) { pointer, length in connect(fd, pointer, length) == 0 }
        return !answered && errno == ECONNREFUSED
    }

    private static func makeSocket(address: IPAddress, reusePort: Bool, interface: String?) throws(SyscallError)
        -> Int32
    {
        let fd = try Syscall.blocking("socket") {
            socket(address.family, CLINUX_SOCK_STREAM | CLINUX_SOCK_NONBLOCK | CLINUX_SOCK_CLOEXEC, 0)
        }
        do throws(SyscallError) {
            if case .unix = address { return fd }
            // SO_REUSEADDR: a restart must not fail on the previous run's TIME_WAIT connections.
            try Syscall.setOption(fd, SOL_SOCKET, SO_REUSEADDR)
            if let interface {
                // bind_interface: only connections arriving on this interface (needs CAP_NET_RAW, as in mosquitto).
                try Syscall.blocking("setsockopt(SO_BINDTODEVICE)") {
                    interface.withCString { name in
                        setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, socklen_t(strlen(name) + 1))
                    }
                }
            }
            if reusePort { try Syscall.setOption(fd, SOL_SOCKET, SO_REUSEPORT) }
            // An IPv6 socket must not claim the IPv4 port as well: both families are bound separately.
            if case .v6 = address { try Syscall.setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY) }
        } catch {
            Syscall.close(fd)
            throw error
        }
        return fd
    }

    private static func bind(_ fd: Int32, address: IPAddress, port: UInt16) throws(SyscallError) {
        _ = try address.withSocketAddress(port: port) { (pointer, length) throws(SyscallError) in
            try Syscall.blocking("bind") { Glibc.bind(fd, pointer, length) }
        }
    }

    private static func boundPort(_ fd: Int32) throws(SyscallError) -> UInt16 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try withUnsafeMutablePointer(to: &storage) { (pointer) throws(SyscallError) in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (address) throws(SyscallError) in
                try Syscall.blocking("getsockname") { getsockname(fd, address, &length) }
            }
        }
        return withUnsafeBytes(of: &storage) { raw in
            // sin_port and sin6_port sit at the same offset, right after the family.
            UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        }
    }
}
