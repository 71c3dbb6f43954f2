// The subscription tree as text, for SIGUSR2 (mosquitto prints its tree there): one line per filter with its
// subscribers, bounded so a broker with a million filters does not write a million lines.
import MQTTCodec

/// What `Broker.subscriptionTree` found: the lines it kept and what it left out.
public struct SubscriptionTreeReport: Sendable, Equatable {
    /// `FILTER (client id, QoS) (client id, QoS) …`, filters in byte order of their levels, the shared
    /// subscriptions of a filter as `$share/GROUP/FILTER` lines after it.
    public var lines: [String] = []
    /// Filters (each shared group's counted as one) past `maxLines`.
    public var omittedFilters = 0
    /// Every filter with a subscriber, shown or not.
    public var filters = 0
}

extension Broker {
    /// Walks the whole trie (iteratively: filters can be thousands of levels deep) and formats at most `maxLines`
    /// filters with at most `maxSubscribersPerLine` subscribers each; the rest is only counted, without sorting.
    public func subscriptionTree(maxLines: Int, maxSubscribersPerLine: Int) -> SubscriptionTreeReport {
        var report = SubscriptionTreeReport()
        let root = subscriptionTrie.root
        var stack: [(node: SubscriptionNode, path: [UInt8])] = [(root, [])]
        while let (node, path) = stack.popLast() {
            if !node.subscribers.isEmpty {
                report.filters += 1
                if report.lines.count < maxLines {
                    report.lines.append(Self.line(path, node.subscribers, limit: maxSubscribersPerLine))
                } else {
                    report.omittedFilters += 1
                }
            }
            for group in node.sharedGroups.sorted(by: { $0.name.lexicographicallyPrecedes($1.name) }) {
                report.filters += 1
                if report.lines.count < maxLines {
                    let shared = Array("$share/".utf8) + group.name + [TopicLevels.separator] + path
                    report.lines.append(Self.line(shared, group.members, limit: maxSubscribersPerLine))
                } else {
                    report.omittedFilters += 1
                }
            }
            guard report.lines.count < maxLines else {
                // Only counting from here: no paths, no order.
                if let multi = node.multiLevel { stack.append((multi, [])) }
                if let single = node.singleLevel { stack.append((single, [])) }
                for child in node.children.values { stack.append((child, [])) }
                continue
            }
            func below(_ label: [UInt8]) -> [UInt8] { node === root ? label : path + [TopicLevels.separator] + label }
            // Pushed in reverse, so they come off the stack in order: literals by label, then `+`, then `#`.
            if let multi = node.multiLevel { stack.append((multi, below([UInt8(ascii: "#")]))) }
            if let single = node.singleLevel { stack.append((single, below([UInt8(ascii: "+")]))) }
            for child in node.children.values.sorted(by: { $1.label.lexicographicallyPrecedes($0.label) }) {
                stack.append((child, below(child.label)))
            }
        }
        return report
    }

    /// mosquitto's wording of a tree entry: the filter, then ` (client id, QoS)` per subscriber.
    private static func line(_ filter: [UInt8], _ subscribers: SubscriberSet, limit: Int) -> String {
        var line = String(decoding: filter, as: UTF8.self)
        for subscriber in subscribers.entries.prefix(limit) {
            line += " (\(subscriber.session.takeUnretainedValue().clientID), \(subscriber.qos.rawValue))"
        }
        let left = subscribers.entries.count - limit
        if left > 0 { line += " and \(left) more" }
        return line
    }
}
