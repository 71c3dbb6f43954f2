// Asynchronous CONNECT admission: the core asks (`Action.admit`), the driver answers later, in any order.
import MQTTCodec
import MidgeCore
import XCTest

/// Allows only topics under the client's user name.
private struct OwnTopicsOnly: AccessControl {
    var checksDeliveries: Bool { true }
    private func mine(_ username: String?, _ bytes: [UInt8]) -> Bool {
        guard let username else { return false }
        return bytes.starts(with: Array((username + "/").utf8))
    }
    func mayPublish(clientID: String, username: String?, topic: TopicName) -> Bool { mine(username, topic.bytes) }
    func maySubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool {
        mine(username, filter.bytes)
    }
    func mayReceive(clientID: String, username: String?, topic: TopicName) -> Bool { mine(username, topic.bytes) }
}

/// Lets the client subscribe to anything, and delivers only topics under its user name.
private struct ReceivesOwnTopicsOnly: AccessControl {
    var checksDeliveries: Bool { true }
    func mayPublish(clientID: String, username: String?, topic: TopicName) -> Bool { true }
    func maySubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool { true }
    func mayReceive(clientID: String, username: String?, topic: TopicName) -> Bool {
        guard let username else { return false }
        return topic.bytes.starts(with: Array((username + "/").utf8))
    }
}

final class AdmissionTests: XCTestCase {
    private func accepted(_ harness: Harness, _ client: Client) -> AdmissionAnswer {
        .accepted(harness.admissionRequests[client.id]!)
    }

    func testAConnectWaitsForItsAnswerAndAnswersMayComeInAnyOrder() {
        let harness = Harness(answersAdmissionsLater: true)
        let first = harness.connectExpectingAnything("first", clean: false, username: "u1", password: [1, 2])
        let second = harness.connectExpectingAnything("second", username: "u2")
        XCTAssertEqual(first.take(), [], "no CONNACK before the answer")
        XCTAssertEqual(second.take(), [])
        let request = harness.admissionRequests[first.id]
        XCTAssertEqual(request?.clientID, "first")
        XCTAssertEqual(request?.username, "u1")
        XCTAssertEqual(request?.password, [1, 2])
        XCTAssertEqual(request?.cleanSession, false)
        XCTAssertEqual(request?.info.remoteAddress, harness.info(first.id).remoteAddress)
        XCTAssertEqual(request?.info.isInternal, false)

        harness.answer(second.id, accepted(harness, second))
        XCTAssertEqual(second.take(), [connack(.accepted)])
        XCTAssertEqual(first.take(), [], "the other connection still waits")
        harness.answer(first.id, accepted(harness, first))
        XCTAssertEqual(first.take(), [connack(.accepted)])
        XCTAssertTrue(harness.logs.contains("as first (p2, c0, k0, u'u1')"))
    }

    func testPacketsSentWhileWaitingAreHandledAfterTheAcceptance() {
        let harness = Harness(answersAdmissionsLater: true)
        let client = harness.connectExpectingAnything("c")
        let request = SubscriptionRequest(filter: filter("t"), qos: .atMostOnce)
        client.send(.subscribe(Subscribe(packetID: pid(1), requests: [request])))
        client.send(.pingreq)
        XCTAssertEqual(client.take(), [])
        harness.answer(client.id, accepted(harness, client))
        XCTAssertEqual(
            client.take(),
            [connack(.accepted), .suback(SubAck(packetID: pid(1), returnCodes: [.granted(.atMostOnce)])), .pingresp])
    }

    func testARefusedVerdictIsTheConnackAndLeavesTheStoredSessionAlone() {
        let harness = Harness(answersAdmissionsLater: true)
        let owner = harness.connectExpectingAnything("a", clean: false)
        harness.answer(owner.id, accepted(harness, owner))
        _ = owner.take()
        owner.subscribeOnly([("t", .atLeastOnce)])
        owner.disconnect()

        let guesser = harness.connectExpectingAnything("a", clean: false, username: "a", password: [0])
        guesser.publish("t", "sent before the verdict")
        harness.answer(guesser.id, .refused(.badUsernameOrPassword))
        XCTAssertEqual(guesser.take(), [connack(.badUsernameOrPassword)])
        XCTAssertEqual(guesser.closeReason, .connectRefused(.badUsernameOrPassword))
        XCTAssertTrue(harness.logs.contains("Client a from 127.0.0.1:40002 disconnected, bad user name or password."))

        let back = harness.connectExpectingAnything("a", clean: false)
        harness.answer(back.id, accepted(harness, back))
        XCTAssertEqual(back.take(), [connack(.accepted, sessionPresent: true)], "nothing of the refused one applied")
    }

    func testAConnectionClosedWhileWaitingIgnoresItsLateAnswer() {
        let harness = Harness(answersAdmissionsLater: true)
        let watcher = harness.connectExpectingAnything("watcher")
        harness.answer(watcher.id, accepted(harness, watcher))
        _ = watcher.take()
        watcher.subscribeOnly([("wills/#", .atMostOnce)])

        let gone = harness.connectExpectingAnything("gone", will: will("wills/gone", "bye"))
        let answer = accepted(harness, gone)
        gone.drop()
        let before = harness.actions.count
        harness.answer(gone.id, answer)
        XCTAssertEqual(harness.actions.count, before, "the answer finds nothing to admit")
        XCTAssertEqual(watcher.take(), [], "a connection never admitted has no Will")
        XCTAssertFalse(harness.logs.contains("as gone"))
    }

    func testATakeoverHappensOnlyWhenTheNewConnectionIsAccepted() {
        let harness = Harness(answersAdmissionsLater: true)
        let watcher = harness.connectExpectingAnything("watcher")
        harness.answer(watcher.id, accepted(harness, watcher))
        _ = watcher.take()
        watcher.subscribeOnly([("wills/#", .atMostOnce)])
        let old = harness.connectExpectingAnything("x", will: will("wills/x", "gone"))
        harness.answer(old.id, accepted(harness, old))
        _ = old.take()

        // A refused claim on the id leaves the connected client alone.
        let impostor = harness.connectExpectingAnything("x")
        XCTAssertFalse(old.isClosed, "nothing happens to the old connection while the new one waits")
        harness.answer(impostor.id, .refused(.notAuthorized))
        XCTAssertFalse(old.isClosed)
        old.send(.pingreq)
        XCTAssertEqual(old.take(), [.pingresp])

        // Two claims waiting at once: each accepted one takes over from the client connected before it.
        let slow = harness.connectExpectingAnything("x")
        let fast = harness.connectExpectingAnything("x")
        harness.answer(fast.id, accepted(harness, fast))
        XCTAssertEqual(old.closeReason, .takenOver)
        XCTAssertEqual(watcher.take(), [pub("wills/x", "gone")])
        XCTAssertEqual(fast.take(), [connack(.accepted)])
        harness.answer(slow.id, accepted(harness, slow))
        XCTAssertEqual(fast.closeReason, .takenOver)
        XCTAssertEqual(slow.take(), [connack(.accepted)])
        XCTAssertFalse(slow.isClosed)
    }

    func testTheAnswerMayChangeTheIdentity() {
        let harness = Harness(answersAdmissionsLater: true, accessControl: OwnTopicsOnly())
        let client = harness.connectExpectingAnything("c", username: "token", password: [1])
        harness.answer(client.id, AdmissionAnswer(verdict: .accepted, username: "alice"))
        XCTAssertEqual(client.take(), [connack(.accepted)])
        XCTAssertTrue(harness.logs.contains("as c (p2, c1, k0, u'alice')"))
        // The listener's ACL sees the new name.
        XCTAssertEqual(
            client.subscribe([("alice/#", .atMostOnce), ("token/#", .atMostOnce)]), [.granted(.atMostOnce), .failure])
    }

    func testTheAnswersPermissionsReplaceTheListenersForThatClient() {
        let harness = Harness(answersAdmissionsLater: true)
        let limited = harness.connectExpectingAnything("limited", username: "bob", password: [1])
        harness.answer(
            limited.id, AdmissionAnswer(verdict: .accepted, username: "bob", accessControl: OwnTopicsOnly()))
        _ = limited.take()
        let other = harness.connectExpectingAnything("other")
        harness.answer(other.id, accepted(harness, other))
        _ = other.take()

        XCTAssertEqual(
            limited.subscribe([("bob/#", .atMostOnce), ("#", .atMostOnce)]), [.granted(.atMostOnce), .failure])
        other.subscribeOnly([("#", .atMostOnce)])
        limited.publish("elsewhere", "denied")
        XCTAssertEqual(other.take(), [], "the client's own ACL refused the publish")
        limited.publish("bob/x", "allowed")
        XCTAssertEqual(other.take(), [pub("bob/x", "allowed")], "the other client keeps the listener's AllowAll")
        XCTAssertEqual(limited.take(), [pub("bob/x", "allowed")])

        // Deliveries to the client are checked by its own ACL, though no profile checks deliveries.
        let carol = harness.connectExpectingAnything("carol", username: "carol", password: [1])
        harness.answer(
            carol.id, AdmissionAnswer(verdict: .accepted, username: "carol", accessControl: ReceivesOwnTopicsOnly()))
        _ = carol.take()
        carol.subscribeOnly([("#", .atMostOnce)])
        other.publish("dave/x", "not for carol")
        other.publish("carol/x", "to carol")
        XCTAssertEqual(carol.take(), [pub("carol/x", "to carol")])
    }

    func testAWillTheAnswersPermissionsDenyRefusesTheConnect() {
        let harness = Harness(answersAdmissionsLater: true)
        let client = harness.connectExpectingAnything("c", will: will("other/w", "x"), username: "dave", password: [1])
        harness.answer(
            client.id, AdmissionAnswer(verdict: .accepted, username: "dave", accessControl: OwnTopicsOnly()))
        XCTAssertEqual(client.take(), [connack(.notAuthorized)])
    }

    func testARestoredSessionIsUsedInsteadOfTheCoresOwn() {
        let harness = Harness(answersAdmissionsLater: true)
        let local = harness.connectExpectingAnything("r", clean: false)
        harness.answer(local.id, accepted(harness, local))
        _ = local.take()
        local.subscribeOnly([("kept/here", .atMostOnce)])
        local.disconnect()

        let client = harness.connectExpectingAnything("r", clean: false)
        var answer = accepted(harness, client)
        answer.restoredSession = RestoredSession(
            subscriptions: [RestoredSubscription(filter: filter("handed/over"), qos: .atLeastOnce)])
        harness.answer(client.id, answer)
        XCTAssertEqual(client.take(), [connack(.accepted, sessionPresent: true)])

        let publisher = harness.connectExpectingAnything("p")
        harness.answer(publisher.id, accepted(harness, publisher))
        _ = publisher.take()
        publisher.publish("handed/over", "restored", qos: .atLeastOnce, id: 1)
        publisher.publish("kept/here", "discarded")
        XCTAssertEqual(client.take(), [pub("handed/over", "restored", qos: .atLeastOnce, id: 1)])
    }

    func testARestoredSessionIsOnRecordWithPersistence() {
        let harness = Harness(answersAdmissionsLater: true)
        harness.enableDurability()
        let client = harness.connectExpectingAnything("r", clean: false)
        var answer = accepted(harness, client)
        answer.restoredSession = RestoredSession(
            subscriptions: [RestoredSubscription(filter: filter("handed/over"), qos: .exactlyOnce)])
        harness.answer(client.id, answer)
        XCTAssertEqual(client.take(), [connack(.accepted, sessionPresent: true)])
        XCTAssertEqual(harness.store?.sessions["r"]?.subscriptions[filter("handed/over")], .exactlyOnce)
    }

    func testTheCoresOwnChecksComeBeforeTheAdmissionRequest() {
        var configuration = BrokerConfiguration()
        configuration.allowAnonymous = false
        configuration.allowZeroLengthClientID = false
        let harness = Harness(configuration, answersAdmissionsLater: true)
        let anonymous = harness.connectExpectingAnything("a")
        XCTAssertEqual(anonymous.take(), [connack(.notAuthorized)])
        let emptyID = harness.connectExpectingAnything("", username: "u", password: [1])
        XCTAssertEqual(emptyID.take(), [connack(.identifierRejected)], "as mosquitto: the id before the password")
        XCTAssertTrue(harness.admissionRequests.isEmpty, "nothing refused by the core is asked about")
    }

    func testAnAssignedClientIDIsSaidSo() {
        let harness = Harness(answersAdmissionsLater: true)
        let client = harness.connectExpectingAnything("")
        let request = harness.admissionRequests[client.id]
        XCTAssertEqual(request?.clientIDWasAssigned, true)
        XCTAssertFalse(request?.clientID.isEmpty ?? true, "asked about the id the session will have")
    }

    func testASecondConnectWhileWaitingClosesTheConnection() {
        let harness = Harness(answersAdmissionsLater: true)
        let client = harness.connectExpectingAnything("c")
        let answer = accepted(harness, client)
        client.send(.connect(Connect(clientID: "c")))
        guard case .protocolError? = client.closeReason else {
            return XCTFail("a second CONNECT is a protocol error, got \(String(describing: client.closeReason))")
        }
        let before = harness.actions.count
        harness.answer(client.id, answer)
        XCTAssertEqual(harness.actions.count, before)
    }
}
