// The broker-wide settings the core obeys; filled from the config file by the executable.
import MQTTCodec

public struct BrokerConfiguration: Sendable {
    /// QoS 1/2 deliveries in flight per client before further ones queue [mosquitto: max_inflight_messages].
    public var maxInflightMessages: Int = 20
    /// Payload bytes of QoS 1/2 deliveries in flight per client: a new one waits in the queue while this many or
    /// more are unacknowledged, so one larger than the limit still goes alone; 0 means no limit
    /// [max_inflight_bytes].
    public var maxInflightBytes: Int = 0
    /// Deliveries go out at the subscription's granted QoS even when the message was published lower, retained
    /// replays too [upgrade_outgoing_qos]. Off by default, as the spec's rule is the lower of both [MQTT-3.8.4-6].
    public var upgradeOutgoingQoS: Bool = false
    /// A retained message is replayed to a new subscriber only while the client that set it may still publish it
    /// (its ACL is asked again); on by default, as in mosquitto [check_retain_source].
    public var checkRetainSource: Bool = true
    /// Messages queued per client beyond the in-flight window; 0 means no limit [max_queued_messages].
    public var maxQueuedMessages: Int = 1000
    /// Payload bytes queued per client; 0 means no limit [max_queued_bytes]. Not unlimited by default (mosquitto's
    /// is): with 1000 messages of up to 256 MB each, one offline session could otherwise hold 256 GB.
    public var maxQueuedBytes: Int = 64 * 1024 * 1024
    /// What happens to a delivery for a connected client whose queue is full [queue_full_policy].
    public var queueFullPolicy: QueueFullPolicy = .drop
    /// Queue QoS 0 messages for offline persistent sessions too [queue_qos0_messages].
    public var queueQoS0Messages: Bool = false
    /// Largest keepalive a client may ask for; larger requests are refused [max_keepalive].
    public var maxKeepalive: UInt16 = 65535
    /// Accept CONNECTs without a user name [allow_anonymous].
    public var allowAnonymous: Bool = true
    /// Accept empty client ids with clean session 1 by assigning one [allow_zero_length_clientid].
    public var allowZeroLengthClientID: Bool = true
    /// Prefix for assigned client ids [auto_id_prefix].
    public var autoIDPrefix: String = "auto-"
    /// The CONNECT's user name replaces its client id; a CONNECT without one is refused as not authorised
    /// [use_username_as_clientid].
    public var useUsernameAsClientID: Bool = false
    /// Only client ids starting with this prefix may connect; others are refused as not authorised
    /// [clientid_prefixes].
    public var requiredClientIDPrefix: String?
    /// Longest client id accepted, in bytes (MQTT 3.1 clients are always limited to 23).
    public var maxClientIDLength: Int = 65535
    /// Largest PUBLISH payload routed, in bytes; a larger one is acknowledged and dropped, the connection stays open,
    /// as mosquitto does for 3.1.1 clients; 0 means no limit [message_size_limit].
    public var messageSizeLimit: Int = 0
    /// Store retained messages; when false a retained PUBLISH closes the connection, as in mosquitto
    /// [retain_available].
    public var retainAvailable: Bool = true
    /// Deepest topic name or filter accepted, in levels; 0 means no limit [max_topic_levels]. Each level of a
    /// filter or retained topic is state in a trie, so without it one 64 KB SUBSCRIBE could build 32,000 levels.
    public var maxTopicLevels: Int = 200
    /// Subscriptions one session may hold; a SUBSCRIBE beyond it is refused per filter (0x80); 0 means no
    /// limit [max_subscriptions].
    public var maxSubscriptions: Int = 10_000
    /// Topics with a retained message, broker-wide; a new retained topic beyond it is not stored; 0 means no
    /// limit [retained_messages_max].
    public var retainedMessagesMax: Int = 1_000_000
    /// Topic and payload bytes of every retained message together; a retained message that would pass it is not
    /// stored; 0 means no limit [retained_bytes_max].
    public var retainedBytesMax: Int = 1024 * 1024 * 1024
    /// Ceiling on granted subscription QoS [max_qos].
    public var maxQoS: QoS = .exactlyOnce
    /// Persistent sessions whose client has been away this many seconds are removed; 0 keeps them for ever
    /// [persistent_client_expiration].
    public var persistentClientExpiration: Int64 = 0
    /// Delivery bytes (payload, topic and a few header bytes) the core hands one connection's driver before it
    /// waits for the driver to confirm the output drained (`ReadingChange.confirmOutput`); 0 never waits.
    /// Deliveries the driver has not written yet sit in its mailbox and output buffer, outside every queue
    /// limit: this bounds them even when the driver's thread is not scheduled for a while.
    public var outputWindowBytes: Int = 0

    public init() {}
}

/// What the broker does when a connected subscriber's queue is at `maxQueuedMessages` / `maxQueuedBytes`.
/// Offline sessions always drop at their limits, as in mosquitto: nobody is there to drain them.
public enum QueueFullPolicy: Sendable, Equatable {
    /// Drop the new delivery, count it, and log once per episode of drops (mosquitto's behaviour).
    case drop
    /// Keep the delivery and hold back the publishers that feed the full queue (the driver stops reading their
    /// PUBLISHes) until it has drained to half its limits: nothing is dropped, publishers slow to the pace of
    /// the slowest subscriber they feed. The queue exceeds its limit only by what was already on its way.
    case block
}
