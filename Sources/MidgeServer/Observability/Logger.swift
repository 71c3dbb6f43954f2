// mosquitto-style logging: `log_type` selection, `log_dest` outputs (files reopened on SIGHUP, syslog),
// `log_timestamp` prefixes; safe from any thread.
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
    public static let subscribe = LogTypes(rawValue: 1 << 5)
    public static let unsubscribe = LogTypes(rawValue: 1 << 6)
    public static let websockets = LogTypes(rawValue: 1 << 7)

    public static let all: LogTypes = [
        .error, .warning, .notice, .information, .debug, .subscribe, .unsubscribe, .websockets,
    ]
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
        case "subscribe": self = .subscribe
        case "unsubscribe": self = .unsubscribe
        case "websockets": self = .websockets
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
    /// The system log, as mosquitto's `log_dest syslog` (ident `midge`, facility `log_facility`).
    case syslog
    /// `$SYS/broker/log/<E|W|N|I|M>` messages, once the server is attached (`attachTopicSink`).
    case topic
}

/// How lines are written, beyond which types and where.
public struct LogFormat: Sendable {
    public var timestamps = true
    /// An strftime(3) format in local time (`log_timestamp_format`); nil prints seconds since 1970.
    public var timestampFormat: String?
    /// False drops the lines about clients connecting and disconnecting (`connection_messages false`).
    public var connectionMessages = true
    /// LOG_LOCAL0 + n for `log_facility n`; nil is LOG_DAEMON, mosquitto's default.
    public var syslogFacility: Int?

    public init() {}
}

public struct LoggerError: Error, CustomStringConvertible {
    public let description: String
}

/// Formats and writes log lines. The level check comes before the message is built, so disabled
/// levels cost one bit test; a lock keeps lines from different loops whole, and lets SIGHUP swap files under it.
public final class Logger: Sendable {
    /// `log_type`, replaceable on SIGHUP: an atomic so the per-line check stays one load and a bit test.
    private let typeBits: Atomic<UInt8>
    /// How lines are written, replaceable on SIGHUP; read under the same lock that keeps lines whole.
    private let format: LoopLocked<LogFormat>
    /// Open outputs; empty for a logger that hands lines to a sink instead.
    private let outputs: LoopLocked<[Output]>
    /// Every finished line, for tests and embedding.
    private let sink: (@Sendable (String) -> Void)?
    /// `log_dest topic`: set once the server runs; takes the topic and the line.
    private let topicSink = LoopLocked<(@Sendable (String, String) -> Void)?>(nil)
    /// Whether `log_dest topic` was asked for.
    public let publishesToTopic: Bool

    private enum Output: Sendable {
        /// A descriptor, and the file it was opened from here (and so must be closed and reopened here).
        case descriptor(Int32, path: String?)
        case syslog
    }

    public init(
        types: LogTypes = .default, timestamps: Bool = true, destinations: [LogDestination] = [.stderr],
        format: LogFormat = LogFormat()
    ) throws(LoggerError) {
        var opened: [Output] = []
        for destination in destinations {
            switch destination {
            case .topic: break
            case .stderr: opened.append(.descriptor(STDERR_FILENO, path: nil))
            case .stdout: opened.append(.descriptor(STDOUT_FILENO, path: nil))
            case .syslog:
                // openlog keeps the ident pointer: it must live as long as the process.
                let facility = format.syslogFacility.map { LOG_LOCAL0 + Int32($0) * 8 } ?? LOG_DAEMON
                openlog(strdup("midge"), LOG_PID | LOG_NDELAY, facility)
                opened.append(.syslog)
            case .file(let path):
                do throws(LoggerError) {
                    opened.append(.descriptor(try Self.open(path), path: path))
                } catch {
                    Self.close(opened)
                    throw error
                }
            }
        }
        self.typeBits = Atomic(types.rawValue)
        var format = format
        format.timestamps = timestamps
        self.format = LoopLocked(format)
        self.outputs = LoopLocked(opened)
        self.sink = nil
        self.publishesToTopic = destinations.contains(.topic)
    }

    /// A logger that hands every finished line (without the newline) to `sink`.
    public init(
        types: LogTypes = .all, timestamps: Bool = false, format: LogFormat = LogFormat(),
        sink: @escaping @Sendable (String) -> Void
    ) {
        self.typeBits = Atomic(types.rawValue)
        var format = format
        format.timestamps = timestamps
        self.format = LoopLocked(format)
        self.outputs = LoopLocked([])
        self.sink = sink
        self.publishesToTopic = false
    }

    deinit {
        outputs.withLock { Self.close($0) }
    }

    public var types: LogTypes { LogTypes(rawValue: typeBits.load(ordering: .relaxed)) }

    /// SIGHUP: the re-read `log_type`, `log_timestamp`, `log_timestamp_format` and `connection_messages` apply
    /// from the next line; destinations and the syslog facility stay as opened.
    public func reconfigure(types: LogTypes, timestamps: Bool, format newFormat: LogFormat) {
        typeBits.store(types.rawValue, ordering: .relaxed)
        format.withLock { format in
            format.timestamps = timestamps
            format.timestampFormat = newFormat.timestampFormat
            format.connectionMessages = newFormat.connectionMessages
        }
    }

    @inline(__always)
    public func isEnabled(_ level: LogLevel) -> Bool {
        types.contains(LogTypes(level))
    }

    public func log(_ level: LogLevel, _ message: @autoclosure () -> String) {
        guard isEnabled(level) else { return }
        let text = message()
        // The core words these lines as mosquitto does; `connection_messages false` is about exactly them.
        if level >= .info && Self.isConnectionMessage(text) && !format.withLock({ $0.connectionMessages }) { return }
        write(text, priority: Self.syslogPriority(level), topicLetter: Self.topicLetter(level))
    }

    /// `log_dest topic`: from now on lines also go to `sink` as `($SYS/broker/log/X, line)`.
    public func attachTopicSink(_ sink: @escaping @Sendable (String, String) -> Void) {
        topicSink.withLock { $0 = sink }
    }

    /// `log_type subscribe` / `unsubscribe`: a subscription made or dropped, on mosquitto's `$SYS/broker/log/M/…`
    /// topics and at its syslog priority.
    public func log(_ event: SubscriptionEvent) {
        let type: LogTypes
        let topic: String
        switch event {
        case .subscribed: (type, topic) = (.subscribe, "M/subscribe")
        case .unsubscribed: (type, topic) = (.unsubscribe, "M/unsubscribe")
        }
        guard types.contains(type) else { return }
        write(event.logLine, priority: LOG_NOTICE, topicLetter: topic)
    }

    /// SIGHUP: reopens every log file by its path, so after a rotation that moved the file (logrotate
    /// `nocreate`) the next line lands in a new file. A file that cannot be opened keeps the old descriptor.
    /// Returns one line per failure.
    public func reopenFiles() -> [String] {
        var failures: [String] = []
        outputs.withLock { outputs in
            for index in outputs.indices {
                guard case .descriptor(let old, let path?) = outputs[index] else { continue }
                do throws(LoggerError) {
                    outputs[index] = .descriptor(try Self.open(path), path: path)
                    Syscall.close(old)
                } catch {
                    failures.append(error.description)
                }
            }
        }
        return failures
    }

    /// `topicLetter` nil keeps the line off `$SYS/broker/log`: debug lines, which delivering a log message to a
    /// subscriber could produce again, without end.
    private func write(_ message: String, priority: Int32, topicLetter: String?) {
        if publishesToTopic, let topicLetter, let publish = topicSink.withLock({ $0 }) {
            publish("$SYS/broker/log/\(topicLetter)", timestampPrefix() + message)
        }
        if let sink {
            sink(timestampPrefix() + message)
            return
        }
        let line = timestampPrefix() + message + "\n"
        outputs.withLock { outputs in
            for output in outputs {
                switch output {
                case .descriptor(let fd, _): Self.writeAll(fd, line)
                case .syslog:
                    message.withCString { text in withVaList([text]) { vsyslog(priority, "%s", $0) } }
                }
            }
        }
    }

    private func timestampPrefix() -> String {
        let (timestamps, pattern) = format.withLock { ($0.timestamps, $0.timestampFormat) }
        guard timestamps else { return "" }
        var now = time(nil)
        guard let pattern else { return "\(now): " }
        var parts = tm()
        localtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 256)
        let count = strftime(&buffer, buffer.count, pattern, &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self) + ": "
    }

    static func isConnectionMessage(_ text: String) -> Bool {
        if text.hasPrefix("New client connected") || text.hasPrefix("New connection from")
            || text.hasPrefix("Socket error on client")
        {
            return true
        }
        return text.hasPrefix("Client ")
            && (text.contains(" disconnected") || text.hasSuffix("closed its connection.")
                || text.hasSuffix("has exceeded timeout, disconnecting."))
    }

    /// mosquitto's `$SYS/broker/log/` letters.
    private static func topicLetter(_ level: LogLevel) -> String? {
        switch level {
        case .debug: nil
        case .info: "I"
        case .notice: "N"
        case .warning: "W"
        case .error: "E"
        }
    }

    private static func syslogPriority(_ level: LogLevel) -> Int32 {
        switch level {
        case .debug: LOG_DEBUG
        case .info: LOG_INFO
        case .notice: LOG_NOTICE
        case .warning: LOG_WARNING
        case .error: LOG_ERR
        }
    }

    private static func open(_ path: String) throws(LoggerError) -> Int32 {
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw LoggerError(description: "Unable to open log file \(path) for writing: \(reason).")
        }
        return fd
    }

    private static func close(_ outputs: [Output]) {
        for output in outputs {
            if case .descriptor(let fd, _?) = output { Syscall.close(fd) }
        }
    }

    /// Writes the whole line, riding out short writes and EINTR; a failing log output is not worth dying for.
    private static func writeAll(_ fd: Int32, _ line: String) {
        var line = line
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.write(fd, bytes.baseAddress.map { $0 + offset }, bytes.count - offset)
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
