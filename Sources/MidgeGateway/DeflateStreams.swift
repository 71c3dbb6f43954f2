// The zlib streams behind permessage-deflate (RFC 7692 §7.2): raw deflate per message, raw inflate with a limit.

import CZlib

/// Raw deflate with a sync flush per message, the tail stripped (§7.2.1). A class: a z_stream must not move.
final class Deflater {
    private let stream: UnsafeMutablePointer<z_stream>
    private let chunk: UnsafeMutablePointer<UInt8>
    private static let chunkSize = 16 * 1024
    private let resetsAfterEachMessage: Bool

    /// Nil when zlib cannot allocate its state.
    init?(parameters: PerMessageDeflateParameters) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let status = deflateInit2_(
            stream, Int32(parameters.compressionLevel), Z_DEFLATED, -Int32(parameters.serverMaxWindowBits),
            Int32(parameters.memoryLevel), Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else {
            stream.deallocate()
            return nil
        }
        chunk = .allocate(capacity: Deflater.chunkSize)
        resetsAfterEachMessage = parameters.serverNoContextTakeover
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
        chunk.deallocate()
    }

    /// Appends the compressed message, without the 0x00 0x00 0xFF 0xFF that the sync flush ends with.
    func compress(_ input: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        let start = out.count
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
        stream.pointee.avail_in = UInt32(input.count)
        // Each pass fills the output chunk or ends the flush, so the passes are bounded by the output size.
        while true {
            stream.pointee.next_out = chunk
            stream.pointee.avail_out = UInt32(Deflater.chunkSize)
            let status = deflate(stream, Z_SYNC_FLUSH)
            precondition(status == Z_OK || status == Z_BUF_ERROR, "BUG: deflate failed with \(status)")
            let produced = Deflater.chunkSize - Int(stream.pointee.avail_out)
            out.append(contentsOf: UnsafeBufferPointer(start: chunk, count: produced))
            if stream.pointee.avail_out != 0 { break }
        }
        stream.pointee.next_in = nil
        assert(out.count - start >= 4 && out.suffix(4) == [0x00, 0x00, 0xFF, 0xFF], "a sync flush ends so")
        out.removeLast(min(4, out.count - start))
        if resetsAfterEachMessage { deflateReset(stream) }
    }
}

enum InflateError: Error, Equatable {
    /// The message would inflate beyond its limit.
    case tooLarge
    case corrupt(String)
}

/// Raw inflate with a 32 KiB window, which reads what any window size wrote (§7.2.2).
final class Inflater {
    private let stream: UnsafeMutablePointer<z_stream>
    private let chunk: UnsafeMutablePointer<UInt8>
    private static let chunkSize = 16 * 1024
    /// The current message held a final deflate block; what follows it in the message is ignored (§7.2.3.3).
    private var streamEnded = false

    init?() {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        guard inflateInit2_(stream, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            stream.deallocate()
            return nil
        }
        chunk = .allocate(capacity: Inflater.chunkSize)
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
        chunk.deallocate()
    }

    /// Inflates part of a message into `out`; returns how many bytes it appended, at most `limit`.
    func inflate(_ input: UnsafeRawBufferPointer, into out: inout [UInt8], limit: Int) throws(InflateError) -> Int {
        guard !streamEnded, input.count > 0 else { return 0 }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
        stream.pointee.avail_in = UInt32(input.count)
        defer { stream.pointee.next_in = nil }
        var total = 0
        // Each pass consumes input or produces output (bounded by `limit`); a pass doing neither ends the loop.
        while true {
            stream.pointee.next_out = chunk
            stream.pointee.avail_out = UInt32(Inflater.chunkSize)
            let status = CZlib.inflate(stream, Z_SYNC_FLUSH)
            let produced = Inflater.chunkSize - Int(stream.pointee.avail_out)
            // Output stops exactly at the limit, so what was delivered does not depend on how input was chunked.
            out.append(contentsOf: UnsafeBufferPointer(start: chunk, count: min(produced, limit - total)))
            total += produced
            if total > limit { throw .tooLarge }
            switch status {
            case Z_STREAM_END:
                streamEnded = true
                return total
            case Z_OK:
                if stream.pointee.avail_in == 0 && stream.pointee.avail_out != 0 { return total }
            case Z_BUF_ERROR:
                return total
            default:
                let reason = stream.pointee.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                throw .corrupt(reason)
            }
        }
    }

    /// Ends a message: feeds the 0x00 0x00 0xFF 0xFF the sender stripped (§7.2.2), and starts afresh when the
    /// message ended the deflate stream.
    func finishMessage(into out: inout [UInt8], limit: Int) throws(InflateError) -> Int {
        let tail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]
        // withUnsafeBytes rethrows untyped errors, so the typed one is carried out by hand.
        var result: Result<Int, InflateError> = .success(0)
        tail.withUnsafeBytes { bytes in
            result = Result { () throws(InflateError) in try inflate(bytes, into: &out, limit: limit) }
        }
        let produced = try result.get()
        if streamEnded {
            inflateReset(stream)
            streamEnded = false
        }
        return produced
    }
}
