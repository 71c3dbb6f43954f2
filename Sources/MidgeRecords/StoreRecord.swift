// The durable vocabulary: one record per change that must survive a restart (MQTT 3.1.1 §3.1.2.4, §3.3.1.3, §4.3).
import MQTTCodec

/// Where an outbound QoS 1/2 delivery stands, as far as a restart needs to know.
public enum DeliveryState: UInt8, Sendable, Equatable {
    /// PUBLISH sent, waiting for PUBACK (QoS 1) or PUBREC (QoS 2): resent with DUP=1 on reconnect
    /// [MQTT-4.4.0-1].
    case publishSent = 0
    /// PUBREC received and PUBREL sent, waiting for PUBCOMP: only the PUBREL is resent [MQTT-4.3.3-1].
    case pubrelSent = 1
}

/// Which delivery a `deliveryCompleted` record finishes.
public enum DeliveryReference: Sendable, Equatable, Hashable {
    /// The in-flight delivery holding this packet id (PUBACK or PUBCOMP received).
    case packet(PacketID)
    /// The first queued (not yet sent) delivery of this message (dropped from the queue unsent).
    case queued(messageID: UInt64)
}

/// One change to the durable state. Records are plain values; `StoreState.apply(_:)` defines what each means.
///
/// Client ids are the MQTT client identifier as a String. Message ids are allocated by the caller, unique for as
/// long as any delivery refers to them; `StoreState.nextMessageID` says where to continue after a restart.
public enum StoreRecord: Sendable, Equatable {
    /// A retained message set or replaced on its topic [MQTT-3.3.1-5].
    case retainedSet(topic: TopicName, payload: [UInt8], qos: QoS)
    /// The retained message of a topic deleted by an empty retained PUBLISH [MQTT-3.3.1-10].
    case retainedCleared(topic: TopicName)
    /// A persistent (CleanSession=0) session begins [MQTT-3.1.2-4]; when it already exists, only its last-seen
    /// time changes.
    case sessionCreated(clientID: String, unixSeconds: Int64)
    /// A persistent session is discarded (CleanSession=1 connect, expiry), with its queue and in-flight state
    /// [MQTT-3.1.2-6].
    case sessionEnded(clientID: String)
    /// The session's client connected or disconnected at this time, for `persistent_client_expiration`.
    case sessionSeen(clientID: String, unixSeconds: Int64)
    /// A subscription added, or its QoS replaced for the same filter [MQTT-3.8.4-3].
    case subscriptionAdded(clientID: String, filter: TopicFilter, qos: QoS)
    case subscriptionRemoved(clientID: String, filter: TopicFilter)
    /// A message body, written once however many sessions it is queued for. It stays in the state while a
    /// delivery refers to it; write it in the same `append` as its first delivery.
    case messageStored(id: UInt64, topic: TopicName, payload: [UInt8], qos: QoS)
    /// A delivery appended to the session's queue, waiting for the in-flight window or the client.
    case deliveryQueued(clientID: String, messageID: UInt64, qos: QoS, retain: Bool)
    /// A delivery holds a packet id. With `.publishSent` it leaves the queue (if queued) and becomes the newest
    /// in-flight entry; a record for a packet id already in flight replaces it and moves it to the end of the
    /// resend order, which is what PUBREC → `.pubrelSent` needs [MQTT-4.6.0-1][MQTT-4.6.0-4]. Recording the same
    /// `.publishSent` delivery again only moves it: no queued copy of the message leaves the queue.
    case deliveryInFlight(
        clientID: String, messageID: UInt64, packetID: PacketID, qos: QoS, retain: Bool, state: DeliveryState)
    /// A delivery finished (PUBACK, PUBCOMP) or was dropped from the queue.
    case deliveryCompleted(clientID: String, delivery: DeliveryReference)
    /// An inbound QoS 2 PUBLISH was accepted and PUBREC sent: a repeat must not be routed again [MQTT-4.3.3-2].
    case inboundReceived(clientID: String, packetID: PacketID)
    /// PUBREL received for an inbound QoS 2 id: the id may be reused [MQTT-4.3.3-2].
    case inboundReleased(clientID: String, packetID: PacketID)
}
