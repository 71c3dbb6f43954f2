// Client sockets for the benchmark: blocking connect (optionally from a chosen source address), then non-blocking.
import CLinux
import Glibc

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
    static func system(_ call: String) -> BenchError {
        BenchError("\(call) failed: \(String(cString: strerror(errno)))")
    }
}

/// Opens a TCP connection to host:port. `source` (an IPv4 address) spreads connections over several loopback
/// addresses, because one source address can hold at most ~64k connections to one port.
func openConnection(host: String, port: UInt16, source: String?) throws(BenchError) -> Int32 {
    var v4 = in_addr()
    var v6 = in6_addr()
    let fd: Int32
    if inet_pton(AF_INET, host, &v4) == 1 {
        fd = socket(AF_INET, CLINUX_SOCK_STREAM | CLINUX_SOCK_CLOEXEC, 0)
        guard fd >= 0 else { throw .system("socket") }
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            guard inet_pton(AF_INET, source, &local.sin_addr) == 1 else {
                close(fd)
                throw BenchError("bad source address \(source)")
            }
            let rc = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard rc == 0 else {
                close(fd)
                throw .system("bind \(source)")
            }
        }
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = port.bigEndian
        remote.sin_addr = v4
        let rc = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            throw .system("connect \(host):\(port)")
        }
    } else if inet_pton(AF_INET6, host, &v6) == 1 {
        fd = socket(AF_INET6, CLINUX_SOCK_STREAM | CLINUX_SOCK_CLOEXEC, 0)
        guard fd >= 0 else { throw .system("socket") }
        var remote = sockaddr_in6()
        remote.sin6_family = sa_family_t(AF_INET6)
        remote.sin6_port = port.bigEndian
        remote.sin6_addr = v6
        let rc = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            throw .system("connect [\(host)]:\(port)")
        }
    } else {
        throw BenchError("host must be a numeric IPv4 or IPv6 address: \(host)")
    }
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    return fd
}

/// Raises this process's open-file limit to the hard limit; idle-connection runs need thousands of sockets.
func raiseFileLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}
