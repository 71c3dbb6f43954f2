// midge-bench: drives an MQTT broker over loopback and reports throughput, loss, order, latency and broker cost.
import Glibc
import MQTTCodec
import Synchronization

/// What the threads share: phase flags and the measurement window, all atomics.
final class Coordinator: Sendable {
    let publishersReady = Atomic<Bool>(false)
    let subscribersReady = Atomic<Bool>(false)
    let started = Atomic<Bool>(false)
    let windowStart = Atomic<UInt64>(0)
    let windowEnd = Atomic<UInt64>(0)
    let publishersDone = Atomic<Bool>(false)
    let publishedTotal = Atomic<Int>(0)
    let acknowledgedTotal = Atomic<Int>(0)
    let subscribersDone = Atomic<Bool>(false)
    let finished = Atomic<Bool>(false)
    let failure = Mutex<String?>(nil)
    let deliveries = Mutex<DeliveryTracker?>(nil)

    func fail(_ message: String) { failure.withLock { if $0 == nil { $0 = message } } }
}

final class ThreadBody: Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

func spawn(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    let context = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(
        &thread, nil,
        { argument in
            guard let argument else { return nil }
            Unmanaged<ThreadBody>.fromOpaque(argument).takeRetainedValue().body()
            return nil
        }, context)
    precondition(rc == 0, "pthread_create failed: \(rc)")
    return thread
}

func seconds(_ nanoseconds: UInt64) -> Double { Double(nanoseconds) / 1e9 }

/// Polls `loop` until `condition` holds or `limit` seconds pass; returns whether it held.
func poll(_ loop: BenchLoop, upTo limit: Double, until condition: () -> Bool) -> Bool {
    let deadline = monotonicNanoseconds() + UInt64(limit * 1e9)
    while !condition() {
        if monotonicNanoseconds() > deadline { return false }
        loop.poll(timeoutMilliseconds: 10)
    }
    return true
}

func runPublishers(_ settings: BenchSettings, _ coordinator: Coordinator) {
    do {
        let loop = try BenchLoop(settings: settings)
        loop.prepareTemplates(topics: settings.topics.compactMap { TopicName($0) })
        for index in 0..<settings.publishers {
            try loop.open(
                role: .publisher(index: index), clientID: "bench-p\(index)-\(getpid())",
                source: settings.sourceAddress(for: index))
        }
        guard poll(loop, upTo: 30, until: { loop.allReady }) else {
            return coordinator.fail("publishers did not connect")
        }
        coordinator.publishersReady.store(true, ordering: .releasing)
        _ = poll(loop, upTo: 120, until: { coordinator.started.load(ordering: .acquiring) })
        loop.publishStart = coordinator.windowStart.load(ordering: .acquiring)
        let end = coordinator.windowEnd.load(ordering: .acquiring)
        loop.publishing = true
        while monotonicNanoseconds() < end && loop.closedCount == 0 { loop.poll(timeoutMilliseconds: 1) }
        loop.publishing = false
        _ = poll(loop, upTo: settings.drainSeconds, until: { loop.inflightTotal == 0 })
        if loop.closedCount > 0 { coordinator.fail("\(loop.closedCount) publisher connection(s) closed by the broker") }
        coordinator.publishedTotal.store(loop.publishedTotal, ordering: .relaxed)
        coordinator.acknowledgedTotal.store(loop.acknowledgedTotal, ordering: .relaxed)
        coordinator.publishersDone.store(true, ordering: .releasing)
        _ = poll(loop, upTo: settings.drainSeconds + 30, until: { coordinator.finished.load(ordering: .acquiring) })
        loop.closeAll()
    } catch {
        coordinator.fail("publishers: \(error)")
        coordinator.publishersDone.store(true, ordering: .releasing)
    }
}

func runSubscribers(_ settings: BenchSettings, _ coordinator: Coordinator) {
    do {
        let loop = try BenchLoop(settings: settings)
        for index in 0..<settings.subscribers {
            try loop.open(
                role: .subscriber(index: index), clientID: "bench-s\(index)-\(getpid())",
                source: settings.sourceAddress(for: index + settings.publishers))
        }
        guard poll(loop, upTo: 30, until: { loop.allReady }) else {
            return coordinator.fail("subscribers did not subscribe")
        }
        coordinator.subscribersReady.store(true, ordering: .releasing)
        _ = poll(loop, upTo: 120, until: { coordinator.started.load(ordering: .acquiring) })
        loop.windowStart = coordinator.windowStart.load(ordering: .acquiring)
        loop.windowEnd = coordinator.windowEnd.load(ordering: .acquiring)
        _ = poll(
            loop, upTo: settings.duration + settings.drainSeconds + 30,
            until: {
                coordinator.publishersDone.load(ordering: .acquiring)
            })
        // Drain: stop when everything arrived, or when nothing more has arrived for two seconds.
        let expected =
            (settings.qos == .atMostOnce
                ? coordinator.publishedTotal.load(ordering: .relaxed)
                : coordinator.acknowledgedTotal.load(ordering: .relaxed)) * settings.expectedCopies
        let drainDeadline = monotonicNanoseconds() + UInt64(settings.drainSeconds * 1e9)
        var lastCount = -1
        var lastProgress = monotonicNanoseconds()
        while monotonicNanoseconds() < drainDeadline {
            let count = loop.tracker.unique
            if count >= expected { break }
            if count != lastCount {
                lastCount = count
                lastProgress = monotonicNanoseconds()
            } else if monotonicNanoseconds() - lastProgress > 2_000_000_000 {
                break
            }
            loop.poll(timeoutMilliseconds: 20)
        }
        if loop.closedCount > 0 {
            coordinator.fail("\(loop.closedCount) subscriber connection(s) closed by the broker")
        }
        let tracker = loop.tracker
        coordinator.deliveries.withLock { $0 = tracker }
        coordinator.subscribersDone.store(true, ordering: .releasing)
        _ = poll(loop, upTo: 30, until: { coordinator.finished.load(ordering: .acquiring) })
        loop.closeAll()
    } catch {
        coordinator.fail("subscribers: \(error)")
        coordinator.subscribersDone.store(true, ordering: .releasing)
    }
}

func waitFor(_ flag: borrowing Atomic<Bool>, upTo limit: Double, _ coordinator: Coordinator) -> Bool {
    let deadline = monotonicNanoseconds() + UInt64(limit * 1e9)
    while !flag.load(ordering: .acquiring) {
        if monotonicNanoseconds() > deadline || coordinator.failure.withLock({ $0 != nil }) { return false }
        usleep(5000)
    }
    return true
}

func runTraffic(_ settings: BenchSettings) -> Int32 {
    let coordinator = Coordinator()
    let probe = settings.brokerPID.map { ProcessProbe(pid: $0) }
    let subscriberThread = spawn { runSubscribers(settings, coordinator) }
    guard waitFor(coordinator.subscribersReady, upTo: 60, coordinator) else {
        print("error: \(coordinator.failure.withLock { $0 } ?? "subscribers not ready")")
        return 1
    }
    let publisherThread = spawn { runPublishers(settings, coordinator) }
    guard waitFor(coordinator.publishersReady, upTo: 60, coordinator) else {
        print("error: \(coordinator.failure.withLock { $0 } ?? "publishers not ready")")
        return 1
    }
    let cpuBefore = probe?.cpuSeconds()
    let start = monotonicNanoseconds()
    coordinator.windowStart.store(start, ordering: .relaxed)
    coordinator.windowEnd.store(start + UInt64(settings.duration * 1e9), ordering: .relaxed)
    coordinator.started.store(true, ordering: .releasing)
    usleep(UInt32(settings.duration * 1e6))
    let cpuAfter = probe?.cpuSeconds()
    let rssAfter = probe?.residentBytes()
    _ = waitFor(coordinator.subscribersDone, upTo: settings.duration + settings.drainSeconds * 2 + 60, coordinator)
    coordinator.finished.store(true, ordering: .releasing)
    pthread_join(publisherThread, nil)
    pthread_join(subscriberThread, nil)

    guard let tracker = coordinator.deliveries.withLock({ $0 }) else {
        print("error: \(coordinator.failure.withLock { $0 } ?? "no results")")
        return 1
    }
    let published = coordinator.publishedTotal.load(ordering: .relaxed)
    let acknowledged = coordinator.acknowledgedTotal.load(ordering: .relaxed)
    let expected = (settings.qos == .atMostOnce ? published : acknowledged) * settings.expectedCopies
    let unique = tracker.unique
    let lost = max(0, expected - unique)
    let perSecond = Double(tracker.receivedInWindow) / settings.duration
    let sorted = tracker.latencies.sorted()
    func micros(_ q: Double) -> String { String(format3(Double(DeliveryTracker.quantile(q, of: sorted)) / 1000)) }
    var cpuField = "n/a", cpuPerDelivery = "n/a"
    if let cpuBefore, let cpuAfter {
        cpuField = format3(cpuAfter - cpuBefore)
        if tracker.receivedInWindow > 0 {
            cpuPerDelivery = format3((cpuAfter - cpuBefore) * 1e6 / Double(tracker.receivedInWindow))
        }
    }
    print(
        """
        scenario \(settings.scenario): \(settings.publishers) publisher(s) -> \(settings.subscribers) subscriber(s), \
        QoS \(settings.qos.rawValue), \(settings.payloadSize) B payloads, \(settings.topics.count) topic(s), \
        \(format3(settings.duration)) s\(settings.rate > 0 ? ", \(Int(settings.rate)) msg/s offered" : "")
          delivered      \(Int(perSecond)) msg/s (\(tracker.receivedInWindow) in the window)
          published      \(published), acknowledged by broker \(acknowledged)
          expected       \(expected), received \(unique), lost \(lost), duplicates \(tracker.duplicates), \
        out of order \(tracker.outOfOrder)
          latency        p50 \(micros(0.5)) us, p99 \(micros(0.99)) us, p99.9 \(micros(0.999)) us
          broker CPU     \(cpuField) s in the window, \(cpuPerDelivery) us per delivery\
        \(rssAfter.map { ", RSS \($0 / 1024) KiB" } ?? "")
        """)
    if let failure = coordinator.failure.withLock({ $0 }) { print("  warning        \(failure)") }
    print(
        "RESULT scenario=\(settings.scenario) qos=\(settings.qos.rawValue) delivered_per_s=\(Int(perSecond)) "
            + "published=\(published) acknowledged=\(acknowledged) expected=\(expected) received=\(unique) lost=\(lost) "
            + "duplicates=\(tracker.duplicates) out_of_order=\(tracker.outOfOrder) p50_us=\(micros(0.5)) "
            + "p99_us=\(micros(0.99)) p999_us=\(micros(0.999)) broker_cpu_s=\(cpuField) "
            + "cpu_us_per_delivery=\(cpuPerDelivery)")
    return 0
}

func runIdle(_ settings: BenchSettings) -> Int32 {
    guard let pid = settings.brokerPID else {
        print("error: the idle scenario needs --broker-pid to read the broker's memory")
        return 2
    }
    let probe = ProcessProbe(pid: pid)
    do {
        let loop = try BenchLoop(settings: settings)
        guard let before = probe.residentBytes() else { throw BenchError("cannot read /proc/\(pid)/status") }
        var opened = 0
        for index in 0..<settings.idleConnections {
            do {
                try loop.open(
                    role: .idle, clientID: "idle-\(index)-\(getpid())", source: settings.sourceAddress(for: index),
                    keepAlive: 0)
                opened += 1
            } catch {
                print("stopped opening at \(opened) connections: \(error)")
                break
            }
            if index % 256 == 255 { loop.poll(timeoutMilliseconds: 0) }
        }
        let ready = poll(loop, upTo: 60, until: { loop.connections.allSatisfy { $0.connected || $0.closed } })
        let connected = loop.connections.filter { $0.connected && !$0.closed }.count
        // Let the broker settle (freed handshake buffers, allocator caches) before reading its memory.
        _ = poll(loop, upTo: 2, until: { false })
        guard let after = probe.residentBytes() else { throw BenchError("broker \(pid) went away") }
        let perConnection = connected > 0 ? (after - before) / connected : 0
        print(
            """
            scenario idle: \(connected) of \(opened) connections accepted\(ready ? "" : " (timed out waiting for CONNACKs)")
              broker RSS     \(before / 1024) KiB before, \(after / 1024) KiB after, \(perConnection) B per connection
            RESULT scenario=idle connections=\(connected) rss_before=\(before) rss_after=\(after) \
            rss_per_connection=\(perConnection)
            """)
        loop.closeAll()
        return connected == opened ? 0 : 1
    } catch {
        print("error: \(error)")
        return 1
    }
}

func format3(_ value: Double) -> String {
    let scaled = (value * 1000).rounded() / 1000
    return "\(scaled)"
}

signal(SIGPIPE, SIG_IGN)
raiseFileLimit()
do {
    let settings = try BenchSettings.parse(Array(CommandLine.arguments.dropFirst()))
    exit(settings.scenario == "idle" ? runIdle(settings) : runTraffic(settings))
} catch {
    print("midge-bench: \(error)")
    exit(2)
}
