import Glibc
// `GET /metrics`: the server's numbers in the Prometheus text format 0.0.4.
import MQTTCodec
import MidgeCore
import MidgeGateway

enum MetricsExposition {
    /// The whole body. Traffic is summed from the loops now; the core's figures are loop 0's latest snapshot (at
    /// most about a second old); loop CPU time is read from procfs now.
    static func render(_ metrics: ServerMetrics) -> [UInt8] {
        let core = metrics.core.withLock { $0 }
        let statistics = core.statistics
        let traffic = metrics.traffic
        let gateway = metrics.gateway
        var text = PrometheusText()
        let now = Syscall.monotonicNanoseconds()

        text.gauge(
            "midge_uptime_seconds", help: "Seconds since the broker started.",
            value: Double(now - metrics.startedAt) / 1e9)
        text.gauge("midge_build_info", help: "The running version.", value: 1, labels: [("version", midgeVersion)])
        text.gauge(
            "midge_connections", help: "Open client sockets, those not past CONNECT yet included.",
            value: Double(core.openConnections))
        text.gauge(
            "midge_clients_connected", help: "Clients that completed CONNECT and are connected.",
            value: Double(statistics.connectedClients))
        text.gauge(
            "midge_clients_maximum", help: "The most clients connected at once since start.",
            value: Double(core.clientsMaximum))
        text.gauge(
            "midge_sessions", help: "Sessions: connected clients plus persistent sessions kept offline.",
            value: Double(statistics.sessions))
        text.gauge(
            "midge_subscriptions", help: "Subscriptions over all sessions.",
            value: Double(statistics.subscriptions))
        text.gauge(
            "midge_shared_subscriptions", help: "Shared subscriptions ($share/<group>/<filter>) over all sessions.",
            value: Double(statistics.sharedSubscriptions))
        text.gauge(
            "midge_retained_messages", help: "Topics with a retained message.",
            value: Double(statistics.retainedMessages))
        text.gauge(
            "midge_queued_messages", help: "Deliveries waiting in session queues (queue depth).",
            value: Double(statistics.queuedMessages))
        text.gauge(
            "midge_inflight_messages", help: "QoS 1 and 2 deliveries waiting for their acknowledgement.",
            value: Double(statistics.inflightMessages))

        text.counter(
            "midge_bytes_received_total", help: "Bytes read from client sockets.",
            value: Double(traffic.bytesReceived))
        text.counter(
            "midge_bytes_sent_total", help: "Bytes written to client sockets.",
            value: Double(traffic.bytesSent))
        text.counter(
            "midge_packets_received_total", help: "MQTT packets of every type received.",
            value: Double(traffic.packetsReceived))
        text.counter(
            "midge_packets_sent_total", help: "MQTT packets of every type sent.",
            value: Double(traffic.packetsSent))
        text.family(
            "midge_messages_received_total", type: .counter, help: "PUBLISH packets received, by QoS.",
            samples: qosSamples(traffic.publishReceived))
        text.family(
            "midge_messages_sent_total", type: .counter,
            help: "PUBLISH packets sent, by QoS (retransmissions included).",
            samples: qosSamples(traffic.publishSent))
        text.counter(
            "midge_publish_bytes_received_total", help: "Payload bytes of PUBLISH packets received.",
            value: Double(traffic.publishBytesReceived))
        text.counter(
            "midge_publish_bytes_sent_total", help: "Payload bytes of PUBLISH packets sent.",
            value: Double(traffic.publishBytesSent))
        text.gauge(
            "midge_retained_bytes", help: "Topic and payload bytes of the retained messages.",
            value: Double(statistics.retainedBytes))
        text.family(
            "midge_limit_refusals_total", type: .counter,
            help: "Work refused at a configured limit (max_topic_levels closes the connection).",
            samples: [
                .init(labels: [("limit", "max_topic_levels")], value: Double(statistics.topicsTooDeep)),
                .init(labels: [("limit", "max_subscriptions")], value: Double(statistics.subscriptionsRefused)),
                .init(labels: [("limit", "retained")], value: Double(statistics.retainedRefused)),
                .init(
                    labels: [("limit", "memory_limit_connect")],
                    value: Double(statistics.connectionsRefusedForMemory)),
                .init(
                    labels: [("limit", "memory_limit_queue")],
                    value: Double(statistics.messagesDroppedForMemory)),
            ])
        let memory = metrics.memory
        text.gauge(
            "midge_resident_memory_bytes", help: "Resident memory at the latest memory_limit reading.",
            value: Double(
                memory.limit > 0
                    ? memory.residentBytes.load(ordering: .relaxed)
                    : MemoryCeiling.readResidentBytes() ?? 0))
        text.gauge("midge_memory_limit_bytes", help: "memory_limit; 0 when there is none.", value: Double(memory.limit))
        text.gauge(
            "midge_memory_limit_reached", help: "1 while resident memory is above memory_limit.",
            value: memory.reached.load(ordering: .relaxed) ? 1 : 0)
        text.family(
            "midge_messages_dropped_total", type: .counter, help: "Messages not delivered, by reason.",
            samples: [
                .init(
                    labels: [("reason", "queue_full")],
                    value: Double(statistics.messagesDropped - statistics.messagesDroppedForMemory)),
                .init(labels: [("reason", "memory_limit")], value: Double(statistics.messagesDroppedForMemory)),
                .init(labels: [("reason", "store_failed")], value: Double(statistics.publishesRefused)),
            ])
        text.counter(
            "midge_publishers_held_total",
            help: "Times a publisher was held back by a full queue (queue_full_policy block).",
            value: Double(statistics.publishersHeld))

        if let store = core.store {
            text.gauge(
                "midge_store_log_bytes", help: "Write-ahead log bytes not yet covered by a snapshot.",
                value: Double(store.logBytes))
            text.gauge(
                "midge_store_snapshot_bytes", help: "Size of the latest snapshot.",
                value: Double(store.lastSnapshotBytes))
            text.counter(
                "midge_store_written_bytes_total", help: "Bytes appended to the write-ahead log.",
                value: Double(store.bytes))
            text.counter(
                "midge_store_records_total", help: "Records appended to the write-ahead log.",
                value: Double(store.records))
            text.counter(
                "midge_store_fsyncs_total", help: "fsync calls of the write-ahead log.",
                value: Double(store.fsyncs))
            text.gauge(
                "midge_store_last_fsync_seconds", help: "How long the latest fsync took.",
                value: Double(store.lastFsyncNanoseconds) / 1e9)
            text.gauge(
                "midge_store_healthy", help: "1 while the store writes; 0 while QoS 1/2 is refused.",
                value: store.isHealthy ? 1 : 0)
        }

        let loops = LoopCPUTime.read()
        text.family(
            "midge_event_loop_cpu_seconds_total", type: .counter,
            help: "CPU time of each event loop thread: the time it was busy, not waiting in epoll.",
            samples: loops.map { .init(labels: [("loop", String($0.loop))], value: $0.seconds) })

        let turns = metrics.loopTurns
        text.family(
            "midge_event_loop_turns_total", type: .counter,
            help: "Wake-ups of each event loop thread (returns from epoll_wait).",
            samples: turns.enumerated().map {
                .init(labels: [("loop", String($0.offset))], value: Double($0.element.own))
            })
        text.family(
            "midge_event_loop_batches_while_asleep_total", type: .counter,
            help: "Deliveries another loop wrote to this loop's clients while it slept, saving a wake-up.",
            samples: turns.enumerated().map {
                .init(labels: [("loop", String($0.offset))], value: Double($0.element.whileAsleep))
            })

        text.counter(
            "midge_http_requests_total", help: "HTTP requests received by the gateway.",
            value: Double(gateway.requests.load(ordering: .relaxed)))
        text.family(
            "midge_http_responses_total", type: .counter, help: "HTTP answers by status class.",
            samples: [
                .init(labels: [("class", "2xx")], value: Double(gateway.responses2xx.load(ordering: .relaxed))),
                .init(labels: [("class", "4xx")], value: Double(gateway.responses4xx.load(ordering: .relaxed))),
                .init(labels: [("class", "5xx")], value: Double(gateway.responses5xx.load(ordering: .relaxed))),
            ])
        text.counter(
            "midge_http_published_total", help: "Messages accepted through POST /publish.",
            value: Double(gateway.published.load(ordering: .relaxed)))
        text.counter(
            "midge_http_events_total", help: "Messages written to SSE streams and long-poll answers.",
            value: Double(gateway.eventsDelivered.load(ordering: .relaxed)))
        text.gauge(
            "midge_http_streams", help: "Open Server-Sent Events streams.",
            value: Double(gateway.openStreams.load(ordering: .relaxed)))
        text.gauge(
            "midge_http_polls_waiting", help: "Long polls waiting for a message.",
            value: Double(gateway.waitingPolls.load(ordering: .relaxed)))
        renderBridges(metrics.bridges.withLock { $0 }, into: &text)
        return text.bytes
    }

    private static func qosSamples(_ counts: [UInt64]) -> [PrometheusText.Sample] {
        counts.enumerated().map { .init(labels: [("qos", String($0.offset))], value: Double($0.element)) }
    }
}

extension MetricsExposition {
    /// One sample per bridge, labelled with its `connection` name.
    private static func renderBridges(
        _ bridges: [(name: String, counters: BridgeCounters)], into text: inout PrometheusText
    ) {
        guard !bridges.isEmpty else { return }
        func samples(_ value: (BridgeCounters) -> Double) -> [PrometheusText.Sample] {
            bridges.map { .init(labels: [("bridge", $0.name)], value: value($0.counters)) }
        }
        text.family(
            "midge_bridge_connected", type: .gauge, help: "1 while the bridge's remote broker accepted it.",
            samples: samples { $0.connected.load(ordering: .relaxed) ? 1 : 0 })
        text.family(
            "midge_bridge_messages_out_total", type: .counter, help: "Messages sent to the remote broker.",
            samples: samples { Double($0.messagesOut.load(ordering: .relaxed)) })
        text.family(
            "midge_bridge_messages_in_total", type: .counter, help: "Messages received from the remote broker.",
            samples: samples { Double($0.messagesIn.load(ordering: .relaxed)) })
        text.family(
            "midge_bridge_queued_messages", type: .gauge,
            help: "Messages the bridge's local session holds for the remote (queued or in flight).",
            samples: samples { Double($0.queued.load(ordering: .relaxed)) })
        text.family(
            "midge_bridge_connection_attempts_total", type: .counter,
            help: "Connection attempts to the remote broker (the first one and every reconnect).",
            samples: samples { Double($0.attempts.load(ordering: .relaxed)) })
        text.family(
            "midge_bridge_reconnects_total", type: .counter,
            help: "Connection attempts to the remote broker after the first one.",
            samples: samples { Double(max(0, Int($0.attempts.load(ordering: .relaxed)) - 1)) })
    }
}
