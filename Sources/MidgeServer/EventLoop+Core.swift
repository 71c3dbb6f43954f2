// The hand-off between the loops and the core on loop 0: events in batches towards it, actions in batches back,
// one mailbox swap per loop per turn; inbound flow control while the core is behind.
import MQTTCodec
import MidgeCore

extension EventLoop {
    /// Placeholder facts for packets after CONNECT: the core reads `ConnectionInfo` only with a CONNECT, so the
    /// string is not copied (retained and released) with every PUBLISH.
    static let laterPacketInfo = ConnectionInfo(remoteAddress: "", listenerPort: 0)

    /// On loop 0 the core is called at once; elsewhere the event joins this turn's batch for loop 0.
    func report(_ event: CoreEvent) {
        if broker != nil {
            coreReceive(event)
        } else {
            eventsForCoreWeight += event.backlogWeight
            eventsForCore.append(event)
        }
    }

    /// Loop 0: one event into the core, its actions out to their connections' loops.
    func coreReceive(_ event: CoreEvent) {
        guard let broker else { return }
        let time = MonotonicTime(nanoseconds: now)
        switch event {
        case .connect(let id, let packet, let info):
            broker.handle(packet, from: id, info: info, now: time, into: &coreActions)
        case .packet(let id, let packet):
            broker.handle(packet, from: id, info: Self.laterPacketInfo, now: time, into: &coreActions)
        case .closed(let id, let reason):
            broker.connectionClosed(id, reason: reason, now: time, into: &coreActions)
        case .outputCongested(let id):
            broker.outputCongested(id)
        case .outputDrained(let id):
            broker.outputDrained(id, now: time, into: &coreActions)
        }
        routeCoreActions()
    }

    func tickIfDue() {
        guard let broker, !stopping else { return }
        let deadlineDue = broker.nextDeadline.map { $0.nanoseconds <= now } ?? false
        guard deadlineDue || now >= nextTick else { return }
        broker.tick(now: MonotonicTime(nanoseconds: now), into: &coreActions)
        routeCoreActions()
        nextTick = now + Self.tickInterval
        publishSystemTopics()
    }

    /// Loop 0's own connections get their actions at once; the rest are batched per loop, in core order,
    /// which keeps every connection's packets FIFO [MQTT-4.6.0-6]. Actions are moved, never copied: a copy of a
    /// PUBLISH action is an atomic retain and release of its message, often on another core's cache line.
    func routeCoreActions() {
        if !coreActions.isEmpty {
            let target = coreActions[0].connection.loop
            if target != index && target < actionsForLoops.count && actionsForLoops[target].isEmpty
                && coreActions.allSatisfy({ $0.connection.loop == target })
            {
                // The usual case under load (fan-in to one subscriber, a batch for one loop): hand the whole array.
                swap(&actionsForLoops[target], &coreActions)
            } else {
                coreActions.reverse()
                while let action = coreActions.popLast() {
                    let target = action.connection.loop
                    if target == index {
                        apply(action)
                    } else if target < actionsForLoops.count {
                        actionsForLoops[target].append(action)
                    }
                }
            }
        }
        guard let broker, broker.hasReadingChanges else { return }
        broker.takeReadingChanges(into: &readingScratch)
        for change in readingScratch {
            let target = change.connection.loop
            if target == index {
                apply(change)
            } else if target < readingChangesForLoops.count {
                readingChangesForLoops[target].append(change)
            }
        }
        readingScratch.removeAll(keepingCapacity: true)
    }

    func processMailbox() {
        handle.take(into: &spare)
        if broker != nil {
            spare.events.drain { coreReceive($0) }
            releaseDurableBatches()
            stoppedLoops += spare.stoppedLoops
            let backlog = server.coreBacklog.subtract(spare.eventsWeight, ordering: .sequentiallyConsistent).newValue
            if backlog <= settings.coreBacklogLowWater {
                for other in server.handles.dropFirst()
                where other.awaitsCoreDrain.load(ordering: .sequentiallyConsistent) {
                    if other.awaitsCoreDrain.exchange(false, ordering: .sequentiallyConsistent) {
                        other.post { $0.resumeReads = true }
                    }
                }
            }
        } else {
            spare.actions.drain { apply($0) }
            for change in spare.readingChanges { apply(change) }
            if spare.resumeReads { resumeReads() }
        }
        let stopRequested = spare.stopRequested
        spare.clear()
        if stopRequested && !stopping { beginShutdown() }
    }

    /// Writes, then hands this turn's batches to the other loops.
    func endTurn() {
        if let broker, broker.messagesDropped != publishedDropCount {
            // Before this turn's writes: a client that sees an acknowledgement sent after a drop sees its count.
            publishedDropCount = broker.messagesDropped
            server.droppedMessages.store(Int(truncatingIfNeeded: publishedDropCount), ordering: .releasing)
        }
        if let broker, let persistence = server.persistence { persistence.endOfTurn(broker, owner: handle) }
        flushDirtyConnections()
        if index == 0 {
            for target in 1..<max(1, actionsForLoops.count)
            where !actionsForLoops[target].isEmpty || !readingChangesForLoops[target].isEmpty {
                server.handles[target].post(
                    actions: &actionsForLoops[target], readingChanges: &readingChangesForLoops[target])
            }
            if stopping && stoppedLoops == server.handles.count - 1 { finished = true }
        } else if !eventsForCore.isEmpty || stopping {
            server.coreBacklog.add(eventsForCoreWeight, ordering: .sequentiallyConsistent)
            server.handles[0].post(events: &eventsForCore, weight: eventsForCoreWeight, loopStopped: stopping)
            eventsForCoreWeight = 0
            if stopping { finished = true }
        }
        // Dekker-style with loop 0's check in `processMailbox`: the flag is set before the backlog is read here,
        // the backlog is lowered before the flag is read there, so one of the two always sees the drain.
        if !pausedConnections.isEmpty,
            server.coreBacklog.load(ordering: .sequentiallyConsistent) <= settings.coreBacklogLowWater
        {
            resumeReads()
        }
    }
}
