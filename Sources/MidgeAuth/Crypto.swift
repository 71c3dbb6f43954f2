// The few OpenSSL primitives auth needs (PBKDF2, SHA-2, HMAC, RSA signature checks, random bytes,
// constant-time compare), wrapped once so the rest of the module never touches a C pointer.
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

/// An RSA public key loaded once from PEM and used for every RS256 check.
///
/// `@unchecked Sendable`: the `EVP_PKEY` is never modified after loading, and OpenSSL 3 allows a key to
/// be shared by threads for verification as long as each uses its own `EVP_MD_CTX`, which
/// `verifySHA256` makes per call.
final class PublicKey: @unchecked Sendable {
    private let key: OpaquePointer

    init(pem: String) throws(TokenError) {
        let bytes = Array(pem.utf8)
        let loaded: OpaquePointer? = bytes.withUnsafeBytes { buffer in
            guard let bio = BIO_new_mem_buf(buffer.baseAddress, Int32(buffer.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PUBKEY(bio, nil, nil, nil)
        }
        guard let loaded else {
            ERR_clear_error()
            throw TokenError(message: "the RS256 key is not a PEM public key (-----BEGIN PUBLIC KEY-----)")
        }
        guard EVP_PKEY_get_base_id(loaded) == NID_rsaEncryption else {
            EVP_PKEY_free(loaded)
            throw TokenError(message: "the RS256 key is not an RSA key")
        }
        guard EVP_PKEY_get_bits(loaded) >= 2048 else {
            EVP_PKEY_free(loaded)
            throw TokenError(message: "the RS256 key must have at least 2048 bits")
        }
        key = loaded
    }

    deinit { EVP_PKEY_free(key) }

    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3).
    func verifySHA256(signature: [UInt8], data: [UInt8]) -> Bool {
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        let ok =
            EVP_DigestVerifyInit(context, nil, EVP_sha256(), nil, key) == 1
            && signature.withUnsafeBufferPointer { s in
                data.withUnsafeBufferPointer { d in
                    EVP_DigestVerify(context, s.baseAddress, s.count, d.baseAddress, d.count) == 1
                }
            }
        // A failed verification leaves errors on this thread's OpenSSL queue, where a later TLS call on
        // the same thread would mistake them for its own.
        if !ok { ERR_clear_error() }
        return ok
    }
}
