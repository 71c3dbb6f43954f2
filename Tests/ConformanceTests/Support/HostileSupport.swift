// Helpers for the hostile-input tests (§2.2.3, §4.8): the broker's memory and descriptors from procfs, its log
// after a point, and a fast reader for floods of numbered PUBLISHes.

import Foundation
import Glibc
import MQTTTestSupport
import Synchronization
import XCTest

/// What procfs says about the broker's memory, in KiB.
struct BrokerMemory: CustomStringConvertible {
    /// Resident now (VmRSS).
    var residentKB: Int
    /// The largest resident size so far (VmHWM): a burst between two samples still shows here.
    var peakResidentKB: Int
    /// Private writable mappings (VmData): grows with every malloc'd block even when its pages are never touched,
    /// so it shows a buffer sized by a length field that was reserved but not filled.
    var dataKB: Int

    var description: String { "RSS \(residentKB) KiB (peak \(peakResidentKB) KiB), data \(dataKB) KiB" }
}

extension BrokerProcess {
    /// The broker's memory figures from `/proc/PID/status`.
    func memory() throws -> BrokerMemory {
        let path = "/proc/\(pid)/status"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw TestError("cannot read \(path): the broker is gone")
        }
        var fields: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let number = parts[1].split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) }
            if let number { fields[String(parts[0])] = number }
        }
        guard let rss = fields["VmRSS"], let hwm = fields["VmHWM"], let data = fields["VmData"] else {
            throw TestError("\(path) has no VmRSS/VmHWM/VmData")
        }
        return BrokerMemory(residentKB: rss, peakResidentKB: hwm, dataKB: data)
    }

    /// How many descriptors the broker has open: each live client connection holds one.
    func openDescriptorCount() throws -> Int {
        let path = "/proc/\(pid)/fd"
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: path) else {
            throw TestError("cannot list \(path): the broker is gone")
        }
        return entries.count
    }

    /// Waits (bounded) until the broker holds at most `limit` descriptors; returns the last count seen.
    func waitForDescriptors(atMost limit: Int, timeout: Double) throws -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        var count = try openDescriptorCount()
        while count > limit && Date() < deadline {
            usleep(50_000)
            count = try openDescriptorCount()
        }
        return count
    }

    /// The descriptor count once it has stopped changing (three equal samples 100 ms apart, within 5 s), for a
    /// baseline taken after connections that were just closed have been reaped.
    func settledDescriptorCount() throws -> Int {
        var count = try openDescriptorCount()
        var equalSamples = 0
        for _ in 0..<50 where equalSamples < 2 {
            usleep(100_000)
            let sample = try openDescriptorCount()
            equalSamples = sample == count ? equalSamples + 1 : 0
            count = sample
        }
        return count
    }

    /// The log's current length in bytes: pass it to `logText(after:)` to see only what is logged later.
    var logLength: Int {
        (try? FileManager.default.attributesOfItem(atPath: logURL.path)[.size] as? Int) ?? 0
    }

    /// The log written after `offset`.
    func logText(after offset: Int) -> String {
        guard let data = try? Data(contentsOf: logURL), data.count > offset else { return "" }
        return String(decoding: data[offset...], as: UTF8.self)
    }

    /// Waits (bounded) until a line logged after `offset` contains `needle`; returns that line or nil.
    func waitForLogLine(containing needle: String, after offset: Int, timeout: Double = 5) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            let text = logText(after: offset)
            if let line = text.split(separator: "\n").first(where: { $0.contains(needle) }) { return String(line) }
            usleep(20_000)
        } while Date() < deadline
        return nil
    }
}

/// Numbered payloads for flood tests: an 8-byte big-endian sequence number, then filler up to `size`.
enum NumberedPayload {
    static func make(_ sequence: UInt64, size: Int) -> [UInt8] {
        var bytes = (0..<8).map { UInt8(truncatingIfNeeded: sequence >> (56 - 8 * UInt64($0))) }
        if size > 8 { bytes += [UInt8](repeating: 0x2E, count: size - 8) }
        return bytes
    }
}

/// Reads a stream of PUBLISHes straight off a `RawClient`'s bytes without decoding each through the codec, so a
/// test can take a flood of them at the broker's pace. Only the sequence number of each payload is kept.
final class PublishStreamReader {
    private let client: RawClient
    private var buffer: [UInt8] = []
    private var start = 0
    /// Sequence numbers in arrival order.
    private(set) var sequences: [UInt64] = []
    /// Something other than a PUBLISH, or a frame the reader could not parse, ends the stream with this.
    private(set) var failure: String?

    init(client: RawClient) {
        self.client = client
    }

    /// Reads until `stop` holds for the last sequence number, the connection ends, nothing arrives for
    /// `idle` seconds, or `deadline` passes. Returns true if `stop` was satisfied.
    func read(until stop: (UInt64) -> Bool, idle: Double, deadline: Date) -> Bool {
        for _ in 0..<10_000_000 {
            while let sequence = nextSequence() {
                sequences.append(sequence)
                if stop(sequence) { return true }
            }
            if failure != nil || Date() >= deadline { return false }
            guard let bytes = client.readBytes(timeout: min(idle, max(0.01, deadline.timeIntervalSinceNow))) else {
                return false
            }
            if start > 1 << 20 {
                buffer.removeFirst(start)
                start = 0
            }
            buffer += bytes
        }
        return false
    }

    /// The sequence number of the next whole PUBLISH in the buffer, or nil if none is complete yet.
    private func nextSequence() -> UInt64? {
        guard failure == nil, buffer.count - start >= 2 else { return nil }
        var length = 0
        var multiplier = 1
        var index = start + 1
        while true {
            guard index < buffer.count else { return nil }
            guard index - start <= 4 else {
                failure = "remaining length longer than 4 bytes"
                return nil
            }
            let byte = buffer[index]
            length += Int(byte & 0x7F) * multiplier
            multiplier *= 128
            index += 1
            if byte & 0x80 == 0 { break }
        }
        guard buffer.count >= index + length else { return nil }
        let first = buffer[start]
        guard first >> 4 == 3, length >= 2 else {
            failure = "expected PUBLISH, got first byte \(first) with remaining length \(length)"
            return nil
        }
        let topicLength = Int(buffer[index]) << 8 | Int(buffer[index + 1])
        let qos = (first >> 1) & 0x03
        let payloadStart = index + 2 + topicLength + (qos > 0 ? 2 : 0)
        guard payloadStart + 8 <= index + length else {
            failure = "PUBLISH without a sequence number"
            return nil
        }
        var sequence: UInt64 = 0
        for offset in 0..<8 { sequence = sequence << 8 | UInt64(buffer[payloadStart + offset]) }
        start = index + length
        return sequence
    }
}

/// A result a background thread hands to the test thread.
final class ThreadResult<Value: Sendable>: Sendable {
    private let value = Mutex<Value?>(nil)
    private let done = DispatchSemaphore(value: 0)

    /// Runs `body` on its own thread.
    init(_ body: @escaping @Sendable () -> Value) {
        let thread = Thread { [self] in
            let result = body()
            value.withLock { $0 = result }
            done.signal()
        }
        thread.start()
    }

    /// The value, waiting at most `timeout` seconds for it.
    func wait(timeout: Double) throws -> Value {
        guard done.wait(timeout: .now() + timeout) == .success, let result = value.withLock({ $0 }) else {
            throw TestError("background reader did not finish within \(timeout) s")
        }
        return result
    }
}

/// A flag one thread raises and another polls.
final class StopFlag: Sendable {
    private let raised = Atomic<Bool>(false)
    func raise() { raised.store(true, ordering: .releasing) }
    var isRaised: Bool { raised.load(ordering: .acquiring) }
}

/// Pings the broker from a background thread until stopped, so a test can check another client is answered all
/// the while the broker digests something heavy: any PINGREQ not answered within `timeout` ends the loop.
final class BackgroundPinger: Sendable {
    private let stopFlag = StopFlag()
    private let result: ThreadResult<(answered: Int, failure: String?)>

    init(_ client: RawClient, timeout: Double = 5) {
        let flag = stopFlag
        result = ThreadResult {
            let deadline = Date().addingTimeInterval(120)
            var answered = 0
            while answered < 100_000 && !flag.isRaised && Date() < deadline {
                do {
                    try client.sync(timeout: timeout)
                } catch {
                    return (answered, "\(error)")
                }
                answered += 1
                usleep(10_000)
            }
            return (answered, nil)
        }
    }

    /// Stops the loop and returns how many pings were answered, and the first failure if there was one.
    func stop() throws -> (answered: Int, failure: String?) {
        stopFlag.raise()
        return try result.wait(timeout: 30)
    }
}
