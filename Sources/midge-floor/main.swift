// midge-floor: a relay that does the least any broker does for midge-bench's scenarios (see FloorRelay), so a
// benchmark can show how much of a figure belongs to the machine rather than to either broker.
//
//   midge-floor --port N        listens on 127.0.0.1:N
import CLinux
import Glibc

func listenOnLoopback(port: UInt16) -> Int32 {
    let fd = socket(AF_INET, CLINUX_SOCK_STREAM | CLINUX_SOCK_NONBLOCK | CLINUX_SOCK_CLOEXEC, 0)
    precondition(fd >= 0, "socket failed")
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0, listen(fd, 128) == 0 else {
        print("midge-floor: cannot listen on 127.0.0.1:\(port): \(String(cString: strerror(errno)))")
        exit(1)
    }
    return fd
}

let arguments = CommandLine.arguments
guard arguments.count == 3, arguments[1] == "--port", let port = UInt16(arguments[2]) else {
    print("usage: midge-floor --port N")
    exit(2)
}
signal(SIGPIPE, SIG_IGN)
FloorRelay(listener: listenOnLoopback(port: port)).run()
