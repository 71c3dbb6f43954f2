// Counters the broker keeps for $SYS topics and metrics.

/// A snapshot of the broker's counters, read through `Broker.statistics`.
public struct BrokerStatistics: Sendable, Equatable {
    /// Connections that completed CONNECT and are still open.
    public var connectedClients: Int = 0
    /// Sessions known: connected ones plus persistent sessions waiting for their client.
    public var sessions: Int = 0
    /// PUBLISH packets received from clients.
    public var messagesReceived: UInt64 = 0
    /// PUBLISH packets handed to the driver for sending, retransmissions included.
    public var messagesSent: UInt64 = 0
    /// Deliveries dropped because a session's queue was full.
    public var messagesDropped: UInt64 = 0
    /// Times a publisher was held back because a queue it feeds was full (`QueueFullPolicy.block`).
    public var publishersHeld: UInt64 = 0
    /// QoS 1/2 PUBLISHes neither routed nor acknowledged because the persistence store could not write.
    public var publishesRefused: UInt64 = 0
    /// PUBLISHes acknowledged but dropped for a payload above `message_size_limit`.
    public var messagesOversized: UInt64 = 0
    /// Topics with a retained message.
    public var retainedMessages: Int = 0
    /// Topic and payload bytes of the retained messages.
    public var retainedBytes: Int = 0
    /// Retained messages not stored: past `retained_messages_max`, `retained_bytes_max` or the memory ceiling.
    public var retainedRefused: UInt64 = 0
    /// SUBSCRIBE filters refused (0x80) because the session held `max_subscriptions` already.
    public var subscriptionsRefused: UInt64 = 0
    /// Connections closed for a topic name or filter deeper than `max_topic_levels`.
    public var topicsTooDeep: UInt64 = 0
    /// CONNECTs refused (server unavailable) while the broker was above `memory_limit`.
    public var connectionsRefusedForMemory: UInt64 = 0
    /// Deliveries not queued (and counted in `messagesDropped` too) while the broker was above `memory_limit`.
    public var messagesDroppedForMemory: UInt64 = 0
    /// Subscriptions over all sessions.
    public var subscriptions: Int = 0
    /// Of those, shared subscriptions (`$share/<group>/<filter>`).
    public var sharedSubscriptions: Int = 0
    /// Persistent sessions removed by `persistent_client_expiration`.
    public var clientsExpired: UInt64 = 0
    /// Payload bytes waiting in session queues, over all sessions.
    public var queuedBytes: Int = 0
    /// Outbound QoS 1/2 deliveries waiting for their acknowledgement, over all sessions.
    public var inflightMessages: Int = 0
    /// Deliveries waiting in session queues, over all sessions.
    public var queuedMessages: Int = 0

    public init() {}
}
