// mosquitto's `mount_point` (a listener's topic prefix, which the core puts before everything its clients send) and
// `use_username_as_clientid`.
import MQTTCodec
import MidgeCore
import XCTest

final class MountPointTests: XCTestCase {
    private func connectMounted(_ harness: Harness, _ id: String, will: Will? = nil) -> Client {
        let client = Client(harness: harness, id: harness.newConnectionID())
        let info = ConnectionInfo(remoteAddress: "127.0.0.1:1", listenerPort: 1884, mountPoint: Array("tenant/".utf8))
        var produced: [Action] = []
        harness.broker.handle(
            .connect(Connect(protocolVersion: .v3_1_1, cleanSession: true, keepAlive: 0, clientID: id, will: will)),
            from: client.id, info: info, now: harness.now, into: &produced)
        harness.record(produced)
        XCTAssertEqual(client.take().first, .connack(ConnAck(sessionPresent: false, returnCode: .accepted)))
        return client
    }

    func test_topicsAndFiltersOfAMountedClientLiveUnderItsPrefix() {
        let harness = Harness()
        let outside = harness.connect("outside")
        outside.subscribeOnly([("#", .atMostOnce)])
        let mounted = connectMounted(harness, "inside")
        mounted.subscribeOnly([("a/#", .atMostOnce)])
        mounted.publish("a/b", "from inside")
        XCTAssertEqual(
            outside.take().compactMap { packet -> String? in
                if case .publish(let publish) = packet { return publish.topic.description } else { return nil }
            }, ["tenant/a/b"], "the rest of the broker sees the full topic")
        // The core routes the full topic; the driver takes the prefix off as it encodes.
        let deliveries = harness.takeDeliveries(mounted.id)
        XCTAssertEqual(deliveries.map(\.message.topic.description), ["tenant/a/b"])
        harness.connect("p").publish("a/b", "outside the mount")
        XCTAssertEqual(mounted.take(), [], "a mounted client cannot see outside its prefix")
        mounted.unsubscribe(["a/#"])
        XCTAssertEqual(mounted.take(), [.unsuback(pid(2))])
        XCTAssertEqual(harness.broker.statistics.subscriptions, 1, "the unsubscribe found the mounted filter")
    }

    func test_aMountedWillAndSharedSubscriptionStayUnderThePrefix() {
        let harness = Harness()
        let watcher = harness.connect("watcher")
        watcher.subscribeOnly([("tenant/#", .atMostOnce)])
        let member = connectMounted(harness, "member")
        member.subscribeOnly([("$share/g/jobs", .atMostOnce)])
        harness.connect("p").publish("tenant/jobs", "job")
        XCTAssertEqual(harness.takeDeliveries(member.id).map(\.message.topic.description), ["tenant/jobs"])
        let willing = connectMounted(
            harness, "willing", will: Will(topic: TopicName("gone")!, payload: [1], qos: .atMostOnce, retain: false))
        willing.drop()
        XCTAssertEqual(
            payloads(watcher.take()), ["job", "\u{1}"], "the Will went to tenant/gone")
    }

    func test_useUsernameAsClientIDReplacesTheIDAndNeedsAUsername() {
        var configuration = BrokerConfiguration()
        configuration.useUsernameAsClientID = true
        let harness = Harness(configuration)
        let first = harness.connect("any-id", clean: false, username: "alice")
        first.subscribeOnly([("t", .atLeastOnce)])
        first.disconnect()
        // Another client id with the same user name resumes alice's session.
        _ = harness.connect("other-id", clean: false, username: "alice", sessionPresent: true)
        let anonymous = harness.connectExpectingAnything("x")
        XCTAssertEqual(anonymous.take(), [.connack(ConnAck(sessionPresent: false, returnCode: .notAuthorized))])
    }
}

final class ClientIDPrefixTests: XCTestCase {
    func test_clientIDPrefixesRefusesOtherIDsAsNotAuthorised() {
        var configuration = BrokerConfiguration()
        configuration.requiredClientIDPrefix = "secure-"
        let harness = Harness(configuration)
        _ = harness.connect("secure-client")
        let other = harness.connectExpectingAnything("mqtt")
        XCTAssertEqual(other.take(), [.connack(ConnAck(sessionPresent: false, returnCode: .notAuthorized))])
        XCTAssertTrue(harness.logs.contains("does not start with clientid_prefixes 'secure-'"))
    }
}
