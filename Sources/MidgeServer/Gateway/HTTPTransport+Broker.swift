// The HTTP transport's side of the MQTT conversation: CONNACK, acknowledgements, SUBACK and deliveries from the
// core (§3.2, §3.4-3.7, §3.9), turned into HTTP answers.
import MQTTCodec
import MidgeCore
import MidgeGateway

extension HTTPTransport {
    func handleBrokerPackets(
        _ bytes: UnsafeRawBufferPointer, wire: inout [UInt8], now: MonotonicTime, status: inout TransportStatus
    ) -> Int {
        var offset = 0
        while offset < bytes.count {
            let decoded: (packet: Packet, consumed: Int)?
            do {
                decoded = try decoder.decode(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
            } catch {
                fatalError("BUG: the broker sent an undecodable packet to an HTTP client: \(error)")
            }
            guard let (packet, consumed) = decoded else { break }
            offset += consumed
            if case .close = status { continue }
            status = handleBrokerPacket(packet, wire: &wire, now: now)
        }
        return offset
    }

    func handleBrokerPacket(_ packet: Packet, wire: inout [UInt8], now: MonotonicTime) -> TransportStatus {
        switch packet {
        case .connack(let connack):
            guard connack.returnCode == .accepted else {
                link = .ended
                return refused(connack.returnCode, wire: &wire)
            }
            link = .connected
            if case .metrics(let request) = exchange {
                exchange = .idle
                answerMetrics(request, wire: &wire)
            }
            if case .topicInfo(let request, let topic) = exchange {
                exchange = .idle
                answerTopicInfo(topic, request: request, wire: &wire)
            }
            if case .publish(let publish) = exchange, !publish.pending.isEmpty {
                // Published through `replies`, which the loop hands to the core right after this turn's writes.
                publishOrRefuse(publish.pending, request: publish.request, mqtt: &replies, wire: &wire)
            }
        case .puback(let id), .pubrec(let id):
            if case .pubrec = packet { Packet.pubrel(id).encode(into: &replies) }
            guard case .publish(var publish) = exchange else { break }
            publish.waiting.remove(id.rawValue)
            exchange = .publish(publish)
            return finishPublishIfDone(publish, wire: &wire)
        case .pingresp:
            guard case .publish(var publish) = exchange else { break }
            publish.pingAnswered = true
            exchange = .publish(publish)
            return finishPublishIfDone(publish, wire: &wire)
        case .suback(let suback):
            return subscribed(suback, wire: &wire, now: now)
        case .publish(let publish):
            delivered(publish)
        case .unsuback(let id):
            return unsubscribed(id, wire: &wire, now: now)
        case .pubrel(let id):
            Packet.pubcomp(id).encode(into: &replies)
        case .pubcomp, .connect, .subscribe, .unsubscribe, .pingreq, .disconnect:
            break
        }
        return .open
    }

    func refused(_ code: ConnectReturnCode, wire: inout [UInt8]) -> TransportStatus {
        let request: HTTPRequest
        switch exchange {
        case .publish(let publish): request = publish.request
        case .metrics(let waiting), .topicInfo(let waiting, _): request = waiting
        case .stream(let subscription), .poll(let subscription), .pollIdle(let subscription):
            request = subscription.request
        case .idle: return .open
        }
        let hadCredentials = identity?.username != nil || identity?.password != nil
        var response: HTTPResponse
        switch code {
        case .badUsernameOrPassword, .notAuthorized:
            response = hadCredentials ? .unauthorized("credentials refused") : .unauthorized()
        case .identifierRejected: response = .error(.badRequest, "client id refused")
        default: response = .error(.serviceUnavailable, "the broker refused the connection (\(code))")
        }
        response.closeConnection = true
        if case .poll = exchange { gateway.metrics.gateway.waitingPolls.subtract(1, ordering: .relaxed) }
        exchange = .idle
        write(response, to: request, wire: &wire)
        return .open
    }

    func finishPublishIfDone(_ publish: PublishExchange, wire: inout [UInt8]) -> TransportStatus {
        guard publish.waiting.isEmpty, publish.pingAnswered else { return .open }
        exchange = .idle
        gateway.metrics.gateway.published.wrappingAdd(UInt64(publish.count), ordering: .relaxed)
        write(.published(count: publish.count), to: publish.request, wire: &wire)
        return .open
    }
}
