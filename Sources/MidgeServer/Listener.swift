// Listening sockets: numeric addresses, one SO_REUSEPORT socket per event loop, peer address formatting.
import CLinux
import Glibc

/// A numeric IPv4 or IPv6 address, parsed once with inet_pton.
public enum IPAddress: Sendable, Equatable, CustomStringConvertible {
    case v4([UInt8])
    case v6([UInt8])

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
        }
    }

    public var description: String {
        switch self {
        case .v4(let bytes): bytes.map(String.init).joined(separator: ".")
        case .v6(let bytes): Self.format(family: AF_INET6, bytes: bytes)
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
        }
    }

    var family: Int32 {
        switch self {
        case .v4: AF_INET
        case .v6: AF_INET6
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
        default:
            return "?"
        }
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
    static func open(address: IPAddress, port: UInt16, count: Int, backlog: Int32 = 1024)
        throws(SyscallError) -> ListenSocketGroup
    {
        let probe = try makeSocket(address: address, reusePort: false)
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
                let fd = try makeSocket(address: address, reusePort: true)
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

    private static func makeSocket(address: IPAddress, reusePort: Bool) throws(SyscallError) -> Int32 {
        let fd = try Syscall.blocking("socket") {
            socket(address.family, CLINUX_SOCK_STREAM | CLINUX_SOCK_NONBLOCK | CLINUX_SOCK_CLOEXEC, 0)
        }
        do throws(SyscallError) {
            // SO_REUSEADDR: a restart must not fail on the previous run's TIME_WAIT connections.
            try Syscall.setOption(fd, SOL_SOCKET, SO_REUSEADDR)
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
