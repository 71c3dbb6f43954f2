// `$SYS` rounds: mosquitto's topic names and formats, changed values only, load averages, the sys_interval key.
import MidgeCore
import XCTest

@testable import MidgeServer

final class SysTopicsTests: XCTestCase {
    private func inputs(received: UInt64 = 0, connected: Int = 0, sessions: Int = 0, uptime: Int64 = 0) -> SysInputs {
        var statistics = BrokerStatistics()
        statistics.connectedClients = connected
        statistics.sessions = sessions
        statistics.retainedMessages = 2
        statistics.retainedBytes = 40
        statistics.queuedBytes = 2
        statistics.subscriptions = 3
        statistics.sharedSubscriptions = 1
        statistics.clientsExpired = 4
        var traffic = TrafficTotals()
        traffic.packetsReceived = received
        traffic.publishReceived = [received, 0, 0]
        traffic.bytesReceived = received * 10
        return SysInputs(
            statistics: statistics, clientsMaximum: connected, traffic: traffic, openConnections: connected,
            uptimeSeconds: uptime, residentBytes: 1000, residentMaximum: 2000)
    }

    func testFirstRoundHasMosquittosTopicsAndFormats() {
        var sys = SysTopics(version: "1.2.3")
        let round = Dictionary(
            uniqueKeysWithValues: sys.round(inputs(connected: 2, sessions: 5, uptime: 7), at: 100)
                .map { ($0.topic, $0.payload) })
        XCTAssertEqual(round["$SYS/broker/version"], "midge version 1.2.3")
        XCTAssertEqual(round["$SYS/broker/uptime"], "7 seconds")
        XCTAssertEqual(round["$SYS/broker/clients/connected"], "2")
        XCTAssertEqual(round["$SYS/broker/clients/disconnected"], "3")
        XCTAssertEqual(round["$SYS/broker/clients/total"], "5")
        XCTAssertEqual(round["$SYS/broker/clients/maximum"], "2")
        XCTAssertEqual(round["$SYS/broker/retained messages/count"], "2")
        XCTAssertEqual(round["$SYS/broker/subscriptions/count"], "3")
        XCTAssertEqual(round["$SYS/broker/shared_subscriptions/count"], "1")
        XCTAssertEqual(round["$SYS/broker/clients/expired"], "4")
        XCTAssertEqual(round["$SYS/broker/store/messages/bytes"], "42")
        XCTAssertEqual(round["$SYS/broker/heap/current"], "1000")
        XCTAssertEqual(round["$SYS/broker/heap/maximum"], "2000")
        for topic in [
            "messages/received", "messages/sent", "publish/messages/dropped", "publish/messages/received",
            "publish/messages/sent", "bytes/received", "bytes/sent",
        ] {
            XCTAssertNotNil(round["$SYS/broker/\(topic)"], topic)
        }
        XCTAssertNil(round["$SYS/broker/load/messages/received/1min"], "no interval yet")
    }

    func testLaterRoundsSendOnlyChangesAndSmoothedLoads() {
        var sys = SysTopics(version: "1")
        _ = sys.round(inputs(received: 0, uptime: 0), at: 0)
        // 60 messages in 60 seconds: a rate of 60/min, smoothed over 1 min from 0: 60 × (1 − e⁻¹) = 37.93.
        let second = Dictionary(
            uniqueKeysWithValues: sys.round(inputs(received: 60, uptime: 60), at: 60)
                .map { ($0.topic, $0.payload) })
        XCTAssertEqual(second["$SYS/broker/load/messages/received/1min"], "37.93")
        XCTAssertEqual(second["$SYS/broker/messages/received"], "60")
        XCTAssertEqual(second["$SYS/broker/uptime"], "60 seconds")
        XCTAssertNil(second["$SYS/broker/version"], "unchanged values are not sent again")
        XCTAssertNil(second["$SYS/broker/clients/connected"])
    }

    func testTwoDecimals() {
        XCTAssertEqual(SysTopics.twoDecimals(0), "0.00")
        XCTAssertEqual(SysTopics.twoDecimals(1.005), "1.00")
        XCTAssertEqual(SysTopics.twoDecimals(12.346), "12.35")
        XCTAssertEqual(SysTopics.twoDecimals(0.07), "0.07")
    }

    func testSysIntervalKey() throws {
        XCTAssertEqual(try Configuration.parse(text: "", fileName: "t").sysInterval, 10)
        XCTAssertEqual(try Configuration.parse(text: "sys_interval 0", fileName: "t").sysInterval, 0)
        XCTAssertThrowsError(try Configuration.parse(text: "sys_interval -1", fileName: "t"))
    }

    func testLoopCPUTimeParsesProcStat() {
        let stat = "1234 (midge-loop-0 (x)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100"
        XCTAssertEqual(LoopCPUTime.cpuTicks(stat: stat), 300)
    }
}
