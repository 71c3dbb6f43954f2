// The subscription tree report behind SIGUSR2: one line per filter with its subscribers, as mosquitto prints its
// tree, bounded in lines and in subscribers per line.
import MQTTCodec
import MidgeCore
import XCTest

final class SubscriptionTreeTests: XCTestCase {
    func testOneLinePerFilterWithItsSubscribersInLevelOrder() {
        let harness = Harness()
        harness.connect("a").subscribeOnly([("sport/tennis/+", .atLeastOnce), ("sport/#", .atMostOnce)])
        harness.connect("b").subscribeOnly([("sport/tennis/+", .exactlyOnce), ("#", .atMostOnce)])
        harness.connect("c").subscribeOnly([("sport/tennis/player1", .atMostOnce), ("$SYS/#", .atMostOnce)])
        let report = harness.broker.subscriptionTree(maxLines: 100, maxSubscribersPerLine: 10)
        XCTAssertEqual(
            report.lines,
            [
                "$SYS/# (c, 0)",
                "sport/tennis/player1 (c, 0)",
                "sport/tennis/+ (a, 1) (b, 2)",
                "sport/# (a, 0)",
                "# (b, 0)",
            ])
        XCTAssertEqual(report.filters, 5)
        XCTAssertEqual(report.omittedFilters, 0)
    }

    func testSharedGroupsAreLinesOfTheirOwn() {
        let harness = Harness()
        harness.connect("a").subscribeOnly([("t", .atMostOnce), ("$share/g2/t", .atLeastOnce)])
        harness.connect("b").subscribeOnly([("$share/g1/t", .atMostOnce)])
        let report = harness.broker.subscriptionTree(maxLines: 100, maxSubscribersPerLine: 10)
        XCTAssertEqual(report.lines, ["t (a, 0)", "$share/g1/t (b, 0)", "$share/g2/t (a, 1)"])
    }

    func testLinesAndSubscribersAreCappedAndWhatIsLeftOutIsCounted() {
        let harness = Harness()
        for index in 0..<5 {
            harness.connect("c\(index)").subscribeOnly([("f\(index)", .atMostOnce), ("all", .atMostOnce)])
        }
        let report = harness.broker.subscriptionTree(maxLines: 2, maxSubscribersPerLine: 3)
        XCTAssertEqual(report.lines, ["all (c0, 0) (c1, 0) (c2, 0) and 2 more", "f0 (c0, 0)"])
        XCTAssertEqual(report.filters, 6)
        XCTAssertEqual(report.omittedFilters, 4)
    }

    func testAnEmptyTreeHasNoLines() {
        let harness = Harness()
        harness.connect("a").subscribeOnly([("gone", .atMostOnce)])
        harness.connect("a").unsubscribe(["gone"])
        let report = harness.broker.subscriptionTree(maxLines: 10, maxSubscribersPerLine: 10)
        XCTAssertEqual(report.lines, [])
        XCTAssertEqual(report.filters, 0)
    }
}
