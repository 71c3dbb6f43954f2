// The few file operations the store needs, behind a protocol so tests can inject ENOSPC and EIO.
import Glibc

/// A failed system call, with what was being done to which file.
public struct FileError: Error, Sendable, Equatable, CustomStringConvertible {
    public let operation: String
    public let path: String
    /// The errno value.
    public let code: Int32

    public init(operation: String, path: String, code: Int32) {
        self.operation = operation
        self.path = path
        self.code = code
    }

    public var description: String { "\(operation) \(path): \(String(cString: strerror(code)))" }
}

/// An open file: the descriptor, and the path for error messages.
struct OpenFile: Sendable {
    let descriptor: Int32
    let path: String
}

/// What the store does to files. Offsets are explicit (pwrite), so a retried write lands where the failed
/// one began and overwrites whatever part of it reached the file.
protocol StoreFileSystem: Sendable {
    /// Creates the directory (mode 0700) unless it exists.
    func createDirectory(_ path: String) throws(FileError)
    /// Names of the entries in a directory, without `.` and `..`.
    func contents(ofDirectory path: String) throws(FileError) -> [String]
    func readFile(_ path: String) throws(FileError) -> [UInt8]
    /// Opens for writing, creating the file (mode 0600) if needed.
    func openForWriting(_ path: String, truncate: Bool) throws(FileError) -> OpenFile
    func write(_ bytes: UnsafeRawBufferPointer, to file: OpenFile, at offset: Int64) throws(FileError)
    /// fdatasync (`dataOnly`) or fsync.
    func synchronize(_ file: OpenFile, dataOnly: Bool) throws(FileError)
    func truncate(_ file: OpenFile, to length: Int64) throws(FileError)
    func close(_ file: OpenFile)
    func rename(_ from: String, to: String) throws(FileError)
    func removeFile(_ path: String) throws(FileError)
    /// fsync of the directory itself, so that created, renamed and removed names are durable.
    func synchronizeDirectory(_ path: String) throws(FileError)
    /// An exclusive advisory lock (flock) held while the returned file stays open; EWOULDBLOCK when another
    /// process or store instance holds it.
    func lock(_ path: String) throws(FileError) -> OpenFile
}

/// The real thing: Glibc calls, EINTR retried.
struct PosixFileSystem: StoreFileSystem {
    func createDirectory(_ path: String) throws(FileError) {
        if mkdir(path, 0o700) == 0 { return }
        let code = errno
        var info = stat()
        guard code == EEXIST, stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw FileError(operation: "mkdir", path: path, code: code)
        }
    }

    func contents(ofDirectory path: String) throws(FileError) -> [String] {
        guard let directory = opendir(path) else { throw FileError(operation: "opendir", path: path, code: errno) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    func readFile(_ path: String) throws(FileError) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw FileError(operation: "open", path: path, code: errno) }
        defer { Glibc.close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw FileError(operation: "fstat", path: path, code: errno) }
        let size = Int(info.st_size)
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let count = bytes.withUnsafeMutableBytes { raw in
                pread(descriptor, raw.baseAddress.map { $0 + done }, size - done, off_t(done))
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw FileError(operation: "read", path: path, code: errno)
            }
            if count == 0 { break }  // shrank under us: what was read is what there is
            done += count
        }
        if done < size { bytes.removeLast(size - done) }
        return bytes
    }

    func openForWriting(_ path: String, truncate: Bool) throws(FileError) -> OpenFile {
        let flags = O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0)
        let descriptor = open(path, flags, 0o600)
        guard descriptor >= 0 else { throw FileError(operation: "open", path: path, code: errno) }
        return OpenFile(descriptor: descriptor, path: path)
    }

    func write(_ bytes: UnsafeRawBufferPointer, to file: OpenFile, at offset: Int64) throws(FileError) {
        var done = 0
        while done < bytes.count {
            let count = pwrite(
                file.descriptor, bytes.baseAddress.map { $0 + done }, bytes.count - done,
                off_t(offset) + off_t(done))
            if count < 0 {
                if errno == EINTR { continue }
                throw FileError(operation: "write", path: file.path, code: errno)
            }
            // A short count (disk filling up) is followed by a call that reports why.
            done += count
        }
    }

    func synchronize(_ file: OpenFile, dataOnly: Bool) throws(FileError) {
        while (dataOnly ? fdatasync(file.descriptor) : fsync(file.descriptor)) != 0 {
            if errno == EINTR { continue }
            throw FileError(operation: dataOnly ? "fdatasync" : "fsync", path: file.path, code: errno)
        }
    }

    func truncate(_ file: OpenFile, to length: Int64) throws(FileError) {
        while ftruncate(file.descriptor, off_t(length)) != 0 {
            if errno == EINTR { continue }
            throw FileError(operation: "ftruncate", path: file.path, code: errno)
        }
    }

    func close(_ file: OpenFile) {
        _ = Glibc.close(file.descriptor)
    }

    func rename(_ from: String, to: String) throws(FileError) {
        guard Glibc.rename(from, to) == 0 else { throw FileError(operation: "rename", path: from, code: errno) }
    }

    func removeFile(_ path: String) throws(FileError) {
        guard unlink(path) == 0 || errno == ENOENT else {
            throw FileError(operation: "unlink", path: path, code: errno)
        }
    }

    func synchronizeDirectory(_ path: String) throws(FileError) {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw FileError(operation: "open", path: path, code: errno) }
        defer { Glibc.close(descriptor) }
        while fsync(descriptor) != 0 {
            if errno == EINTR { continue }
            throw FileError(operation: "fsync", path: path, code: errno)
        }
    }

    func lock(_ path: String) throws(FileError) -> OpenFile {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw FileError(operation: "open", path: path, code: errno) }
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            let code = errno
            Glibc.close(descriptor)
            throw FileError(operation: "flock", path: path, code: code)
        }
        return OpenFile(descriptor: descriptor, path: path)
    }
}

extension StoreFileSystem {
    /// `write(_:to:at:)` for array bytes. `withUnsafeBytes` rethrows untyped, hence the detour through Result.
    func write(_ bytes: ArraySlice<UInt8>, to file: OpenFile, at offset: Int64) throws(FileError) {
        let result: Result<Void, FileError> = bytes.withUnsafeBytes { raw in
            do throws(FileError) {
                try write(raw, to: file, at: offset)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    func write(_ bytes: [UInt8], to file: OpenFile, at offset: Int64) throws(FileError) {
        try write(bytes[...], to: file, at: offset)
    }
}
