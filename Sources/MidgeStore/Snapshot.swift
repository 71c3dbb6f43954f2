// Writing a snapshot (temp file, fsync, rename, directory fsync) and removing the files it makes obsolete.

enum Snapshot {
    /// Writes `state` as snapshot `firstSegment` (it holds everything in segments below that number) and
    /// returns its size. The snapshot only appears under its real name once it is entirely on disk.
    static func write(
        _ state: StoreState, firstSegment: UInt64, directory: String, fileSystem fs: any StoreFileSystem
    ) throws(FileError) -> Int {
        let name = StoreFiles.snapshotName(firstSegment)
        let temporaryPath = StoreFiles.path(directory, name + StoreFiles.temporarySuffix)
        let file = try fs.openForWriting(temporaryPath, truncate: true)
        var written = 0
        do throws(FileError) {
            var buffer = StoreFiles.snapshotHeader(
                firstSegment: firstSegment, recordCount: UInt64(state.recordCount))
            buffer.reserveCapacity(1 << 20)
            var crc: UInt32 = 0
            func flush() throws(FileError) {
                crc = CRC32C.checksum(buffer, continuing: crc)
                let offset = Int64(written)
                try fs.write(buffer, to: file, at: offset)
                written += buffer.count
                buffer.removeAll(keepingCapacity: true)
            }
            // Streamed in 1 MiB pieces so a large state does not need a second copy in memory.
            try state.forEachRecord { record throws(FileError) in
                record.appendFrame(to: &buffer)
                if buffer.count >= 1 << 20 { try flush() }
            }
            try flush()
            buffer = StoreFiles.snapshotTrailer(crc: crc)
            let offset = Int64(written)
            try fs.write(buffer, to: file, at: offset)
            written += buffer.count
            try fs.synchronize(file, dataOnly: false)
            fs.close(file)
        } catch {
            fs.close(file)
            try? fs.removeFile(temporaryPath)
            throw error
        }
        try fs.rename(temporaryPath, to: StoreFiles.path(directory, name))
        try fs.synchronizeDirectory(directory)
        return written
    }

    /// Keeps the two newest snapshots and the segments the older of them needs, so that an unreadable newest
    /// snapshot can still be replaced by the previous one plus the log; removes everything older.
    static func removeObsoleteFiles(directory: String, fileSystem fs: any StoreFileSystem) throws(FileError) {
        let names = try fs.contents(ofDirectory: directory)
        let snapshots = names.compactMap(StoreFiles.snapshotNumber).sorted(by: >)
        guard snapshots.count >= 2 else { return }
        let keepFrom = snapshots[1]
        var removed = false
        for number in snapshots.dropFirst(2) {
            try fs.removeFile(StoreFiles.path(directory, StoreFiles.snapshotName(number)))
            removed = true
        }
        for number in names.compactMap(StoreFiles.segmentNumber) where number < keepFrom {
            try fs.removeFile(StoreFiles.path(directory, StoreFiles.segmentName(number)))
            removed = true
        }
        if removed { try fs.synchronizeDirectory(directory) }
    }
}
