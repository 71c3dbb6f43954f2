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
        guard let bytes = WholeFile.read(path) else { return }
        let now = Syscall.monotonicNanoseconds()
        let wallNow = WholeFile.wallNanoseconds()
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
        let bytes = history.encoded(wallNow: WholeFile.wallNanoseconds(), now: now)
        if let failure = WholeFile.replace(path, with: bytes) {
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
