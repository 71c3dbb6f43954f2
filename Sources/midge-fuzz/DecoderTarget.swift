// Fuzz entry point for the frame decoder (§2.2, §3): arbitrary bytes framed as the server frames a read buffer.
import MQTTCodec

/// Runs `input` through `FrameDecoder.decode` in a loop (decode, advance, stop at nil or an error), as the event
/// loop does, and checks what the decoder promises:
/// - every decoded packet re-encodes to bytes that decode back to an equal packet, consuming all of them;
/// - when the frame used the shortest length encoding, re-encoding gives back exactly the bytes that were read;
/// - a prefix of a frame never yields a packet, and never an error the whole frame does not also raise;
/// - a small `maxRemainingLength` only ever turns packets above it into `packetTooLarge`, decided from the fixed
///   header alone, and changes nothing else.
enum DecoderTarget {
    /// The protocol maximum, as the server runs without `message_size_limit`, then two small limits: one inside
    /// the one-byte length range and one at its edge, so both sides of a length byte boundary are refused.
    static let limits = [268_435_455, 10, 127]

    static func run(_ input: UnsafeRawBufferPointer) -> [String] {
        var findings: [String] = []
        let unlimited = decodeStream(input, decoder: FrameDecoder(maxRemainingLength: limits[0]), into: &findings)
        for limit in limits.dropFirst() {
            let limited = decodeStream(input, decoder: FrameDecoder(maxRemainingLength: limit), into: &findings)
            compare(limited, with: unlimited, limit: limit, input: input, into: &findings)
        }
        return findings
    }

    /// One decoder call's outcome, at `offset` in the input.
    enum Step {
        case packet(Packet, consumed: Int)
        case incomplete
        case failed(DecodeError)
    }

    /// The server's framing loop; checks each step against the prefixes of its own bytes and re-encodes packets.
    static func decodeStream(
        _ input: UnsafeRawBufferPointer, decoder: FrameDecoder, into findings: inout [String]
    ) -> [(offset: Int, step: Step)] {
        var steps: [(offset: Int, step: Step)] = []
        var offset = 0
        // Every packet consumes at least two bytes, so the loop ends within input.count / 2 + 1 steps.
        while offset < input.count {
            let rest = UnsafeRawBufferPointer(rebasing: input[offset...])
            let step = decodeStep(rest, decoder: decoder)
            steps.append((offset, step))
            checkPrefixes(of: rest, step: step, decoder: decoder, offset: offset, into: &findings)
            guard case .packet(let packet, let consumed) = step else { break }
            guard consumed >= 2 && consumed <= rest.count else {
                findings.append("decoder consumed \(consumed) of \(rest.count) bytes at offset \(offset)")
                break
            }
            checkRoundTrip(
                packet, read: UnsafeRawBufferPointer(rebasing: rest[..<consumed]), offset: offset,
                into: &findings)
            offset += consumed
        }
        return steps
    }

    static func decodeStep(_ bytes: UnsafeRawBufferPointer, decoder: FrameDecoder) -> Step {
        do {
            guard let (packet, consumed) = try decoder.decode(bytes) else { return .incomplete }
            return .packet(packet, consumed: consumed)
        } catch {
            return .failed(error)
        }
    }

    /// A reader handed fewer bytes must see "not yet" or the same verdict, never a packet: the event loop relies
    /// on it when a frame arrives over several reads. Short prefixes are all tried (they cover the fixed header),
    /// then a few longer ones up to the last byte.
    static func checkPrefixes(
        of bytes: UnsafeRawBufferPointer, step: Step, decoder: FrameDecoder, offset: Int, into findings: inout [String]
    ) {
        let whole: Int
        if case .packet(_, let consumed) = step { whole = consumed } else { whole = bytes.count }
        guard whole > 0 else { return }
        var lengths = Array(0..<min(whole, 8))
        if whole > 8 { lengths += [whole / 2, whole - 2, whole - 1].filter { $0 >= 8 } }
        for length in lengths {
            let prefix = UnsafeRawBufferPointer(rebasing: bytes[..<length])
            switch (decodeStep(prefix, decoder: decoder), step) {
            case (.incomplete, _):
                continue
            case (.packet(let packet, let consumed), _):
                findings.append(
                    "\(length)-byte prefix at offset \(offset) decoded as \(wireName(packet.type)) (\(consumed) bytes) "
                        + "but the whole input gave \(describe(step))")
            case (.failed(let early), .failed(let late)):
                if !sameVerdict(early: early, late: late) {
                    findings.append(
                        "\(length)-byte prefix at offset \(offset) raised \(early) but the whole input raised \(late)")
                }
            case (.failed(let early), _):
                findings.append(
                    "\(length)-byte prefix at offset \(offset) raised \(early) "
                        + "but the whole input gave \(describe(step))")
            }
        }
    }

    /// The same malformation, or an oversize known from fewer length bytes: the size only grows as bytes arrive.
    static func sameVerdict(early: DecodeError, late: DecodeError) -> Bool {
        switch (early, late) {
        case (.packetTooLarge(let small, let limit), .packetTooLarge(let large, let sameLimit)):
            small <= large && limit == sameLimit
        default:
            early == late
        }
    }

    /// Encoding is the inverse of decoding: the broker forwards what it decoded, so a packet that cannot make the
    /// trip would reach subscribers altered.
    static func checkRoundTrip(
        _ packet: Packet, read: UnsafeRawBufferPointer, offset: Int, into findings: inout [String]
    ) {
        var encoded: [UInt8] = []
        packet.encode(into: &encoded)
        let again = encoded.withUnsafeBytes { decodeStep($0, decoder: FrameDecoder()) }
        guard case .packet(let decoded, let consumed) = again else {
            findings.append(
                "\(wireName(packet.type)) decoded at offset \(offset) re-encodes to \(hex(encoded)), "
                    + "which gives \(describe(again))")
            return
        }
        if decoded != packet || consumed != encoded.count {
            findings.append(
                "\(wireName(packet.type)) decoded at offset \(offset) re-encodes to \(hex(encoded)), "
                    + "which decodes to a different \(wireName(decoded.type)) (\(consumed) of \(encoded.count) bytes)")
        }
        // Longer length encodings are accepted (§2.2.3 does not forbid them); with the shortest one, every field
        // has one encoding, so anything else means the decoder dropped or repaired a byte. MQTT 3.1 CONNECTs are
        // exempt: like mosquitto, the decoder ignores the flag bits 3.1.1 made strict (§3.1.2.3) for them.
        if case .connect(let connect) = packet, connect.protocolVersion == .v3_1 { return }
        if encoded.count == read.count && !encoded.elementsEqual(read) {
            findings.append(
                "\(wireName(packet.type)) read as \(hex(read)) at offset \(offset) re-encodes to \(hex(encoded))")
        }
    }

    /// A lower limit changes nothing but refusing, from the fixed header, the frames above it.
    static func compare(
        _ limited: [(offset: Int, step: Step)], with unlimited: [(offset: Int, step: Step)], limit: Int,
        input: UnsafeRawBufferPointer, into findings: inout [String]
    ) {
        for (index, (offset, step)) in limited.enumerated() {
            guard index < unlimited.count, unlimited[index].offset == offset else {
                findings.append("limit \(limit): step \(index) at offset \(offset) has no unlimited counterpart")
                return
            }
            let declared = declaredLength(UnsafeRawBufferPointer(rebasing: input[offset...]))
            let oversized = declared.map { $0 > limit } ?? false
            switch (step, unlimited[index].step) {
            case (.packet(let packet, let consumed), .packet(let expected, let expectedConsumed)):
                if packet != expected || consumed != expectedConsumed || oversized {
                    findings.append("limit \(limit): packet at offset \(offset) differs from the unlimited decoder's")
                }
            case (.failed(.packetTooLarge(let size, let reported)), _):
                // Refused from a lower bound of the length when the length bytes stop early, so size <= declared.
                if reported != limit || size <= limit || (declared.map { size > $0 } ?? false) {
                    findings.append(
                        "limit \(limit): packetTooLarge(size: \(size), limit: \(reported)) at offset \(offset) "
                            + "for a declared length of \(declared.map(String.init) ?? "unknown")")
                }
            case (.failed(let error), .failed(let expected)):
                // The type and flags are checked before the length, so only a first-byte error may win over the size.
                let firstByte = UnsafeRawBufferPointer(rebasing: input[offset..<offset + 1])
                let firstByteError: DecodeError?
                if case .failed(let error) = decodeStep(firstByte, decoder: FrameDecoder()) {
                    firstByteError = error
                } else {
                    firstByteError = nil
                }
                if error != expected || (oversized && error != firstByteError) {
                    findings.append(
                        "limit \(limit): frame at offset \(offset) declaring \(declared.map(String.init) ?? "?") bytes "
                            + "raised \(error), unlimited raised \(expected)")
                }
            case (.incomplete, .incomplete):
                if oversized {
                    findings.append(
                        "limit \(limit): frame at offset \(offset) declares \(declared ?? 0) bytes but was not refused "
                            + "as too large")
                }
            default:
                findings.append(
                    "limit \(limit): offset \(offset) gave \(describe(step)), "
                        + "unlimited gave \(describe(unlimited[index].step))")
            }
        }
    }

    /// The remaining length a complete fixed header declares (up to four length bytes), or nil while incomplete.
    static func declaredLength(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var length = 0
        var shift = 0
        for index in 1..<min(bytes.count, 5) {
            length |= Int(bytes[index] & 0x7F) << shift
            if bytes[index] & 0x80 == 0 { return length }
            shift += 7
        }
        return nil
    }

    static func describe(_ step: Step) -> String {
        switch step {
        case .packet(let packet, let consumed): "\(wireName(packet.type)) (\(consumed) bytes)"
        case .incomplete: "nothing yet"
        case .failed(let error): "\(error)"
        }
    }
}

/// The spec's name of a packet type (`PUBACK`), for messages.
func wireName(_ type: PacketType) -> String {
    String(describing: type).uppercased()
}

/// Bytes as hex, for failure messages; long inputs are cut, their length kept.
func hex<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    let digits = Array("0123456789abcdef")
    var text = ""
    for byte in bytes.prefix(64) {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0x0F)])
    }
    return bytes.count > 64 ? text + "… (\(bytes.count) bytes)" : text
}
