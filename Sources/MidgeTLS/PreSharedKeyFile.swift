// mosquitto's `psk_file` for TLS-PSK listeners: `identity:hexkey` lines, read into the table the handshake consults.
import COpenSSL

/// The identities and keys of a PSK file, immutable once read; a reload reads a new one.
///
/// Format (mosquitto 2.0's, which reads it with its password-file parser):
///
///     # comment
///     sensor-1:8c2d6a1f03b94e7a
///     gateway:0011223344556677889900aabbccddeeff
///
/// Blanks around the identity and the key are trimmed; blank lines and lines starting with `#` are skipped. The
/// key is hexadecimal without `0x`, turned into bytes exactly as libmosquitto turns `mosquitto_pub --psk` into
/// bytes, so the same string on both sides is the same key. Where mosquitto skips a line (no `:`) or takes a
/// repeated identity silently, this refuses the file naming the line: a skipped line could be a device locked out.
public final class PreSharedKeyFile: Sendable {
    /// Keyed by the identity's bytes: OpenSSL hands the client's identity over as bytes, and mosquitto compares
    /// them with strcmp.
    let keys: [[UInt8]: [UInt8]]

    /// How many identities the file holds.
    public var count: Int { keys.count }

    /// Reads and checks `path` (blocking: at start-up or on reload only).
    public convenience init(path: String) throws(TLSError) {
        try self.init(bytes: Self.read(path), source: path)
    }

    init(bytes: [UInt8], source: String) throws(TLSError) {
        var keys: [[UInt8]: [UInt8]] = [:]
        var lines: [[UInt8]: Int] = [:]
        var number = 0
        for rawLine in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            number += 1
            func failure(_ message: String) -> TLSError {
                .rejectedSetting(key: "psk_file", value: source, reason: "line \(number): \(message)")
            }
            let line = Self.trimmed(rawLine)
            if line.isEmpty || line.first == UInt8(ascii: "#") { continue }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { throw failure("expected IDENTITY:HEXKEY") }
            let identity = Array(Self.trimmed(line[..<colon]))
            let hex = Self.trimmed(line[(colon + 1)...])
            guard !identity.isEmpty else { throw failure("empty identity") }
            guard let name = String(validating: identity, as: UTF8.self) else {
                throw failure("the identity is not valid UTF-8")
            }
            guard identity.count <= Int(PSK_MAX_IDENTITY_LEN), !identity.contains(0) else {
                throw failure("identity \"\(name)\" is longer than the \(PSK_MAX_IDENTITY_LEN) bytes TLS-PSK allows")
            }
            if let earlier = lines[identity] {
                throw failure("identity \"\(name)\" is already given on line \(earlier)")
            }
            guard !hex.isEmpty else { throw failure("identity \"\(name)\" has no key") }
            guard let key = Self.keyBytes(hex) else {
                throw failure("the key of \"\(name)\" is not hexadecimal (digits and a-f only, no 0x)")
            }
            guard !key.isEmpty, key.count <= Int(PSK_MAX_PSK_LEN) else {
                throw failure("the key of \"\(name)\" must be 1 to \(PSK_MAX_PSK_LEN) bytes, it is \(key.count)")
            }
            keys[identity] = key
            lines[identity] = number
        }
        self.keys = keys
    }

    /// The key of `identity`, if the file has it.
    func key(for identity: [UInt8]) -> [UInt8]? { keys[identity] }

    /// libmosquitto's `mosquitto__hex2bin`: each leading "00" pair is a zero byte, then the whole string is read as
    /// a number (BN_hex2bn), whose minimal big-endian bytes follow. So an odd count of digits gets a zero nibble in
    /// front ("12345" is 01 23 45), as mosquitto's own example file relies on.
    static func keyBytes(_ hex: ArraySlice<UInt8>) -> [UInt8]? {
        var nibbles: [UInt8] = []
        nibbles.reserveCapacity(hex.count)
        for character in hex {
            switch character {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibbles.append(character - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibbles.append(character - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibbles.append(character - UInt8(ascii: "A") + 10)
            default: return nil
            }
        }
        var bytes: [UInt8] = []
        var index = 0
        while index + 1 < nibbles.count && nibbles[index] == 0 && nibbles[index + 1] == 0 {
            bytes.append(0)
            index += 2
        }
        var digits = Array(nibbles.drop { $0 == 0 })
        if digits.count % 2 == 1 { digits.insert(0, at: 0) }
        for high in stride(from: 0, to: digits.count, by: 2) {
            bytes.append(digits[high] << 4 | digits[high + 1])
        }
        return bytes
    }

    /// mosquitto's `misc__trimblanks`: C `isspace` at both ends (a `\r` before the `\n` included).
    private static func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || (0x09...0x0D).contains($0) }
        var start = bytes.startIndex
        var end = bytes.endIndex
        while start < end && isSpace(bytes[start]) { start += 1 }
        while end > start && isSpace(bytes[end - 1]) { end -= 1 }
        return bytes[start..<end]
    }

    /// The whole file through an OpenSSL file BIO, so a missing file is reported with the system's reason.
    private static func read(_ path: String) throws(TLSError) -> [UInt8] {
        OpenSSLErrorQueue.clear()
        guard let file = BIO_new_file(path, "r") else {
            throw .rejectedSetting(
                key: "psk_file", value: path, reason: OpenSSLErrorQueue.reason(orElse: "cannot open the file"))
        }
        defer { BIO_free(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        // A PSK file is a few kilobytes; the bound stops a path like /dev/zero from filling memory.
        while bytes.count < 16 << 20 {
            var count = 0
            let status = chunk.withUnsafeMutableBytes { BIO_read_ex(file, $0.baseAddress, $0.count, &count) }
            if status != 1 || count == 0 {
                // 0 both at the end and on a read error (a directory, an I/O error): only the end is fine.
                guard BIO_ctrl(file, BIO_CTRL_EOF, 0, nil) == 1 else {
                    throw .rejectedSetting(
                        key: "psk_file", value: path, reason: OpenSSLErrorQueue.reason(orElse: "cannot read the file"))
                }
                break
            }
            bytes += chunk[0..<count]
        }
        guard bytes.count < 16 << 20 else {
            throw .rejectedSetting(key: "psk_file", value: path, reason: "larger than 16 MiB: not a PSK file")
        }
        OpenSSLErrorQueue.clear()  // BIO_read_ex at the end of the file is not an error
        return bytes
    }
}
