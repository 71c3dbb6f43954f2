// mosquitto 2.0's dynamic-security plugin built in: the file `mosquitto_ctrl dynsec init` writes, the JSON commands,
// ACL decisions by priority, CONNECT checks, and saving.
import Foundation
import MQTTCodec
import MidgeCore
import Synchronization
import XCTest

@testable import MidgeAuth

/// Written by `mosquitto_ctrl dynsec init dynamic-security.json admin adminpw` (mosquitto 2.0.11).
let initFile = #"""
    {
    	"clients":	[{
    			"username":	"admin",
    			"textName":	"Dynsec admin user",
    			"password":	"w4O4KiIYXJIUHzihQ0gbsMdJtU7EV0P++jNzmmTSo9WeX3HUhlRvyuGzDVEzIqshczsQOylbRIC4u/IoXzeWJw==",
    			"salt":	"9kJwDOd7q8MoLwrw",
    			"iterations":	101,
    			"roles":	[{
    					"rolename":	"admin"
    				}]
    		}],
    	"roles":	[{
    			"rolename":	"admin",
    			"acls":	[{
    					"acltype":	"publishClientSend",
    					"topic":	"$CONTROL/dynamic-security/#",
    					"allow":	true
    				}, {
    					"acltype":	"publishClientReceive",
    					"topic":	"$CONTROL/dynamic-security/#",
    					"allow":	true
    				}, {
    					"acltype":	"subscribePattern",
    					"topic":	"$CONTROL/dynamic-security/#",
    					"allow":	true
    				}, {
    					"acltype":	"publishClientReceive",
    					"topic":	"$SYS/#",
    					"allow":	true
    				}, {
    					"acltype":	"subscribePattern",
    					"topic":	"$SYS/#",
    					"allow":	true
    				}, {
    					"acltype":	"publishClientReceive",
    					"topic":	"#",
    					"allow":	true
    				}, {
    					"acltype":	"subscribePattern",
    					"topic":	"#",
    					"allow":	true
    				}, {
    					"acltype":	"unsubscribePattern",
    					"topic":	"#",
    					"allow":	true
    				}]
    		}],
    	"defaultACLAccess":	{
    		"publishClientSend":	false,
    		"publishClientReceive":	true,
    		"subscribe":	false,
    		"unsubscribe":	true
    	}
    }
    """#

final class DynamicSecurityTests: XCTestCase {
    private func security(_ text: String = initFile) throws -> DynamicSecurity {
        DynamicSecurity(state: try DynamicSecurityState.load(bytes: Array(text.utf8), source: "ds.json"), path: nil)
    }

    /// Runs commands as the admin; returns the parsed `responses`.
    @discardableResult
    private func run(_ security: DynamicSecurity, _ commands: String) -> [JSONValue] {
        let reply = security.handle(
            payload: Array(#"{"commands":[\#(commands)]}"#.utf8), clientID: "ctl", username: "admin")
        return JSONValue.parse(reply.response)?["responses"]?.arrayValue ?? []
    }

    private func errors(_ responses: [JSONValue]) -> [String?] { responses.map { $0["error"]?.stringValue } }

    private func topic(_ text: String) -> TopicName { TopicName(text)! }
    private func filter(_ text: String) -> TopicFilter { TopicFilter(text)! }

    func testTheInitFileIsRead() throws {
        let security = try security()
        XCTAssertEqual(
            security.authenticate(clientID: "x", username: "admin", password: Array("adminpw".utf8)), .accepted)
        XCTAssertEqual(
            security.authenticate(clientID: "x", username: "admin", password: Array("wrong".utf8)), .notAuthorized)
        // The admin may send commands and read the answers, but not publish to ordinary topics.
        XCTAssertTrue(
            security.mayPublish(clientID: "x", username: "admin", topic: topic("$CONTROL/dynamic-security/v1")))
        XCTAssertTrue(
            security.maySubscribe(clientID: "x", username: "admin", filter: filter("$CONTROL/dynamic-security/#")))
        XCTAssertTrue(
            security.mayReceive(clientID: "x", username: "admin", topic: topic("$CONTROL/dynamic-security/v1/response"))
        )
        XCTAssertFalse(security.mayPublish(clientID: "x", username: "admin", topic: topic("a/b")))
        // `textName` is read as `textname`, as cJSON's case-insensitive lookup does.
        XCTAssertTrue(security.fileText.contains(#""textname": "Dynsec admin user""#))
    }

    func testFileRoundTrip() throws {
        let first = try security()
        run(first, #"{"command":"createClient","username":"u1","password":"p","clientid":"c1","textname":"T"}"#)
        run(first, #"{"command":"createRole","rolename":"r"},{"command":"createGroup","groupname":"g"}"#)
        run(
            first,
            #"{"command":"addRoleACL","rolename":"r","acltype":"subscribeLiteral","topic":"a/+","priority":3,"allow":true}"#
        )
        run(first, #"{"command":"addGroupClient","groupname":"g","username":"u1","priority":2}"#)
        run(
            first,
            #"{"command":"addGroupRole","groupname":"g","rolename":"r"},{"command":"setAnonymousGroup","groupname":"g"}"#
        )
        run(first, #"{"command":"disableClient","username":"u1"}"#)
        let text = first.fileText
        let second = try security(text)
        XCTAssertEqual(second.fileText, text)
        XCTAssertTrue(text.contains(#""anonymousGroup": "g""#))
        XCTAssertTrue(text.contains(#""disabled": true"#))
    }

    func testMalformedInputGetsMosquittosErrors() throws {
        let security = try security()
        func answer(_ payload: String) -> [String?] {
            let reply = security.handle(payload: Array(payload.utf8), clientID: "c", username: "admin")
            return errors(JSONValue.parse(reply.response)?["responses"]?.arrayValue ?? [])
        }
        XCTAssertEqual(answer("{not json"), ["Payload not valid JSON"])
        XCTAssertEqual(answer(#"{"commands":{}}"#), ["Invalid/missing commands"])
        XCTAssertEqual(
            answer(#"{"commands":[1, {"x":1}, {"command":"fly"}]}"#),
            ["Command not an object", "Missing command", "Unknown command"])
        XCTAssertEqual(
            errors(
                run(
                    security,
                    #"{"command":"createRole","rolename":"r"},{"command":"addRoleACL","rolename":"r","acltype":"publishEverything","topic":"a","allow":true}"#
                )),
            [nil, "Unknown acltype"])
        XCTAssertEqual(
            errors(
                run(security, #"{"command":"addRoleACL","rolename":"r","acltype":"subscribePattern","topic":"a/#/b"}"#)),
            ["Invalid ACL topic"])
        XCTAssertEqual(
            errors(run(security, #"{"command":"createClient","username":"admin"}"#)), ["Client already exists"])
        XCTAssertEqual(errors(run(security, #"{"command":"createClient","username":7}"#)), ["Invalid/missing username"])
        XCTAssertEqual(
            errors(run(security, #"{"command":"addClientRole","username":"admin","rolename":"nope"}"#)),
            ["Role not found"])
        XCTAssertEqual(
            errors(run(security, #"{"command":"setClientPassword","username":"admin","password":""}"#)),
            ["Empty password is not allowed"])
        // A correlationData comes back; one of the wrong type stops the request there.
        let answered = run(security, #"{"command":"getDefaultACLAccess","correlationData":"42"}"#)
        XCTAssertEqual(answered.first?["correlationData"]?.stringValue, "42")
        XCTAssertEqual(
            errors(run(security, #"{"command":"listRoles","correlationData":5},{"command":"listRoles"}"#)),
            ["Invalid correlationData data type."])
    }

    func testRolesApplyByPriorityAndAtOnce() throws {
        let security = try security()
        run(security, #"{"command":"createClient","username":"u","password":"pw"}"#)
        run(security, #"{"command":"createRole","rolename":"low"},{"command":"createRole","rolename":"high"}"#)
        run(
            security,
            #"{"command":"addRoleACL","rolename":"low","acltype":"publishClientSend","topic":"a/#","allow":true}"#)
        run(security, #"{"command":"addClientRole","username":"u","rolename":"low","priority":1}"#)
        XCTAssertTrue(security.mayPublish(clientID: "c", username: "u", topic: topic("a/x")))
        // A deny in a role of higher priority is looked at first.
        run(
            security,
            #"{"command":"addRoleACL","rolename":"high","acltype":"publishClientSend","topic":"a/x","allow":false}"#)
        run(security, #"{"command":"addClientRole","username":"u","rolename":"high","priority":2}"#)
        XCTAssertFalse(security.mayPublish(clientID: "c", username: "u", topic: topic("a/x")))
        XCTAssertTrue(security.mayPublish(clientID: "c", username: "u", topic: topic("a/y")))
        // Within a role, the ACL of higher priority first.
        run(
            security,
            #"{"command":"addRoleACL","rolename":"high","acltype":"publishClientSend","topic":"a/+","priority":5,"allow":true}"#
        )
        XCTAssertTrue(security.mayPublish(clientID: "c", username: "u", topic: topic("a/x")))
        // Nothing matches: the default (deny for publishClientSend, allow for publishClientReceive, never $CONTROL).
        XCTAssertFalse(security.mayPublish(clientID: "c", username: "u", topic: topic("b")))
        XCTAssertTrue(security.mayReceive(clientID: "c", username: "u", topic: topic("b")))
        XCTAssertFalse(
            security.mayReceive(clientID: "c", username: "u", topic: topic("$CONTROL/dynamic-security/v1/response")))
        // An unknown user name gets nothing, whatever the defaults say.
        XCTAssertFalse(security.mayReceive(clientID: "c", username: "ghost", topic: topic("b")))
    }

    func testSubscriptionRulesAndGroups() throws {
        let security = try security()
        run(
            security,
            #"{"command":"createClient","username":"u","password":"pw"},{"command":"createGroup","groupname":"g"}"#)
        run(
            security,
            #"{"command":"createRole","rolename":"r","acls":[{"acltype":"subscribePattern","topic":"s/+/x","allow":true},{"acltype":"subscribeLiteral","topic":"s/#","allow":true}]}"#
        )
        XCTAssertFalse(security.maySubscribe(clientID: "c", username: "u", filter: filter("s/a/x")))
        run(
            security,
            #"{"command":"addGroupRole","groupname":"g","rolename":"r"},{"command":"addGroupClient","groupname":"g","username":"u"}"#
        )
        XCTAssertTrue(security.maySubscribe(clientID: "c", username: "u", filter: filter("s/a/x")))
        XCTAssertTrue(security.maySubscribe(clientID: "c", username: "u", filter: filter("s/+/x")))
        XCTAssertTrue(security.maySubscribe(clientID: "c", username: "u", filter: filter("s/#")))
        XCTAssertFalse(security.maySubscribe(clientID: "c", username: "u", filter: filter("s/a/#")))
        // Anonymous clients get the anonymous group's roles.
        XCTAssertFalse(security.maySubscribe(clientID: "c", username: nil, filter: filter("s/a/x")))
        run(security, #"{"command":"setAnonymousGroup","groupname":"g"}"#)
        XCTAssertTrue(security.maySubscribe(clientID: "c", username: nil, filter: filter("s/a/x")))
    }

    /// As mosquitto 2.0.11: a shared subscription needs a rule for the `$share/…` text (checked with mosquitto_sub).
    func testSharedSubscriptionsAreCheckedAsSent() throws {
        let security = try security()
        XCTAssertTrue(security.checksSharedFiltersAsSent)
        run(security, #"{"command":"createClient","username":"u","password":"pw"}"#)
        run(
            security,
            #"{"command":"createRole","rolename":"r","acls":[{"acltype":"subscribePattern","topic":"jobs/#","allow":true}]}"#
        )
        run(security, #"{"command":"addClientRole","username":"u","rolename":"r"}"#)
        XCTAssertFalse(security.maySubscribe(clientID: "c", username: "u", filter: filter("$share/g/jobs/x")))
        run(
            security,
            #"{"command":"addRoleACL","rolename":"r","acltype":"subscribePattern","topic":"$share/#","allow":true}"#)
        XCTAssertTrue(security.maySubscribe(clientID: "c", username: "u", filter: filter("$share/g/jobs/x")))
    }

    func testUnsubscribeRules() throws {
        let security = try security()
        run(security, #"{"command":"createClient","username":"u","password":"pw"}"#)
        run(
            security,
            #"{"command":"createRole","rolename":"r","acls":[{"acltype":"unsubscribeLiteral","topic":"keep/t","allow":false},{"acltype":"unsubscribePattern","topic":"lock/#","allow":false}]}"#
        )
        run(security, #"{"command":"addClientRole","username":"u","rolename":"r"}"#)
        XCTAssertFalse(security.mayUnsubscribe(clientID: "c", username: "u", filter: filter("keep/t")))
        XCTAssertFalse(security.mayUnsubscribe(clientID: "c", username: "u", filter: filter("lock/a/+")))
        // Nothing matches: the init file's default allows unsubscribing.
        XCTAssertTrue(security.mayUnsubscribe(clientID: "c", username: "u", filter: filter("free/t")))
        run(security, #"{"command":"setDefaultACLAccess","acls":[{"acltype":"unsubscribe","allow":false}]}"#)
        XCTAssertFalse(security.mayUnsubscribe(clientID: "c", username: "u", filter: filter("free/t")))
    }

    /// The pattern check's cases, from the table in mosquitto's own test of it.
    func testSubscriptionPatternCoverage() {
        let cases: [(String, String, Bool)] = [
            ("foo/+/bar", "foo/#", false), ("foo/+/ba℞/#", "foo/baz/ba℞", true), ("foo/+/ba℞/#", "foo/baz/ba℞/+", true),
            ("foo/+/ba℞/#", "foo/baz/ba℞/#", true), ("foo/+/ba℞/#", "foo/baz/+/#", false), ("/+//#", "/foo///#", true),
            ("#", "#", true), ("#", "+", true), ("/#", "+", false), ("/#", "/+", true), ("/+", "#", false),
            ("/+", "+", false), ("+/+", "topic/topic", true), ("+/+", "topic/topic/", false), ("+", "#", false),
            ("+", "+", true), ("a/b/c/d/e", "a/b/c/d/e", true), ("a/b/ /d/e", "a/b/c/d/e", false),
        ]
        for (rule, filter, expected) in cases {
            XCTAssertEqual(
                SubscriptionPattern.covers(Array(rule.utf8), Array(filter.utf8)), expected, "\(rule) : \(filter)")
        }
    }

    func testConnectChecks() throws {
        let security = try security()
        run(security, #"{"command":"createClient","username":"u","password":"pw","clientid":"only-me"}"#)
        run(security, #"{"command":"createClient","username":"nopw"}"#)
        let pw = Array("pw".utf8)
        XCTAssertEqual(security.authenticate(clientID: "only-me", username: "u", password: pw), .accepted)
        XCTAssertEqual(security.authenticate(clientID: "other", username: "u", password: pw), .notAuthorized)
        XCTAssertEqual(security.authenticate(clientID: "only-me", username: "u", password: nil), .notAuthorized)
        XCTAssertEqual(security.authenticate(clientID: "x", username: "nopw", password: []), .notAuthorized)
        XCTAssertEqual(security.authenticate(clientID: "x", username: "ghost", password: pw), .notAuthorized)
        XCTAssertEqual(security.authenticate(clientID: "x", username: nil, password: nil), .accepted)
        run(security, #"{"command":"disableClient","username":"u"}"#)
        XCTAssertEqual(security.authenticate(clientID: "only-me", username: "u", password: pw), .notAuthorized)
        run(
            security,
            #"{"command":"enableClient","username":"u"},{"command":"setClientPassword","username":"u","password":"new"}"#
        )
        XCTAssertEqual(
            security.authenticate(clientID: "only-me", username: "u", password: Array("new".utf8)), .accepted)
        run(security, #"{"command":"deleteClient","username":"u"}"#)
        XCTAssertEqual(
            security.authenticate(clientID: "only-me", username: "u", password: Array("new".utf8)), .notAuthorized)
    }

    func testChangesDisconnectTheClientsTheyConcern() throws {
        let security = try security()
        func disconnects(_ commands: String) -> [ControlReply.Disconnect] {
            security.handle(payload: Array(#"{"commands":[\#(commands)]}"#.utf8), clientID: "c", username: "admin")
                .disconnect
        }
        XCTAssertEqual(disconnects(#"{"command":"createClient","username":"u","password":"pw"}"#), [])
        XCTAssertEqual(disconnects(#"{"command":"createRole","rolename":"r"}"#), [])
        XCTAssertEqual(disconnects(#"{"command":"addClientRole","username":"u","rolename":"r"}"#), [.username("u")])
        XCTAssertEqual(
            disconnects(
                #"{"command":"addRoleACL","rolename":"r","acltype":"publishClientSend","topic":"t","allow":true}"#),
            [.username("u")])
        XCTAssertEqual(disconnects(#"{"command":"disableClient","username":"u"}"#), [.username("u")])
        XCTAssertEqual(disconnects(#"{"command":"getClient","username":"u"}"#), [])
    }

    func testChangesAreLoggedWithoutPasswords() throws {
        let lines = Mutex<[String]>([])
        let security = DynamicSecurity(
            state: try DynamicSecurityState.load(bytes: Array(initFile.utf8), source: "ds.json"), path: nil,
            log: { _, line in lines.withLock { $0.append(line) } })
        run(security, #"{"command":"createClient","username":"u","password":"secret-pw"}"#)
        run(security, #"{"command":"getClient","username":"u"}"#)
        XCTAssertEqual(lines.withLock { $0 }, ["dynsec: ctl/admin | createClient | username=u"])
    }

    func testListsAndGets() throws {
        let security = try security()
        run(security, #"{"command":"createClient","username":"b"},{"command":"createClient","username":"a"}"#)
        let list = run(security, #"{"command":"listClients","count":2,"offset":1}"#).first?["data"]
        XCTAssertEqual(list?["totalCount"], .number(3))
        XCTAssertEqual(list?["clients"], .array([.string("admin"), .string("b")]))  // a, admin, b in byte order
        let client = run(security, #"{"command":"getClient","username":"admin"}"#).first?["data"]?["client"]
        XCTAssertEqual(client?["roles"], .array([.object(["rolename": .string("admin")])]))
        XCTAssertEqual(client?["password"], nil)
    }

    /// mosquitto 2.0.11 crashes on the next getAnonymousGroup (it keeps a pointer to the deleted group); here anonymous
    /// clients are left with the defaults.
    func testDeletingTheAnonymousGroupLeavesNone() throws {
        let security = try security()
        run(security, #"{"command":"createGroup","groupname":"g"},{"command":"setAnonymousGroup","groupname":"g"}"#)
        run(security, #"{"command":"deleteGroup","groupname":"g"}"#)
        let answer = run(security, #"{"command":"getAnonymousGroup"}"#).first?["data"]?["group"]?["groupname"]
        XCTAssertEqual(answer, .string(""))
        XCTAssertFalse(security.fileText.contains("anonymousGroup"))
    }

    func testChangesAreSavedToTheFile() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let path = try scratch.write("ds.json", initFile)
        let security = try DynamicSecurity(path: path, log: { _, _ in })
        run(security, #"{"command":"createClient","username":"saved","password":"pw"}"#)
        security.flush()
        let reloaded = try DynamicSecurity(path: path, log: { _, _ in })
        XCTAssertEqual(reloaded.authenticate(clientID: "x", username: "saved", password: Array("pw".utf8)), .accepted)
        XCTAssertThrowsError(try DynamicSecurity(path: scratch.file("missing.json"), log: { _, _ in }))
        XCTAssertThrowsError(try DynamicSecurity(path: try scratch.write("bad.json", "[1"), log: { _, _ in }))
    }
}
