// `check_retain_source`: a retained message is replayed only while the client that set it may still publish it,
// its ACL asked again when a new subscription would receive it (mosquitto's check, CVE-2018-12546).
import MQTTCodec
import MidgeCore
import XCTest

/// Publish rules that change while the broker runs, as a SIGHUP reload of the ACL file changes them.
final class ChangingPublishRules: AccessControl, @unchecked Sendable {
    /// Client ids and user names that may no longer publish anything.
    var deniedClients: Set<String> = []
    var deniedUsers: Set<String> = []
    private(set) var publishQuestions: [(clientID: String, username: String?, topic: String)] = []

    var checksDeliveries: Bool { false }
    func mayPublish(clientID: String, username: String?, topic: TopicName) -> Bool {
        publishQuestions.append((clientID, username, topic.description))
        return !deniedClients.contains(clientID) && !(username.map(deniedUsers.contains) ?? false)
    }
    func maySubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool { true }
    func mayReceive(clientID: String, username: String?, topic: TopicName) -> Bool { true }
}

final class CheckRetainSourceTests: XCTestCase {
    func testOnByDefaultAsInMosquitto() {
        XCTAssertTrue(BrokerConfiguration().checkRetainSource)
    }

    func testReplayedWhileTheSetterMayStillPublishIt() {
        let rules = ChangingPublishRules()
        let harness = Harness(accessControl: rules)
        harness.connect("setter", username: "alice").publish("r", "kept", retain: true)
        let subscriber = harness.connect("s")
        subscriber.subscribe([("r", .atMostOnce)])
        XCTAssertEqual(subscriber.take(), [pub("r", "kept", retain: true)])
        XCTAssertEqual(rules.publishQuestions.last?.clientID, "setter")
        XCTAssertEqual(rules.publishQuestions.last?.username, "alice")
    }

    func testNotReplayedOnceTheSetterLostItsPermissionAndBackWhenItReturns() {
        let rules = ChangingPublishRules()
        let harness = Harness(accessControl: rules)
        let setter = harness.connect("setter", username: "alice")
        setter.publish("r", "kept", retain: true)
        setter.disconnect()
        rules.deniedUsers = ["alice"]
        let subscriber = harness.connect("s")
        subscriber.subscribe([("r", .atMostOnce), ("#", .atMostOnce)])
        XCTAssertEqual(subscriber.take(), [], "the setter's user may no longer publish it")
        // Kept, as mosquitto keeps it: the check is made at each replay.
        XCTAssertEqual(harness.broker.statistics.retainedMessages, 1)
        rules.deniedUsers = []
        let later = harness.connect("later")
        later.subscribe([("r", .atMostOnce)])
        XCTAssertEqual(later.take(), [pub("r", "kept", retain: true)])
    }

    func testTheSourceIsTheLatestSetter() {
        let rules = ChangingPublishRules()
        let harness = Harness(accessControl: rules)
        harness.connect("old").publish("r", "first", retain: true)
        harness.connect("new").publish("r", "second", retain: true)
        rules.deniedClients = ["old"]
        let subscriber = harness.connect("s")
        subscriber.subscribe([("r", .atMostOnce)])
        XCTAssertEqual(subscriber.take(), [pub("r", "second", retain: true)])
    }

    func testEachTopicKeepsItsOwnSetterWhenTheTopicsShareNodes() {
        let rules = ChangingPublishRules()
        let harness = Harness(accessControl: rules)
        harness.connect("a").publish("x/y", "from a", retain: true)
        let b = harness.connect("b")
        b.publish("x/y/z", "from b", retain: true)
        // Removing x/y re-joins the nodes the two topics shared: x/y/z must keep b as its setter.
        b.publish("x/y", "", retain: true)
        rules.deniedClients = ["a"]
        let subscriber = harness.connect("s")
        subscriber.subscribe([("x/#", .atMostOnce)])
        XCTAssertEqual(subscriber.take(), [pub("x/y/z", "from b", retain: true)])
        rules.deniedClients = ["b"]
        let other = harness.connect("o")
        other.subscribe([("x/#", .atMostOnce)])
        XCTAssertEqual(other.take(), [])
    }

    func testARetainedWillIsCheckedAgainstItsClient() {
        let rules = ChangingPublishRules()
        let harness = Harness(accessControl: rules)
        harness.connect("dying", will: will("status/dying", "gone", retain: true)).drop()
        rules.deniedClients = ["dying"]
        let subscriber = harness.connect("s")
        subscriber.subscribe([("status/+", .atMostOnce)])
        XCTAssertEqual(subscriber.take(), [])
    }

    func testTheBrokersOwnRetainedMessagesAreNotChecked() {
        let rules = ChangingPublishRules()
        let harness = Harness(accessControl: rules)
        var actions: [Action] = []
        harness.broker.publish(
            Message(topic: topic("news"), payload: Array("own".utf8), qos: .atMostOnce), retain: true, into: &actions)
        rules.deniedClients = ["s"]
        let subscriber = harness.connect("s")
        subscriber.subscribe([("news", .atMostOnce)])
        XCTAssertEqual(subscriber.take(), [pub("news", "own", retain: true)])
    }

    /// With per_listener_settings the setter's own listener's ACL is asked, as mosquitto keeps the source listener.
    func testTheSettersListenerACLIsAsked() {
        let brokerWide = ChangingPublishRules()
        let listenerRules = ChangingPublishRules()
        let listener = ListenerSecurity(
            allowAnonymous: true, allowZeroLengthClientID: true, autoIDPrefix: "auto-", accessControl: listenerRules)
        let broker = Broker(
            configuration: BrokerConfiguration(), accessControl: brokerWide, listenerSecurity: [listener])
        let now = MonotonicTime.seconds(1)
        var serial: UInt64 = 0
        func connect(_ clientID: String, profile: Int) -> (ConnectionID, ConnectionInfo) {
            serial += 1
            let id = ConnectionID(loop: 0, serial: serial)
            let info = ConnectionInfo(remoteAddress: "127.0.0.1", listenerPort: 1883, securityProfile: profile)
            var ignored: [Action] = []
            broker.handle(
                .connect(
                    Connect(
                        protocolVersion: .v3_1_1, cleanSession: true, keepAlive: 0, clientID: clientID, will: nil,
                        username: nil, password: nil)), from: id, info: info, now: now, into: &ignored)
            return (id, info)
        }
        func retainedReplays(to clientID: String) -> [String] {
            let (id, info) = connect(clientID, profile: 0)
            var actions: [Action] = []
            let request = SubscriptionRequest(filter: filter("r"), qos: .atMostOnce)
            broker.handle(
                .subscribe(Subscribe(packetID: pid(1), requests: [request])), from: id, info: info, now: now,
                into: &actions)
            return actions.compactMap {
                guard case .send(_, .publish(let delivery)) = $0 else { return nil }
                return String(decoding: delivery.message.payload, as: UTF8.self)
            }
        }
        let (setter, setterInfo) = connect("setter", profile: 1)
        var ignored: [Action] = []
        broker.handle(
            .publish(makePublish("r", "kept", retain: true)), from: setter, info: setterInfo, now: now, into: &ignored)
        brokerWide.deniedClients = ["setter"]
        XCTAssertEqual(retainedReplays(to: "a"), ["kept"], "the broker-wide ACL is not the setter's")
        listenerRules.deniedClients = ["setter"]
        XCTAssertEqual(retainedReplays(to: "b"), [])
    }

    func testOffEveryRetainedMessageIsReplayedWithoutAsking() {
        let rules = ChangingPublishRules()
        var configuration = BrokerConfiguration()
        configuration.checkRetainSource = false
        let harness = Harness(configuration, accessControl: rules)
        harness.connect("setter").publish("r", "kept", retain: true)
        rules.deniedClients = ["setter"]
        let questionsBefore = rules.publishQuestions.count
        let subscriber = harness.connect("s")
        subscriber.subscribe([("r", .atMostOnce)])
        XCTAssertEqual(subscriber.take(), [pub("r", "kept", retain: true)])
        XCTAssertEqual(rules.publishQuestions.count, questionsBefore)
    }

    func testRestoredRetainedMessagesHaveNoSourceAndAreReplayed() {
        let rules = ChangingPublishRules()
        let first = Harness(accessControl: rules)
        first.enableDurability()
        first.connect("setter").publish("r", "durable", qos: .atLeastOnce, id: 1, retain: true)
        guard let state = first.store else { return XCTFail("no store state") }
        rules.deniedClients = ["setter"]
        let second = Harness(accessControl: rules)
        second.enableDurability(restoring: state)
        let subscriber = second.connect("s")
        subscriber.subscribe([("r", .atLeastOnce)])
        XCTAssertEqual(payloads(subscriber.take()), ["durable"])
    }
}
