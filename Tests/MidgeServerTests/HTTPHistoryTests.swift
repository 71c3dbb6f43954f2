// The shared topic history behind every HTTP subscriber: ids the same on every connection, resume without a client
// id (SSE, long poll, short poll), `since=`, retained messages, topic info, and one copy per message however many
// streams read it.
import Foundation
import MQTTCodec
import MQTTTestSupport
import MidgeCore
import XCTest

@testable import MidgeAuth
@testable import MidgeServer

final class HTTPHistoryTests: XCTestCase {
    private func ids(_ text: String) -> [String] {
        text.split(separator: "\n").filter { $0.hasPrefix("id: ") }.map { String($0.dropFirst(4)) }
    }

    /// Before: a long poll on a new connection lost what was published after the previous poll was answered, unless
    /// the client used client_id and qos=1.
    func testLongPollsOnDifferentConnectionsLoseNothingBetweenThem() {
        let harness = GatewayHarness()
        let first = harness.openHTTP()
        harness.send("GET /subscribe?topic=p&mode=longpoll&timeout=5 HTTP/1.1\r\nConnection: close\r\n\r\n", on: first)
        harness.mqttPublish("p", "one")
        XCTAssertTrue(first.text.contains(#""id":"1","topic":"p","payload":"one""#), first.text)
        harness.tick()
        XCTAssertNotNil(first.closed)
        harness.mqttPublish("p", "two while no poll waits")
        harness.mqttPublish("p", "three")
        let second = harness.openHTTP()
        harness.send("GET /subscribe?topic=p&mode=longpoll&timeout=5&last_event_id=1 HTTP/1.1\r\n\r\n", on: second)
        let body = ParsedResponse.all(second.text).first?.body ?? ""
        XCTAssertEqual(
            body,
            #"{"messages":[{"id":"2","topic":"p","payload":"two while no poll waits","qos":0,"retain":false},"#
                + #"{"id":"3","topic":"p","payload":"three","qos":0,"retain":false}]}"#)
    }

    func testStreamsShareIdsAndAWildcardResumesInRecordedOrderOnANewConnection() {
        let harness = GatewayHarness()
        let wide = harness.openHTTP()
        harness.send("GET /subscribe?topic=w/%23 HTTP/1.1\r\n\r\n", on: wide)
        let narrow = harness.openHTTP()
        harness.send("GET /subscribe?topic=w/b HTTP/1.1\r\n\r\n", on: narrow)
        harness.mqttPublish("w/a", "1")
        harness.mqttPublish("w/b", "2")
        harness.mqttPublish("w/a", "3")
        XCTAssertEqual(ids(wide.text), ["1", "2", "3"])
        XCTAssertEqual(ids(narrow.text), ["2"], "the same message has the same id on every stream")
        harness.drop(wide)
        harness.mqttPublish("w/b", "4 while away")
        let again = harness.openHTTP()
        harness.send("GET /subscribe?topic=w/%23 HTTP/1.1\r\nLast-Event-ID: 1\r\n\r\n", on: again)
        let body = ParsedResponse.all(again.text).first?.body ?? ""
        XCTAssertEqual(ids(body), ["2", "3", "4"], body)
        XCTAssertTrue(body.contains("4 while away"))
    }

    func testSinceOldestNewestAndLastEventIDWins() {
        let harness = GatewayHarness()
        let keeper = harness.openHTTP()
        harness.send("GET /subscribe?topic=s HTTP/1.1\r\n\r\n", on: keeper)
        for index in 1...3 { harness.mqttPublish("s", "m\(index)") }
        let oldest = harness.openHTTP()
        harness.send("GET /subscribe?topic=s&since=oldest HTTP/1.1\r\n\r\n", on: oldest)
        XCTAssertEqual(ids(oldest.text), ["1", "2", "3"])
        let newest = harness.openHTTP()
        harness.send("GET /subscribe?topic=s&since=newest HTTP/1.1\r\n\r\n", on: newest)
        XCTAssertEqual(ids(newest.text), ["3"])
        let resumed = harness.openHTTP()
        harness.send("GET /subscribe?topic=s&since=oldest HTTP/1.1\r\nLast-Event-ID: 2\r\n\r\n", on: resumed)
        XCTAssertEqual(ids(resumed.text), ["3"], "a reconnecting EventSource resumes whatever its URL says")
        let fresh = harness.openHTTP()
        harness.send("GET /subscribe?topic=s HTTP/1.1\r\n\r\n", on: fresh)
        XCTAssertEqual(ids(fresh.text), [], "no start given: from now on")
        harness.mqttPublish("s", "m4")
        XCTAssertEqual(ids(fresh.text), ["4"])
    }

    func testShortPollAnswersAtOnceWithWhatIsNewer() {
        let harness = GatewayHarness()
        let keeper = harness.openHTTP()
        harness.send("GET /subscribe?topic=sp HTTP/1.1\r\n\r\n", on: keeper)
        harness.mqttPublish("sp", "a")
        harness.mqttPublish("sp", "b")
        let poll = harness.openHTTP()
        harness.send("GET /subscribe?topic=sp&mode=poll&since=1 HTTP/1.1\r\n\r\n", on: poll)
        var responses = ParsedResponse.all(poll.text)
        XCTAssertEqual(
            responses.first?.body, #"{"messages":[{"id":"2","topic":"sp","payload":"b","qos":0,"retain":false}]}"#)
        XCTAssertEqual(responses.first?.header("Last-Event-ID"), "2")
        harness.send("GET /subscribe?topic=sp&mode=poll&since=2 HTTP/1.1\r\n\r\n", on: poll)
        responses = ParsedResponse.all(poll.text)
        XCTAssertEqual(responses.last?.body, #"{"messages":[]}"#, "nothing newer: an empty answer, at once")
        XCTAssertEqual(responses.last?.header("Last-Event-ID"), "2")
    }

    func testRetainedMessagesOpenAFreshStreamWithTheCursorID() {
        let harness = GatewayHarness()
        let keeper = harness.openHTTP()
        harness.send("GET /subscribe?topic=other HTTP/1.1\r\n\r\n", on: keeper)
        harness.mqttPublish("other", "x")
        let publisher = ConnectionID(loop: 0, serial: 900)
        harness.coreHandle(.connect(Connect(clientID: "retainer")), from: publisher)
        harness.coreHandle(
            .publish(Publish(topic: TopicName("state")!, payload: Array("on".utf8), qos: .atMostOnce, retain: true)),
            from: publisher)
        let stream = harness.openHTTP()
        harness.send("GET /subscribe?topic=state HTTP/1.1\r\n\r\n", on: stream)
        let body = ParsedResponse.all(stream.text).first?.body ?? ""
        let retained = "id: 1\ndata: {\"topic\":\"state\",\"payload\":\"on\",\"qos\":0,\"retain\":true}"
        XCTAssertTrue(body.contains(retained), body)
        XCTAssertEqual(harness.gateway.hub.info(TopicName("state")!).messages, 0, "state is not history")
    }

    func testOneCopyPerMessageHoweverManyStreamsReadIt() {
        let harness = GatewayHarness()
        let streams = (0..<50).map { _ in harness.openHTTP() }
        for stream in streams { harness.send("GET /subscribe?topic=fan HTTP/1.1\r\n\r\n", on: stream) }
        for index in 0..<20 { harness.mqttPublish("fan", "m\(index)") }
        for stream in streams { XCTAssertEqual(ids(stream.text).count, 20) }
        let info = harness.gateway.hub.info(TopicName("fan")!)
        XCTAssertEqual(info.messages, 20)
        XCTAssertEqual(info.subscribers, 50)
    }

    func testTopicInfoIsBehindTheACL() {
        let auth = AliceOnly()
        let harness = GatewayHarness(authenticator: auth, accessControl: auth, allowAnonymous: false)
        let alice = "Authorization: Basic \(Array("alice:secret".utf8).base64)\r\n"
        let stream = harness.openHTTP()
        harness.send("GET /subscribe?topic=alice/t HTTP/1.1\r\n\(alice)\r\n", on: stream)
        let publisher = harness.openHTTP()
        harness.send("POST /publish?topic=alice/t HTTP/1.1\r\n\(alice)Content-Length: 5\r\n\r\nhello", on: publisher)
        XCTAssertTrue(stream.text.contains("hello"))
        let info = harness.openHTTP()
        harness.send("GET /topic?topic=alice/t HTTP/1.1\r\n\(alice)\r\n", on: info)
        XCTAssertEqual(
            ParsedResponse.all(info.text).first?.body,
            #"{"topic":"alice/t","subscribers":1,"messages":1,"last_id":"1"}"#)
        harness.send("GET /topic?topic=bob/t HTTP/1.1\r\n\(alice)\r\n", on: info)
        XCTAssertEqual(ParsedResponse.all(info.text).last?.status, 403)
        let anonymous = harness.openHTTP()
        harness.send("GET /topic?topic=alice/t HTTP/1.1\r\n\r\n", on: anonymous)
        XCTAssertEqual(ParsedResponse.all(anonymous.text).first?.status, 401)
    }

    func testAnUnusedFilterIsUnsubscribedOnceItsLingerIsOver() {
        var settings = HTTPGatewaySettings()
        settings.history.maxAgeSeconds = 3
        let harness = GatewayHarness(settings: settings)
        let stream = harness.openHTTP()
        harness.send("GET /subscribe?topic=l HTTP/1.1\r\n\r\n", on: stream)
        harness.drop(stream)
        harness.mqttPublish("l", "kept")
        XCTAssertEqual(harness.gateway.hub.info(TopicName("l")!).messages, 1, "still recorded after the stream left")
        harness.tick(seconds: 4)
        harness.mqttPublish("l", "not kept")
        XCTAssertEqual(harness.gateway.hub.info(TopicName("l")!).messages, 0, "expired, and no longer recorded")
    }

    /// Over sockets, with a password file and an ACL: polls on separate connections (each a new login) lose nothing
    /// between them, and the recorder (which no ACL names) records for them.
    func testPollsOnSeparateConnectionsOverSockets() throws {
        let line = { (user: String) in user + ":" + PasswordHash.make(password: Array("pw".utf8)).encoded + "\n" }
        let passwords = try PasswordFile(text: line("alice") + line("bob"), source: "test")
        let rules = try ACLFile(
            text: "user alice\ntopic readwrite alice/#\nuser bob\ntopic readwrite bob/#\n", source: "acl")
        let running = try RunningServer(
            threads: 2, config: "allow_anonymous false\nlistener 0 127.0.0.1\nprotocol http\n"
        ) {
            $0.authenticator = passwords
            $0.accessControl = rules
        }
        defer { running.stop() }
        let port = running.server.listeners[1].port
        let auth = "Authorization: Basic \(Array("alice:pw".utf8).base64)\r\n"
        func poll(_ query: String) throws -> ParsedResponse {
            try HTTPTestClient.exchange(
                port: port,
                "GET /subscribe?topic=alice/p&mode=\(query) HTTP/1.1\r\nHost: t\r\n\(auth)Connection: close\r\n\r\n")
        }
        let first = try poll("poll")
        XCTAssertEqual(first.status, 200, first.body)
        XCTAssertEqual(first.body, #"{"messages":[]}"#)
        let cursor = try XCTUnwrap(first.header("Last-Event-ID"))
        let publisher = ChannelClient(try RawClient(port: running.port))
        XCTAssertEqual(try publisher.connect("pub", username: "alice", password: "pw").returnCode, .accepted)
        try publisher.publish("alice/p", Array("while away".utf8), qos: .atLeastOnce, id: 1)
        guard case .puback = try publisher.receive() else { return XCTFail("no PUBACK") }
        let second = try poll("longpoll&timeout=10&last_event_id=\(cursor)")
        XCTAssertTrue(second.body.contains(#""payload":"while away","qos":0"#), second.body)

        // `#` is granted (as in mosquitto) but each message is checked against the reader's ACL.
        // A first short poll has the recorder subscribe `#`; it stays recorded after the answer.
        let start = try HTTPTestClient.exchange(
            port: port, "GET /subscribe?topic=%23&mode=poll HTTP/1.1\r\nHost: t\r\n\(auth)Connection: close\r\n\r\n")
        XCTAssertEqual(start.status, 200)
        let bob = ChannelClient(try RawClient(port: running.port))
        XCTAssertEqual(try bob.connect("bob", username: "bob", password: "pw").returnCode, .accepted)
        try bob.publish("bob/secret", Array("for bob".utf8), qos: .atLeastOnce, id: 1)
        guard case .puback = try bob.receive() else { return XCTFail("no PUBACK") }
        try publisher.publish("alice/p", Array("for alice".utf8), qos: .atLeastOnce, id: 2)
        guard case .puback = try publisher.receive() else { return XCTFail("no PUBACK") }
        let all = try HTTPTestClient.exchange(
            port: port,
            "GET /subscribe?topic=%23&mode=poll&since=oldest HTTP/1.1\r\nHost: t\r\n\(auth)Connection: close\r\n\r\n")
        XCTAssertTrue(all.body.contains("for alice"), all.body)
        XCTAssertFalse(all.body.contains("for bob"), all.body)
    }

    /// A stream whose client stops reading stops taking from the history once its output is congested (memory is
    /// bounded by the configuration, not by what the client leaves unread), and resumes from its cursor when the
    /// client reads again.
    func testAStreamThatIsNotReadStopsTakingAndResumesWhenRead() throws {
        let running = try RunningServer(
            threads: 2,
            config: "listener 0 127.0.0.1\nprotocol http\nhttp_history_messages 5000\nhttp_history_bytes 100000000\n")
        defer { running.stop() }
        let port = running.server.listeners[1].port
        let stream = HTTPTestClient(socket: try RawClient(port: port, timeoutSeconds: 10, receiveBuffer: 4096))
        try stream.send("GET /subscribe?topic=flood HTTP/1.1\r\nHost: t\r\n\r\n")
        _ = try stream.read(until: { $0.contains("retry:") })
        let publisher = try RawClient(port: running.port)
        _ = try publisher.connect("flood")
        let count = 3000
        let filler = String(repeating: "x", count: 4096)
        for index in 0..<count { try publisher.publish("flood", Array("m\(index) \(filler)".utf8)) }
        try publisher.ping()
        var kept = 0
        for _ in 0..<100 where kept < count {
            let info = try HTTPTestClient.exchange(
                port: port, "GET /topic?topic=flood HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            kept = Int(info.body.split(separator: ",")[2].split(separator: ":")[1]) ?? 0
            if kept < count { usleep(100_000) }
        }
        XCTAssertEqual(kept, count, "every message recorded")
        let written = running.metrics.gateway.eventsDelivered.load(ordering: .relaxed)
        XCTAssertLessThan(written, UInt64(count), "stopped while the client did not read")
        var received = 0
        var tail = ""
        for _ in 0..<200_000 where received < count {
            let bytes = try stream.readSome()
            if bytes.isEmpty { break }
            let text = tail + String(decoding: bytes, as: UTF8.self)
            received += text.components(separatedBy: "\ndata: ").count - 1
            tail = String(text.suffix(8))
        }
        XCTAssertEqual(received, count, "the rest came once the client read")
    }

    /// With `persistence true` the history survives a restart: the same ids, and a resume from an id of the first
    /// run gets what came after it.
    func testTheHistorySurvivesARestartWithPersistence() throws {
        let directory = "/tmp/midge-http-history-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { _ = try? FileManager.default.removeItem(atPath: directory) }
        let config = "persistence true\npersistence_location \(directory)\nlistener 0 127.0.0.1\nprotocol http\n"
        func shortPoll(_ port: UInt16, _ query: String) throws -> ParsedResponse {
            try HTTPTestClient.exchange(
                port: port,
                "GET /subscribe?topic=kept&mode=poll&\(query) HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        }
        var firstID = ""
        do {
            let running = try RunningServer(threads: 1, config: config)
            // The stop writes the history for the next run.
            defer { running.stop() }
            let port = running.server.listeners[1].port
            _ = try shortPoll(port, "since=oldest")
            let publisher = try RawClient(port: running.port)
            _ = try publisher.connect("p")
            for payload in ["one", "two"] { try publisher.publish("kept", Array(payload.utf8)) }
            try publisher.ping()
            var answer = ParsedResponse(status: 0, headers: [], body: "")
            for _ in 0..<50 {
                answer = try shortPoll(port, "since=oldest")
                if answer.body.contains("two") { break }
                usleep(50_000)
            }
            XCTAssertTrue(answer.body.contains("two"), answer.body)
            let afterID = answer.body.components(separatedBy: #""id":""#).dropFirst().first ?? ""
            firstID = String(afterID.prefix { $0 != "\"" })
        }
        let restarted = try RunningServer(threads: 1, config: config)
        defer { restarted.stop() }
        XCTAssertNotNil(restarted.log.waitForLine { $0.contains("Restored 2 HTTP gateway messages") })
        let resumed = try shortPoll(restarted.server.listeners[1].port, "last_event_id=\(firstID)")
        XCTAssertTrue(resumed.body.contains(#""payload":"two""#), resumed.body)
        XCTAssertFalse(resumed.body.contains(#""payload":"one""#), resumed.body)
    }
}

extension HTTPTestClient {
    init(socket: RawClient) {
        self.socket = socket
    }
}
