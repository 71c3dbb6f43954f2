// Starts and stops the broker under test (midge, or mosquitto as the reference) on a free loopback port.

import Foundation
import Glibc
import MQTTTestSupport

enum BrokerKind: Equatable {
    case midge
    case mosquitto

    /// `CONFORMANCE_BROKER=mosquitto` runs the suite against the reference broker; anything else tests midge.
    static var current: BrokerKind {
        ProcessInfo.processInfo.environment["CONFORMANCE_BROKER"] == "mosquitto" ? .mosquitto : .midge
    }
}

final class BrokerProcess: @unchecked Sendable {
    let kind: BrokerKind
    let port: UInt16
    let logURL: URL
    private let directory: URL
    private let process: Process

    /// Starts a broker with `config` lines added after its listener and waits until it accepts connections.
    /// `allow_anonymous true` is added unless the lines set `allow_anonymous` themselves.
    init(config: [String] = [], kind: BrokerKind = .current) throws {
        self.kind = kind
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("conformance-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        logURL = directory.appendingPathComponent("broker.log")
        port = try BrokerProcess.freePort()

        process = Process()
        var arguments: [String]
        if kind == .midge && config.isEmpty {
            arguments = ["-p", String(port)]
        } else {
            var lines = ["listener \(port) 127.0.0.1"]
            lines += config
            if !config.contains(where: { $0.hasPrefix("allow_anonymous") }) {
                lines.append("allow_anonymous true")
            }
            if kind == .mosquitto {
                lines += ["log_dest stderr", "log_type all"]
            }
            let configURL = directory.appendingPathComponent("broker.conf")
            try (lines.joined(separator: "\n") + "\n").write(to: configURL, atomically: true, encoding: .utf8)
            arguments = ["-c", configURL.path]
        }
        process.executableURL = try BrokerProcess.executable(kind)
        process.arguments = arguments
        FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: logURL)
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try log.close()
        // Every listener must accept before a test starts, not only the first one opened.
        let extraPorts = config.compactMap { line -> UInt16? in
            let words = line.split(separator: " ")
            return words.count >= 2 && words[0] == "listener" ? UInt16(words[1]) : nil
        }
        for listenerPort in [port] + extraPorts {
            try waitUntilReady(port: listenerPort)
        }
    }

    /// A scratch directory for files a test must write before the broker starts (password or ACL files).
    static func makeScratchDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("conformance-files-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    var pid: pid_t { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// Stops the broker by its PID: SIGTERM, then SIGKILL if it has not exited within a bounded wait.
    func stop() {
        guard process.isRunning else { return }
        kill(pid, SIGTERM)
        for _ in 0..<100 where process.isRunning {
            usleep(20_000)
        }
        if process.isRunning {
            kill(pid, SIGKILL)
            for _ in 0..<100 where process.isRunning {
                usleep(20_000)
            }
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// The last `lines` lines of the broker's log, for a failing test's output.
    func logTail(lines: Int = 80) -> String {
        guard let data = try? Data(contentsOf: logURL) else { return "(no log)" }
        let text = String(decoding: data, as: UTF8.self)
        let all = text.split(separator: "\n", omittingEmptySubsequences: false)
        return all.suffix(lines).joined(separator: "\n")
    }

    private func waitUntilReady(port: UInt16) throws {
        for _ in 0..<200 {
            guard process.isRunning else {
                throw TestError("\(kind) exited during start-up (status \(process.terminationStatus)):\n\(logTail())")
            }
            if isListening(port: port) { return }
            usleep(25_000)
        }
        stop()
        throw TestError("\(kind) did not accept connections on port \(port):\n\(logTail())")
    }

    /// Binds port 0 on loopback to let the kernel pick a free port, then releases it for the broker.
    static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw TestError("bind: \(String(cString: strerror(errno)))") }
        return UInt16(bigEndian: address.sin_port)
    }

    /// mosquitto from the system, or the `midge` built next to this test bundle (`MIDGE_BINARY` overrides).
    static func executable(_ kind: BrokerKind) throws -> URL {
        switch kind {
        case .mosquitto:
            return URL(fileURLWithPath: "/usr/sbin/mosquitto")
        case .midge:
            if let path = ProcessInfo.processInfo.environment["MIDGE_BINARY"] {
                return URL(fileURLWithPath: path)
            }
            // The test bundle lives in the build products directory (e.g. `debug/MidgePackageTests.xctest`).
            let candidates =
                [Bundle.main.bundleURL, Bundle(for: BrokerProcess.self).bundleURL]
                + [URL(fileURLWithPath: CommandLine.arguments.first ?? ".")]
            for candidate in candidates {
                let url = candidate.deletingLastPathComponent().appendingPathComponent("midge")
                if FileManager.default.isExecutableFile(atPath: url.path) { return url }
            }
            throw TestError("no midge executable next to the test bundle; build it first or set MIDGE_BINARY")
        }
    }
}
