// JWTs made with Python for the token tests: HS256 with the `hmac` module, RS256 with `cryptography`
// (2048-bit keys generated for these fixtures; only the public key is kept). Claims of the good token:
//     {"sub":"alice","iss":"midge-tests","aud":["mqtt","other"],"nbf":1700000000,"exp":2000000000,
//      "publish":["devices/alice/#"],"subscribe":["commands/alice/+","broadcast/#"]}
enum TokenFixtures {
    static let secret = Array("midge-test-secret-0123456789abcdef".utf8)
    /// The good claims, HS256 with `secret`.
    static let hsGood =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImlzcyI6Im1pZGdlLXRlc3RzIiwiYXVkIjpbIm1xdHQiLCJvdGhlciJdLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6MjAwMDAwMDAwMCwicHVibGlzaCI6WyJkZXZpY2VzL2FsaWNlLyMiXSwic3Vic2NyaWJlIjpbImNvbW1hbmRzL2FsaWNlLysiLCJicm9hZGNhc3QvIyJdfQ.BfkGGK0Q4oFJLJ3tgG-9gPdSzPc1-XFkEYPYOOREEbk"
    /// The good claims signed with another secret.
    static let hsWrongKey =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImlzcyI6Im1pZGdlLXRlc3RzIiwiYXVkIjpbIm1xdHQiLCJvdGhlciJdLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6MjAwMDAwMDAwMCwicHVibGlzaCI6WyJkZXZpY2VzL2FsaWNlLyMiXSwic3Vic2NyaWJlIjpbImNvbW1hbmRzL2FsaWNlLysiLCJicm9hZGNhc3QvIyJdfQ.w3hiiKXxKqMqufEgw3FfKdyvaGcUp6xqKA9vkysDags"
    /// `"alg":"none"` and an empty signature.
    static let hsNone =
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSIsImlzcyI6Im1pZGdlLXRlc3RzIiwiYXVkIjpbIm1xdHQiLCJvdGhlciJdLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6MjAwMDAwMDAwMCwicHVibGlzaCI6WyJkZXZpY2VzL2FsaWNlLyMiXSwic3Vic2NyaWJlIjpbImNvbW1hbmRzL2FsaWNlLysiLCJicm9hZGNhc3QvIyJdfQ."
    /// `exp` 1800000000.
    static let hsExpiring =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImlzcyI6Im1pZGdlLXRlc3RzIiwiYXVkIjpbIm1xdHQiLCJvdGhlciJdLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6MTgwMDAwMDAwMCwicHVibGlzaCI6WyJkZXZpY2VzL2FsaWNlLyMiXSwic3Vic2NyaWJlIjpbImNvbW1hbmRzL2FsaWNlLysiLCJicm9hZGNhc3QvIyJdfQ.vpQYkTfdPpKiDdR8wotg_s39g1KPsoG2kPBgBy338Mg"
    /// No `exp`.
    static let hsNoExp =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImlzcyI6Im1pZGdlLXRlc3RzIiwiYXVkIjpbIm1xdHQiLCJvdGhlciJdLCJuYmYiOjE3MDAwMDAwMDAsInB1Ymxpc2giOlsiZGV2aWNlcy9hbGljZS8jIl0sInN1YnNjcmliZSI6WyJjb21tYW5kcy9hbGljZS8rIiwiYnJvYWRjYXN0LyMiXX0.Hsj1685pHt2_qOIuFPGEJ7LI6JjqlGfHB5R2PueCdU8"
    /// `"publish":["devices/#/x"]`, not a valid filter.
    static let hsBadFilter =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImlzcyI6Im1pZGdlLXRlc3RzIiwiYXVkIjpbIm1xdHQiLCJvdGhlciJdLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6MjAwMDAwMDAwMCwicHVibGlzaCI6WyJkZXZpY2VzLyMveCJdLCJzdWJzY3JpYmUiOlsiY29tbWFuZHMvYWxpY2UvKyIsImJyb2FkY2FzdC8jIl19.1koBzWufzC0Ii_TB2WuHdQxNOIuUOS77Pek4onIo1js"
    /// No `sub`: any user name.
    static let hsNoSub =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJtaWRnZS10ZXN0cyIsImF1ZCI6WyJtcXR0Iiwib3RoZXIiXSwibmJmIjoxNzAwMDAwMDAwLCJleHAiOjIwMDAwMDAwMDAsInB1Ymxpc2giOlsiZGV2aWNlcy9hbGljZS8jIl0sInN1YnNjcmliZSI6WyJjb21tYW5kcy9hbGljZS8rIiwiYnJvYWRjYXN0LyMiXX0.ua8ZUNYVPEmbPxbko4PMUsSVyVSR3v5m3VU96-Y8syw"
    /// Header `{"alg":"HS256","crit":["exp"],"x":1}`.
    static let hsCrit =
        "eyJhbGciOiJIUzI1NiIsImNyaXQiOlsiZXhwIl0sIngiOjF9.eyJzdWIiOiJhbGljZSIsImlzcyI6Im1pZGdlLXRlc3RzIiwiYXVkIjpbIm1xdHQiLCJvdGhlciJdLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6MjAwMDAwMDAwMCwicHVibGlzaCI6WyJkZXZpY2VzL2FsaWNlLyMiXSwic3Vic2NyaWJlIjpbImNvbW1hbmRzL2FsaWNlLysiLCJicm9hZGNhc3QvIyJdfQ.4SO5jkzyvGQxmMjcFGEumU50wtTlcsPExd-d8rnv5dE"
    /// `"sub":"zoë"`, `"publish":["zoë/+"]` (UTF-8 in the payload).
    static let hsUnicode =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ6b8OrIiwiaXNzIjoibWlkZ2UtdGVzdHMiLCJhdWQiOlsibXF0dCIsIm90aGVyIl0sIm5iZiI6MTcwMDAwMDAwMCwiZXhwIjoyMDAwMDAwMDAwLCJwdWJsaXNoIjpbInpvw6svKyJdLCJzdWJzY3JpYmUiOlsiY29tbWFuZHMvYWxpY2UvKyIsImJyb2FkY2FzdC8jIl19.1nmz8eSCLgdsSM07nCtkcUucVlISGNGZ4WPs-7hSv7o"

    static let publicKeyPEM = """
        -----BEGIN PUBLIC KEY-----
        MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA3eqL+lcRVTn2kq8tAHMN
        fBiH7GxnsqZCAzO/0r9dCIFH9IJxXCG7/NH6jKcbbgJoie4RpJYtYoUXBmcsRZC1
        mAgqswmiSJyKUb33aIIws1f9H1NnWeSeNJz5Wr3pOZEu0Xj2RYLR6b2kywjyoAtg
        4RMsvyWzwF1EGjCyp0QIloPYZG5S9o3viyjEjvv5ZsrSAdPpfzR0iE+8IkJmCdl6
        fim7dcgXjapSHhfulhxBnKuk+P2bLaGH5G8qTyeQCUadNJaLh2A18mo1/9CP9Iij
        jrNGzTpM8yXvHQNwgQAOG0V5LWlK7acGlFLxAR4iUkyGP2/WloDE2uXTN9pTq949
        QQIDAQAB
        -----END PUBLIC KEY-----

        """
    /// A 1024-bit RSA public key: too small to accept.
    static let smallPublicKeyPEM = """
        -----BEGIN PUBLIC KEY-----
        MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDZBGuVR+NONTCKUxS0ndlikh5Q
        gvhknUEngoAiGUOwcngefr/lnBSu+YZq3lRUOGJyqQuksvig+ZIOmSPucAZpjJID
        rW3BrXHqoRVclgD9OFyQJgE6Xjo+/q80tmKFLhWk28POlUr4ARGqSaeTEvvXNoZ/
        Lb2vCx0kNLX4rcHvRwIDAQAB
        -----END PUBLIC KEY-----

        """
    /// The good claims, RS256 with the private half of `publicKeyPEM`.
    static let rsGood =
        "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImlzcyI6Im1pZGdlLXRlc3RzIiwiYXVkIjpbIm1xdHQiLCJvdGhlciJdLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6MjAwMDAwMDAwMCwicHVibGlzaCI6WyJkZXZpY2VzL2FsaWNlLyMiXSwic3Vic2NyaWJlIjpbImNvbW1hbmRzL2FsaWNlLysiLCJicm9hZGNhc3QvIyJdfQ.fZb5Pj9rNMPYgSHBPwn1BRR52MHFq0v8YahvJXcBN6dobXIr5oNhNy_iCcp_2fL-p9r7AOzH2yWukDA_5sB2tXM2woCcKqtA_CQEImrhVve9aGKhT9T0YhlGKSc04Q2tH77uVWootV4_RcSrMQlmsMh8fY58lElQjiYP93V_8vQxWlk7OEUHmuPVJaAQyzxJ27hVQbqS4HShWaa0oMA7J30PbYi1sIG3ZIcbD0oZFKzTedV5de8q_sNrUehDrHWxvyujm5kfGKaJ7CTp6gf6ycFEug0VPSwEdXKgPW5jJwobiwabLxg5vqpOMxSyq65j-Dfx_Q2t2ELe5P79HKR2-w"
    /// The good claims, RS256 with an unrelated key.
    static let rsOtherKey =
        "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImlzcyI6Im1pZGdlLXRlc3RzIiwiYXVkIjpbIm1xdHQiLCJvdGhlciJdLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6MjAwMDAwMDAwMCwicHVibGlzaCI6WyJkZXZpY2VzL2FsaWNlLyMiXSwic3Vic2NyaWJlIjpbImNvbW1hbmRzL2FsaWNlLysiLCJicm9hZGNhc3QvIyJdfQ.E8YW7odfDnZPWrt8hFTcZfqPwQTdOMGRbrLVprghmsjX9A_9UmhU2PoQanM5PrCy8z5YpF_1iQgCahbV6ORFNHKnhXcRS-tOw5InGklQ5YerxEW3mx1tsOH8URlzAXKTxKrC4XwL0bmsqlgVmYUqEwM3pZvL64POUWjQPl7jRZqlY3sUJi5B6p0hbYUF4aMuv94oMOqLgiwNC3Csr49jA9diH0v18Hk6cQRduSq4tDiIiDJjRLJoaM9pyxsLPaH8L7vaxHzLCLw6jQOL3s563nnagjyMfc7tqkjrnH962wAPh3q5fea1Dyqt1kFPO1bdRCVCSQoBQg4ZD96s4yfzRg"
    /// Algorithm confusion: HS256 with the text of `publicKeyPEM` as the HMAC secret.
    static let rsConfused =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImlzcyI6Im1pZGdlLXRlc3RzIiwiYXVkIjpbIm1xdHQiLCJvdGhlciJdLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6MjAwMDAwMDAwMCwicHVibGlzaCI6WyJkZXZpY2VzL2FsaWNlLyMiXSwic3Vic2NyaWJlIjpbImNvbW1hbmRzL2FsaWNlLysiLCJicm9hZGNhc3QvIyJdfQ.lhI3VWZHrPi64kmiDSfz9OY7vkumFxOT82wGu0jgNlo"
}
