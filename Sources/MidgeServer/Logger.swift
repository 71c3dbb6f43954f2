// mosquitto-style logging: `log_type` selection, `log_dest` outputs, `log_timestamp` prefixes; safe from any thread.
import Glibc
import MidgeCore
import Synchronization

/// The message classes of mosquitto's `log_type`.
public struct LogTypes: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let error = LogTypes(rawValue: 1 << 0)
    public static let warning = LogTypes(rawValue: 1 << 1)
    public static let notice = LogTypes(rawValue: 1 << 2)
    public static let information = LogTypes(rawValue: 1 << 3)
    public static let debug = LogTypes(rawValue: 1 << 4)

    public static let all: LogTypes = [.error, .warning, .notice, .information, .debug]
    /// mosquitto's default when no `log_type` line is given.
    public static let `default`: LogTypes = [.error, .warning, .notice, .information]

    /// The `log_type` value naming this set, or nil for an unknown name.
    public init?(name: String) {
        switch name {
        case "error": self = .error
        case "warning": self = .warning
        case "notice": self = .notice
        case "information": self = .information
        case "debug": self = .debug
        case "all": self = .all
        case "none": self = []
        default: return nil
        }
    }

    init(_ level: LogLevel) {
        switch level {
        case .debug: self = .debug
        case .info: self = .information
        case .notice: self = .notice
        case .warning: self = .warning
        case .error: self = .error
        }
    }
}

/// Where log lines go (`log_dest`).
public enum LogDestination: Sendable, Equatable {
    case stderr
    case stdout
    case file(String)
}

public struct LoggerError: Error, CustomStringConvertible {
    public let description: String
}

/// Formats and writes log lines. The level check comes before the message is built, so disabled
/// levels cost one bit test; a lock keeps lines from different loops whole.
public final class Logger: Sendable {
    public let types: LogTypes
    public let timestamps: Bool
    private let output: Output
    private let lock = Mutex<Void>(())

    private enum Output: Sendable {
        /// File descriptors, and whether each was opened here (and so must be closed here).
        case descriptors([(fd: Int32, owned: Bool)])
        /// Every finished line, for tests and embedding.
        case lines(@Sendable (String) -> Void)
    }

    public init(types: LogTypes = .default, timestamps: Bool = true, destinations: [LogDestination] = [.stderr])
        throws(LoggerError)
    {
        var descriptors: [(fd: Int32, owned: Bool)] = []
        for destination in destinations {
            switch destination {
            case .stderr: descriptors.append((STDERR_FILENO, false))
            case .stdout: descriptors.append((STDOUT_FILENO, false))
            case .file(let path):
                let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
                guard fd >= 0 else {
                    let reason = String(cString: strerror(errno))
                    for (fd, owned) in descriptors where owned { Syscall.close(fd) }
                    throw LoggerError(description: "Unable to open log file \(path) for writing: \(reason).")
                }
                descriptors.append((fd, true))
            }
        }
        self.types = types
        self.timestamps = timestamps
        self.output = .descriptors(descriptors)
    }

    /// A logger that hands every finished line (without the newline) to `sink`.
    public init(types: LogTypes = .all, timestamps: Bool = false, sink: @escaping @Sendable (String) -> Void) {
        self.types = types
        self.timestamps = timestamps
        self.output = .lines(sink)
    }

    deinit {
        if case .descriptors(let descriptors) = output {
            for (fd, owned) in descriptors where owned { Syscall.close(fd) }
        }
    }

    @inline(__always)
    public func isEnabled(_ level: LogLevel) -> Bool {
        types.contains(LogTypes(level))
    }

    public func log(_ level: LogLevel, _ message: @autoclosure () -> String) {
        guard isEnabled(level) else { return }
        var line = timestamps ? "\(time(nil)): " : ""
        line += message()
        switch output {
        case .lines(let sink):
            sink(line)
        case .descriptors(let descriptors):
            line += "\n"
            lock.withLock { _ in
                for (fd, _) in descriptors { Self.writeAll(fd, line) }
            }
        }
    }

    /// Writes the whole line, riding out short writes and EINTR; a failing log output is not worth dying for.
    private static func writeAll(_ fd: Int32, _ line: String) {
        var line = line
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(fd, bytes.baseAddress.map { $0 + offset }, bytes.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }
}
