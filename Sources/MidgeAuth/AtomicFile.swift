// Replacing a small file so that a reader sees either the old or the new contents, never a mix.
import Glibc

enum AtomicFile {
    /// Writes a temporary file next to `path`, fsyncs it and renames it over `path` (POSIX rename is
    /// atomic within a file system). An existing file keeps its mode and, where permitted, its owner, so
    /// a broker running as another user can still read it. A new file gets 0666 less the umask, as
    /// mosquitto_passwd 2.0 creates it: mosquitto started as root drops to its own user before it reads
    /// the password file, so a 0600 root-owned file would stop it from starting. Tighten the umask or
    /// the mode to keep the hashes private; they are only as strong as their iteration count.
    static func replace(path: String, with bytes: [UInt8]) throws(AuthFileError) {
        func failure(_ what: String, _ code: Int32 = errno) -> AuthFileError {
            AuthFileError(file: path, line: nil, message: "\(what): \(TextLines.errnoText(code))")
        }
        // Follow a symlink to the real file, so the link is kept and its target replaced.
        var target = path
        if let resolved = realpath(path, nil) {
            target = String(cString: resolved)
            free(resolved)
        }
        var existing = stat()
        let exists = stat(target, &existing) == 0
        if !exists && errno != ENOENT { throw failure("cannot stat") }

        var template = Array((target + ".tmp.XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { buffer -> Int32 in
            guard let base = buffer.baseAddress else { return -1 }
            return mkstemp(base)
        }
        guard fd >= 0 else { throw failure("cannot create a temporary file next to it") }
        // mkstemp replaced the X's in place; the last element is the terminating 0.
        let temporary = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var committed = false
        defer {
            if !committed { unlink(temporary) }
        }
        do throws(AuthFileError) {
            if exists {
                // mkstemp made it 0600; give it the old file's permissions before it becomes that file.
                guard fchmod(fd, existing.st_mode & 0o7777) == 0 else { throw failure("cannot set mode") }
                // Only root may give a file away; for anyone else the owner is already theirs.
                _ = fchown(fd, existing.st_uid, existing.st_gid)
            } else {
                let mask = umask(0o022)
                _ = umask(mask)
                guard fchmod(fd, 0o666 & ~mask) == 0 else { throw failure("cannot set mode") }
            }
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                if written < 0 {
                    if errno == EINTR { continue }
                    throw failure("cannot write")
                }
                offset += written
            }
            guard fsync(fd) == 0 else { throw failure("cannot sync") }
        } catch {
            close(fd)
            throw error
        }
        guard close(fd) == 0 else { throw failure("cannot close") }
        guard rename(temporary, target) == 0 else { throw failure("cannot rename into place") }
        committed = true
    }
}
