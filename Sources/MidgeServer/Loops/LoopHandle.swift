// The cross-thread face of an event loop: its fds and its inbox. Batches cross threads here, never single messages.
import MQTTCodec
import MidgeCore
import Synchronization

/// Events a loop that does not own the core hands to loop 0 (`CoreEvent` is the core's vocabulary; the loops send
/// only connection events).
extension CoreEvent {
    /// Roughly the memory the event holds while it waits for the core: payload and topic plus a fixed part.
    var backlogWeight: Int {
        if case .packet(_, .publish(let publish)) = self {
            return 128 + publish.payload.count + publish.topic.bytes.count
        }
        return 128
    }
}

/// Whole arrays handed from one thread to another, in order. A batch is moved in, never copied element by
/// element (a copied PUBLISH action is an atomic retain and release of its message). Events are moved out
/// (`drain`) and their emptied buffers recycled for producers. Actions are only lent to the loop (`visit`) and their
/// buffers come back full (`spent`): a thread that runs the core empties them, so the last reference to a message is
/// dropped on a thread that runs the core — loop 0 under load, which allocated nearly all of them. Freed on the
/// writing loop instead, messages went from one malloc arena to another every time, and the fan-in bench with its
/// subscriber off loop 0 spent a quarter of its CPU in glibc's malloc and free (0.6–0.9M msg/s, not 1.1–1.3M).
struct BatchQueue<Element: Sendable>: Sendable {
    private(set) var batches: [[Element]] = []
    private var recycled: [[Element]] = []
    /// Buffers whose elements the consumer has carried out (`visit`), still holding them; not capped.
    private(set) var spent: [[Element]] = []

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

    /// Consumer side: lends every element to `body`, oldest batch first, and keeps the buffers, elements and all, as
    /// `spent`, for `LoopHandle.returnSpent`.
    mutating func visit(_ body: (Element) -> Void) {
        for batch in batches.indices {
            // By index: the element is lent to `body`, not copied (a retain and release of a message per action).
            for index in batches[batch].indices { body(batches[batch][index]) }
        }
        spent.append(contentsOf: batches)
        batches.removeAll(keepingCapacity: true)
    }

    /// Moves `other`'s spent buffers here, all of them.
    mutating func adoptSpent(from other: inout BatchQueue) {
        spent.append(contentsOf: other.spent)
        other.spent.removeAll(keepingCapacity: true)
    }

    /// Swaps the buffer lists (recycled and spent) with `other`'s, leaving the batches where they are.
    mutating func swapBuffers(with other: inout BatchQueue) {
        swap(&recycled, &other.recycled)
        swap(&spent, &other.spent)
    }

    /// Takes the spent buffers out, leaving none.
    mutating func takeSpent() -> [[Element]] {
        var taken: [[Element]] = []
        swap(&taken, &spent)
        return taken
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
    /// For loop 0: the highest store append that completed (see `WriteAheadRecordLog`), 0 for none; releases the
    /// acknowledgements held behind it and every earlier append.
    var durableThrough: UInt64 = 0

    var isEmpty: Bool {
        events.isEmpty && actions.isEmpty && readingChanges.isEmpty && !stopRequested && stoppedLoops == 0
            && !resumeReads && durableThrough == 0
    }

    /// Resets the flags and counts once the batches have been drained; buffers keep their capacity.
    mutating func clear() {
        readingChanges.removeAll(keepingCapacity: true)
        stopRequested = false
        stoppedLoops = 0
        eventsWeight = 0
        resumeReads = false
        durableThrough = 0
    }
}

/// Created on the starting thread, shared by every loop: plain fds, a locked mailbox and counters.
final class LoopHandle: Sendable {
    let index: Int
    let epollFD: Int32
    /// An eventfd in the loop's epoll set; a post writes it only when the mailbox goes from empty to non-empty (a
    /// wake-up is pending otherwise). Also written for auth verdicts and after `EventLoop.deliverWhileAsleep`.
    let wakeFD: Int32
    /// This loop's SO_REUSEPORT socket of every listener group, with the group's port.
    let listeners: [(fd: Int32, port: UInt16)]
    private let mailbox = LoopLocked(Mailbox())
    /// This loop stopped reading because the core is behind, and wants `resumeReads` when it catches up.
    let awaitsCoreDrain = Atomic<Bool>(false)
    /// Held by the loop's thread for each of its turns, and free while it waits in `epoll_wait`; whoever holds
    /// it may touch `loop` (see `EventLoop.deliverWhileAsleep`).
    let turnLock: LoopLock
    /// Who may touch the loop's state: its thread, or the holder of `turnLock` (checked in debug builds).
    let owner: LoopOwner
    /// The loop, from its start to its end; read and written only under `turnLock`.
    var loop: EventLoop? {
        get {
            assert(turnLock.isHeldByCurrentThread, "loop \(index)'s handle read without its turn lock")
            return storedLoop
        }
        set {
            assert(turnLock.isHeldByCurrentThread, "loop \(index)'s handle set without its turn lock")
            storedLoop = newValue
        }
    }
    nonisolated(unsafe) private var storedLoop: EventLoop?

    init(index: Int, epollFD: Int32, wakeFD: Int32, listeners: [(fd: Int32, port: UInt16)]) {
        self.index = index
        self.epollFD = epollFD
        self.wakeFD = wakeFD
        self.listeners = listeners
        let turnLock = LoopLock()
        self.turnLock = turnLock
        owner = LoopOwner(turnLock: turnLock)
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

    /// Under the core's lock. Also takes the buffers of actions the loop has carried out since (`BatchQueue.visit`)
    /// and releases what they hold here, outside the mailbox's lock, on the thread that runs the core.
    func post(actions: inout [Action], readingChanges: inout [ReadingChange]) {
        var spent: [[Action]] = []
        post { box in
            if !actions.isEmpty { box.actions.push(&actions) }
            if !readingChanges.isEmpty { box.readingChanges.append(contentsOf: readingChanges) }
            if !box.actions.spent.isEmpty { spent = box.actions.takeSpent() }
        }
        readingChanges.removeAll(keepingCapacity: true)
        for index in spent.indices { spent[index].removeAll(keepingCapacity: true) }
        // One emptied buffer serves the next batch for this loop; the rest are freed.
        if actions.capacity == 0, let buffer = spent.popLast() { actions = buffer }
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

    /// After the loop carried out its actions (`BatchQueue.visit`): their buffers go into the mailbox, where the next
    /// `post(actions:readingChanges:)` or `releaseSpentActions` releases what they hold.
    func returnSpent(_ actions: inout BatchQueue<Action>) {
        mailbox.withLock { $0.actions.adoptSpent(from: &actions) }
    }

    /// Loop 0, every tick: releases what carried-out actions no producer has taken since, so an idle loop does not
    /// keep its last messages alive for longer than a tick.
    func releaseSpentActions() {
        // Discarded after the lock is let go: the messages are released outside it.
        _ = mailbox.withLock { $0.actions.takeSpent() }
    }

    /// Whether actions or reading changes from an earlier run of the core still wait here for the loop.
    var holdsCoreOutput: Bool {
        mailbox.withLock { !$0.actions.isEmpty || !$0.readingChanges.isEmpty }
    }

    /// Swaps the whole mailbox with `spare` (which must be empty), except the actions' buffer lists, which stay
    /// where producers and `releaseSpentActions` look for them. Call after draining the eventfd, so a producer that
    /// finds the mailbox empty after this swap wakes the loop again.
    func take(into spare: inout Mailbox) {
        mailbox.withLock { box in
            swap(&box, &spare)
            box.actions.swapBuffers(with: &spare.actions)
        }
    }
}
