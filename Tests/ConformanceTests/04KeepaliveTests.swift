// Black-box tests of Keep Alive enforcement (§3.1.2.10) and its Will (§3.1.2.5).

import Foundation
import MQTTCodec
import MQTTTestSupport
import XCTest

final class KeepaliveTests: ConformanceCase {
    func test_MQTT_3_1_2_24_silentClientClosedAfterOneAndAHalfKeepAlives() throws {
        // Keep Alive 1 s: silent client closed after 1.5 s (not before) with its Will; pinging and keepalive 0 stay.
        let watcher = try connect()
        let willTopic = uniqueTopic("will")
        try subscribe(watcher, willTopic)
        let silent = try open(name: "silent")
        let sentAt = Date()
        try silent.send(
            Wire.connect(uniqueID(), keepAlive: 1, will: WillSpec(topic: willTopic, payload: Array("timeout".utf8))))
        XCTAssertEqual(try silent.readConnAck().returnCode, .accepted)
        let pinging = try connect(keepAlive: 1)
        let unlimited = try connect(keepAlive: 0)

        // The pinging client keeps its connection for 3 s while the silent one times out; the silent socket is
        // watched between pings so its close is seen when it happens.
        var closedAfter: Double?
        for round in 0..<6 {
            let roundEnd = Date().addingTimeInterval(0.5)
            if closedAfter == nil {
                if let frame = silent.readFrame(timeout: 0.5) { XCTFail("silent client received \(frame)") }
                if silent.isClosed { closedAfter = Date().timeIntervalSince(sentAt) }
            }
            let rest = roundEnd.timeIntervalSinceNow
            if rest > 0 { usleep(UInt32(rest * 1_000_000)) }
            try pinging.send(Wire.pingreq)
            XCTAssertEqual(try pinging.readPacket(), .pingresp, "round \(round)")
        }
        if closedAfter == nil {
            try silent.expectClosed(timeout: 8)
            closedAfter = Date().timeIntervalSince(sentAt)
        }
        // The broker's clock started no earlier than our send, so a correct close comes more than 1.5 s after it.
        XCTAssertGreaterThanOrEqual(closedAfter ?? 0, 1.5, "closed before 1.5 x Keep Alive")
        try receive(watcher, topic: willTopic, payload: "timeout", timeout: 5)
        try unlimited.sync()
    }
}
