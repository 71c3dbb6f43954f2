// Bounded waits for tests that must let another thread or process catch up.

import Foundation
import Glibc

/// Polls `condition` every millisecond for at most `seconds`; returns whether it became true. For waiting on another
/// thread, never for judging speed.
public func eventually(seconds: Double = 20, _ condition: () -> Bool) -> Bool {
    let limit = Int(seconds * 1000)
    for _ in 0..<limit {
        if condition() { return true }
        usleep(1000)
    }
    return condition()
}

/// Whether a TCP connection to 127.0.0.1:`port` is accepted now.
public func isListening(port: UInt16) -> Bool {
    guard let probe = try? RawClient(port: port, name: "listening probe", timeoutSeconds: 1) else { return false }
    probe.close()
    return true
}

/// Waits until `process` (a broker started by the test) accepts connections on `port`, at most 100 tries 50 ms apart.
public func waitUntilListening(port: UInt16, process: Process) throws {
    for _ in 0..<100 {
        guard process.isRunning else {
            throw TestError(
                "\(process.executableURL?.lastPathComponent ?? "the broker") exited with status "
                    + "\(process.terminationStatus)")
        }
        if isListening(port: port) { return }
        usleep(50_000)
    }
    throw TestError("nothing listening on port \(port) after 5 s")
}
