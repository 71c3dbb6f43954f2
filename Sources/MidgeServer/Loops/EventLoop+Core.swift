// The hand-off between the loops and the core: a loop runs its events through the core itself when the core is
// free, and otherwise hands them to loop 0 in batches; actions go out in batches, one mailbox swap per loop per
// turn; inbound flow control while the core is behind.
import MQTTCodec
import MidgeCore

extension EventLoop {
    /// While this loop runs the core it is called at once; otherwise the event joins this turn's batch, run at
    /// the end of the turn (see `runCoreIfFree`) or handed to loop 0.
    func report(_ event: CoreEvent) {
        assertOwned()
        if runningCore {
            coreReceive(event)
        } else {
            input.weight += event.backlogWeight
            input.events.append(event)
        }
    }

    /// Under the core's lock: one event into the core (`Broker.run`, the drivers' one entry), its actions out to
    /// their connections' loops. The run's records go to the log once, in `endCoreRun`.
    func coreReceive(_ event: CoreEvent) {
        assertOwned()
        assertRunsCore()
        guard let broker else { return }
        broker.run(event, now: MonotonicTime(nanoseconds: sharedCore.latestNow), into: &output.actions)
        routeCoreActions()
    }

    func tickIfDue() {
        guard let broker, !stopping else { return }
        if let reached = settings.metrics.memory.sampleIfDue(now: now) { broker.memoryCeilingReached = reached }
        let deadlineDue = broker.nextDeadline.map { $0.nanoseconds <= now } ?? false
        guard deadlineDue || now >= nextTick else { return }
        coreReceive(.tick)
        for handle in server.handles { handle.releaseSpentActions() }
        nextTick = now + Self.tickInterval
        if !server.bridges.isEmpty { tickBridges(broker) }
        publishSystemTopics()
    }

    /// On taking the core: its clock moves to this loop's time, unless another loop gave it a later one.
    func startCoreRun() {
        runningCore = true
        if now > sharedCore.latestNow { sharedCore.latestNow = now }
    }

    /// Loop 0's own connections get their actions at once; the rest are batched per loop, in core order,
    /// which keeps every connection's packets FIFO [MQTT-4.6.0-6]. Actions are moved, never copied: a copy of a
    /// PUBLISH action is an atomic retain and release of its message, often on another core's cache line.
    func routeCoreActions() {
        assertRunsCore()
        if !output.actions.isEmpty {
            let target = output.actions[0].connection.loop
            if target != index && target < output.actionsForLoops.count && output.actionsForLoops[target].isEmpty
                && output.actions.allSatisfy({ $0.connection.loop == target })
            {
                // The usual case under load (fan-in to one subscriber, a batch for one loop): hand the whole array.
                swap(&output.actionsForLoops[target], &output.actions)
            } else {
                output.actions.reverse()
                while let action = output.actions.popLast() {
                    let target = action.connection.loop
                    if target == index {
                        apply(action)
                    } else if target < output.actionsForLoops.count {
                        output.actionsForLoops[target].append(action)
                    }
                }
            }
        }
        guard let broker, broker.hasReadingChanges else { return }
        broker.takeReadingChanges(into: &output.readingChanges)
        for change in output.readingChanges {
            let target = change.connection.loop
            if target == index {
                apply(change)
            } else if target < output.readingChangesForLoops.count {
                output.readingChangesForLoops[target].append(change)
            }
        }
        output.readingChanges.removeAll(keepingCapacity: true)
    }

    func processMailbox() {
        assertOwned()
        handle.take(into: &spare)
        // Actions first: they come from earlier runs of the core than anything this turn produces.
        spare.actions.visit { apply($0) }
        if !spare.actions.spent.isEmpty { handle.returnSpent(&spare.actions) }
        for change in spare.readingChanges { apply(change) }
        if spare.resumeReads { resumeReads() }
        if index == 0 {
            // Its own first: they were made before the loop that delivered for it took the events handed over then.
            runOwnEventsForCore()
            runHandedOverEvents(&spare.events, weight: spare.eventsWeight)
            releaseDurableAppends()
            stoppedLoops += spare.stoppedLoops
        }
        let stopRequested = spare.stopRequested
        spare.clear()
        if stopRequested && !stopping { beginShutdown() }
    }

    /// Runs events other loops handed to loop 0, in order, and lowers the backlog they counted for; loops that
    /// stopped reading because of it read again once it is low.
    func runHandedOverEvents(_ events: inout BatchQueue<CoreEvent>, weight: Int) {
        events.drain { coreReceive($0) }
        guard weight > 0 else { return }
        let backlog = server.coreBacklog.subtract(weight, ordering: .sequentiallyConsistent).newValue
        if backlog <= settings.coreBacklogLowWater {
            for other in server.handles.dropFirst()
            where other.awaitsCoreDrain.load(ordering: .sequentiallyConsistent)
                && other.awaitsCoreDrain.exchange(false, ordering: .sequentiallyConsistent)
            {
                other.post { $0.resumeReads = true }
            }
        }
    }

    /// Under the core's lock: this loop's own events for the core, in order. On loop 0 these are the reports made
    /// while another loop delivered to its connections (see `deliverWhileAsleep`); its others run at once.
    private func runOwnEventsForCore() {
        guard !input.events.isEmpty else { return }
        input.events.reverse()
        while let event = input.events.popLast() { coreReceive(event) }
        input.weight = 0
    }

    /// A turn with more events than this hands them to loop 0 even when the core is free: a busy broker keeps
    /// the core's work on loop 0 and the reading and writing on the others, in parallel, rather than every loop
    /// taking turns at the core while loop 0 waits for it.
    static let inlineCoreRunLimit = 16

    /// Loops 1…, at the end of a turn with a few events for the core: runs them here if no other loop holds the
    /// core, which saves the thread wake-ups of a hand-off to loop 0 and back. Returns false when the core is busy
    /// (or not created yet); the events then go to loop 0.
    func runCoreIfFree() -> Bool {
        let ran = sharedCore.lock.withLockIfAvailable { () -> Bool in
            guard sharedCore.broker != nil else { return false }
            startCoreRun()
            defer { runningCore = false }
            // Older actions for this loop's connections, and events handed to loop 0 earlier (this loop's among
            // them), go before this turn's: the core's order is every connection's order [MQTT-4.6.0-6].
            processMailbox()
            let weight = server.handles[0].takeEvents(into: &input.handedOver)
            runHandedOverEvents(&input.handedOver, weight: weight)
            runOwnEventsForCore()
            endCoreRun()
            postCoreActions()
            return true
        }
        return ran ?? false
    }

    /// Under the core's lock, after a run: the drop count and the run's records to the log.
    func endCoreRun() {
        guard let broker else { return }
        if broker.messagesDropped != sharedCore.publishedDropCount {
            // Before this run's writes: a client that sees an acknowledgement sent after a drop sees its count.
            sharedCore.publishedDropCount = broker.messagesDropped
            server.droppedMessages.store(Int(truncatingIfNeeded: sharedCore.publishedDropCount), ordering: .releasing)
        }
        if let persistence = server.persistence { persistence.endOfRun(broker) }
    }

    /// Under the core's lock: the run's actions for other loops' connections to their mailboxes, in core order,
    /// since no other run can come between; a few for a loop that sleeps are carried out here instead.
    func postCoreActions() {
        assertRunsCore()
        for target in output.actionsForLoops.indices where target != index {
            guard !output.actionsForLoops[target].isEmpty || !output.readingChangesForLoops[target].isEmpty else {
                continue
            }
            let handle = server.handles[target]
            if isSmallBatch(output.actionsForLoops[target], output.readingChangesForLoops[target]),
                deliverWhileAsleep(
                    &output.actionsForLoops[target], readingChanges: &output.readingChangesForLoops[target], to: handle)
            {
                continue
            }
            handle.post(
                actions: &output.actionsForLoops[target], readingChanges: &output.readingChangesForLoops[target])
        }
    }

    /// Batches up to this many actions and payload bytes for a sleeping loop are written by the loop that ran the
    /// core, while it holds the core. Larger ones go to the loop's own thread, so a busy broker writes on every core
    /// while loop 0 runs the core, and a few large messages are not copied (or encrypted) under the core's lock.
    static let inlineDeliveryLimit = 16
    static let inlineDeliveryBytes = 64 * 1024

    private func isSmallBatch(_ actions: [Action], _ readingChanges: [ReadingChange]) -> Bool {
        guard actions.count + readingChanges.count <= Self.inlineDeliveryLimit else { return false }
        var bytes = 0
        for index in actions.indices {
            if case .send(_, .publish(let delivery)) = actions[index] { bytes += delivery.message.payload.count }
        }
        return bytes <= Self.inlineDeliveryBytes
    }

    /// Under the core's lock, when the target loop's turn lock is free (it waits in `epoll_wait`, or has not yet
    /// taken the lock after it) and nothing of the core's waits in its mailbox: carries out the actions on its
    /// connections from this thread, under its turn lock, and writes them.
    /// On a quiet broker whose publisher and subscriber landed on different loops, this saves the subscriber's loop
    /// a wake-up per message (an eventfd write, a wake of a thread on another CPU, and a turn): the latency and
    /// CPU a second loop added over one thread. Whatever the target must still do itself (the core's
    /// answers to output reports, input a resume released, transport follow-ups) wakes it as a post would.
    private func deliverWhileAsleep(
        _ actions: inout [Action], readingChanges: inout [ReadingChange], to handle: LoopHandle
    ) -> Bool {
        let outcome = handle.turnLock.withLockIfAvailable { () -> (done: Bool, wake: Bool) in
            guard let loop = handle.loop, !loop.stopping, !handle.holdsCoreOutput else { return (false, false) }
            if now > loop.now { loop.now = now }
            actions.reverse()
            while let action = actions.popLast() { loop.apply(action) }
            for change in readingChanges { loop.apply(change) }
            readingChanges.removeAll(keepingCapacity: true)
            loop.flushDirtyConnections()
            settings.metrics.loops[handle.index].countBatchWhileAsleep()
            return (true, loop.hasWorkForItsOwnTurn)
        }
        // After its turn lock is free, so the loop does not wake only to wait for it.
        if outcome?.wake == true { Syscall.signalEventFD(handle.wakeFD) }
        return outcome?.done ?? false
    }

    /// After another thread carried out actions for this loop: what only this loop's own turn takes care of.
    var hasWorkForItsOwnTurn: Bool {
        !input.events.isEmpty || !released.isEmpty || !transports.followUps.isEmpty || !admissionsReady.isEmpty
    }

    /// Writes, then hands this turn's batches to the other loops.
    func endTurn() {
        if index == 0 {
            endCoreRun()
            // Other loops' deliveries first (they may be written from here, see `deliverWhileAsleep`): a message
            // reaches its subscriber before its publisher's acknowledgement is written, as on one loop.
            postCoreActions()
            flushDirtyConnections()
            // What the core said in answer to the flush's reports.
            postCoreActions()
            if let broker {
                coreWakeAt = min(nextTick, broker.nextDeadline?.nanoseconds ?? Int64.max)
            }
            if stopping && stoppedLoops == server.handles.count - 1 { finished = true }
        } else {
            flushDirtyConnections()
            // The run's actions for this loop's own connections are written at once.
            if !input.events.isEmpty && input.events.count <= Self.inlineCoreRunLimit && !stopping
                && runCoreIfFree()
            {
                flushDirtyConnections()
            }
            if !input.events.isEmpty || stopping {
                server.coreBacklog.add(input.weight, ordering: .sequentiallyConsistent)
                server.handles[0].post(events: &input.events, weight: input.weight, loopStopped: stopping)
                input.weight = 0
                if stopping { finished = true }
            }
        }
        // Dekker-style with `runHandedOverEvents`: the flag is set before the backlog is read here, the backlog
        // is lowered before the flag is read there, so one of the two always sees the drain.
        if !input.pausedConnections.isEmpty,
            server.coreBacklog.load(ordering: .sequentiallyConsistent) <= settings.coreBacklogLowWater
        {
            resumeReads()
        }
    }
}
