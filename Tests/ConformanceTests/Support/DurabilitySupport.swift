// Support for the durability tests: a broker restarted on one store directory, SIGKILL at a random moment, and a
// pipelined numbered stream that records which messages the broker acknowledged before it died.

import Foundation
import Glibc
import MQTTCodec
import MQTTTestSupport

/// A midge started again and again on the same persistence directory; each start gets a fresh port.
final class DurableBroker {
    let directory: URL
    let extraConfig: [String]
    private(set) var process: BrokerProcess?
    /// Every log of this broker's runs, oldest first, for a failing test's output.
    private(set) var logs: [String] = []
    /// Each run's "Store recovered" line, oldest first.
    private(set) var recoveryLines: [String] = []

    init(directory: URL, config: [String] = []) {
        self.directory = directory
        self.extraConfig = config
    }

    var config: [String] {
        ["persistence true", "persistence_location \(directory.path)"] + extraConfig
    }

    @discardableResult
    func start() throws -> BrokerProcess {
        let started = try BrokerProcess(config: config)
        process = started
        let log = currentLog()
        recoveryLines += log.split(separator: "\n").filter { $0.contains("Store recovered") }.map(String.init)
        return started
    }

    var port: UInt16 {
        get throws {
            guard let process else { throw TestError("the durable broker is not running") }
            return process.port
        }
    }

    /// SIGKILL: no shutdown code runs, so whatever the store had not written is lost.
    func crash() {
        guard let process else { return }
        kill(process.pid, SIGKILL)
        for _ in 0..<500 where process.isRunning { usleep(10_000) }
        logs.append(process.logTail(lines: 40))
        self.process = nil
    }

    /// SIGTERM: an orderly shutdown that closes the store.
    func stop() {
        guard let process else { return }
        process.stop()
        logs.append(process.logTail(lines: 40))
        self.process = nil
    }

    /// The current run's log as a whole, once it has a line containing `marker` or after `timeout` seconds: the
    /// listeners accept (and `BrokerProcess` reports ready) before the store's recovery line is written.
    func currentLog(waitingFor marker: String = "Restored", timeout: Double = 10) -> String {
        guard let process else { return "" }
        var text = ""
        for _ in 0..<Int(timeout * 50) {
            if let data = try? Data(contentsOf: process.logURL) { text = String(decoding: data, as: UTF8.self) }
            if text.contains(marker) { break }
            usleep(20_000)
        }
        return text
    }

    /// Whether some restart found the log's tail torn (a kill in the middle of a write) and dropped records.
    var someRecoveryDroppedRecords: Bool { recoveryLines.contains { $0.contains("dropped") } }

    func allLogs() -> String {
        (logs + [process?.logTail(lines: 40) ?? ""]).joined(separator: "\n---- next run ----\n")
    }
}

/// Kills the broker after a random delay, on its own thread, while the test's thread keeps publishing.
final class RandomKiller: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    let delay: Double

    init(pid: pid_t, delayRange: ClosedRange<Double>) {
        let delay = Double.random(in: delayRange)
        self.delay = delay
        let done = self.done
        Thread {
            usleep(UInt32(delay * 1_000_000))
            kill(pid, SIGKILL)
            done.signal()
        }.start()
    }

    /// Waits until the kill was sent, so it can never hit a later process that reused the pid.
    func wait() {
        done.wait()
    }
}

/// What one round of a numbered stream achieved before the broker died.
struct StreamRound {
    /// Numbers whose PUBACK (QoS 1) or PUBREC (QoS 2) arrived: the broker owns these messages.
    var acknowledged: [Int] = []
    /// QoS 2 numbers whose PUBCOMP arrived.
    var completed: [Int] = []
    /// Numbers sent, acknowledged or not.
    var sent = 0
}

enum NumberedStream {
    /// The packet id of message `number`: distinct for every message of a round of fewer than 65535.
    static func packetID(_ number: Int) -> UInt16 { UInt16(number % 65535 + 1) }

    static func payload(_ number: Int) -> [UInt8] { Array("n\(number)".utf8) }

    static func number(of payload: [UInt8]) -> Int? {
        guard payload.first == UInt8(ascii: "n") else { return nil }
        return Int(String(decoding: payload.dropFirst(), as: UTF8.self))
    }

    /// Publishes `first..<first+limit` pipelined on `client` (QoS 1 or 2, optionally retained on a topic per
    /// number) until the connection dies or the numbers run out, answering PUBREC with PUBREL, and returns what the
    /// broker acknowledged. Bounded: `limit` messages and `seconds` of waiting for the tail.
    static func run(
        on client: RawClient, topic: (Int) -> String, qos: UInt8, retain: Bool = false, first: Int, limit: Int,
        seconds: Double = 10
    ) -> StreamRound {
        var round = StreamRound()
        var numberOfID: [UInt16: Int] = [:]
        func take(_ frame: Frame) {
            guard let packet = try? frame.decode() else { return }
            switch packet {
            case .puback(let id):
                if let number = numberOfID.removeValue(forKey: id.rawValue) { round.acknowledged.append(number) }
            case .pubrec(let id):
                if let number = numberOfID[id.rawValue] {
                    round.acknowledged.append(number)
                    client.sendIgnoringClose(Wire.pubrel(id.rawValue))
                }
            case .pubcomp(let id):
                if let number = numberOfID.removeValue(forKey: id.rawValue) { round.completed.append(number) }
            default:
                break
            }
        }
        for number in first..<(first + limit) {
            let id = packetID(number)
            numberOfID[id] = number
            let bytes = Wire.publish(
                topic: Array(topic(number).utf8), payload: payload(number), qos: qos, retain: retain, id: id)
            guard (try? client.send(bytes)) != nil else { break }
            round.sent += 1
            // Read what has arrived without waiting, every few messages, so acknowledgements are seen as they come.
            if number % 8 == 0 {
                while let frame = client.readFrame(timeout: 0) { take(frame) }
            }
            if client.isClosed { break }
        }
        // The tail: until the broker is gone or has answered everything.
        let deadline = Date().addingTimeInterval(seconds)
        while !numberOfID.isEmpty && Date() < deadline {
            guard let frame = client.readFrame(timeout: 0.5) else {
                if client.isClosed { break }
                continue
            }
            take(frame)
        }
        return round
    }
}

extension NumberedStream {
    /// A persistent QoS 2 publisher back after a restart finishes its flows, pipelined [MQTT-4.4.0-1]: PUBREL for
    /// the numbers whose PUBREC it had, the PUBLISH again with DUP=1 for the others (adding them to `acknowledged`
    /// when their PUBREC comes). Throws unless every flow ends with PUBCOMP within `seconds`.
    static func finishQoS2(
        _ unfinished: [Int], acknowledged: inout Set<Int>, on client: RawClient, topic: String, seconds: Double = 30
    ) throws {
        var open: [UInt16: Int] = [:]
        for number in unfinished {
            let id = packetID(number)
            open[id] = number
            if acknowledged.contains(number) {
                try client.send(Wire.pubrel(id))
            } else {
                try client.send(
                    Wire.publish(topic: Array(topic.utf8), payload: payload(number), qos: 2, dup: true, id: id))
            }
        }
        let deadline = Date().addingTimeInterval(seconds)
        while !open.isEmpty && Date() < deadline {
            guard let frame = client.readFrame(timeout: 0.5), let packet = try? frame.decode() else {
                if client.isClosed { break }
                continue
            }
            switch packet {
            case .pubrec(let id):
                if let number = open[id.rawValue] { acknowledged.insert(number) }
                try client.send(Wire.pubrel(id.rawValue))
            case .pubcomp(let id):
                open[id.rawValue] = nil
            default:
                continue
            }
        }
        guard open.isEmpty else { throw TestError("\(open.count) QoS 2 flows did not complete after the restart") }
    }
}

/// A persistent QoS 1/2 subscriber's view across reconnects: what the application got, and for QoS 2 the packet
/// ids received but not yet released (method B, kept across connections as a real client keeps them).
final class DurableSubscriber {
    let clientID: String
    /// How often each number reached the application.
    private(set) var deliveries: [Int: Int] = [:]
    /// QoS 2: packet id → number, between PUBLISH and PUBREL.
    private var pendingQoS2: [UInt16: Int] = [:]
    /// QoS 2 numbers whose PUBREL arrived: the broker is done with them and must never send them again.
    private(set) var released: Set<Int> = []
    /// Numbers the broker sent again as a new delivery after their PUBREL: must stay empty.
    private(set) var sentAfterRelease: [Int] = []

    init(clientID: String) { self.clientID = clientID }

    var duplicates: Int { deliveries.values.reduce(0) { $0 + max(0, $1 - 1) } }

    /// Reads and acknowledges deliveries until `quiet` seconds pass with none (or the connection ends), at most
    /// `limit` packets.
    func drain(_ client: RawClient, quiet: Double = 1.0, limit: Int = 200_000) {
        for _ in 0..<limit {
            guard let frame = client.readFrame(timeout: quiet), let packet = try? frame.decode() else { return }
            switch packet {
            case .publish(let publish):
                guard let number = NumberedStream.number(of: publish.payload) else { continue }
                switch publish.qos {
                case .atMostOnce:
                    deliveries[number, default: 0] += 1
                case .atLeastOnce:
                    deliveries[number, default: 0] += 1
                    if let id = publish.packetID { client.sendIgnoringClose(Wire.puback(id.rawValue)) }
                case .exactlyOnce:
                    guard let id = publish.packetID else { continue }
                    if pendingQoS2[id.rawValue] == nil {
                        // A new message for this id: the application gets it now (method B) [MQTT-4.3.3-2].
                        if released.contains(number) { sentAfterRelease.append(number) }
                        pendingQoS2[id.rawValue] = number
                        deliveries[number, default: 0] += 1
                    }
                    client.sendIgnoringClose(Wire.pubrec(id.rawValue))
                }
            case .pubrel(let id):
                if let number = pendingQoS2.removeValue(forKey: id.rawValue) { released.insert(number) }
                client.sendIgnoringClose(Wire.pubcomp(id.rawValue))
            default:
                continue
            }
        }
    }
}
