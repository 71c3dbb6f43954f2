// Start-up: the newest readable snapshot plus the log segments after it, stopping at the first damaged record.
import MidgeRecords

/// Why replay stopped before the end of the log.
public enum StopReason: Sendable, Equatable, CustomStringConvertible {
    case frame(FrameDamage)
    /// A segment's header is not ours or is damaged.
    case badSegmentHeader(String)
    /// A segment created but whose header never reached the disk, with segments after it.
    case tornSegmentHeader
    /// The numbering has a hole: records in between are gone, so later ones cannot be applied safely.
    case missingSegment(UInt64)
    case unreadableSegment(String)

    public var description: String {
        switch self {
        case .frame(let damage): damage.description
        case .badSegmentHeader(let why): "bad segment header (\(why))"
        case .tornSegmentHeader: "torn segment header"
        case .missingSegment(let number): "log segment \(StoreFiles.segmentName(number)) is missing"
        case .unreadableSegment(let why): "unreadable segment (\(why))"
        }
    }

    /// What a crash in the middle of an append leaves behind, as opposed to damage worth keeping for a person.
    var isTornTail: Bool {
        switch self {
        case .frame(.tornHeader), .frame(.tornRecord), .frame(.zeroFilledTail), .frame(.tornBatchHeader),
            .frame(.tornBatch), .tornSegmentHeader:
            true
        default: false
        }
    }
}

/// What recovery found; `description` is the line to log at start-up.
public struct RecoveryReport: Sendable, CustomStringConvertible {
    /// The snapshot file the state started from, if any.
    public internal(set) var snapshot: String?
    public internal(set) var snapshotRecords = 0
    public internal(set) var segmentsReplayed = 0
    public internal(set) var recordsReplayed = 0
    /// Records after the stop point, counted as far as their frames can still be told apart: every record of a
    /// damaged or torn batch whose header holds, one for bytes that cannot be followed.
    public internal(set) var recordsDropped = 0
    public internal(set) var bytesDropped = 0
    public internal(set) var stopReason: StopReason?
    /// Where replay stopped: a segment file name and offset.
    public internal(set) var stopLocation: String?
    /// Problems that did not stop replay: unusable snapshots, a log that does not reach back far enough.
    public internal(set) var warnings: [String] = []

    /// Nothing was dropped or skipped.
    public var isClean: Bool { stopReason == nil && warnings.isEmpty }

    public var description: String {
        var line = "Store recovered: "
        if let snapshot {
            line += "snapshot \(snapshot) (\(snapshotRecords) records)"
        } else {
            line += "no snapshot"
        }
        line += ", \(recordsReplayed) log records from \(segmentsReplayed) segment\(segmentsReplayed == 1 ? "" : "s")"
        if let stopReason {
            line += "; dropped \(recordsDropped) record\(recordsDropped == 1 ? "" : "s") (\(bytesDropped) bytes)"
            if let stopLocation { line += " at \(stopLocation)" }
            line += ": \(stopReason)"
        }
        for warning in warnings { line += "; " + warning }
        return line + "."
    }
}

/// The state recovered and what must be done to the files before appending.
struct RecoveryOutcome {
    var state = StoreState()
    var report = RecoveryReport()
    var unusableSnapshots: [String] = []
    var temporaryFiles: [String] = []
    /// The segment whose tail goes, and from which offset (0: the whole file).
    var truncation: (segment: UInt64, offset: Int)?
    /// Whole segments after the stop point.
    var droppedSegments: [UInt64] = []
    /// The number a new segment would get: one past the last segment kept, so the numbering has no holes.
    var nextSegment: UInt64 = 1
    /// The last segment kept and the length of its good part: appends continue there rather than in a new file,
    /// so restarts do not pile up small segments.
    var appendTarget: (segment: UInt64, end: Int)?
    /// Log bytes not covered by the snapshot, and the snapshot's size: the compaction threshold's inputs.
    var logBytes = 0
    var snapshotBytes = 0
}

enum Recovery {
    static func recover(directory: String, fileSystem fs: any StoreFileSystem) throws(FileError) -> RecoveryOutcome {
        var outcome = RecoveryOutcome()
        let names = try fs.contents(ofDirectory: directory)
        outcome.temporaryFiles = names.filter { $0.hasSuffix(StoreFiles.temporarySuffix) }
        let snapshots = names.compactMap(StoreFiles.snapshotNumber).sorted(by: >)
        let segments = names.compactMap(StoreFiles.segmentNumber).sorted()

        var start: UInt64?
        for number in snapshots {
            let name = StoreFiles.snapshotName(number)
            let loaded: Result<(StoreState, records: Int), SnapshotDamage>
            var size = 0
            do {
                let bytes = try fs.readFile(StoreFiles.path(directory, name))
                size = bytes.count
                loaded = Snapshot.read(bytes, expectedFirstSegment: number)
            } catch {
                loaded = .failure(SnapshotDamage(error.description))
            }
            switch loaded {
            case .success(let (state, records)):
                outcome.state = state
                outcome.report.snapshot = name
                outcome.report.snapshotRecords = records
                outcome.snapshotBytes = size
                start = number
            case .failure(let damage):
                outcome.report.warnings.append("snapshot \(name) is unusable (\(damage))")
                outcome.unusableSnapshots.append(name)
            }
            if start != nil { break }
        }
        let first = start ?? segments.first ?? 1
        if start == nil, let oldest = segments.first, oldest > 1 || !snapshots.isEmpty {
            outcome.report.warnings.append(
                "no usable snapshot: state rebuilt from the log alone, from \(StoreFiles.segmentName(oldest)) on")
        }

        let replay = segments.filter { $0 >= first }
        var expected = first
        // New appends go to the segment after the last one kept, so the numbering stays without holes.
        outcome.nextSegment = first
        replaying: for (index, number) in replay.enumerated() {
            let name = StoreFiles.segmentName(number)
            if number != expected {
                stop(&outcome, .missingSegment(expected), at: nil, dropping: replay[index...], directory, fs)
                break
            }
            expected += 1
            let bytes: [UInt8]
            do {
                bytes = try fs.readFile(StoreFiles.path(directory, name))
            } catch {
                stop(
                    &outcome, .unreadableSegment(error.description), at: nil, dropping: replay[index...], directory, fs)
                break
            }
            outcome.logBytes += bytes.count
            let version: UInt32
            switch StoreFiles.checkSegmentHeader(bytes) {
            case .valid(let found):
                version = found
            case .torn:
                // A segment created just before a crash: nothing was acknowledged from it.
                let isLast = index == replay.count - 1
                outcome.truncation = (number, 0)
                outcome.logBytes -= bytes.count
                if !isLast {
                    stop(
                        &outcome, .tornSegmentHeader, at: "\(name) offset 0", dropping: replay[(index + 1)...],
                        directory, fs)
                }
                if isLast { continue replaying } else { break replaying }
            case .invalid(let why):
                stop(&outcome, .badSegmentHeader(why), at: nil, dropping: replay[index...], directory, fs)
                break replaying
            }
            outcome.report.segmentsReplayed += 1
            outcome.nextSegment = number + 1
            // New batches never go into an unbatched segment: a reader would take them for record frames.
            let appendable = version == StoreFiles.segmentFormatVersion
            outcome.appendTarget = appendable ? (number, bytes.count) : nil
            let damage =
                version == StoreFiles.unbatchedSegmentFormatVersion
                ? replayRecords(bytes, into: &outcome) : replayBatches(bytes, into: &outcome)
            if let (damage, offset, dropped) = damage {
                outcome.truncation = (number, offset)
                outcome.appendTarget = appendable ? (number, offset) : nil
                outcome.logBytes -= bytes.count - offset
                outcome.report.recordsDropped += dropped
                outcome.report.bytesDropped += bytes.count - offset
                stop(
                    &outcome, .frame(damage), at: "\(name) offset \(offset)", dropping: replay[(index + 1)...],
                    directory, fs)
                break
            }
        }
        return outcome
    }

    /// A version-1 segment: each record applied on its own, up to the first damaged one. Returns the damage, where
    /// it is, and how many records from there on are lost.
    private static func replayRecords(_ bytes: [UInt8], into outcome: inout RecoveryOutcome)
        -> (FrameDamage, offset: Int, dropped: Int)?
    {
        bytes.withUnsafeBytes { raw in
            var offset = StoreFiles.segmentHeaderSize
            while true {
                switch StoreRecord.readFrame(in: raw, at: offset) {
                case .end:
                    return nil
                case .record(let record, let size):
                    outcome.state.apply(record)
                    outcome.report.recordsReplayed += 1
                    offset += size
                case .damaged(let damage):
                    return (damage, offset, countFrames(bytes, from: offset))
                }
            }
        }
    }

    /// A version-2 segment: each batch applied whole, up to the first torn or damaged one, which is dropped whole.
    private static func replayBatches(_ bytes: [UInt8], into outcome: inout RecoveryOutcome)
        -> (FrameDamage, offset: Int, dropped: Int)?
    {
        bytes.withUnsafeBytes { raw in
            var offset = StoreFiles.segmentHeaderSize
            while true {
                switch LogBatch.read(in: raw, at: offset) {
                case .end:
                    return nil
                case .batch(let records, let size):
                    for record in records { outcome.state.apply(record) }
                    outcome.report.recordsReplayed += records.count
                    offset += size
                case .damaged(let damage):
                    // The damaged batch's own count when its header holds, then whatever follows it.
                    return (damage, offset, LogBatch.countRecords(in: raw, from: offset))
                }
            }
        }
    }

    /// Records replay stopped and counts what the segments after the stop point held.
    private static func stop(
        _ outcome: inout RecoveryOutcome, _ reason: StopReason, at location: String?,
        dropping segments: ArraySlice<UInt64>, _ directory: String, _ fs: any StoreFileSystem
    ) {
        outcome.report.stopReason = reason
        outcome.report.stopLocation = location ?? segments.first.map { StoreFiles.segmentName($0) }
        for number in segments {
            outcome.droppedSegments.append(number)
            guard let bytes = try? fs.readFile(StoreFiles.path(directory, StoreFiles.segmentName(number))) else {
                continue
            }
            outcome.report.bytesDropped += bytes.count
            switch StoreFiles.checkSegmentHeader(bytes) {
            case .valid(let version) where version == StoreFiles.unbatchedSegmentFormatVersion:
                outcome.report.recordsDropped += countFrames(bytes, from: StoreFiles.segmentHeaderSize)
            case .valid:
                outcome.report.recordsDropped += bytes.withUnsafeBytes {
                    LogBatch.countRecords(in: $0, from: StoreFiles.segmentHeaderSize)
                }
            default:
                if bytes.count > StoreFiles.segmentHeaderSize { outcome.report.recordsDropped += 1 }
            }
        }
    }

    /// Frames from `offset` on, following length fields even where checksums fail; whatever cannot be followed
    /// counts as one more record if it is not all zeros.
    static func countFrames(_ bytes: [UInt8], from start: Int) -> Int {
        bytes.withUnsafeBytes { raw in
            var offset = start
            var count = 0
            while offset < raw.count {
                let available = raw.count - offset
                if available >= StoreRecord.frameHeaderSize {
                    let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
                    let size = StoreRecord.frameHeaderSize + length
                    if length > 0, length <= StoreRecord.maximumRecordLength, size <= available {
                        count += 1
                        offset += size
                        continue
                    }
                }
                if !StoreRecord.isZero(raw, from: offset) { count += 1 }
                break
            }
            return count
        }
    }

    /// Makes the directory match what was recovered, so that appends start clean and the next recovery reads the
    /// same thing: set-aside files renamed, the damaged tail cut off (kept aside unless it is a plain torn write),
    /// leftovers of interrupted snapshots removed.
    static func repair(_ outcome: RecoveryOutcome, directory: String, fileSystem fs: any StoreFileSystem)
        throws(FileError)
    {
        for name in outcome.temporaryFiles {
            try fs.removeFile(StoreFiles.path(directory, name))
        }
        for name in outcome.unusableSnapshots {
            let path = StoreFiles.path(directory, name)
            try fs.rename(path, to: path + StoreFiles.damagedSuffix)
        }
        if let (segment, offset) = outcome.truncation {
            let path = StoreFiles.path(directory, StoreFiles.segmentName(segment))
            let keepTail = !(outcome.report.stopReason?.isTornTail ?? true)
            if keepTail {
                let bytes = try fs.readFile(path)
                let copy = try fs.openForWriting(path + StoreFiles.damagedSuffix, truncate: true)
                defer { fs.close(copy) }
                try fs.write(bytes[offset...], to: copy, at: 0)
                try fs.synchronize(copy, dataOnly: false)
            }
            if offset == 0 {
                try fs.removeFile(path)
            } else {
                let file = try fs.openForWriting(path, truncate: false)
                defer { fs.close(file) }
                try fs.truncate(file, to: Int64(offset))
                try fs.synchronize(file, dataOnly: false)
            }
        }
        for segment in outcome.droppedSegments {
            let path = StoreFiles.path(directory, StoreFiles.segmentName(segment))
            try fs.rename(path, to: path + StoreFiles.damagedSuffix)
        }
        try Snapshot.removeObsoleteFiles(directory: directory, fileSystem: fs)
        try fs.synchronizeDirectory(directory)
    }
}
