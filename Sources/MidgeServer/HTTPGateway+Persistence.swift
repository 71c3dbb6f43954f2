// The HTTP gateway's history across restarts (`persistence true`): read at start-up, written every few seconds
// while it changes and once more at shutdown.
import Dispatch
import Glibc
import MidgeCore
import MidgeGateway
import Synchronization

/// Why a snapshot and not a log: the history is a buffer that forgets on its own (`http_history_seconds`), so
/// rewriting it whole every `saveInterval` while messages arrive costs at most its size (`http_history_bytes`)
/// per interval, off the loops, and a crash loses at most the last interval's messages, which is what the history
/// promises anyway: recent messages, best effort. Acknowledged QoS 1/2 messages are the store's business, and
/// persistent MQTT sessions keep them; the history only lets HTTP clients resume.
extension HTTPGateway {
    static let saveInterval = 5.0

    /// `DIR/http-history-PORT.midge`, in `persistence_location`.
    static func historyPath(directory: String, port: UInt16) -> String {
        directory + "/http-history-\(port).midge"
    }

    /// Reads the history written by an earlier run, if there is one; a damaged file is logged and set aside.
    func loadHistory() {
        guard let path = historyFile else { return }
        guard let bytes = HistoryFile.read(path) else { return }
        let now = Syscall.monotonicNanoseconds()
        let wallNow = HistoryFile.wallNanoseconds()
        guard let history = TopicHistory.decode(bytes, limits: settings.history, wallNow: wallNow, now: now) else {
            logger?.log(.error, "The HTTP gateway's history \(path) is damaged; starting with an empty one.")
            _ = rename(path, path + ".damaged")
            return
        }
        hub.restore(history)
        logger?.log(.notice, "Restored \(history.count) HTTP gateway messages from \(path).")
    }

    /// Writes the history if it changed since the last time. Called on the save queue and at shutdown.
    func saveHistoryIfChanged() {
        guard let path = historyFile else { return }
        let now = Syscall.monotonicNanoseconds()
        guard let history = hub.takeChangedHistory(now: now) else { return }
        let bytes = history.encoded(wallNow: HistoryFile.wallNanoseconds(), now: now)
        if let failure = HistoryFile.replace(path, with: bytes) {
            logger?.log(.error, "Unable to write the HTTP gateway's history \(path): \(failure).")
        }
    }

    /// Every write runs on `historyQueue`, so the periodic ones and the last one never overlap.
    func startSavingHistory() {
        guard historyFile != nil else { return }
        savingHistory.store(true, ordering: .relaxed)
        scheduleHistorySave()
    }

    private func scheduleHistorySave() {
        historyQueue.asyncAfter(deadline: .now() + Self.saveInterval) { [self] in
            guard savingHistory.load(ordering: .relaxed) else { return }
            saveHistoryIfChanged()
            scheduleHistorySave()
        }
    }

    /// Stops the periodic writes and writes what changed since the last one.
    func stopSavingHistory() {
        guard historyFile != nil else { return }
        historyQueue.sync {
            savingHistory.store(false, ordering: .relaxed)
            saveHistoryIfChanged()
        }
    }
}

/// Whole-file reads and atomic replacement (write a temporary file, fsync, rename, fsync the directory); the
/// executable reads its configuration and key files with `read` too.
public enum HistoryFile {
    public static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                bytes.append(contentsOf: chunk[0..<count])
            } else if count == 0 {
                return bytes
            } else if errno != EINTR {
                return nil
            }
        }
    }

    /// Nil on success, else what failed.
    static func replace(_ path: String, with bytes: [UInt8]) -> String? {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return "open: \(String(cString: strerror(errno)))" }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written > 0 {
                offset += written
            } else if errno != EINTR {
                let reason = String(cString: strerror(errno))
                close(fd)
                return "write: \(reason)"
            }
        }
        let synced = fsync(fd) == 0
        close(fd)
        guard synced else { return "fsync: \(String(cString: strerror(errno)))" }
        guard rename(temporary, path) == 0 else { return "rename: \(String(cString: strerror(errno)))" }
        let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let directoryFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            _ = fsync(directoryFD)
            close(directoryFD)
        }
        return nil
    }

    static func wallNanoseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}
