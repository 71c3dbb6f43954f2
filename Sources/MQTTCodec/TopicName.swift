// Topic names: what a PUBLISH is addressed to (§4.7). Validated once in init and trusted afterwards.

/// A validated topic name: 1...65535 bytes of MQTT UTF-8 with no `+` or `#`.
///
/// | name          | valid | why                                         |
/// |---------------|-------|---------------------------------------------|
/// | `a/b`         | yes   |                                             |
/// | `/a//b/`      | yes   | empty levels are levels [MQTT-4.7.3-4]      |
/// | `$SYS/uptime` | yes   | `$` topics are names like any other         |
/// | ``            | no    | empty [MQTT-4.7.3-1]                        |
/// | `a/+`, `a#`   | no    | wildcards belong to filters [MQTT-3.3.2-2]  |
/// | `a\0b`        | no    | U+0000 [MQTT-4.7.3-2]                       |
public struct TopicName: Hashable, Sendable, CustomStringConvertible {
    /// The UTF-8 bytes, exactly as received: never normalised [MQTT-4.7.3-4].
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard TopicName.isValid(bytes) else { return nil }
        self.bytes = bytes
    }

    public init?(_ string: String) {
        self.init(bytes: Array(string.utf8))
    }

    @inlinable
    public static func isValid<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        guard !bytes.isEmpty, bytes.count <= 65535 else { return false }
        if let valid = bytes.withContiguousStorageIfAvailable({
            UTF8Validation.scan(UnsafeRawBufferPointer($0), rejectingWildcards: true)
        }) {
            return valid
        }
        for byte in bytes where byte == UInt8(ascii: "+") || byte == UInt8(ascii: "#") { return false }
        return UTF8Validation.isValidMQTTString(bytes)
    }

    /// Topics starting with `$` are not matched by filters starting with a wildcard [MQTT-4.7.2-1].
    public var isDollarTopic: Bool { bytes.first == UInt8(ascii: "$") }

    public var description: String { String(decoding: bytes, as: UTF8.self) }
}
