// Helpers for the store tests: temporary directories, sample records, a file system that fails on demand.
import Dispatch
import Glibc
import MQTTCodec
import MQTTTestSupport
import Synchronization
import XCTest

@testable import MidgeRecords
@testable import MidgeStore

/// A fresh directory under the system temp directory, removed (with the files in it) on deinit.
final class TemporaryDirectory {
    let path: String

    init() {
        var template = Array("/tmp/midge-store-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.flatMap { mkdtemp($0) } }
        precondition(made != nil, "mkdtemp failed")
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit {
        for name in (try? PosixFileSystem().contents(ofDirectory: path)) ?? [] {
            unlink(path + "/" + name)
        }
        rmdir(path)
    }

    func file(_ name: String) -> String { path + "/" + name }

    var names: [String] { ((try? PosixFileSystem().contents(ofDirectory: path)) ?? []).sorted() }

    func read(_ name: String) -> [UInt8] { (try? PosixFileSystem().readFile(file(name))) ?? [] }

    func write(_ name: String, _ bytes: [UInt8]) {
        let fs = PosixFileSystem()
        guard let file = try? fs.openForWriting(self.file(name), truncate: true) else {
            XCTFail("cannot write \(name)")
            return
        }
        XCTAssertNoThrow(try fs.write(bytes, to: file, at: 0))
        fs.close(file)
    }
}

func topic(_ string: String) -> TopicName {
    guard let topic = TopicName(string) else { fatalError("BUG: invalid test topic \(string)") }
    return topic
}

func filter(_ string: String) -> TopicFilter {
    guard let filter = TopicFilter(string) else { fatalError("BUG: invalid test filter \(string)") }
    return filter
}

func packet(_ raw: UInt16) -> PacketID {
    guard let id = PacketID(raw) else { fatalError("BUG: packet id 0 in a test") }
    return id
}

/// One record of every type, with non-trivial field values.
let everyRecordType: [StoreRecord] = [
    .retainedSet(topic: topic("sensors/1/temp"), payload: Array("21.5".utf8), qos: .atLeastOnce),
    .retainedCleared(topic: topic("sensors/1/temp")),
    .sessionCreated(clientID: "client-ü", unixSeconds: 1_700_000_000),
    .sessionEnded(clientID: "gone"),
    .sessionSeen(clientID: "client-ü", unixSeconds: -5),
    .subscriptionAdded(clientID: "client-ü", filter: filter("sensors/+/temp"), qos: .exactlyOnce),
    .subscriptionRemoved(clientID: "client-ü", filter: filter("#")),
    .messageStored(id: 0xFFFF_FFFF_FFFF_FFFE, topic: topic("a/b"), payload: [0, 1, 2, 255], qos: .exactlyOnce),
    .messageStored(id: 7, topic: topic("empty"), payload: [], qos: .atMostOnce),
    .deliveryQueued(clientID: "c", messageID: 42, qos: .atLeastOnce, retain: true),
    .deliveryInFlight(
        clientID: "c", messageID: 42, packetID: packet(65535), qos: .exactlyOnce, retain: false, state: .publishSent),
    .deliveryInFlight(
        clientID: "c", messageID: 42, packetID: packet(1), qos: .exactlyOnce, retain: true, state: .pubrelSent),
    .deliveryCompleted(clientID: "c", delivery: .packet(packet(300))),
    .deliveryCompleted(clientID: "c", delivery: .queued(messageID: 99)),
    .inboundReceived(clientID: "c", packetID: packet(12)),
    .inboundReleased(clientID: "c", packetID: packet(12)),
]

/// A deterministic pseudo-random generator (SplitMix64), so failures reproduce.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A plausible broker history: sessions subscribe, messages are stored and fanned out, deliveries move through
/// their QoS flows, sessions end. Every record refers to things that exist, as the core's would.
func brokerHistory(count: Int, seed: UInt64) -> [StoreRecord] {
    var random = SeededGenerator(state: seed)
    var records: [StoreRecord] = []
    var model = StoreState()
    var nextMessage: UInt64 = 1
    var nextPacket: [String: UInt16] = [:]
    let clients = (0..<6).map { "client-\($0)" }
    func emit(_ record: StoreRecord) {
        records.append(record)
        model.apply(record)
    }
    while records.count < count {
        let client = clients[Int.random(in: 0..<clients.count, using: &random)]
        let qos = QoS(rawValue: UInt8.random(in: 1...2, using: &random)) ?? .atLeastOnce
        switch Int.random(in: 0..<100, using: &random) {
        case 0..<8:
            emit(.sessionCreated(clientID: client, unixSeconds: Int64(records.count)))
            emit(.subscriptionAdded(clientID: client, filter: filter("t/#"), qos: qos))
        case 8..<10:
            emit(.sessionEnded(clientID: client))
        case 10..<14:
            emit(.sessionSeen(clientID: client, unixSeconds: Int64(records.count)))
        case 14..<20:
            let name = topic("retained/\(Int.random(in: 0..<10, using: &random))")
            if Bool.random(using: &random) {
                emit(.retainedSet(topic: name, payload: [UInt8](repeating: 7, count: 10), qos: qos))
            } else {
                emit(.retainedCleared(topic: name))
            }
        case 20..<45:
            let id = nextMessage
            nextMessage += 1
            let size = Int.random(in: 0..<80, using: &random)
            emit(
                .messageStored(
                    id: id, topic: topic("t/\(id)"), payload: [UInt8](repeating: UInt8(id & 0xFF), count: size),
                    qos: qos))
            for session in model.sessions.values.sorted(by: { $0.clientID < $1.clientID }) {
                emit(.deliveryQueued(clientID: session.clientID, messageID: id, qos: qos, retain: id % 3 == 0))
            }
        case 45..<65:
            guard let session = model.sessions[client], let queued = session.queue.first else { continue }
            let raw = nextPacket[client, default: 0] % 65535 + 1
            nextPacket[client] = raw
            emit(
                .deliveryInFlight(
                    clientID: client, messageID: queued.messageID, packetID: packet(raw), qos: queued.qos,
                    retain: queued.retain, state: .publishSent))
        case 65..<75:
            guard let session = model.sessions[client],
                let sent = session.inFlight.inSendOrder.first(where: {
                    $0.qos == .exactlyOnce && $0.state == .publishSent
                })
            else { continue }
            emit(.deliveryInFlight(clientID: client, sent, state: .pubrelSent))
        case 75..<88:
            guard let session = model.sessions[client], let done = session.inFlight.inSendOrder.first else { continue }
            emit(.deliveryCompleted(clientID: client, delivery: .packet(done.packetID)))
        case 88..<91:
            guard let session = model.sessions[client], let last = session.queue.last else { continue }
            emit(.deliveryCompleted(clientID: client, delivery: .queued(messageID: last.messageID)))
        case 91..<96:
            emit(.inboundReceived(clientID: client, packetID: packet(UInt16.random(in: 1...50, using: &random))))
        default:
            guard let session = model.sessions[client], let id = session.inboundQoS2.first else { continue }
            emit(.inboundReleased(clientID: client, packetID: id))
        }
    }
    return records
}

/// A segment file as the writer produces it when each record is a batch of its own.
func segmentBytes(_ records: [StoreRecord]) -> [UInt8] {
    segmentBytes(batches: records.map { [$0] })
}

/// A segment file as the writer produces it: header, then one batch per element.
func segmentBytes(batches: [[StoreRecord]]) -> [UInt8] {
    var bytes = StoreFiles.segmentHeader
    for batch in batches { LogBatch.append(batch, to: &bytes) }
    return bytes
}

/// The size of each batch's frame, header included.
func batchSize(_ batch: [StoreRecord]) -> Int {
    var bytes: [UInt8] = []
    LogBatch.append(batch, to: &bytes)
    return bytes.count
}

/// A version-1 segment, as stores written before batches hold: header, then the records' frames.
func unbatchedSegmentBytes(_ records: [StoreRecord]) -> [UInt8] {
    var bytes = StoreFiles.segmentHeader(version: StoreFiles.unbatchedSegmentFormatVersion)
    for record in records { record.appendFrame(to: &bytes) }
    return bytes
}

/// `records` cut into batches of 1 to `largest` records, deterministically.
func randomBatches(_ records: [StoreRecord], largest: Int, seed: UInt64) -> [[StoreRecord]] {
    var random = SeededGenerator(state: seed)
    var batches: [[StoreRecord]] = []
    var index = 0
    while index < records.count {
        let size = min(Int.random(in: 1...largest, using: &random), records.count - index)
        batches.append(Array(records[index..<index + size]))
        index += size
    }
    return batches
}

/// Counts calls, from any thread.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func increment() { value.wrappingAdd(1, ordering: .relaxed) }
    var count: Int { value.load(ordering: .relaxed) }
}

/// Collects the store's log lines.
final class LogCapture: Sendable {
    private let lines = Mutex<[(StoreLogLevel, String)]>([])
    var sink: StoreLogSink { { level, line in self.lines.withLock { $0.append((level, line)) } } }
    var all: [(StoreLogLevel, String)] { lines.withLock { $0 } }
    func count(_ level: StoreLogLevel) -> Int { all.filter { $0.0 == level }.count }
}

/// The real file system with faults switched on and off by tests: failing writes (ENOSPC), failing fsyncs (EIO),
/// writes that get half-way before failing, removals that silently do nothing (a crash before them), and a gate
/// that holds the first fsync until the test opens it.
final class FaultyFileSystem: StoreFileSystem {
    private let real = PosixFileSystem()
    let failWrites = Atomic<Bool>(false)
    let partialWriteBeforeFailure = Atomic<Bool>(false)
    let failSyncs = Atomic<Bool>(false)
    let skipRemoves = Atomic<Bool>(false)
    let writeFailures = Atomic<Int>(0)
    let syncFailures = Atomic<Int>(0)
    let dataSyncs = Atomic<Int>(0)
    /// When set, the first fdatasync waits for `gate.signal()`.
    let gateFirstSync = Atomic<Bool>(false)
    let gate = DispatchSemaphore(value: 0)

    func createDirectory(_ path: String) throws(FileError) { try real.createDirectory(path) }
    func contents(ofDirectory path: String) throws(FileError) -> [String] { try real.contents(ofDirectory: path) }
    func readFile(_ path: String) throws(FileError) -> [UInt8] { try real.readFile(path) }
    func openForWriting(_ path: String, truncate: Bool) throws(FileError) -> OpenFile {
        try real.openForWriting(path, truncate: truncate)
    }

    func write(_ bytes: UnsafeRawBufferPointer, to file: OpenFile, at offset: Int64) throws(FileError) {
        if failWrites.load(ordering: .acquiring) {
            writeFailures.wrappingAdd(1, ordering: .relaxed)
            if partialWriteBeforeFailure.load(ordering: .relaxed) && bytes.count > 1 {
                try real.write(UnsafeRawBufferPointer(rebasing: bytes[0..<bytes.count / 2]), to: file, at: offset)
            }
            throw FileError(operation: "write", path: file.path, code: ENOSPC)
        }
        try real.write(bytes, to: file, at: offset)
    }

    func synchronize(_ file: OpenFile, dataOnly: Bool) throws(FileError) {
        if dataOnly {
            if gateFirstSync.exchange(false, ordering: .acquiringAndReleasing) { gate.wait() }
            dataSyncs.wrappingAdd(1, ordering: .relaxed)
        }
        if failSyncs.load(ordering: .acquiring) {
            syncFailures.wrappingAdd(1, ordering: .relaxed)
            throw FileError(operation: "fdatasync", path: file.path, code: EIO)
        }
        try real.synchronize(file, dataOnly: dataOnly)
    }

    func truncate(_ file: OpenFile, to length: Int64) throws(FileError) { try real.truncate(file, to: length) }
    func close(_ file: OpenFile) { real.close(file) }
    func rename(_ from: String, to: String) throws(FileError) { try real.rename(from, to: to) }

    func removeFile(_ path: String) throws(FileError) {
        if skipRemoves.load(ordering: .acquiring) { return }
        try real.removeFile(path)
    }

    func synchronizeDirectory(_ path: String) throws(FileError) { try real.synchronizeDirectory(path) }
    func lock(_ path: String) throws(FileError) -> OpenFile { try real.lock(path) }
}

/// Appends `records` one append each and waits until all their completions ran.
func appendAndWait(_ store: DurableStore, _ records: [StoreRecord], file: StaticString = #filePath, line: UInt = #line)
{
    let done = Counter()
    for record in records { store.append([record]) { done.increment() } }
    XCTAssertTrue(eventually { done.count == records.count }, "completions did not all run", file: file, line: line)
}

extension StoreRecord {
    /// `delivery` recorded again, in `state`: a PUBREL sent for it, or the same PUBLISH resent.
    static func deliveryInFlight(clientID: String, _ delivery: InflightDelivery, state: DeliveryState) -> StoreRecord {
        .deliveryInFlight(
            clientID: clientID, messageID: delivery.messageID, packetID: delivery.packetID, qos: delivery.qos,
            retain: delivery.retain, state: state)
    }
}
