// What a loop keeps on either side of the core: the events it has for the core this turn, and what a run of the
// core decided, sorted by the loop each action is for (see "Threads" in Docs/architecture.md).
import MidgeCore

/// Loops 1…: events for the core, handed to loop 0 once per turn (or run here when the core is free), and the
/// connections not being read because the core is behind.
struct CoreInput {
    var events: [CoreEvent] = []
    /// The events' `backlogWeight`, for inbound flow control.
    var weight = 0
    /// Events other loops handed to loop 0, taken by this loop to run before its own (see `runCoreIfFree`).
    var handedOver = BatchQueue<CoreEvent>()
    var pausedConnections: [Connection] = []
}

/// A run of the core's actions and reading changes, and the same sorted into one batch per loop.
struct CoreOutput {
    var actions: [Action] = []
    var actionsForLoops: [[Action]]
    var readingChangesForLoops: [[ReadingChange]]
    /// Reused by every run to take the core's reading changes.
    var readingChanges: [ReadingChange] = []

    init(loopCount: Int) {
        actionsForLoops = Array(repeating: [], count: loopCount)
        readingChangesForLoops = Array(repeating: [], count: loopCount)
    }
}
