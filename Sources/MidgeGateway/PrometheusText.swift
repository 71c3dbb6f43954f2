// The Prometheus text exposition format, version 0.0.4: HELP and TYPE lines, samples with escaped labels.

/// Builds a `/metrics` body. Each metric family is written once, with all its samples together, as the format
/// requires.
///
///     var text = PrometheusText()
///     text.counter("midge_messages_received_total", help: "PUBLISH packets received.", value: 42)
///     text.family("midge_connections", type: .gauge, help: "Open connections by listener.", samples: [
///         .init(labels: [("listener", "1883")], value: 10), .init(labels: [("listener", "8080")], value: 2),
///     ])
///     HTTPResponse(status: .ok, headers: [("Content-Type", PrometheusText.contentType)], body: text.bytes)
public struct PrometheusText: Sendable {
    public enum MetricType: String, Sendable {
        case counter, gauge, untyped
    }

    public struct Sample: Sendable {
        /// Appended to the family name: `_bucket`, `_sum`, `_count`… Empty for plain counters and gauges.
        public var suffix: String
        public var labels: [(name: String, value: String)]
        public var value: Double

        public init(suffix: String = "", labels: [(String, String)] = [], value: Double) {
            self.suffix = suffix
            self.labels = labels.map { (name: $0.0, value: $0.1) }
            self.value = value
        }
    }

    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public private(set) var bytes: [UInt8] = []
    private var families: Set<String> = []

    public init() {}

    public var text: String { String(decoding: bytes, as: UTF8.self) }

    public mutating func counter(_ name: String, help: String, value: Double, labels: [(String, String)] = []) {
        family(name, type: .counter, help: help, samples: [Sample(labels: labels, value: value)])
    }

    public mutating func gauge(_ name: String, help: String, value: Double, labels: [(String, String)] = []) {
        family(name, type: .gauge, help: help, samples: [Sample(labels: labels, value: value)])
    }

    public mutating func family(_ name: String, type: MetricType, help: String, samples: [Sample]) {
        // Names come from code, not from the network: a bad one is a bug.
        precondition(PrometheusText.isMetricName(name), "invalid metric name \(name)")
        precondition(families.insert(name).inserted, "metric family \(name) written twice")
        append("# HELP \(name) \(PrometheusText.escapeHelp(help))\n")
        append("# TYPE \(name) \(type.rawValue)\n")
        for sample in samples {
            precondition(sample.suffix.isEmpty || PrometheusText.isMetricName(name + sample.suffix), "invalid suffix")
            append(name + sample.suffix)
            if !sample.labels.isEmpty {
                append("{")
                for (index, label) in sample.labels.enumerated() {
                    precondition(PrometheusText.isLabelName(label.name), "invalid label name \(label.name)")
                    append("\(index > 0 ? "," : "")\(label.name)=\"\(PrometheusText.escapeLabelValue(label.value))\"")
                }
                append("}")
            }
            append(" \(PrometheusText.format(sample.value))\n")
        }
    }

    private mutating func append(_ text: String) { bytes.append(contentsOf: Array(text.utf8)) }

    /// Integers without a fraction, `NaN`, `+Inf`, `-Inf`; anything else as Swift prints a Double (Go's ParseFloat
    /// reads it).
    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }

    /// HELP text: backslash and line feed are escaped.
    static func escapeHelp(_ text: String) -> String {
        text.replacingAll([("\\", "\\\\"), ("\n", "\\n")])
    }

    /// Label values: backslash, double quote and line feed are escaped.
    static func escapeLabelValue(_ text: String) -> String {
        text.replacingAll([("\\", "\\\\"), ("\"", "\\\""), ("\n", "\\n")])
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`
    static func isMetricName(_ name: String) -> Bool {
        isName(name, extra: UInt8(ascii: ":"))
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`, and names starting with `__` are reserved.
    static func isLabelName(_ name: String) -> Bool {
        isName(name, extra: nil) && !name.hasPrefix("__")
    }

    private static func isName(_ name: String, extra: UInt8?) -> Bool {
        guard let first = name.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
            return false
        }
        return name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"):
                true
            default:
                byte == extra
            }
        }
    }
}

extension String {
    /// Replaces scalars in one pass. Scalars, not Characters: "\r\n" is one Character and would hide its LF.
    fileprivate func replacingAll(_ pairs: [(Unicode.Scalar, String)]) -> String {
        var result = ""
        result.reserveCapacity(utf8.count)
        for scalar in unicodeScalars {
            if let replacement = pairs.first(where: { $0.0 == scalar })?.1 {
                result += replacement
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
