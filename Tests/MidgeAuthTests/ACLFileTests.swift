// ACL files in mosquitto 2.0's syntax and semantics. Expectations marked "2.0.11" were checked against
// Debian's mosquitto 2.0.11 with mosquitto_pub/mosquitto_sub over loopback.
import Foundation
import MQTTCodec
import MidgeCore
import XCTest

@testable import MidgeAuth

final class ACLFileTests: XCTestCase {
    private func acl(_ text: String) throws -> ACLFile { try ACLFile(text: text, source: "acl") }

    private static func topic(_ text: String) -> TopicName {
        guard let name = TopicName(text) else { preconditionFailure("bad test topic \(text)") }
        return name
    }

    private func pub(_ file: ACLFile, _ id: String, _ user: String?, _ name: String) -> Bool {
        file.mayPublish(clientID: id, username: user, topic: Self.topic(name))
    }

    private func recv(_ file: ACLFile, _ id: String, _ user: String?, _ name: String) -> Bool {
        file.mayReceive(clientID: id, username: user, topic: Self.topic(name))
    }

    /// /usr/share/doc/mosquitto/examples/aclfile.example from the Debian package, verbatim.
    static let debianExample = """
        # This affects access control for clients with no username.
        topic read $SYS/#

        # This only affects clients with username "roger".
        user roger
        topic foo/bar

        # This affects all clients.
        pattern write $SYS/broker/connection/%c/state

        """

    func testDebianExampleAnonymousClients() throws {
        let file = try acl(Self.debianExample)
        XCTAssertTrue(recv(file, "c", nil, "$SYS/broker/uptime"))
        XCTAssertFalse(pub(file, "c", nil, "$SYS/broker/uptime"), "read only, and $SYS is the broker's")
        XCTAssertFalse(recv(file, "c", nil, "foo/bar"), "roger's rule is not for anonymous clients")
        XCTAssertFalse(pub(file, "c", nil, "foo/bar"))
    }

    func testDebianExampleUserBlock() throws {
        let file = try acl(Self.debianExample)
        XCTAssertTrue(pub(file, "c", "roger", "foo/bar"))
        XCTAssertTrue(recv(file, "c", "roger", "foo/bar"))
        XCTAssertFalse(pub(file, "c", "roger", "foo/baz"))
        XCTAssertFalse(recv(file, "c", "roger", "foo/bar/baz"))
        XCTAssertFalse(
            recv(file, "c", "roger", "$SYS/broker/uptime"), "top-of-file rules are for anonymous clients only")
        XCTAssertFalse(pub(file, "c", "someone", "foo/bar"), "another user has no rules here")
    }

    func testDebianExampleBridgeStatePattern() throws {
        let file = try acl(Self.debianExample)
        XCTAssertTrue(pub(file, "bridge1", nil, "$SYS/broker/connection/bridge1/state"))
        XCTAssertTrue(pub(file, "bridge1", "roger", "$SYS/broker/connection/bridge1/state"), "patterns apply to all")
        XCTAssertFalse(pub(file, "bridge2", nil, "$SYS/broker/connection/bridge1/state"), "%c is the client's own id")
        XCTAssertFalse(recv(file, "bridge1", "roger", "$SYS/broker/connection/bridge1/state"), "write only")
        XCTAssertTrue(recv(file, "bridge1", nil, "$SYS/broker/connection/bridge1/state"), "anonymous read $SYS/#")
    }

    /// man mosquitto.conf: `pattern write sensor/%u/data`.
    func testManPageUsernamePattern() throws {
        let file = try acl("pattern write sensor/%u/data\n")
        XCTAssertTrue(pub(file, "c", "alice", "sensor/alice/data"))
        XCTAssertFalse(pub(file, "c", "alice", "sensor/bob/data"))
        XCTAssertFalse(recv(file, "c", "alice", "sensor/alice/data"), "write only")
        XCTAssertFalse(pub(file, "c", nil, "sensor/%u/data"), "a %u pattern never applies without a user name")
        XCTAssertFalse(pub(file, "c", nil, "sensor//data"))
    }

    func testClientIDPatternAppliesToAnonymousClientsToo() throws {
        let file = try acl("pattern readwrite clients/%c/#\n")
        XCTAssertTrue(pub(file, "c1", nil, "clients/c1/x"))
        XCTAssertTrue(recv(file, "c1", "alice", "clients/c1"), "`/#` also matches the parent level")
        XCTAssertFalse(recv(file, "c1", nil, "clients/c2/x"))
    }

    /// 2.0.11: `topic deny` wins over an earlier or later grant; the same for patterns.
    func testDenyWins() throws {
        let file = try acl(
            """
            user roger
            topic foo/#
            topic deny foo/secret
            pattern deny p/%c/no
            pattern readwrite p/%c/#
            """)
        XCTAssertFalse(pub(file, "c1", "roger", "foo/secret"))
        XCTAssertFalse(recv(file, "c1", "roger", "foo/secret"))
        XCTAssertTrue(pub(file, "c1", "roger", "foo/ok"))
        XCTAssertFalse(pub(file, "c1", nil, "p/c1/no"))
        XCTAssertTrue(pub(file, "c1", nil, "p/c1/yes"))
        XCTAssertTrue(recv(file, "c1", nil, "p/c1"))
        // A deny listed first and a grant of a wider filter after it: still denied.
        let denyFirst = try acl("topic deny a/b\ntopic a/#\n")
        XCTAssertFalse(recv(denyFirst, "c", nil, "a/b"))
        XCTAssertTrue(recv(denyFirst, "c", nil, "a/c"))
    }

    /// A grant without the wanted access does not refuse: the search goes on to the patterns.
    func testPartialGrantFallsThroughToPatterns() throws {
        let file = try acl("user roger\ntopic read ro/#\npattern write ro/%u\n")
        XCTAssertTrue(recv(file, "c", "roger", "ro/a"))
        XCTAssertFalse(pub(file, "c", "roger", "ro/a"), "2.0.11")
        XCTAssertTrue(pub(file, "c", "roger", "ro/roger"))
    }

    /// A `+` or `#` in the client id or user name must never widen a pattern to other clients' topics.
    func testWildcardIdentitiesNeverWidenPatterns() throws {
        let file = try acl(
            """
            user roger
            topic foo/#
            pattern readwrite p/%c/#
            pattern readwrite u/%u/#
            """)
        // Expanded naively, `p/+/#` and `p/#/#` would match every client's topics.
        XCTAssertFalse(pub(file, "+", nil, "p/victim/x"))
        XCTAssertFalse(recv(file, "+", nil, "p/victim/x"))
        XCTAssertFalse(recv(file, "#", nil, "p/victim"))
        XCTAssertFalse(recv(file, "ok", "+", "u/victim/x"))
        XCTAssertFalse(recv(file, "ok", "#", "u/victim"))
        XCTAssertFalse(recv(file, "ok", "x#", "u/x/y"))
        // Such a client gets nothing from any pattern, not even one without %c/%u in it...
        let plain = try acl("pattern read public/#\n")
        XCTAssertTrue(recv(plain, "ok", nil, "public/news"))
        XCTAssertFalse(recv(plain, "bad+id", nil, "public/news"))
        XCTAssertFalse(recv(plain, "ok", "bad#user", "public/news"))
        // ...but its own user block still applies, as in 2.0.11.
        XCTAssertTrue(pub(file, "c#", "roger", "foo/ok"))
    }

    /// 2.0.11 substitutes %c/%u as text, not only as whole levels (the man page's "must be the only
    /// text for that level" is advice, not enforced), and allows `/` in identities.
    func testTextualSubstitutionAsInMosquitto() throws {
        let file = try acl("pattern readwrite q%c\npattern readwrite p/%c/x\n")
        XCTAssertTrue(pub(file, "cl1", nil, "qcl1"))
        XCTAssertFalse(pub(file, "cl2", nil, "qcl1"))
        XCTAssertTrue(pub(file, "a/b", nil, "p/a/b/x"))
        XCTAssertFalse(pub(file, "a/b", nil, "p/a/x"))
    }

    func testTopLevelRulesAreForAnonymousClientsOnly() throws {
        let file = try acl("topic anon/#\nuser roger\ntopic foo/bar\n")
        XCTAssertTrue(pub(file, "c", nil, "anon/x"))
        XCTAssertFalse(pub(file, "c", "roger", "anon/x"), "2.0.11")
    }

    /// `$` topics are matched only by rules starting with `$` [MQTT-4.7.2-1].
    func testDollarTopicsNeedADollarRule() throws {
        let file = try acl("user admin\ntopic #\ntopic +/uptime\nuser ops\ntopic read $SYS/#\n")
        XCTAssertTrue(recv(file, "c", "admin", "anything/at/all"))
        XCTAssertFalse(recv(file, "c", "admin", "$SYS/broker/uptime"))
        XCTAssertFalse(recv(file, "c", "admin", "$SYS/uptime"))
        XCTAssertTrue(recv(file, "c", "ops", "$SYS/broker/uptime"))
    }

    /// Publishing to `$SYS` is refused whatever the rules say, except a bridge's state topic; `$share`
    /// names are never published or delivered (mosquitto's `acl__check_dollar`).
    func testDollarSysWritesAndShareNames() throws {
        let file = try acl("user admin\ntopic $SYS/#\ntopic $share/#\ntopic #\n")
        XCTAssertFalse(pub(file, "c", "admin", "$SYS/broker/uptime"))
        XCTAssertTrue(recv(file, "c", "admin", "$SYS/broker/uptime"))
        XCTAssertTrue(pub(file, "c", "admin", "$SYS/broker/connection/b1/state"))
        XCTAssertFalse(pub(file, "c", "admin", "$share/group/t"))
        XCTAssertFalse(recv(file, "c", "admin", "$share/group/t"))
        XCTAssertTrue(pub(file, "c", "admin", "sharedata"), "only the `$share` prefix is special")
    }

    /// mosquitto 2.0 grants every subscription and checks each delivery instead (2.0.11: a SUBACK with
    /// the requested QoS, then nothing delivered).
    func testSubscriptionsAreGrantedAndDeliveriesChecked() throws {
        let file = try acl(Self.debianExample)
        XCTAssertTrue(file.checksDeliveries)
        for filter in ["#", "$SYS/#", "foo/bar", "secret/+"] {
            guard let parsed = TopicFilter(filter) else { return XCTFail(filter) }
            XCTAssertTrue(file.maySubscribe(clientID: "c", username: "nobody", filter: parsed))
        }
    }

    /// CVE-2018-12550: an ACL file with no rules denies everything instead of allowing everything.
    func testEmptyFileDeniesEverything() throws {
        for text in ["", "# only a comment\n\n", "user roger\n"] {
            let file = try acl(text)
            XCTAssertFalse(pub(file, "c", nil, "a"))
            XCTAssertFalse(recv(file, "c", "roger", "a"))
        }
    }

    func testRepeatedUserBlocksMerge() throws {
        let file = try acl("user roger\ntopic a\nuser other\ntopic b\nuser roger\ntopic c\n")
        XCTAssertTrue(pub(file, "x", "roger", "a"))
        XCTAssertTrue(pub(file, "x", "roger", "c"))
        XCTAssertFalse(pub(file, "x", "roger", "b"))
        XCTAssertTrue(pub(file, "x", "other", "b"))
    }

    func testUserNamesCompareAsBytes() throws {
        let file = try acl("user caf\u{E9}\ntopic t\n")
        XCTAssertTrue(pub(file, "x", "caf\u{E9}", "t"))
        XCTAssertFalse(pub(file, "x", "cafe\u{301}", "t"))
    }

    /// What mosquitto's line reader does with spacing: the rest of the line is the topic or user name.
    func testSpacingAndOptionalAccessWord() throws {
        let file = try acl(
            """
              # an indented comment\r
            user   spaced name  \r
            topic read   with space/x  \r
            topic\twrite\ttabbed/x
            topic read
            """)
        XCTAssertTrue(recv(file, "c", "spaced name", "with space/x"))
        XCTAssertFalse(pub(file, "c", "spaced name", "with space/x"))
        XCTAssertTrue(pub(file, "c", "spaced name", "tabbed/x"))
        // `topic read` alone names the topic "read", with read and write access (mosquitto's reading).
        XCTAssertTrue(pub(file, "c", "spaced name", "read"))
    }

    func testMalformedLinesNameTheLine() {
        let cases: [(line: String, message: String)] = [
            ("topic", "missing topic"),
            ("pattern", "missing topic"),
            ("topic readx foo", "unknown access \"readx\""),
            ("topic foo bar", "unknown access \"foo\""),
            ("user", "missing user name"),
            ("user   ", "missing user name"),
            ("users roger", "unknown keyword \"users\""),
            ("topic read a/#/b", "not a valid topic filter"),
            ("pattern write a+", "not a valid topic filter"),
            ("topic read sport+", "not a valid topic filter"),
        ]
        for (line, message) in cases {
            XCTAssertThrowsError(try ACLFile(text: "# header\ntopic ok\n\(line)\n", source: "acl.conf"), line) {
                error in
                guard let error = error as? AuthFileError else { return XCTFail("\(error)") }
                XCTAssertEqual(error.line, 3, line)
                XCTAssertEqual(error.file, "acl.conf")
                XCTAssertTrue(error.message.contains(message), "\(line): \(error.message)")
            }
        }
    }

    func testLoadsFromPath() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let path = try scratch.write("acl", Self.debianExample)
        XCTAssertTrue(recv(try ACLFile(path: path), "c", nil, "$SYS/broker/uptime"))
        XCTAssertThrowsError(try ACLFile(path: scratch.file("missing"))) { error in
            XCTAssertNil((error as? AuthFileError)?.line)
        }
    }

    func testConcurrentChecksAreSafe() throws {
        let file = try acl("pattern readwrite p/%c/#\nuser roger\ntopic foo/#\n")
        let results = UnsafeSendableBox(Array(repeating: false, count: 64))
        DispatchQueue.concurrentPerform(iterations: 64) { index in
            let id = "c\(index % 8)"
            let own = file.mayReceive(clientID: id, username: nil, topic: ACLFileTests.topic("p/\(id)/x"))
            let other = file.mayReceive(clientID: id, username: nil, topic: ACLFileTests.topic("p/other/x"))
            results.set(index, own && !other)
        }
        for index in 0..<64 { XCTAssertTrue(results.get(index)) }
    }
}
