// Topic names and filters (§4.7): what is valid, and which filter matches which name, level by level.

import MQTTCodec
import XCTest

final class TopicTests: XCTestCase {
    static let names: [(name: String, valid: Bool, why: String)] = [
        ("a/b", true, ""),
        ("/a//b/", true, "empty levels are levels [MQTT-4.7.3-4]"),
        ("/", true, "two empty levels"),
        ("$SYS/uptime", true, "$ topics are names like any other"),
        ("sport/tennis player", true, "spaces are allowed"),
        ("\u{FEFF}t", true, "U+FEFF is kept [MQTT-1.5.3-3]"),
        ("é/ü/😀", true, "any scalar but U+0000"),
        ("", false, "empty [MQTT-4.7.3-1]"),
        ("a/+", false, "wildcards belong to filters [MQTT-3.3.2-2] [MQTT-4.7.1-1]"),
        ("+", false, "[MQTT-4.7.1-1]"),
        ("a#", false, "[MQTT-4.7.1-1]"),
        ("#", false, "[MQTT-4.7.1-1]"),
        ("a/b/c+", false, "[MQTT-4.7.1-1]"),
        ("a\0b", false, "U+0000 [MQTT-4.7.3-2]"),
    ]

    static let filters: [(filter: String, valid: Bool, why: String)] = [
        ("a/b", true, "no wildcard"),
        ("#", true, "[MQTT-4.7.1-2]"),
        ("a/#", true, "[MQTT-4.7.1-2]"),
        ("sport/tennis/player1/#", true, "[MQTT-4.7.1-2]"),
        ("/#", true, "[MQTT-4.7.1-2]"),
        ("+", true, "[MQTT-4.7.1-3]"),
        ("+/+", true, "[MQTT-4.7.1-3]"),
        ("/+", true, "[MQTT-4.7.1-3]"),
        ("+/", true, "[MQTT-4.7.1-3]"),
        ("a/+/c", true, "[MQTT-4.7.1-3]"),
        ("+/a/#", true, "[MQTT-4.7.1-3]"),
        ("+/#", true, "[MQTT-4.7.1-3]"),
        ("$SYS/#", true, ""),
        ("/a//b/", true, "empty levels"),
        ("a#", false, "[MQTT-4.7.1-2]"),
        ("a/#/b", false, "[MQTT-4.7.1-2]"),
        ("a/b#", false, "[MQTT-4.7.1-2]"),
        ("#/", false, "[MQTT-4.7.1-2]"),
        ("##", false, "[MQTT-4.7.1-2]"),
        ("#/a", false, "[MQTT-4.7.1-2]"),
        ("+#", false, "[MQTT-4.7.1-2] [MQTT-4.7.1-3]"),
        ("a+", false, "[MQTT-4.7.1-3]"),
        ("a/+b", false, "[MQTT-4.7.1-3]"),
        ("+a", false, "[MQTT-4.7.1-3]"),
        ("++", false, "[MQTT-4.7.1-3]"),
        ("sport+", false, "[MQTT-4.7.1-3]"),
        ("", false, "[MQTT-4.7.3-1]"),
        ("a/\0", false, "[MQTT-4.7.3-2]"),
    ]

    func testNameValidation() {
        for item in Self.names {
            XCTAssertEqual(TopicName(item.name) != nil, item.valid, "\(item.name): \(item.why)")
            XCTAssertEqual(TopicName.isValid(Array(item.name.utf8)), item.valid, "contiguous \(item.name)")
            XCTAssertEqual(TopicName.isValid(item.name.utf8.lazy.map { $0 }), item.valid, "generic \(item.name)")
        }
    }

    func testFilterValidation() {
        for item in Self.filters {
            XCTAssertEqual(TopicFilter(item.filter) != nil, item.valid, "\(item.filter): \(item.why)")
            XCTAssertEqual(
                TopicFilter.isValid(Array(item.filter.utf8).lazy.map { $0 }), item.valid, "generic \(item.filter)")
        }
    }

    func testWildcardsAndBadUTF8AreRefusedInNamesAtEveryWordOffset() {
        for bad: [UInt8] in [[0x2B], [0x23], [0x00], [0xED, 0xA0, 0x80], [0xC0, 0xAF]] {
            for lead in 0...16 {
                let bytes = [UInt8](repeating: 0x61, count: lead) + bad + [UInt8](repeating: 0x62, count: 9)
                XCTAssertFalse(TopicName.isValid(bytes), "\(bad) after \(lead) bytes")
            }
        }
    }

    func testTheLengthLimitIs65535Bytes() {
        // [MQTT-4.7.3-3]
        let longest = [UInt8](repeating: 0x61, count: 65_535)
        XCTAssertNotNil(TopicName(bytes: longest))
        XCTAssertNil(TopicName(bytes: longest + [0x61]))
        XCTAssertNotNil(TopicFilter(bytes: longest))
        XCTAssertNil(TopicFilter(bytes: longest + [0x61]))
        XCTAssertNil(TopicFilter(bytes: longest + utf8("/#")))
    }

    func testNamesKeepTheirBytes() {
        XCTAssertEqual(TopicName("\u{FEFF}t")?.bytes, [0xEF, 0xBB, 0xBF, 0x74])
        XCTAssertEqual(TopicName("a/b")?.description, "a/b")
        XCTAssertEqual(TopicFilter("a/+")?.description, "a/+")
        XCTAssertEqual(TopicName("$SYS/x")?.isDollarTopic, true)
        XCTAssertEqual(TopicName("x/$SYS")?.isDollarTopic, false)
        XCTAssertEqual(TopicFilter("a/+")?.hasWildcards, true)
        XCTAssertEqual(TopicFilter("a/#")?.hasWildcards, true)
        XCTAssertEqual(TopicFilter("a/b")?.hasWildcards, false)
    }

    static let matching: [(filter: String, name: String, matches: Bool, why: String)] = [
        ("a/b", "a/b", true, "identical"),
        ("sport/tennis/player1/#", "sport/tennis/player1", true, "§4.7.1.2 example: # also matches the parent"),
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", true, "§4.7.1.2 example"),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true, "§4.7.1.2 example"),
        ("sport/#", "sport", true, "[MQTT-4.7.1-2] # matches the parent level"),
        ("sport/#", "sport/", true, "an empty last level"),
        ("sport/#", "sports", false, "not a level boundary"),
        ("#", "sport", true, "everything"),
        ("#", "/", true, "everything"),
        ("#", "a/b/c", true, "everything"),
        ("/#", "/finance", true, "leading empty level"),
        ("/#", "finance", false, "no leading empty level"),
        ("sport/tennis/+", "sport/tennis/player1", true, "§4.7.1.3 example"),
        ("sport/tennis/+", "sport/tennis/player1/ranking", false, "§4.7.1.3 example"),
        ("sport/+", "sport", false, "§4.7.1.3: + needs a level"),
        ("sport/+", "sport/", true, "§4.7.1.3: an empty level is a level"),
        ("+", "a", true, "one level"),
        ("+", "a/b", false, "two levels"),
        ("+", "/x", false, "§4.7.1.3: two levels, the first empty"),
        ("+/+", "/x", true, "§4.7.1.3 example"),
        ("+/+", "a/b", true, "two levels"),
        ("+/+", "a", false, "one level"),
        ("/+", "/finance", true, "§4.7.1.3 example"),
        ("a/+/c", "a/b/c", true, "middle level"),
        ("a/+/c", "a//c", true, "empty middle level"),
        ("a/+/c", "a/b/c/d", false, "one level too many"),
        ("+/a/#", "x/a", true, "+ then # as parent"),
        ("+/a/#", "x/a/y/z", true, "+ then #"),
        ("+/a/#", "x/b/y", false, "literal level differs"),
        ("#", "$SYS/uptime", false, "[MQTT-4.7.2-1]"),
        ("+/uptime", "$SYS/uptime", false, "[MQTT-4.7.2-1]"),
        ("+/monitor/Clients", "$SYS/monitor/Clients", false, "[MQTT-4.7.2-1]"),
        ("+/x", "$foo/x", false, "[MQTT-4.7.2-1] any $ topic"),
        ("$SYS/#", "$SYS/monitor/Clients", true, "§4.7.2: explicit $SYS"),
        ("$SYS/#", "$SYS", true, "§4.7.2: parent level"),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", true, "§4.7.2 example"),
        ("$foo/#", "$foo/x", true, "[MQTT-4.7.2-1] a $ filter reaches $ topics"),
        ("x/#", "x/$y", true, "$ only matters at the start"),
        ("Accounts", "ACCOUNTS", false, "[MQTT-4.7.3-4] case sensitive"),
        ("ACCOUNTS", "Accounts", false, "[MQTT-4.7.3-4] case sensitive"),
        ("Accounts payable", "Accounts payable", true, "spaces are characters"),
        ("a/b", "a//b", false, "[MQTT-4.7.3-4] no level collapsing"),
        ("a/b", "/a/b", false, "[MQTT-4.7.3-4] leading slash is a level"),
        ("a/b", "a/b/", false, "trailing slash is a level"),
        ("\u{E9}", "e\u{301}", false, "[MQTT-4.7.3-4] NFC vs NFD é are different bytes"),
        ("e\u{301}", "\u{E9}", false, "[MQTT-4.7.3-4] NFD vs NFC"),
        ("+/\u{E9}", "x/\u{E9}", true, "same bytes"),
        ("a", "ab", false, "prefix"),
        ("ab", "a", false, "longer filter level"),
        ("a/b/c", "a/b", false, "filter has more levels"),
    ]

    func testMatching() {
        for item in Self.matching {
            guard let filter = TopicFilter(item.filter), let name = TopicName(item.name) else {
                XCTFail("bad table row \(item)")
                continue
            }
            XCTAssertEqual(filter.matches(name), item.matches, "\(item.filter) ~ \(item.name): \(item.why)")
        }
    }

    /// The raw-byte form used for ACL patterns gives the table's answers on slices that start past index 0 and on
    /// buffer pointers, and matches nothing when either side is empty.
    func testMatchingRawBytesAtAnyOffset() {
        let padding: [UInt8] = Array("pad/#+".utf8)
        for item in Self.matching {
            let filter = padding + Array(item.filter.utf8) + padding
            let topic = padding + padding + Array(item.name.utf8)
            let filterSlice = filter[padding.count..<(filter.count - padding.count)]
            let topicSlice = topic[(2 * padding.count)...]
            XCTAssertEqual(
                TopicFilter.matches(filterBytes: filterSlice, topicBytes: topicSlice), item.matches,
                "\(item.filter) ~ \(item.name): \(item.why)")
            filterSlice.withUnsafeBufferPointer { filterPointer in
                XCTAssertEqual(
                    TopicFilter.matches(filterBytes: filterPointer, topicBytes: topicSlice), item.matches,
                    "\(item.filter) ~ \(item.name) via a buffer pointer")
            }
        }
        XCTAssertFalse(TopicFilter.matches(filterBytes: [UInt8](), topicBytes: Array("a".utf8)))
        XCTAssertFalse(TopicFilter.matches(filterBytes: Array("#".utf8), topicBytes: [UInt8]()))
    }

    func testA65535ByteTopicMatchesItselfAndHash() throws {
        let bytes = [UInt8](repeating: 0x61, count: 65_535)
        let name = try XCTUnwrap(TopicName(bytes: bytes))
        XCTAssertTrue(try XCTUnwrap(TopicFilter(bytes: bytes)).matches(name))
        XCTAssertTrue(try XCTUnwrap(TopicFilter("#")).matches(name))
        XCTAssertFalse(try XCTUnwrap(TopicFilter("+/+")).matches(name))
    }
}
