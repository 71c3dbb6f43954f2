// Running as a system service the way mosquitto does: -d, pid_file, dropping root for `user`, systemd's readiness
// protocol (sd_notify, spoken directly on NOTIFY_SOCKET), and the file system behind `include_dir`.
import Glibc
import MidgeServer

/// `include_dir` reads the real file system.
struct FileSystemConfigSource: ConfigFileSource {
    func entries(ofDirectory path: String) -> [String]? {
        guard let directory = opendir(path) else { return nil }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    func text(ofFile path: String) -> String? { readTextFile(path) }
}

/// systemd's notification protocol: one datagram per state change to the socket in NOTIFY_SOCKET (a path, or an
/// abstract name written with a leading `@`). Without the variable, as outside systemd, it does nothing.
enum ServiceNotifier {
    static func notify(_ state: String) {
        guard let target = getenv("NOTIFY_SOCKET").map({ String(cString: $0) }), target.count > 1 else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(target.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.count < capacity else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
        // An abstract name's length is exact; a path's includes nothing after it either.
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        var message = state
        message.withUTF8 { bytes in
            withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                    _ = sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), raw, length)
                }
            }
        }
    }
}

/// `-d`: the parent waits until the child is serving (or has failed), so its exit status tells the caller whether
/// the broker started, and errors before that still reach the terminal.
enum Daemon {
    /// The child's end of the pipe, set in the child.
    nonisolated(unsafe) static var readinessFD: Int32 = -1

    /// Forks; returns in the child only. Must run before any thread exists.
    static func detach() {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { fail("Error: unable to daemonise: \(String(cString: strerror(errno))).") }
        let child = fork()
        if child < 0 { fail("Error: unable to daemonise: \(String(cString: strerror(errno))).") }
        if child > 0 {
            close(fds[1])
            var byte: UInt8 = 0
            var count = 0
            repeat { count = read(fds[0], &byte, 1) } while count < 0 && errno == EINTR
            exit(count == 1 && byte == UInt8(ascii: "1") ? 0 : 1)
        }
        close(fds[0])
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        readinessFD = fds[1]
        setsid()
    }

    /// The broker serves: the parent exits 0, and the terminal is let go.
    static func ready() {
        guard readinessFD >= 0 else { return }
        var byte = UInt8(ascii: "1")
        _ = write(readinessFD, &byte, 1)
        close(readinessFD)
        readinessFD = -1
        let null = open("/dev/null", O_RDWR)
        if null >= 0 {
            for fd in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] { dup2(null, fd) }
            if null > STDERR_FILENO { close(null) }
        }
    }
}

/// `pid_file`: the file holds the pid while the broker runs.
enum PIDFile {
    static func write(_ path: String) -> String? {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            return "Unable to write pid file \(path): \(String(cString: strerror(errno))); create its directory "
                + "or fix its permissions."
        }
        defer { close(fd) }
        var text = "\(getpid())\n"
        let written = text.withUTF8 { Glibc.write(fd, $0.baseAddress, $0.count) }
        return written == text.utf8.count ? nil : "Unable to write pid file \(path)."
    }

    static func remove(_ path: String?) {
        if let path { unlink(path) }
    }
}

/// `user`: started as root, the broker switches to this account once its sockets and files are open, as mosquitto
/// does. glibc applies setuid/setgid to every thread of the process. Returns an error line, or nil.
func dropPrivileges(to name: String) -> String? {
    guard geteuid() == 0, name != "root" else { return nil }
    guard let entry = getpwnam(name) else {
        return "Unable to drop privileges to '\(name)': no such user; create it or change the user line."
    }
    let uid = entry.pointee.pw_uid
    let gid = entry.pointee.pw_gid
    guard initgroups(name, gid) == 0, setgid(gid) == 0, setuid(uid) == 0 else {
        return "Unable to drop privileges to '\(name)': \(String(cString: strerror(errno)))."
    }
    return nil
}
