// The few OpenSSL primitives auth needs (PBKDF2, SHA-2, HMAC, random bytes, constant-time compare),
// wrapped once so the rest of the module never touches a C pointer.
import COpenSSL

enum Crypto {
    /// PBKDF2-HMAC-SHA512 (RFC 8018 §5.2), mosquitto's `$7$` hash.
    static func pbkdf2SHA512(password: [UInt8], salt: [UInt8], iterations: Int, length: Int) -> [UInt8] {
        precondition(iterations >= 1 && iterations <= Int(Int32.max) && length > 0, "BUG: PBKDF2 parameters")
        var out = [UInt8](repeating: 0, count: length)
        let ok = password.withUnsafeBytes { pw in
            salt.withUnsafeBufferPointer { s in
                out.withUnsafeMutableBufferPointer { o in
                    PKCS5_PBKDF2_HMAC(
                        pw.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(pw.count),
                        s.baseAddress, Int32(s.count), Int32(iterations), EVP_sha512(),
                        Int32(o.count), o.baseAddress)
                }
            }
        }
        // Only an allocation failure inside OpenSSL gets here; a wrong answer must never be used.
        precondition(ok == 1, "PKCS5_PBKDF2_HMAC failed")
        return out
    }

    /// SHA-512 of the concatenated parts (mosquitto's `$6$` hash is SHA-512 over password then salt).
    static func sha512(_ parts: [UInt8]...) -> [UInt8] {
        digest(parts.flatMap { $0 }, EVP_sha512(), length: 64)
    }

    static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        digest(bytes, EVP_sha256(), length: 32)
    }

    private static func digest(_ bytes: [UInt8], _ md: OpaquePointer?, length: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var outLength: UInt32 = 0
        let ok = bytes.withUnsafeBytes { b in
            out.withUnsafeMutableBufferPointer { o in
                EVP_Digest(b.baseAddress, b.count, o.baseAddress, &outLength, md, nil)
            }
        }
        precondition(ok == 1 && Int(outLength) == length, "EVP_Digest failed")
        return Array(out[0..<length])
    }

    /// HMAC-SHA256 (RFC 2104), for HS256 tokens.
    static func hmacSHA256(key: [UInt8], data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var outLength: UInt32 = 0
        let result = key.withUnsafeBytes { k in
            data.withUnsafeBufferPointer { d in
                out.withUnsafeMutableBufferPointer { o in
                    HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), d.baseAddress, d.count, o.baseAddress, &outLength)
                }
            }
        }
        precondition(result != nil && outLength == 32, "HMAC failed")
        return Array(out[0..<32])
    }

    /// Bytes from OpenSSL's CSPRNG, for salts.
    static func randomBytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let ok = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32($0.count)) }
        // A salt that is not random would silently weaken every hash made with it.
        precondition(ok == 1, "RAND_bytes failed")
        return out
    }

    /// Equality whose time does not depend on where the first difference is (`CRYPTO_memcmp`), so a
    /// comparison cannot be used to learn a stored hash byte by byte.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { x in
            b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, x.count) == 0 }
        }
    }
}
