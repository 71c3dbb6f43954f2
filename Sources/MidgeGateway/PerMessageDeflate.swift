// The permessage-deflate extension (RFC 7692): configuration, agreed parameters and offer negotiation (§5, §7.1).

/// What the server is willing to agree to. Browsers offer permessage-deflate on every connection.
public struct PerMessageDeflateConfiguration: Sendable, Equatable {
    /// Reset the compressor after every message even when the client did not ask (§7.1.1.1): each message costs
    /// more bytes, but no message depends on an earlier one.
    public var serverNoContextTakeover: Bool
    /// The largest window the server compresses with, 9...15. zlib cannot write raw deflate with a 256-byte
    /// window, so an offer that limits the server to 8 is declined.
    public var serverMaxWindowBits: Int
    /// Asks the client to compress with at most this window when its offer allows it (§7.1.2.2). Nil: no limit.
    public var clientMaxWindowBits: Int?
    /// zlib's level, 0...9 (6 is zlib's default).
    public var compressionLevel: Int
    /// zlib's memLevel, 1...9: the compressor's hash table size; 8 is zlib's default.
    public var memoryLevel: Int
    /// Messages smaller than this are sent uncompressed (RSV1 clear, allowed by §6): a 4-byte PUBACK only grows.
    public var minimumMessageSize: Int

    public init(
        serverNoContextTakeover: Bool = false, serverMaxWindowBits: Int = 15, clientMaxWindowBits: Int? = nil,
        compressionLevel: Int = 6, memoryLevel: Int = 8, minimumMessageSize: Int = 64
    ) {
        precondition((9...15).contains(serverMaxWindowBits), "zlib writes raw deflate with 9...15 window bits")
        precondition(clientMaxWindowBits.map { (8...15).contains($0) } ?? true, "window bits are 8...15")
        precondition((0...9).contains(compressionLevel) && (1...9).contains(memoryLevel), "zlib levels")
        self.serverNoContextTakeover = serverNoContextTakeover
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientMaxWindowBits = clientMaxWindowBits
        self.compressionLevel = compressionLevel
        self.memoryLevel = memoryLevel
        self.minimumMessageSize = minimumMessageSize
    }
}

/// The agreed parameters of one connection, and the `Sec-WebSocket-Extensions` value that states them.
public struct PerMessageDeflateParameters: Sendable, Equatable {
    public var serverNoContextTakeover: Bool
    public var serverMaxWindowBits: Int
    /// The window the client was asked to stay within, or nil when the response does not limit it. Inflating
    /// always uses a 32 KiB window, which reads any smaller one.
    public var clientMaxWindowBits: Int?
    /// Whether the response names `server_max_window_bits` (it must when the offer did, §7.1.2.1).
    public var announcesServerMaxWindowBits: Bool
    public var compressionLevel: Int
    public var memoryLevel: Int
    public var minimumMessageSize: Int

    public init(
        serverNoContextTakeover: Bool = false, serverMaxWindowBits: Int = 15, clientMaxWindowBits: Int? = nil,
        announcesServerMaxWindowBits: Bool = false, compressionLevel: Int = 6, memoryLevel: Int = 8,
        minimumMessageSize: Int = 64
    ) {
        self.serverNoContextTakeover = serverNoContextTakeover
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientMaxWindowBits = clientMaxWindowBits
        self.announcesServerMaxWindowBits = announcesServerMaxWindowBits
        self.compressionLevel = compressionLevel
        self.memoryLevel = memoryLevel
        self.minimumMessageSize = minimumMessageSize
    }

    /// The extension as the 101 response states it.
    public var responseHeaderValue: String {
        var value = "permessage-deflate"
        if serverNoContextTakeover { value += "; server_no_context_takeover" }
        if announcesServerMaxWindowBits { value += "; server_max_window_bits=\(serverMaxWindowBits)" }
        if let clientMaxWindowBits { value += "; client_max_window_bits=\(clientMaxWindowBits)" }
        return value
    }
}

public enum PerMessageDeflate {
    /// The parameters for the first acceptable permessage-deflate offer among the `Sec-WebSocket-Extensions`
    /// values, or nil when there is none. An offer with an unknown, repeated or out-of-range parameter is
    /// declined (§5.1) and the next one is tried.
    public static func negotiate(
        offers headerValues: [String], configuration: PerMessageDeflateConfiguration
    ) -> PerMessageDeflateParameters? {
        for offer in ExtensionList.parse(headerValues) where offer.name == "permessage-deflate" {
            if let parameters = accept(offer.parameters, configuration: configuration) { return parameters }
        }
        return nil
    }

    private static func accept(
        _ offered: [(name: String, value: String?)], configuration: PerMessageDeflateConfiguration
    ) -> PerMessageDeflateParameters? {
        var serverNoContextTakeover = false
        var serverMaxWindowBits: Int?
        var clientMaxWindowBitsOffered = false
        var clientMaxWindowBits: Int?
        var seen: Set<String> = []
        for (name, value) in offered {
            guard seen.insert(name).inserted else { return nil }
            switch name {
            case "server_no_context_takeover":
                guard value == nil else { return nil }
                serverNoContextTakeover = true
            case "client_no_context_takeover":
                // A hint that the client resets its compressor: the inflater reads either way.
                guard value == nil else { return nil }
            case "server_max_window_bits":
                guard let bits = windowBits(value) else { return nil }
                serverMaxWindowBits = bits
            case "client_max_window_bits":
                clientMaxWindowBitsOffered = true
                if let value {
                    guard let bits = windowBits(value) else { return nil }
                    clientMaxWindowBits = bits
                }
            default:
                return nil
            }
        }
        let serverWindow = min(configuration.serverMaxWindowBits, serverMaxWindowBits ?? 15)
        guard serverWindow >= 9 else { return nil }
        // §7.1.2.2: the response may only limit the client's window when the offer carried the parameter.
        var clientWindow: Int?
        if clientMaxWindowBitsOffered, let limit = configuration.clientMaxWindowBits {
            clientWindow = min(limit, clientMaxWindowBits ?? 15)
        }
        return PerMessageDeflateParameters(
            serverNoContextTakeover: serverNoContextTakeover || configuration.serverNoContextTakeover,
            serverMaxWindowBits: serverWindow, clientMaxWindowBits: clientWindow,
            announcesServerMaxWindowBits: serverMaxWindowBits != nil,
            compressionLevel: configuration.compressionLevel, memoryLevel: configuration.memoryLevel,
            minimumMessageSize: configuration.minimumMessageSize)
    }

    /// §7.1.2: 1*DIGIT in 8...15, no leading zero.
    private static func windowBits(_ value: String?) -> Int? {
        guard let value, value.utf8.count <= 2, value.first != "0", let bits = Int(value), (8...15).contains(bits)
        else { return nil }
        return bits
    }
}

/// `Sec-WebSocket-Extensions` values (RFC 6455 §9.1): `name; param; param=value, name2 …`, values maybe quoted.
enum ExtensionList {
    struct Entry {
        var name: String
        var parameters: [(name: String, value: String?)]
    }

    /// Entries in order; an entry that does not parse is left out, which declines it.
    static func parse(_ headerValues: [String]) -> [Entry] {
        var entries: [Entry] = []
        for value in headerValues {
            for element in split(Array(value.utf8), at: UInt8(ascii: ",")) {
                let parts = split(element, at: UInt8(ascii: ";")).map(trim)
                guard let name = parts.first, ASCII.isToken(name) else { continue }
                var parameters: [(name: String, value: String?)] = []
                var valid = true
                for part in parts.dropFirst() {
                    guard let parameter = parseParameter(part) else {
                        valid = false
                        break
                    }
                    parameters.append(parameter)
                }
                if valid { entries.append(Entry(name: lowercased(name), parameters: parameters)) }
            }
        }
        return entries
    }

    private static func parseParameter(_ part: ArraySlice<UInt8>) -> (name: String, value: String?)? {
        guard let equals = part.firstIndex(of: UInt8(ascii: "=")) else {
            return ASCII.isToken(part) ? (lowercased(part), nil) : nil
        }
        let name = trim(part[part.startIndex..<equals])
        var value = trim(part[(equals + 1)...])
        guard ASCII.isToken(name) else { return nil }
        if value.first == UInt8(ascii: "\"") {
            // §9.1: a quoted value must be a token once unquoted; backslash escapes a character.
            guard value.count >= 2, value.last == UInt8(ascii: "\"") else { return nil }
            var unquoted: [UInt8] = []
            var escaped = false
            for byte in value.dropFirst().dropLast() {
                if !escaped && byte == UInt8(ascii: "\\") {
                    escaped = true
                    continue
                }
                escaped = false
                unquoted.append(byte)
            }
            guard !escaped else { return nil }
            value = unquoted[...]
        }
        guard ASCII.isToken(value) else { return nil }
        return (lowercased(name), String(decoding: value, as: UTF8.self))
    }

    /// Splits at `separator` outside double quotes.
    private static func split(_ bytes: ArraySlice<UInt8>, at separator: UInt8) -> [ArraySlice<UInt8>] {
        var parts: [ArraySlice<UInt8>] = []
        var start = bytes.startIndex
        var quoted = false
        var escaped = false
        for index in bytes.indices {
            let byte = bytes[index]
            if escaped {
                escaped = false
            } else if quoted && byte == UInt8(ascii: "\\") {
                escaped = true
            } else if byte == UInt8(ascii: "\"") {
                quoted.toggle()
            } else if byte == separator && !quoted {
                parts.append(bytes[start..<index])
                start = index + 1
            }
        }
        parts.append(bytes[start..<bytes.endIndex])
        return parts
    }

    private static func split(_ bytes: [UInt8], at separator: UInt8) -> [ArraySlice<UInt8>] {
        split(bytes[...], at: separator).map(trim).filter { !$0.isEmpty }
    }

    private static func trim(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var slice = bytes
        while let first = slice.first, first == 0x20 || first == 0x09 { slice = slice.dropFirst() }
        while let last = slice.last, last == 0x20 || last == 0x09 { slice = slice.dropLast() }
        return slice
    }

    private static func lowercased(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.map(ASCII.lower), as: UTF8.self)
    }
}
