// gzip content coding (RFC 9110 §8.4.1.3, RFC 1952) for the HTTP gateway: one-shot bodies, and a stream that
// flushes after each write so Server-Sent Events arrive as they are written.
import CZlib

/// A gzip member written in pieces, each ending on a sync flush (the receiver can decode everything sent so far).
/// A class: a z_stream must not move.
public final class GzipStream {
    private let stream: UnsafeMutablePointer<z_stream>
    private var chunk = [UInt8](repeating: 0, count: 16 * 1024)

    /// `windowBits` 9-15 and `memoryLevel` 1-9 set zlib's memory: about 2^(windowBits+2) + 2^(memoryLevel+9) bytes.
    /// Nil when zlib cannot allocate its state.
    public init?(level: Int32 = 6, windowBits: Int32 = 15, memoryLevel: Int32 = 8) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        // 16 + windowBits: a gzip header and trailer around the deflate data.
        let status = deflateInit2_(
            stream, level, Z_DEFLATED, 16 + windowBits, memoryLevel, Z_DEFAULT_STRATEGY, zlibVersion(),
            Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else {
            stream.deallocate()
            return nil
        }
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
    }

    /// Appends `input` compressed, flushed so far (`Z_SYNC_FLUSH`), or with the gzip trailer when `finish`.
    public func write(_ input: [UInt8], finish: Bool = false, into out: inout [UInt8]) {
        input.withUnsafeBufferPointer { buffer in
            stream.pointee.next_in = UnsafeMutablePointer(mutating: buffer.baseAddress)
            stream.pointee.avail_in = UInt32(buffer.count)
            // Each pass fills the chunk or ends the flush: bounded by the output's size.
            while true {
                let (status, produced) = chunk.withUnsafeMutableBufferPointer { out -> (Int32, Int) in
                    stream.pointee.next_out = out.baseAddress
                    stream.pointee.avail_out = UInt32(out.count)
                    let status = deflate(stream, finish ? Z_FINISH : Z_SYNC_FLUSH)
                    return (status, out.count - Int(stream.pointee.avail_out))
                }
                precondition(
                    status == Z_OK || status == Z_BUF_ERROR || status == Z_STREAM_END, "BUG: deflate \(status)")
                out.append(contentsOf: chunk[0..<produced])
                if status == Z_STREAM_END || (!finish && stream.pointee.avail_out != 0) { break }
            }
            stream.pointee.next_in = nil
        }
    }

    /// One whole body, gzip-coded.
    public static func compress(_ body: [UInt8]) -> [UInt8]? {
        guard let stream = GzipStream() else { return nil }
        var out: [UInt8] = []
        stream.write(body, finish: true, into: &out)
        return out
    }

    /// Whether an `Accept-Encoding` value takes gzip (RFC 9110 §12.5.3): `gzip` or `*`, not with `q=0`.
    public static func isAccepted(by acceptEncoding: String?) -> Bool {
        guard let acceptEncoding else { return false }
        for item in acceptEncoding.split(separator: ",") {
            let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: " \t").lowercased() }
            guard let coding = parts.first, coding == "gzip" || coding == "x-gzip" || coding == "*" else { continue }
            let refused = parts.dropFirst().contains { parameter in
                let pair = parameter.split(separator: "=", maxSplits: 1)
                return pair.count == 2 && pair[0] == "q" && (Double(pair[1]) ?? 1) == 0
            }
            if !refused { return true }
        }
        return false
    }

    /// gzip-coded bytes decoded (for tests and checks); nil when they are not one valid gzip member.
    static func decompress(_ bytes: [UInt8]) -> [UInt8]? {
        var stream = z_stream()
        guard inflateInit2_(&stream, 16 + 15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            return nil
        }
        defer { inflateEnd(&stream) }
        var input = bytes
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        return input.withUnsafeMutableBufferPointer { buffer -> [UInt8]? in
            stream.next_in = buffer.baseAddress
            stream.avail_in = UInt32(buffer.count)
            for _ in 0..<100_000 {
                let (status, produced) = chunk.withUnsafeMutableBufferPointer { outBuffer -> (Int32, Int) in
                    stream.next_out = outBuffer.baseAddress
                    stream.avail_out = UInt32(outBuffer.count)
                    let status = inflate(&stream, Z_SYNC_FLUSH)
                    return (status, outBuffer.count - Int(stream.avail_out))
                }
                out.append(contentsOf: chunk[0..<produced])
                if status == Z_STREAM_END { return out }
                // A stream cut after a sync flush (an open SSE stream): everything so far decoded.
                if status == Z_BUF_ERROR || (status == Z_OK && stream.avail_in == 0 && produced == 0) { return out }
                guard status == Z_OK else { return nil }
            }
            return nil
        }
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let isTrimmed: (Character) -> Bool = { set.contains($0) }
        return String(drop(while: isTrimmed).reversed().drop(while: isTrimmed).reversed())
    }
}
