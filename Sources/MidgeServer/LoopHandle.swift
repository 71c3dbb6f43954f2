// The cross-thread face of an event loop: its fds and its inbox. Batches cross threads here, never single messages.
import MQTTCodec
import MidgeCore
import Synchronization

/// What a loop that does not own the core tells the core (loop 0) about one of its connections.
enum CoreEvent: Sendable {
    /// The connection's CONNECT, with the facts the core keeps about the connection.
    case connect(ConnectionID, Packet, ConnectionInfo)
    /// Any later packet.
    case packet(ConnectionID, Packet)
    case closed(ConnectionID, CloseReason)
    /// The connection's unsent output passed the high-water mark (see `ServerSettings.congestionHighWater`).
    case outputCongested(ConnectionID)
    /// ... and fell back to the low-water mark.
    case outputDrained(ConnectionID)
    /// The answer to `ReadingChange.confirmOutput`.
    case outputConfirmed(ConnectionID)

    /// Roughly the memory the event holds while it waits for the core: payload and topic plus a fixed part.
    var backlogWeight: Int {
        if case .packet(_, .publish(let publish)) = self {
            return 128 + publish.payload.count + publish.topic.bytes.count
        }
        return 128
    }
}

/// Whole arrays handed from one thread to another, in order. A batch is moved in, never copied element by
/// element (a copied PUBLISH action is an atomic retain and release of its message); the consumer returns each
/// buffer, so producers reuse buffers with their capacity instead of allocating. Events are moved out (`drain`);
/// actions are only lent to the loop (`visit`) and go back inside their buffer, so the last reference to a message
/// is dropped on the thread that runs the core, which allocated it. Freed on the writing loop instead, messages
/// went from one malloc arena to another every time, and the fan-in bench with its subscriber off loop 0 spent a
/// quarter of its CPU in glibc's malloc and free (0.6–0.9M msg/s instead of 1.1–1.3M).
struct BatchQueue<Element: Sendable>: Sendable {
    private(set) var batches: [[Element]] = []
    private var recycled: [[Element]] = []

    var isEmpty: Bool { batches.isEmpty }

    /// Producer side: moves `batch` in and leaves an empty array (a recycled buffer when there is one) behind.
    mutating func push(_ batch: inout [Element]) {
        var next = recycled.popLast() ?? []
        swap(&next, &batch)
        batches.append(next)
    }

    /// Consumer side: moves every element out, oldest batch first, then keeps the emptied buffers for producers.
    mutating func drain(_ body: (Element) -> Void) {
        for index in batches.indices {
            batches[index].reverse()
            while let element = batches[index].popLast() { body(element) }
        }
        while recycled.count < 4, let buffer = batches.popLast() { recycled.append(buffer) }
        batches.removeAll(keepingCapacity: true)
    }

    /// Consumer side: hands every element to `body`, oldest batch first, and gives the buffers back with their
    /// elements, so the producer that reuses one releases them (see `LoopHandle.post(actions:readingChanges:)`).
    mutating func visit(_ body: (Element) -> Void) {
        for batch in batches.indices {
            // By index: the element is lent to `body`, not copied (a retain and release of a message per action).
            for index in batches[batch].indices { body(batches[batch][index]) }
        }
        while recycled.count < 4, let buffer = batches.popLast() { recycled.append(buffer) }
        batches.removeAll(keepingCapacity: true)
    }

    /// Moves `other`'s recycled buffers (a consumer's copy after `visit`) here, where producers and
    /// `takeSpentBuffers` find them; those beyond four stay in `other` for the caller to drop.
    mutating func adoptRecycled(from other: inout BatchQueue) {
        while recycled.count < 4, let buffer = other.recycled.popLast() { recycled.append(buffer) }
    }

    var hasRecycled: Bool { !recycled.isEmpty }

    mutating func dropRecycled() { recycled.removeAll() }

    /// The recycled buffers that still hold elements no producer has released.
    mutating func takeSpentBuffers() -> [[Element]] {
        let spent = recycled.filter { !$0.isEmpty }
        recycled.removeAll { !$0.isEmpty }
        return spent
    }

    /// Emptied buffers back for producers, up to four in all.
    mutating func giveBack(_ buffers: inout [[Element]]) {
        while recycled.count < 4, let buffer = buffers.popLast() { recycled.append(buffer) }
    }
}

/// Everything that may be waiting for a loop. Each producer adds a whole turn's batch at once.
struct Mailbox: Sendable {
    /// For loop 0: inbound events from the other loops, FIFO per producing loop.
    var events = BatchQueue<CoreEvent>()
    /// For loops 1…: the core's actions for their connections, in the order the core produced them.
    var actions = BatchQueue<Action>()
    /// For loops 1…: the core's pauses and resumes of their connections, carried out after `actions`.
    var readingChanges: [ReadingChange] = []
    /// The server is shutting down.
    var stopRequested = false
    /// For loop 0: how many other loops have reported their last events and stopped.
    var stoppedLoops = 0
    /// For loop 0: the summed `backlogWeight` of `events`.
    var eventsWeight = 0
    /// For loops 1…: the core's backlog has drained; reading may resume.
    var resumeReads = false
    /// For loop 0: store appends that completed (see `Persistence`), in append order; releases held acks.
    var durableBatches: [DurableBatch] = []

    var isEmpty: Bool {
        events.isEmpty && actions.isEmpty && readingChanges.isEmpty && !stopRequested && stoppedLoops == 0
            && !resumeReads && durableBatches.isEmpty
    }

    /// Resets the flags and counts once the batches have been drained; buffers keep their capacity.
    mutating func clear() {
        readingChanges.removeAll(keepingCapacity: true)
        stopRequested = false
        stoppedLoops = 0
        eventsWeight = 0
        resumeReads = false
    }
}

/// Created on the starting thread, shared by every loop: plain fds, a locked mailbox and counters.
final class LoopHandle: Sendable {
    let index: Int
    let epollFD: Int32
    /// An eventfd in the loop's epoll set; written only when the mailbox goes from empty to non-empty.
    let wakeFD: Int32
    /// This loop's SO_REUSEPORT socket of every listener group, with the group's port.
    let listeners: [(fd: Int32, port: UInt16)]
    private let mailbox = Mutex(Mailbox())
    /// This loop stopped reading because the core is behind, and wants `resumeReads` when it catches up.
    let awaitsCoreDrain = Atomic<Bool>(false)
    /// Held by the loop's thread for each of its turns, and free while it waits in `epoll_wait`; whoever holds
    /// it may touch `loop` (see `EventLoop.deliverWhileAsleep`).
    let turnLock = Mutex<Void>(())
    /// The loop, from its start to its end; read and written only under `turnLock`.
    nonisolated(unsafe) var loop: EventLoop?

    init(index: Int, epollFD: Int32, wakeFD: Int32, listeners: [(fd: Int32, port: UInt16)]) {
        self.index = index
        self.epollFD = epollFD
        self.wakeFD = wakeFD
        self.listeners = listeners
    }

    /// Adds to the mailbox under the lock. The eventfd write (~350 ns) happens only when the mailbox was
    /// empty: a non-empty mailbox means the loop has a wake-up pending already and will take everything.
    func post(_ fill: (inout Mailbox) -> Void) {
        let wake = mailbox.withLock { box in
            let wasEmpty = box.isEmpty
            fill(&box)
            return wasEmpty && !box.isEmpty
        }
        if wake { Syscall.signalEventFD(wakeFD) }
    }

    /// Hands over a batch of events, leaving the caller an empty array (see `BatchQueue`).
    func post(events: inout [CoreEvent], weight: Int, loopStopped: Bool = false) {
        post { box in
            if !events.isEmpty { box.events.push(&events) }
            box.eventsWeight += weight
            if loopStopped { box.stoppedLoops += 1 }
        }
    }

    func post(actions: inout [Action], readingChanges: inout [ReadingChange]) {
        post { box in
            if !actions.isEmpty { box.actions.push(&actions) }
            if !readingChanges.isEmpty { box.readingChanges.append(contentsOf: readingChanges) }
        }
        // The buffer handed back still holds actions the loop carried out (`BatchQueue.visit`): their messages are
        // released here, on the thread that runs the core, where they were allocated.
        actions.removeAll(keepingCapacity: true)
        readingChanges.removeAll(keepingCapacity: true)
    }

    /// Takes only the events for the core (with their summed weight), for a loop about to run the core itself;
    /// `queue` must be empty. What else is in the mailbox stays, with its wake-up.
    func takeEvents(into queue: inout BatchQueue<CoreEvent>) -> Int {
        mailbox.withLock { box in
            swap(&box.events, &queue)
            defer { box.eventsWeight = 0 }
            return box.eventsWeight
        }
    }

    /// After the loop carried out its actions (`BatchQueue.visit`): their buffers go back into the mailbox, where
    /// the next producer releases what they hold on its own thread, or `releaseSpentActions` does.
    func returnSpent(_ actions: inout BatchQueue<Action>) {
        mailbox.withLock { $0.actions.adoptRecycled(from: &actions) }
        actions.dropRecycled()
    }

    /// Loop 0, every tick: releases what carried-out actions no producer has reused a buffer of since, so an idle
    /// loop does not keep its last messages alive for longer than a tick.
    func releaseSpentActions() {
        var spent = mailbox.withLock { $0.actions.takeSpentBuffers() }
        guard !spent.isEmpty else { return }
        for index in spent.indices { spent[index].removeAll(keepingCapacity: true) }
        mailbox.withLock { $0.actions.giveBack(&spent) }
    }

    /// Whether actions or reading changes from an earlier run of the core still wait here for the loop.
    var holdsCoreOutput: Bool {
        mailbox.withLock { !$0.actions.isEmpty || !$0.readingChanges.isEmpty }
    }

    /// Swaps the whole mailbox with `spare` (which must be empty). Call after draining the eventfd, so a
    /// producer that finds the mailbox empty after this swap wakes the loop again.
    func take(into spare: inout Mailbox) {
        mailbox.withLock { box in swap(&box, &spare) }
    }
}
