// Reading a small configuration file as numbered lines of bytes, the way mosquitto's fgets loop sees them.
import Glibc

/// One line of a configuration file, without its line ending.
struct TextLine {
    /// 1-based, for error messages.
    let number: Int
    let bytes: ArraySlice<UInt8>
}

enum TextLines {
    /// Splits at `\n` and drops a `\r` before it, so files edited on Windows read the same.
    static func split(_ bytes: [UInt8]) -> [TextLine] {
        var lines: [TextLine] = []
        var start = 0
        var number = 1
        let newline = UInt8(ascii: "\n")
        let carriageReturn = UInt8(ascii: "\r")
        while start < bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != newline { end += 1 }
            var contentEnd = end
            if contentEnd > start && bytes[contentEnd - 1] == carriageReturn { contentEnd -= 1 }
            lines.append(TextLine(number: number, bytes: bytes[start..<contentEnd]))
            number += 1
            start = end + 1
        }
        return lines
    }

    /// The bytes between the first and last non-blank byte (mosquitto's `misc__trimblanks`).
    static func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var start = bytes.startIndex
        var end = bytes.endIndex
        while start < end && isBlank(bytes[start]) { start += 1 }
        while end > start && isBlank(bytes[end - 1]) { end -= 1 }
        return bytes[start..<end]
    }

    /// C `isspace` in the "C" locale.
    static func isBlank(_ byte: UInt8) -> Bool {
        byte == 0x20 || (0x09...0x0D).contains(byte)
    }

    /// Decodes one line's bytes, refusing invalid UTF-8 instead of repairing it: a repaired user name
    /// would silently name someone else.
    static func string(_ bytes: ArraySlice<UInt8>) -> String? {
        String(validating: bytes, as: UTF8.self)
    }

    /// The whole file, read with plain system calls (this runs once at start-up, not per connection).
    static func read(path: String) throws(AuthFileError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            throw AuthFileError(file: path, line: nil, message: "cannot open: \(errnoText(errno))")
        }
        defer { close(fd) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw AuthFileError(file: path, line: nil, message: "cannot read: \(errnoText(errno))")
            }
            if count == 0 { break }
            result.append(contentsOf: chunk[0..<count])
        }
        return result
    }

    static func errnoText(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "errno \(code)" }
        return String(cString: text)
    }
}
