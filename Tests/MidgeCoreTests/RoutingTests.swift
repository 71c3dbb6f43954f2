// Topic matching through the subscription trie (§4.7) and merging overlapping subscriptions (§3.3.5).
import MQTTCodec
import MidgeCore
import XCTest

final class RoutingTests: XCTestCase {
    /// (filter, topics it must reach, topics it must not reach)
    static let table: [(String, [String], [String])] = [
        ("a/b", ["a/b"], ["a", "a/b/c", "A/b", "a/B", "/a/b", "a//b", "a/b/"]),
        ("a/+", ["a/b", "a/", "a/xyz"], ["a", "a/b/c", "b/a", "/a"]),
        ("+", ["a", "xyz"], ["/x", "a/b", "a/", "$SYS"]),
        ("+/+", ["/x", "a/b", "a/"], ["a", "a/b/c", "$SYS/x"]),
        ("a/+/c", ["a/b/c", "a//c"], ["a/b/c/d", "a/c", "a/b/d"]),
        ("a/#", ["a", "a/b", "a/b/c", "a/"], ["b", "ab", "/a"]),
        ("sport/#", ["sport", "sport/tennis", "sport/tennis/player1"], ["sports", "Sport"]),
        ("#", ["a", "a/b", "/", "/a", "x/y/z"], ["$SYS/x", "$foo", "$"]),
        ("+/#", ["a", "a/b", "/x"], ["$SYS", "$SYS/x"]),
        ("+/a/#", ["x/a", "x/a/b"], ["x/b", "a", "$x/a"]),
        ("$foo/#", ["$foo", "$foo/bar/baz"], ["foo/x", "$fool"]),
        ("$foo/+", ["$foo/x"], ["$foo", "$foo/x/y"]),
        ("/", ["/"], ["a", "//"]),
        ("//", ["//"], ["/"]),
        ("/+", ["/a", "/"], ["a", "a/b"]),
        ("Accounts", ["Accounts"], ["ACCOUNTS", "accounts"]),
        ("caf\u{E9}", ["caf\u{E9}"], ["cafe\u{301}"]),
    ]

    func test_MQTT_4_7_filterMatchingTable() {
        let harness = Harness()
        let subscribers = Self.table.enumerated().map { index, row in
            let client = harness.connect("s\(index)")
            client.subscribeOnly([(row.0, .atMostOnce)])
            return client
        }
        let publisher = harness.connect("publisher")
        for (index, row) in Self.table.enumerated() {
            for name in row.1 + row.2 {
                publisher.publish(name, "x")
                let reached = !subscribers[index].take().isEmpty
                // Compare bytes: Swift's String == treats NFC and NFD forms as equal, MQTT does not.
                let expected = row.1.contains { Array($0.utf8) == Array(name.utf8) }
                XCTAssertEqual(reached, expected, "filter \(row.0) vs topic \(name)")
                for other in subscribers { _ = other.take() }
            }
        }
    }

    func test_MQTT_4_7_1_2_multiLevelWildcardAlsoMatchesTheParent() {
        let harness = Harness()
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atMostOnce, filter: "sport/#")
        publisher.publish("sport", "parent")
        publisher.publish("sport/tennis/player1", "child")
        publisher.publish("sports", "no")
        XCTAssertEqual(payloads(subscriber.take()), ["parent", "child"])
    }

    func test_MQTT_4_7_2_1_wildcardFiltersDoNotMatchDollarTopics() {
        let harness = Harness()
        let hash = harness.connect("hash")
        hash.subscribeOnly([("#", .atMostOnce), ("+/x", .atMostOnce)])
        let dollar = harness.connect("dollar")
        dollar.subscribeOnly([("$foo/#", .atMostOnce)])
        let publisher = harness.connect("p")
        publisher.publish("$foo/x", "hidden")
        XCTAssertEqual(hash.take(), [])
        XCTAssertEqual(dollar.take(), [pub("$foo/x", "hidden")])
    }

    func test_MQTT_4_7_3_4_levelsAreComparedByteForByte() {
        let harness = Harness()
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atMostOnce, filter: "Accounts/caf\u{E9}")
        publisher.publish("ACCOUNTS/caf\u{E9}", "case")
        publisher.publish("Accounts/cafe\u{301}", "nfd")
        publisher.publish("Accounts/caf\u{E9}", "exact")
        XCTAssertEqual(payloads(subscriber.take()), ["exact"])
    }

    func test_MQTT_3_3_5_1_overlappingSubscriptionsGiveOneDeliveryAtTheHighestQoS() {
        let harness = Harness()
        let subscriber = harness.connect("s")
        subscriber.subscribeOnly([
            ("a/#", .atMostOnce), ("a/b", .exactlyOnce), ("+/b", .atLeastOnce), ("#", .atMostOnce),
        ])
        let publisher = harness.connect("p")
        publisher.publish("a/b", "x", qos: .exactlyOnce, id: 1)
        XCTAssertEqual(subscriber.take(), [pub("a/b", "x", qos: .exactlyOnce, id: 1)])
        publisher.publish("a/c", "y", qos: .exactlyOnce, id: 2)
        XCTAssertEqual(subscriber.take(), [pub("a/c", "y")])
        publisher.publish("z/b", "z", qos: .exactlyOnce, id: 3)
        XCTAssertEqual(subscriber.take(), [pub("z/b", "z", qos: .atLeastOnce, id: 2)])
    }

    func test_MQTT_3_3_2_3_subscriberOnlyReceivesTopicsItsFilterMatches() {
        let harness = Harness()
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atMostOnce, filter: "a/+")
        for name in ["a", "a/b", "a/b/c", "b/a", "a/c"] { publisher.publish(name, name) }
        let topics = subscriber.take().compactMap { packet -> String? in
            if case .publish(let publish) = packet { publish.topic.description } else { nil }
        }
        XCTAssertEqual(topics, ["a/b", "a/c"])
    }

    func test_publisherReceivesItsOwnMessageWhenSubscribed() {
        let harness = Harness()
        let client = harness.connect("echo")
        client.subscribeOnly([("t", .atLeastOnce)])
        client.publish("t", "me", qos: .atLeastOnce, id: 7)
        // Its PUBACK first, then its own message back, as from mosquitto (with a store the PUBACK waits instead).
        XCTAssertEqual(client.take(), [.puback(pid(7)), pub("t", "me", qos: .atLeastOnce, id: 1)])
    }

    func test_mayReceiveIsCheckedForEveryDelivery() {
        let harness = Harness(accessControl: DenyTopics(receive: ["private"]))
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atLeastOnce, filter: "#")
        publisher.publish("private", "no", retain: true)
        publisher.publish("public", "yes", retain: true)
        XCTAssertEqual(payloads(subscriber.take()), ["yes"])
        // Retained replays are checked too.
        let late = harness.connect("late")
        late.subscribe([("#", .atMostOnce)])
        XCTAssertEqual(late.take(), [pub("public", "yes", retain: true)])
    }

    func test_manySubscribersAndUnsubscribesKeepTheTrieConsistent() {
        let harness = Harness()
        let clients = (0..<50).map { harness.connect("c\($0)") }
        for (index, client) in clients.enumerated() {
            client.subscribeOnly([("t/\(index % 5)", .atMostOnce), ("t/+", .atMostOnce)])
        }
        for (index, client) in clients.enumerated() where index % 2 == 0 { client.unsubscribe(["t/+"]) }
        for client in clients { _ = client.take() }
        harness.connect("p").publish("t/3", "x")
        let reached = clients.enumerated().filter { !$0.element.take().isEmpty }.map(\.offset)
        XCTAssertEqual(reached, (0..<50).filter { $0 % 2 == 1 || $0 % 5 == 3 })
        XCTAssertEqual(harness.broker.statistics.subscriptions, 75)
        for client in clients { client.disconnect() }
        XCTAssertEqual(harness.broker.statistics.subscriptions, 0)
        XCTAssertEqual(harness.broker.statistics.sessions, 1)
    }

    func test_MQTT_4_7_3_3_deepestPossibleTopicRoutesRetainsAndUnsubscribes() {
        // 65535 bytes: 32768 one-byte levels. Every trie walk must cope without deep recursion. (Only with
        // max_topic_levels 0: the default refuses such a topic, see SubscribeTests' depth tests.)
        let deep = Array(repeating: "a", count: 32_768).joined(separator: "/")
        XCTAssertEqual(deep.utf8.count, 65_535)
        var unlimited = BrokerConfiguration()
        unlimited.maxTopicLevels = 0
        let harness = Harness(unlimited)
        let exact = harness.connect("exact")
        exact.subscribeOnly([(deep, .atMostOnce)])
        let wildcard = harness.connect("wildcard")
        wildcard.subscribeOnly([("a/+/#", .atMostOnce)])
        let publisher = harness.connect("p")
        publisher.publish(deep, "deep", retain: true)
        XCTAssertEqual(payloads(exact.take()), ["deep"])
        XCTAssertEqual(payloads(wildcard.take()), ["deep"])
        let late = harness.connect("late")
        late.subscribe([("#", .atMostOnce)])
        XCTAssertEqual(payloads(late.take()), ["deep"])
        exact.unsubscribe([deep])
        XCTAssertEqual(exact.take(), [.unsuback(pid(2))])
        publisher.publish(deep, "", retain: true)
        XCTAssertEqual(exact.take(), [])
        XCTAssertEqual(harness.broker.statistics.retainedMessages, 0)
        XCTAssertEqual(harness.broker.statistics.subscriptions, 2)
    }

    /// A publisher's repeated topic is routed from what its previous PUBLISH matched; every subscription change in
    /// between (new subscriber, higher grant, unsubscribe, a session ending) must show in the next delivery.
    func test_repeatedTopicFollowsEverySubscriptionChange() {
        let harness = Harness()
        let publisher = harness.connect("p")
        let first = harness.connect("a")
        first.subscribeOnly([("t/+", .atMostOnce)])
        publisher.publish("t/x", "1", qos: .atLeastOnce, id: 1)
        XCTAssertEqual(first.take(), [pub("t/x", "1")])

        let second = harness.connect("b")
        second.subscribeOnly([("t/x", .atLeastOnce)])
        publisher.publish("t/x", "2", qos: .atLeastOnce, id: 2)
        XCTAssertEqual(first.take(), [pub("t/x", "2")])
        XCTAssertEqual(second.take(), [pub("t/x", "2", qos: .atLeastOnce, id: 1)])

        first.subscribeOnly([("t/#", .atLeastOnce)])
        publisher.publish("t/x", "3", qos: .atLeastOnce, id: 3)
        XCTAssertEqual(first.take(), [pub("t/x", "3", qos: .atLeastOnce, id: 1)], "the higher of two grants")
        XCTAssertEqual(second.take(), [pub("t/x", "3", qos: .atLeastOnce, id: 2)])

        second.unsubscribe(["t/x"])
        XCTAssertEqual(second.take(), [.unsuback(pid(2))])
        first.drop()
        publisher.publish("t/x", "4", qos: .atLeastOnce, id: 4)
        XCTAssertEqual(second.take(), [])
        XCTAssertEqual(harness.broker.statistics.messagesSent, 5)

        let third = harness.connect("c")
        third.subscribeOnly([("t/x", .atMostOnce)])
        publisher.publish("t/y", "5")
        publisher.publish("t/x", "6")
        XCTAssertEqual(third.take(), [pub("t/x", "6")])
    }
}
