// swift-tools-version:6.0
import PackageDescription

// Layers: midge → MidgeServer → MidgeCore → MidgeRecords → MQTTCodec. Only MidgeServer, MidgeStore (and the
// executables) touch the OS.
let package = Package(
    name: "Midge",
    products: [
        .executable(name: "midge", targets: ["midge"]),
        .executable(name: "midge-bench", targets: ["midge-bench"]),
        .executable(name: "midge-floor", targets: ["midge-floor"]),
    ],
    targets: [
        .target(name: "MQTTCodec"),
        // Text encodings more than one module needs (base64 for password files, tokens, WebSocket and HTTP).
        .target(name: "MidgeText"),
        // The durable vocabulary as pure data: records, their encoding, the state they describe. No files, no threads.
        .target(name: "MidgeRecords", dependencies: ["MQTTCodec"]),
        .target(name: "MidgeCore", dependencies: ["MQTTCodec", "MidgeRecords"]),
        // epoll, eventfd, timerfd and accept4 are not in the Glibc module map; this shim exposes them.
        .target(name: "CLinux", cSettings: [.define("_GNU_SOURCE")]),
        // OpenSSL from the system for what must not be written by hand: PBKDF2, SHA, HMAC, later TLS.
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        // Password files, ACL files and tokens: the Authenticator and AccessControl the core asks.
        .target(name: "MidgeAuth", dependencies: ["MidgeCore", "MQTTCodec", "MidgeText", "COpenSSL"]),
        // zlib from the system, for WebSocket permessage-deflate.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // libnghttp2 from the system, for HTTP/2 on the gateway's TLS listeners: framing, HPACK and flow control.
        .systemLibrary(name: "CNGHTTP2", pkgConfig: "libnghttp2", providers: [.apt(["libnghttp2-dev"])]),
        // The durable store: write-ahead log, group commit, snapshots, recovery (CLinux for hardware CRC-32C).
        .target(name: "MidgeStore", dependencies: ["MQTTCodec", "MidgeRecords", "CLinux"]),
        // Sans-I/O protocol pieces of the push gateway: WebSocket, HTTP/1.1, HTTP/2 (nghttp2), SSE, Prometheus text.
        .target(name: "MidgeGateway", dependencies: ["MQTTCodec", "MidgeText", "CZlib", "COpenSSL", "CNGHTTP2"]),
        // TLS over memory BIOs: ciphertext in, plaintext out, so the event loops keep doing the socket I/O.
        .target(name: "MidgeTLS", dependencies: ["COpenSSL"]),
        .target(
            name: "MidgeServer",
            dependencies: [
                "MidgeCore", "MQTTCodec", "MidgeAuth", "MidgeRecords", "MidgeStore", "MidgeTLS", "MidgeGateway",
                "CLinux",
            ]),
        .executableTarget(name: "midge", dependencies: ["MidgeServer", "MidgeAuth", "MidgeRecords", "MidgeStore"]),
        .executableTarget(name: "midge-bench", dependencies: ["MQTTCodec", "CLinux"]),
        // The latency floor of this machine: a relay doing the least a broker must (see its main.swift).
        .executableTarget(name: "midge-floor", dependencies: ["MQTTCodec", "CLinux"]),
        // Fuzz entry points for the frame decoder and the core; replays its corpus when built without libFuzzer.
        .executableTarget(name: "midge-fuzz", dependencies: ["MQTTCodec", "MidgeCore", "MidgeRecords"]),
        .testTarget(name: "MQTTCodecTests", dependencies: ["MQTTCodec"]),
        .testTarget(name: "MidgeTextTests", dependencies: ["MidgeText"]),
        .testTarget(name: "MidgeCoreTests", dependencies: ["MidgeCore", "MQTTCodec", "MidgeRecords", "CLinux"]),
        // The tests' one raw MQTT client over loopback TCP, hand-made packet bytes, WebSocket frames and bounded waits.
        .target(name: "MQTTTestSupport", dependencies: ["MQTTCodec"], path: "Tests/MQTTTestSupport"),
        .testTarget(name: "MidgeAuthTests", dependencies: ["MidgeAuth", "MidgeCore", "MQTTCodec", "MQTTTestSupport"]),
        .testTarget(
            name: "MidgeStoreTests", dependencies: ["MidgeStore", "MidgeRecords", "MQTTCodec", "MQTTTestSupport"]),
        // nghttp2's client session, for tests that hold the gateway's HTTP/2 against an independent implementation.
        .target(name: "HTTP2TestSupport", dependencies: ["CNGHTTP2"], path: "Tests/HTTP2TestSupport"),
        .testTarget(
            name: "MidgeGatewayTests",
            dependencies: ["MidgeGateway", "MQTTCodec", "HTTP2TestSupport", "MQTTTestSupport"]),
        .testTarget(
            name: "MidgeTLSTests", dependencies: ["MidgeTLS", "COpenSSL", "MQTTTestSupport"], exclude: ["Fixtures"]),
        .testTarget(
            name: "MidgeServerTests",
            dependencies: [
                "MidgeServer", "MidgeCore", "MQTTCodec", "MidgeTLS", "MidgeAuth", "COpenSSL", "HTTP2TestSupport",
                "MQTTTestSupport",
            ]),
        // Black-box tests: they start the built `midge` executable and speak raw bytes over loopback TCP.
        .testTarget(name: "ConformanceTests", dependencies: ["MQTTCodec", "MQTTTestSupport"]),
    ]
)
