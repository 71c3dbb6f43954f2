// The OpenSSL headers Swift sees, plus wrappers for the macros and SSL_OP_BIT constants that do not import.
#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

// TLS over memory BIOs (MidgeTLS). Function-like macros and SSL_OP_BIT(n) constants do not import into Swift,
// so the few the TLS layer and its tests need are wrapped here.
static inline int midge_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}
static inline int midge_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_max_proto_version(ctx, version);
}
static inline long midge_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }
static inline int midge_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}
// Whether `text` is an IPv4 or IPv6 address literal (no brackets, no port). A TLS client checks such a server name
// against the certificate's IP addresses rather than its DNS names, and must not send it as SNI (RFC 6066, 3).
static inline int midge_is_ip_address(const char *text) {
    ASN1_OCTET_STRING *address = a2i_IPADDRESS(text);
    if (address == NULL) return 0;
    ASN1_OCTET_STRING_free(address);
    return 1;
}
// ALPN on the server (RFC 7301): `list` is one length byte, then the protocols in wire format, server preference
// first. A client that offers none of them goes on without ALPN, as it would with a server that has none.
static int midge_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                             unsigned int inlen, void *arg) {
    const unsigned char *list = (const unsigned char *)arg;
    (void)ssl;
    if (SSL_select_next_proto((unsigned char **)out, outlen, list + 1, list[0], in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    return SSL_TLSEXT_ERR_OK;
}
static inline void midge_SSL_CTX_set_alpn_list(SSL_CTX *ctx, const unsigned char *list) {
    SSL_CTX_set_alpn_select_cb(ctx, midge_alpn_select, (void *)list);
}
static const uint64_t MIDGE_SSL_OP_NO_COMPRESSION = SSL_OP_NO_COMPRESSION;
static const uint64_t MIDGE_SSL_OP_CIPHER_SERVER_PREFERENCE = SSL_OP_CIPHER_SERVER_PREFERENCE;
static const uint64_t MIDGE_SSL_OP_NO_RENEGOTIATION = SSL_OP_NO_RENEGOTIATION;
static const uint64_t MIDGE_SSL_OP_NO_TICKET = SSL_OP_NO_TICKET;
static const unsigned long MIDGE_XN_FLAG_RFC2253 = XN_FLAG_RFC2253;
#endif
