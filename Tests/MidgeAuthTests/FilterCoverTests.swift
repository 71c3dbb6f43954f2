// Whether one filter lies within another, for bounding SUBSCRIBE by granted filters.
import MQTTCodec
import XCTest

@testable import MidgeAuth

final class FilterCoverTests: XCTestCase {
    func testTable() {
        // (outer, inner, covered)
        let table: [(String, String, Bool)] = [
            ("#", "#", true), ("#", "a/b", true), ("#", "+/+", true), ("#", "$SYS/x", false), ("+/#", "$SYS/#", false),
            ("$SYS/#", "$SYS/broker/+", true), ("a/#", "a", true), ("a/#", "a/#", true), ("a/#", "a/+/c", true),
            ("a/#", "#", false), ("a/#", "b/#", false), ("a/+", "a/b", true), ("a/+", "a/+", true), ("a/+", "a", false),
            ("a/+", "a/#", false), ("a/+", "a/b/c", false), ("a/b", "a/b", true), ("a/b", "a/+", false),
            ("a/b", "a/b/c", false), ("+", "a", true), ("+", "+", true), ("+/b", "a/b", true),
            ("a//b", "a/+/b", false), ("a/+/b", "a//b", true), ("+/+", "/x", true), ("a", "a/b", false),
        ]
        for (outer, inner, expected) in table {
            guard let o = TopicFilter(outer), let i = TopicFilter(inner) else {
                XCTFail("\(outer) or \(inner) is not a valid filter")
                continue
            }
            XCTAssertEqual(FilterCover.covers(o, i), expected, "\(outer) ⊇ \(inner)")
        }
    }

    /// Covering agrees with matching: whenever the outer covers the inner, every name the inner matches
    /// is matched by the outer.
    func testCoverImpliesMatch() {
        let filters = ["#", "+", "a/#", "a/+", "a/b", "+/b", "a/+/c", "+/+", "$SYS/#", "a//c", "/+"]
        let names = ["a", "b", "a/b", "a/c", "b/b", "a/b/c", "a//c", "/x", "$SYS/x", "x/b"]
        for outerText in filters {
            for innerText in filters {
                guard let outer = TopicFilter(outerText), let inner = TopicFilter(innerText) else { continue }
                guard FilterCover.covers(outer, inner) else { continue }
                for nameText in names {
                    guard let name = TopicName(nameText) else { continue }
                    if inner.matches(name) {
                        XCTAssertTrue(outer.matches(name), "\(outerText) covers \(innerText) but misses \(nameText)")
                    }
                }
            }
        }
    }
}
