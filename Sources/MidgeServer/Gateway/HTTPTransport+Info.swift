// GET /metrics and GET /topic over the HTTP transport: answers that need the caller's credentials checked (a CONNECT
// and its CONNACK, §3.1-3.2) and, for a topic, the ACL's word, but no subscription.
import MQTTCodec
import MidgeCore
import MidgeGateway

extension HTTPTransport {
    /// The counters say how busy the broker is and how many clients it has: with `allow_anonymous false` only
    /// callers the authenticator accepts may read them, unless `http_metrics_open` says otherwise.
    func startMetrics(
        credentials: GatewayCredentials?, request: HTTPRequest, mqtt: inout [UInt8], wire: inout [UInt8]
    ) {
        if gateway.allowAnonymous || gateway.settings.metricsOpen {
            answerMetrics(request, wire: &wire)
            return
        }
        guard credentials != nil else {
            write(.unauthorized(), to: request, wire: &wire)
            return
        }
        let wanted = identity(for: credentials, request: request, clientID: nil)
        guard usable(wanted, request: request, wire: &wire) else { return }
        if link == .connected {
            answerMetrics(request, wire: &wire)
            return
        }
        connectIfNeeded(wanted, cleanSession: true, mqtt: &mqtt)
        exchange = .metrics(request)
    }

    func answerMetrics(_ request: HTTPRequest, wire: inout [UInt8]) {
        let body = MetricsExposition.render(gateway.metrics)
        let response = HTTPResponse(status: .ok, headers: [("Content-Type", PrometheusText.contentType)], body: body)
        write(response, to: request, wire: &wire)
    }

    /// `GET /topic`: what the hub knows of one topic, for callers the ACL lets read it (the answer says
    /// whether anyone listens and what the last message's id is, which is the topic's business).
    func startTopicInfo(
        _ topic: TopicName, credentials: GatewayCredentials?, request: HTTPRequest, mqtt: inout [UInt8],
        wire: inout [UInt8]
    ) {
        let wanted = identity(for: credentials, request: request, clientID: nil)
        guard usable(wanted, request: request, wire: &wire) else { return }
        if link == .none && wanted.username == nil && !gateway.allowAnonymous {
            write(.unauthorized(), to: request, wire: &wire)
            return
        }
        if link == .connected {
            answerTopicInfo(topic, request: request, wire: &wire)
            return
        }
        connectIfNeeded(wanted, cleanSession: true, mqtt: &mqtt)
        exchange = .topicInfo(request, topic)
    }

    func answerTopicInfo(_ topic: TopicName, request: HTTPRequest, wire: inout [UInt8]) {
        // Both questions: mosquitto-style ACLs grant every SUBSCRIBE and decide per message (read access).
        let clientID = identity?.clientID ?? ""
        guard let filter = TopicFilter(bytes: topic.bytes),
            gateway.accessControl.maySubscribe(clientID: clientID, username: identity?.username, filter: filter),
            gateway.accessControl.mayReceive(clientID: clientID, username: identity?.username, topic: topic)
        else {
            write(.forbidden("not authorized to subscribe to \(topic)"), to: request, wire: &wire)
            return
        }
        let info = gateway.hub.info(topic)
        let response = HTTPResponse.topicInfo(
            topic, subscribers: info.subscribers, messages: info.messages, lastID: info.lastID.map { String($0) })
        write(response, to: request, wire: &wire)
    }
}
