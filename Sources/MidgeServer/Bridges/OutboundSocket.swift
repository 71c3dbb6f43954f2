// A TCP connection this broker opens (a bridge to a remote broker): name resolution, an optional local bind, and a
// connect bounded in time. Blocking, so it runs on the bridges' own queue, never on an event loop.
import CLinux
import Glibc

enum OutboundSocket {
    /// Connects to the first address `host` resolves to that accepts, within `timeoutMilliseconds` each. Returns a
    /// non-blocking socket with TCP_NODELAY, or why no address could be reached.
    static func connect(
        host: String, port: UInt16, bindAddress: String?, timeoutMilliseconds: Int32
    ) -> Result<Int32, ServerError> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0 else {
            let reason = String(cString: gai_strerror(status))
            return .failure(ServerError(description: "unable to resolve \(host): \(reason)"))
        }
        defer { freeaddrinfo(list) }
        var failure = ServerError(description: "\(host) resolves to no address")
        var entry = list
        while let current = entry {
            entry = current.pointee.ai_next
            switch attempt(current.pointee, bindAddress: bindAddress, timeoutMilliseconds: timeoutMilliseconds) {
            case .success(let fd): return .success(fd)
            case .failure(let why): failure = why
            }
        }
        return .failure(failure)
    }

    private static func attempt(_ info: addrinfo, bindAddress: String?, timeoutMilliseconds: Int32)
        -> Result<Int32, ServerError>
    {
        let fd = socket(info.ai_family, CLINUX_SOCK_STREAM | CLINUX_SOCK_NONBLOCK | CLINUX_SOCK_CLOEXEC, 0)
        guard fd >= 0 else { return .failure(ServerError(description: "socket: \(String(cString: strerror(errno)))")) }
        func fail(_ what: String, _ code: Int32) -> Result<Int32, ServerError> {
            Syscall.close(fd)
            return .failure(ServerError(description: "\(what): \(String(cString: strerror(code)))"))
        }
        if let bindAddress, let failure = bind(fd, to: bindAddress, family: info.ai_family) {
            Syscall.close(fd)
            return .failure(ServerError(description: failure))
        }
        if Glibc.connect(fd, info.ai_addr, info.ai_addrlen) != 0 {
            guard errno == EINPROGRESS else { return fail("connect", errno) }
            var poll = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = Glibc.poll(&poll, 1, timeoutMilliseconds)
            if ready == 0 { return fail("connect", ETIMEDOUT) }
            if ready < 0 { return fail("poll", errno) }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 { return fail("connect", error) }
        }
        try? Syscall.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY)
        return .success(fd)
    }

    /// `bridge_bind_address`: the local address the connection leaves from, in the remote address's family; nil
    /// when bound.
    private static func bind(_ fd: Int32, to address: String, family: Int32) -> String? {
        var hints = addrinfo()
        hints.ai_family = family
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(address, nil, &hints, &list) == 0, let local = list else {
            return "bridge_bind_address \(address) is not an address of the remote address's family"
        }
        defer { freeaddrinfo(list) }
        guard Glibc.bind(fd, local.pointee.ai_addr, local.pointee.ai_addrlen) == 0 else {
            return "bind to \(address): \(String(cString: strerror(errno)))"
        }
        return nil
    }
}
