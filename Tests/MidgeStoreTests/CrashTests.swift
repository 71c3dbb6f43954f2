// kill -9 of a process in the middle of appending: every record it had acknowledged is recovered.
import Glibc
import MQTTCodec
import XCTest

@testable import MidgeRecords
@testable import MidgeStore

final class CrashTests: XCTestCase {
    private static let childDirectoryVariable = "MIDGE_STORE_CRASH_CHILD_DIRECTORY"
    private static let childCompactionVariable = "MIDGE_STORE_CRASH_CHILD_COMPACTION_BYTES"

    func testAcknowledgedRecordsSurviveKillDashNine() throws {
        try killChildAndRecover(compactionBytes: nil)
    }

    /// The same with snapshots every few kilobytes, so the kill can land in a rotation or a snapshot.
    func testAcknowledgedRecordsSurviveKillDashNineDuringCompaction() throws {
        try killChildAndRecover(compactionBytes: 16 << 10)
    }

    /// The parent: runs `testChildAppendsUntilKilled` in a child copy of this test binary, reads the indexes it
    /// acknowledged, kills it with SIGKILL mid-stream, and recovers the directory.
    private func killChildAndRecover(compactionBytes: Int?) throws {
        let directory = TemporaryDirectory()
        var pipeEnds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&pipeEnds), 0)
        var environment = ["\(Self.childDirectoryVariable)=\(directory.path)"]
        if let compactionBytes { environment.append("\(Self.childCompactionVariable)=\(compactionBytes)") }
        let pid = try spawnChild(environment: environment, stdout: pipeEnds[1])
        close(pipeEnds[1])
        defer { close(pipeEnds[0]) }

        var highestAcknowledged = -1
        var pending: [UInt8] = []
        var killed = false
        var buffer = [UInt8](repeating: 0, count: 4096)
        // Bounded: at most 30 s, then the child is killed whatever it printed.
        var endedBy = "time limit"
        let deadline = monotonicNanoseconds() + 30_000_000_000
        while monotonicNanoseconds() < deadline {
            var poller = pollfd(fd: pipeEnds[0], events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 1000) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { read(pipeEnds[0], $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 {
                endedBy = count == 0 ? "end of output" : "read error \(errno)"
                break
            }
            pending.append(contentsOf: buffer[0..<count])
            highestAcknowledged = max(highestAcknowledged, takeAcknowledgements(&pending))
            if highestAcknowledged >= 2000 {
                kill(pid, SIGKILL)
                killed = true
                break
            }
        }
        if !killed { kill(pid, SIGKILL) }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        // What the child printed before it died was acknowledged before it died. A pipe holds at most 1 MiB,
        // 256 reads of 4 KiB: the bound is never reached, it only keeps the loop finite.
        for _ in 0..<1024 {
            let count = buffer.withUnsafeMutableBytes { read(pipeEnds[0], $0.baseAddress, $0.count) }
            if count <= 0 { break }
            pending.append(contentsOf: buffer[0..<count])
        }
        highestAcknowledged = max(highestAcknowledged, takeAcknowledgements(&pending))
        XCTAssertTrue(
            killed, "the child acknowledged only \(highestAcknowledged + 1) records (\(endedBy)), status \(status)")
        XCTAssertGreaterThanOrEqual(highestAcknowledged, 0)

        let (store, state, report) = try DurableStore.open(directory: directory.path)
        store.close()
        let missing = (0...highestAcknowledged).filter { state.retained[topic("crash/\($0)")] == nil }
        XCTAssertEqual(missing, [], report.description)
        let snapshots = directory.names.filter { $0.hasSuffix(".snap") }.count
        print("kill -9 after \(highestAcknowledged + 1) acknowledged records (\(snapshots) snapshots): \(report)")
    }

    /// The child: appends numbered records with `.always` and prints "ACK n" as each completion runs. Without the
    /// environment variable (a normal test run) it does nothing.
    func testChildAppendsUntilKilled() throws {
        guard let directory = getenv(Self.childDirectoryVariable).map({ String(cString: $0) }) else { return }
        var options = StoreOptions()
        if let bytes = getenv(Self.childCompactionVariable).flatMap({ Int(String(cString: $0)) }) {
            options = StoreOptions(compactionMinimumBytes: bytes, compactionSnapshotFactor: 1)
        }
        let (store, _, _) = try DurableStore.open(directory: directory, policy: .always, options: options)
        // Bounded: the parent kills us long before this ends.
        for index in 0..<1_000_000 {
            let record = StoreRecord.retainedSet(
                topic: topic("crash/\(index)"), payload: [UInt8](repeating: 1, count: 100), qos: .atLeastOnce)
            store.append([record]) {
                let line = Array("ACK \(index)\n".utf8)
                _ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
            }
            if index % 64 == 63 { usleep(100) }
        }
        store.close()
    }

    private func takeAcknowledgements(_ bytes: inout [UInt8]) -> Int {
        var highest = -1
        while let newline = bytes.firstIndex(of: 10) {
            let line = String(decoding: bytes[0..<newline], as: UTF8.self)
            bytes.removeSubrange(0...newline)
            if line.hasPrefix("ACK "), let index = Int(line.dropFirst(4)) { highest = max(highest, index) }
        }
        return highest
    }

    private func spawnChild(environment extra: [String], stdout: Int32) throws -> pid_t {
        let resolved = try realpathOf("/proc/self/exe")
        let executable = String(decoding: resolved.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let arguments = [executable, "MidgeStoreTests.CrashTests/testChildAppendsUntilKilled"]
        var environment =
            (try? PosixFileSystem().readFile("/proc/self/environ"))
            .map { $0.split(separator: 0).map { String(decoding: $0, as: UTF8.self) } } ?? []
        environment += extra

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv + envp { free(pointer) }
        }
        var pid = pid_t()
        let result = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard result == 0 else { throw FileError(operation: "posix_spawn", path: executable, code: result) }
        return pid
    }

    private func realpathOf(_ path: String) throws -> [CChar] {
        var resolved = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard realpath(path, &resolved) != nil else { throw FileError(operation: "realpath", path: path, code: errno) }
        return resolved
    }
}
