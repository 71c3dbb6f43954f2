// One client's socket as its event loop sees it: state, the unfinished inbound packet, and unsent output.
import MQTTCodec
import MidgeCore

/// Thread-confined to the loop that accepted it; never crosses threads (its `ConnectionID` does).
final class Connection {
    enum State {
        /// Accepted; the first packet must be CONNECT within `connect_timeout` [MQTT-3.1.0-1].
        case awaitingConnect
        /// CONNECT was handed to the core; everything read goes to the core.
        case connected
        /// A close was decided: output is flushed once at the end of the turn, then the fd is closed.
        /// Nothing read from now on is processed.
        case closing
    }

    let id: ConnectionID
    let fd: Int32
    let info: ConnectionInfo
    var state = State.awaitingConnect
    /// The core has seen this connection's CONNECT, so it must hear about the connection's end
    /// (unless the core itself closed it).
    var reachedCore = false
    /// From CONNECT, for log lines; empty until then or when the client let the broker assign one.
    var clientID = ""
    /// The start of a packet whose end has not arrived. Empty (no allocation) whenever nothing is pending,
    /// so an idle connection costs no buffer.
    var partial: [UInt8] = []
    /// Encoded packets not yet written; `output[outputSent...]` is what is still unsent.
    var output: [UInt8] = []
    var outputSent = 0
    /// In the loop's list of connections to flush at the end of this turn.
    var isDirty = false
    /// EPOLLOUT is in the registration because a write hit EAGAIN.
    var watchesWritable = false
    /// EPOLLIN is out of the registration because the core is behind (see `ServerSettings.coreBacklogHighWater`).
    var readsPaused = false
    /// QoS 0 deliveries dropped in the current overflow episode; > 0 means an episode is running.
    var droppedQoS0 = 0

    init(id: ConnectionID, fd: Int32, info: ConnectionInfo) {
        self.id = id
        self.fd = fd
        self.info = info
    }

    var unsentCount: Int { output.count - outputSent }

    /// How log lines name the client, as mosquitto does before the id is known.
    var logName: String { clientID.isEmpty ? "<unknown>" : clientID }
}
