// One client's socket as its event loop sees it: state, unfinished or held inbound bytes, and unsent output.
import MQTTCodec
import MidgeCore

/// Owned by the loop that accepted it and touched only under that loop's turn lock (its `ConnectionID` is what
/// other threads pass around).
/// Kept small: an idle connection is this object, its slot in the loop's table and the core's records.
final class Connection {
    enum State: UInt8 {
        /// Accepted; the first packet must be CONNECT within `connect_timeout` [MQTT-3.1.0-1].
        case awaitingConnect
        /// CONNECT is with the auth gate (see `AuthGate`); what follows it waits, held, for the verdict.
        case authenticating
        /// CONNECT was handed to the core; everything read goes to the core.
        case connected
        /// A close was decided: output is flushed once at the end of the turn, then the fd is closed.
        /// Nothing read from now on is processed.
        case closing
    }

    // Field order packs the small fields into one word: 96-byte objects instead of 112.
    let id: ConnectionID
    let fd: Int32
    /// While held: `input[..<heldScanned]` are whole packets that wait for the release; the rest is unscanned.
    /// (Held input stops growing at `heldInputLimit`, and an incomplete packet at `message_size_limit`.)
    @exclusivity(unchecked) var heldScanned: Int32 = 0
    @exclusivity(unchecked) var state = State.awaitingConnect
    /// The core has seen this connection's CONNECT, so it must hear about the connection's end
    /// (unless the core itself closed it).
    @exclusivity(unchecked) var reachedCore = false
    /// In the loop's list of connections to flush at the end of this turn.
    @exclusivity(unchecked) var isDirty = false
    /// EPOLLOUT is in the registration because a write hit EAGAIN.
    @exclusivity(unchecked) var watchesWritable = false
    /// EPOLLIN is out of the registration because the core is behind (see `ServerSettings.coreBacklogHighWater`).
    @exclusivity(unchecked) var readsPaused = false
    /// The core holds this publisher back (`ReadingChange.pause`): PUBLISHes and what follows them wait in
    /// `input`; only acknowledgements and PINGREQ are passed on.
    @exclusivity(unchecked) var isHeld = false
    /// Held, and `input` has reached `ServerSettings.heldInputLimit`: EPOLLIN is out of the registration.
    @exclusivity(unchecked) var heldInputFull = false
    /// The core was told the output is over the high-water mark and has not been told it drained since.
    @exclusivity(unchecked) var outputCongested = false
    /// Inbound bytes not yet handed on: the start of an incomplete packet, or while held, the packets waiting for
    /// the release. Empty (no allocation) whenever nothing is pending, so an idle connection costs no buffer.
    @exclusivity(unchecked) var input: [UInt8] = []
    /// Encoded packets not yet written; `output[outputSent...]` is what is still unsent. Taken from the loop's
    /// pool of buffers when the first packet of a turn is encoded and given back once all is written.
    @exclusivity(unchecked) var output: [UInt8] = []
    @exclusivity(unchecked) var outputSent = 0
    let info: ConnectionInfo
    /// TLS, WebSocket or HTTP sits between the socket and MQTT: the loop keeps its `ConnectionTransport` in a side
    /// table, so plain MQTT over TCP pays one predictable branch and no memory for it. Last, so it fits in the
    /// tail padding of `info` and the object stays in the same allocation size class.
    let hasTransport: Bool
    /// Over `max_client_message_rate` or `max_client_byte_rate` this second: EPOLLIN is out of the registration
    /// until the next second. (After `hasTransport`, in the same padding.)
    @exclusivity(unchecked) var rateLimited = false
    /// The core asked to hear when this turn's deliveries are encoded (`ReadingChange.confirmOutput`). (Same
    /// padding.)
    @exclusivity(unchecked) var confirmationAsked = false

    init(id: ConnectionID, fd: Int32, info: ConnectionInfo, hasTransport: Bool = false) {
        self.id = id
        self.fd = fd
        self.info = info
        self.hasTransport = hasTransport
    }

    var unsentCount: Int { output.count - outputSent }
}

/// An event loop's connections, found by the slot number in their `ConnectionID`: an array index instead of a
/// hash lookup for every event and every delivery. The id's serial is `generation << 24 | slot`; a slot's
/// generation rises each time it is reused, so ids stay unique (for 2^32 reuses of one slot) and an event or
/// action for a connection that has gone finds a different id in the slot, or none.
struct ConnectionTable {
    static let slotBits: UInt64 = 24
    static let slotMask: UInt64 = (1 << slotBits) - 1

    private var slots: [Connection?] = []
    private var generations: [UInt32] = []
    private var freeSlots: [Int32] = []
    private(set) var count = 0

    /// The id the next `insert` on this loop will use.
    func nextID(loop: Int) -> ConnectionID {
        let slot = freeSlots.last.map(Int.init) ?? slots.count
        let generation = slot < generations.count ? generations[slot] : 0
        return ConnectionID(loop: loop, serial: UInt64(generation) << Self.slotBits | UInt64(slot))
    }

    /// Stores a connection created with the id `nextID` returned.
    mutating func insert(_ connection: Connection) {
        let slot = Int(connection.id.rawValue & Self.slotMask)
        if let last = freeSlots.last, Int(last) == slot {
            freeSlots.removeLast()
            slots[slot] = connection
        } else {
            precondition(slot == slots.count, "insert must use nextID")
            slots.append(connection)
            generations.append(0)
        }
        count += 1
    }

    subscript(id: ConnectionID) -> Connection? {
        let slot = Int(id.rawValue & Self.slotMask)
        guard slot < slots.count, let connection = slots[slot], connection.id == id else { return nil }
        return connection
    }

    /// Removes the connection; false if it was not (or no longer) in the table.
    @discardableResult
    mutating func remove(_ id: ConnectionID) -> Bool {
        let slot = Int(id.rawValue & Self.slotMask)
        guard slot < slots.count, let connection = slots[slot], connection.id == id else { return false }
        slots[slot] = nil
        generations[slot] &+= 1
        freeSlots.append(Int32(slot))
        count -= 1
        return true
    }

    /// Every connection, for shutdown.
    var all: [Connection] { slots.compactMap { $0 } }

    /// Whether another connection fits: slots are 24 bits.
    var hasRoom: Bool { !freeSlots.isEmpty || UInt64(slots.count) < Self.slotMask }
}
